"""People: users with argon2 passwords and roles, their sign-in sessions, and their lifecycle
(role changes, disabling, password resets, deletion), each change written to the audit list.

A deleted person keeps their row, name and reviews; only their password and sessions go. Two
rules keep the dashboard administrable: nobody changes their own role, disables, resets or
deletes themselves (another admin must), and the last enabled admin cannot be demoted, disabled
or deleted. Both are a 409.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from visionloop.errors import ConflictError, InvalidInputError, NotFoundError
from visionloop.server.auth import (
    Role,
    dummy_password_hash,
    hash_password,
    new_session_token,
    token_sha256,
    verify_password,
)
from visionloop.server.models import LabelSubmission, User, UserAuditEvent, UserSession
from visionloop.server.passwords import check_new_password

NAME_MAX_LENGTH = 128
DELETED_PASSWORD_HASH = "!deleted"
"""Stored in place of a deleted person's hash: argon2 rejects it, so no password matches."""
TOUCH_EVERY = timedelta(seconds=60)
"""A session's last use is written at most this often (a write per request would serialize
every dashboard request on SQLite's one write lock)."""


@dataclass(frozen=True, slots=True)
class AuthenticatedUser:
    """The person a request's session cookie belongs to. ``must_change_password``: they may only
    change their password (and read who they are, or sign out) until they do."""

    id: int
    name: str
    role: Role
    must_change_password: bool = False


@dataclass(frozen=True, slots=True)
class Actor:
    """Who changes an account, as the audit list records it: a signed-in person (``id``) or the
    command line (``id`` None, ``name`` ``cli:<login>``)."""

    id: int | None
    name: str


def _now() -> datetime:
    return datetime.now(UTC)


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > NAME_MAX_LENGTH:
        raise InvalidInputError(f"a user name must be 1 to {NAME_MAX_LENGTH} characters")
    return name


def create_user(
    session: Session,
    *,
    name: str,
    role: Role,
    password: str,
    must_change_password: bool = False,
    actor: Actor | None = None,
) -> User:
    """Add a person with a new password (checked by visionloop.server.passwords, then hashed
    with argon2id). Raises ConflictError for a taken name (a deleted person's included),
    InvalidInputError for a bad name or password."""
    name = _check_name(name)
    check_new_password(password, user_name=name)
    return add_user(
        session,
        name=name,
        role=role,
        password_hash=hash_password(password),
        must_change_password=must_change_password,
        actor=actor,
    )


def add_user(
    session: Session,
    *,
    name: str,
    role: Role,
    password_hash: str,
    must_change_password: bool = False,
    actor: Actor | None = None,
) -> User:
    """Add a person whose password is already hashed (argon2); recorded when ``actor`` is given."""
    name = _check_name(name)
    user = User(
        name=name,
        role=role.value,
        password_hash=password_hash,
        created_at=_now(),
        must_change_password=must_change_password,
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise ConflictError(f"a user named {name!r} already exists (or existed)") from exc
    if actor is not None:
        _audit(session, actor=actor, action="create", target=user, detail=f"role {role.value}")
    return user


def user_exists(session: Session, *, name: str) -> bool:
    return session.scalars(select(User.id).where(User.name == name)).first() is not None


# --- signing in ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoginCandidate:
    """A person who may sign in, with the hash to check a password against."""

    user: AuthenticatedUser
    password_hash: str


def _login_candidate(row: User | None) -> LoginCandidate | None:
    if row is None or row.disabled or row.deleted_at is not None:
        return None
    user = AuthenticatedUser(
        id=row.id,
        name=row.name,
        role=Role(row.role),
        must_change_password=row.must_change_password,
    )
    return LoginCandidate(user=user, password_hash=row.password_hash)


def find_login(session: Session, *, name: str) -> LoginCandidate | None:
    """The enabled person named ``name`` (exactly), or None."""
    return _login_candidate(session.scalars(select(User).where(User.name == name)).first())


def find_login_by_id(session: Session, *, user_id: int) -> LoginCandidate | None:
    """The enabled person with ``user_id``, or None."""
    return _login_candidate(session.get(User, user_id))


def password_matches(candidate: LoginCandidate | None, password: str) -> bool:
    """Check ``password`` (argon2: tens of ms, so never call this inside a transaction). An
    unknown person costs the same time as a wrong password, so that timing tells nothing."""
    if candidate is None:
        verify_password(dummy_password_hash(), password)
        return False
    return verify_password(candidate.password_hash, password)


def open_session(session: Session, *, user_id: int, ttl: timedelta) -> str:
    """Start a sign-in session for ``user_id``; returns its token (the cookie value)."""
    token = new_session_token()
    now = _now()
    session.add(
        UserSession(
            token_sha256=token_sha256(token),
            user_id=user_id,
            created_at=now,
            expires_at=now + ttl,
            last_seen_at=now,
        )
    )
    session.execute(update(User).where(User.id == user_id).values(last_sign_in_at=now))
    # Expired sessions are cleared here rather than by a timer: sign-ins are rare and cheap.
    session.execute(delete(UserSession).where(UserSession.expires_at < now))
    session.flush()
    return token


def logout(session: Session, *, token: str) -> None:
    """End the session of ``token`` (a no-op for an unknown token)."""
    session.execute(delete(UserSession).where(UserSession.token_sha256 == token_sha256(token)))


@dataclass(frozen=True, slots=True)
class SessionUser:
    """The person behind a live session, and whether its last use should be written now."""

    user: AuthenticatedUser
    needs_touch: bool


def user_for_session(
    session: Session, *, token: str, idle: timedelta, now: datetime | None = None
) -> SessionUser | None:
    """The person behind a live session token, or None: unknown, past its absolute expiry,
    unused for longer than ``idle``, or its person disabled or deleted."""
    now = now or _now()
    row = session.execute(
        select(User.id, User.name, User.role, User.must_change_password, UserSession.last_seen_at)
        .join(UserSession, UserSession.user_id == User.id)
        .where(
            UserSession.token_sha256 == token_sha256(token),
            UserSession.expires_at > now,
            UserSession.last_seen_at > now - idle,
            User.disabled.is_(False),
            User.deleted_at.is_(None),
        )
    ).first()
    if row is None:
        return None
    user = AuthenticatedUser(
        id=row.id,
        name=row.name,
        role=Role(row.role),
        must_change_password=row.must_change_password,
    )
    return SessionUser(user=user, needs_touch=now - row.last_seen_at >= min(TOUCH_EVERY, idle / 4))


def touch_session(session: Session, *, token: str, now: datetime | None = None) -> None:
    """Record that the session of ``token`` was used now (restarts its idle time)."""
    session.execute(
        update(UserSession)
        .where(UserSession.token_sha256 == token_sha256(token))
        .values(last_seen_at=now or _now())
    )


# --- the lifecycle -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserSummary:
    """A person as the Users page lists them."""

    id: int
    name: str
    role: Role
    disabled: bool
    must_change_password: bool
    created_at: datetime
    last_sign_in_at: datetime | None
    deleted_at: datetime | None
    sessions: int
    reviews: int


def list_users(session: Session, *, include_deleted: bool = False) -> list[UserSummary]:
    """Every person by name, with their live session and review counts."""
    now = _now()
    sessions = (
        select(UserSession.user_id, func.count().label("n"))
        .where(UserSession.expires_at > now)
        .group_by(UserSession.user_id)
        .subquery()
    )
    reviews = (
        select(LabelSubmission.user_id, func.count().label("n"))
        .where(LabelSubmission.user_id.is_not(None))
        .group_by(LabelSubmission.user_id)
        .subquery()
    )
    query = (
        select(User, func.coalesce(sessions.c.n, 0), func.coalesce(reviews.c.n, 0))
        .outerjoin(sessions, sessions.c.user_id == User.id)
        .outerjoin(reviews, reviews.c.user_id == User.id)
        .order_by(User.name)
    )
    if not include_deleted:
        query = query.where(User.deleted_at.is_(None))
    return [
        UserSummary(
            id=user.id,
            name=user.name,
            role=Role(user.role),
            disabled=user.disabled,
            must_change_password=user.must_change_password,
            created_at=user.created_at,
            last_sign_in_at=user.last_sign_in_at,
            deleted_at=user.deleted_at,
            sessions=n_sessions,
            reviews=n_reviews,
        )
        for user, n_sessions, n_reviews in session.execute(query)
    ]


def summary(session: Session, *, user_id: int) -> UserSummary:
    """One person as ``list_users`` gives them (deleted ones too)."""
    for row in list_users(session, include_deleted=True):
        if row.id == user_id:
            return row
    raise NotFoundError(f"no user with id {user_id}")


def get_user(session: Session, *, user_id: int) -> User:
    """A person who was not deleted (NotFoundError otherwise)."""
    user = session.get(User, user_id)
    if user is None or user.deleted_at is not None:
        raise NotFoundError(f"no user with id {user_id}")
    return user


def find_user(session: Session, *, ref: str) -> User:
    """A person (not deleted) by name, or by id when ``ref`` is all digits and no one has that
    name."""
    user = session.scalars(select(User).where(User.name == ref, User.deleted_at.is_(None))).first()
    if user is None and ref.isdigit():
        user = session.get(User, int(ref))
    if user is None or user.deleted_at is not None:
        raise NotFoundError(f"no user {ref!r}")
    return user


def _not_self(actor: Actor, user: User, what: str) -> None:
    if actor.id == user.id:
        raise ConflictError(f"you cannot {what} yourself: another admin must")


def _keep_an_admin(session: Session, user: User, what: str) -> None:
    """Refuse to take away the last enabled admin. The admins' rows are locked (PostgreSQL), so
    that two admins demoting each other at once cannot both succeed."""
    if user.role != Role.ADMIN.value or user.disabled:
        return
    admins = session.scalars(
        select(User.id)
        .where(
            User.role == Role.ADMIN.value,
            User.disabled.is_(False),
            User.deleted_at.is_(None),
        )
        .with_for_update()
    ).all()
    if set(admins) <= {user.id}:
        raise ConflictError(
            f"{user.name!r} is the last enabled admin: make another admin before you {what} them"
        )


def _end_sessions(session: Session, *, user_id: int, keep_token: str | None = None) -> int:
    query = delete(UserSession).where(UserSession.user_id == user_id)
    if keep_token is not None:
        query = query.where(UserSession.token_sha256 != token_sha256(keep_token))
    return session.execute(query).rowcount or 0  # type: ignore[attr-defined]  # a CursorResult


def _audit(
    session: Session, *, actor: Actor, action: str, target: User, detail: str | None = None
) -> None:
    session.add(
        UserAuditEvent(
            at=_now(),
            actor_id=actor.id,
            actor=actor.name[:160],
            action=action,
            target_id=target.id,
            target=target.name,
            detail=detail[:200] if detail else None,
        )
    )
    session.flush()


def set_role(session: Session, *, user_id: int, role: Role, actor: Actor) -> User:
    """Give a person another role; it applies to their next request (roles are read per request)."""
    user = get_user(session, user_id=user_id)
    if user.role == role.value:
        return user
    _not_self(actor, user, "change the role of")
    if role != Role.ADMIN:
        _keep_an_admin(session, user, "demote")
    before = user.role
    user.role = role.value
    _audit(session, actor=actor, action="role", target=user, detail=f"{before} -> {role.value}")
    return user


def set_disabled(session: Session, *, user_id: int, disabled: bool, actor: Actor) -> User:
    """Disable a person (their sessions end at once, sign-in is refused) or enable them again.
    Doing it twice is a no-op, recorded once."""
    user = get_user(session, user_id=user_id)
    if user.disabled == disabled:
        return user
    if disabled:
        _not_self(actor, user, "disable")
        _keep_an_admin(session, user, "disable")
    user.disabled = disabled
    ended = _end_sessions(session, user_id=user.id) if disabled else 0
    detail = f"{ended} session(s) ended" if disabled else None
    _audit(
        session, actor=actor, action="disable" if disabled else "enable", target=user, detail=detail
    )
    return user


def reset_password(session: Session, *, user_id: int, password: str, actor: Actor) -> User:
    """Give a person a temporary password that they must change at their next sign-in; their
    sessions end. ``password`` is checked like any new one."""
    user = get_user(session, user_id=user_id)
    _not_self(actor, user, "reset the password of")
    check_new_password(password, user_name=user.name)
    user.password_hash = hash_password(password)
    user.must_change_password = True
    ended = _end_sessions(session, user_id=user.id)
    _audit(
        session,
        actor=actor,
        action="reset_password",
        target=user,
        detail=f"{ended} session(s) ended",
    )
    return user


def change_own_password(
    session: Session, *, user_id: int, password_hash: str, keep_token: str | None
) -> None:
    """Store a person's new password (hashed by the caller, outside the transaction), clear
    ``must_change_password`` and end their other sessions (the one of ``keep_token`` stays)."""
    user = get_user(session, user_id=user_id)
    user.password_hash = password_hash
    user.must_change_password = False
    ended = _end_sessions(session, user_id=user.id, keep_token=keep_token)
    actor = Actor(id=user.id, name=user.name)
    _audit(
        session,
        actor=actor,
        action="change_password",
        target=user,
        detail=f"{ended} other session(s) ended",
    )


def sign_out_everywhere(
    session: Session, *, user_id: int, actor: Actor, keep_token: str | None = None
) -> int:
    """End every session of a person (but ``keep_token``'s); returns how many ended."""
    user = get_user(session, user_id=user_id)
    ended = _end_sessions(session, user_id=user.id, keep_token=keep_token)
    _audit(session, actor=actor, action="sign_out", target=user, detail=f"{ended} session(s) ended")
    return ended


def delete_user(session: Session, *, user_id: int, actor: Actor) -> User:
    """Delete a person: no password, no sessions, gone from the list; the row stays so that
    their reviews and the audit list keep their name, and the name is not reused."""
    user = get_user(session, user_id=user_id)
    _not_self(actor, user, "delete")
    _keep_an_admin(session, user, "delete")
    user.deleted_at = _now()
    user.disabled = True
    user.must_change_password = False
    user.password_hash = DELETED_PASSWORD_HASH
    ended = _end_sessions(session, user_id=user.id)
    _audit(session, actor=actor, action="delete", target=user, detail=f"{ended} session(s) ended")
    return user


def list_audit(
    session: Session,
    *,
    limit: int = 100,
    before_id: int | None = None,
    target_id: int | None = None,
) -> Sequence[UserAuditEvent]:
    """The newest audit events first (``before_id`` pages further back)."""
    query = select(UserAuditEvent).order_by(UserAuditEvent.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(UserAuditEvent.id < before_id)
    if target_id is not None:
        query = query.where(UserAuditEvent.target_id == target_id)
    return session.scalars(query).all()
