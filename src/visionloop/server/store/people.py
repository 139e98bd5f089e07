"""People: users with argon2 passwords and roles, and their sign-in sessions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from visionloop.errors import ConflictError, InvalidInputError
from visionloop.server.auth import (
    Role,
    dummy_password_hash,
    hash_password,
    new_session_token,
    token_sha256,
    verify_password,
)
from visionloop.server.models import User, UserSession

MIN_PASSWORD_LENGTH = 8


@dataclass(frozen=True, slots=True)
class AuthenticatedUser:
    """The person a request's session cookie belongs to."""

    id: int
    name: str
    role: Role


def _now() -> datetime:
    return datetime.now(UTC)


def create_user(session: Session, *, name: str, role: Role, password: str) -> User:
    """Add a person with a new password (hashed here with argon2id).

    Raises ConflictError for a taken name, InvalidInputError for a short password."""
    name = name.strip()
    if not name or len(name) > 128:
        raise InvalidInputError("a user name must be 1 to 128 characters")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInputError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    return add_user(session, name=name, role=role, password_hash=hash_password(password))


def add_user(session: Session, *, name: str, role: Role, password_hash: str) -> User:
    """Add a person whose password is already hashed (argon2)."""
    name = name.strip()
    if not name or len(name) > 128:
        raise InvalidInputError("a user name must be 1 to 128 characters")
    user = User(name=name, role=role.value, password_hash=password_hash, created_at=_now())
    session.add(user)
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise ConflictError(f"a user named {name!r} already exists") from exc
    return user


def user_exists(session: Session, *, name: str) -> bool:
    return session.scalars(select(User.id).where(User.name == name)).first() is not None


@dataclass(frozen=True, slots=True)
class LoginCandidate:
    """A person who may sign in, with the hash to check a password against."""

    user: AuthenticatedUser
    password_hash: str


def find_login(session: Session, *, name: str) -> LoginCandidate | None:
    """The enabled person named ``name`` (exactly), or None."""
    row = session.execute(
        select(User.id, User.name, User.role, User.password_hash, User.disabled).where(
            User.name == name
        )
    ).first()
    if row is None or row.disabled:
        return None
    user = AuthenticatedUser(id=row.id, name=row.name, role=Role(row.role))
    return LoginCandidate(user=user, password_hash=row.password_hash)


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
            token_sha256=token_sha256(token), user_id=user_id, created_at=now, expires_at=now + ttl
        )
    )
    # Expired sessions are cleared here rather than by a timer: sign-ins are rare and cheap.
    session.execute(delete(UserSession).where(UserSession.expires_at < now))
    session.flush()
    return token


def logout(session: Session, *, token: str) -> None:
    """End the session of ``token`` (a no-op for an unknown token)."""
    session.execute(delete(UserSession).where(UserSession.token_sha256 == token_sha256(token)))


def user_for_session(session: Session, *, token: str) -> AuthenticatedUser | None:
    """The person behind a live session token, or None (unknown, expired or disabled)."""
    row = session.execute(
        select(User.id, User.name, User.role)
        .join(UserSession, UserSession.user_id == User.id)
        .where(
            UserSession.token_sha256 == token_sha256(token),
            UserSession.expires_at > _now(),
            User.disabled.is_(False),
        )
    ).first()
    if row is None:
        return None
    return AuthenticatedUser(id=row.id, name=row.name, role=Role(row.role))
