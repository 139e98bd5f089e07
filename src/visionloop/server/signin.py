"""Signing a person in, and a person changing their own password: throttle check, password check
outside any transaction, then the write.

The argon2 check takes tens of milliseconds on purpose. It runs between two short transactions,
never inside one: on SQLite a write transaction holds the database's only write lock, so a
stream of bad passwords checked inside one would stall every ingest and heartbeat.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from visionloop.errors import AuthenticationError, InvalidInputError, TooManyRequestsError
from visionloop.server.auth import hash_password
from visionloop.server.passwords import check_new_password
from visionloop.server.state import ServerState
from visionloop.server.store import login_throttle, people
from visionloop.server.store.login_throttle import ThrottleKeys, ThrottleRules
from visionloop.server.store.people import AuthenticatedUser, LoginCandidate


def throttle_rules(state: ServerState) -> ThrottleRules:
    settings = state.settings
    return ThrottleRules(
        free=settings.login_name_free_failures,
        max_delay_s=settings.login_name_max_delay_s,
        address_limit=settings.login_address_failures_per_hour,
    )


def _refuse_when_throttled(wait: int | None) -> None:
    if wait is not None:
        raise TooManyRequestsError(
            f"too many failed sign-ins: try again in {wait} s", retry_after_s=wait
        )


def sign_in(
    state: ServerState, *, name: str, password: str, address: str | None
) -> tuple[AuthenticatedUser, str]:
    """Check a name and password and open a session; returns the person and the session token.

    Raises TooManyRequestsError (429, with the seconds to wait) while the name or the address
    must wait (visionloop.server.store.login_throttle; checked first, so a throttled attempt
    costs no argon2 check and counts nowhere), AuthenticationError (401) for wrong credentials.
    """
    keys = ThrottleKeys.of(name=name, address=address)
    with state.read_sessions() as session, session.begin():
        wait = login_throttle.retry_after(
            session, keys=keys, rules=throttle_rules(state), now=datetime.now(UTC)
        )
        candidate = None if wait is not None else people.find_login(session, name=name)
    _refuse_when_throttled(wait)
    matches = people.password_matches(candidate, password)
    with state.write_lock(), state.write_sessions() as session, session.begin():
        if candidate is None or not matches:
            login_throttle.record_failure(session, keys=keys, now=datetime.now(UTC))
            token = None
        else:
            login_throttle.forget_name(session, name=name)
            ttl = timedelta(hours=state.settings.session_ttl_hours)
            token = people.open_session(session, user_id=candidate.user.id, ttl=ttl)
    if candidate is None or token is None:
        raise AuthenticationError("wrong user name or password")
    return candidate.user, token


def change_password(
    state: ServerState,
    *,
    user: AuthenticatedUser,
    current_password: str,
    new_password: str,
    address: str | None,
    session_token: str | None,
) -> None:
    """A signed-in person replaces their password; their other sessions end.

    The current password is checked like a sign-in (same throttle, a wrong one counts as a failed
    sign-in of the name), so a borrowed session cannot guess it faster than the sign-in form.
    Raises TooManyRequestsError, InvalidInputError (422) for a wrong current password or a new
    one the rules refuse (visionloop.server.passwords).
    """
    check_new_password(new_password, user_name=user.name)
    if new_password == current_password:
        raise InvalidInputError("the new password must differ from the current one")
    keys = ThrottleKeys.of(name=user.name, address=address)
    candidate: LoginCandidate | None
    with state.read_sessions() as session, session.begin():
        wait = login_throttle.retry_after(
            session, keys=keys, rules=throttle_rules(state), now=datetime.now(UTC)
        )
        candidate = None if wait is not None else people.find_login_by_id(session, user_id=user.id)
    _refuse_when_throttled(wait)
    matches = people.password_matches(candidate, current_password)
    new_hash = hash_password(new_password) if matches else None
    with state.write_lock(), state.write_sessions() as session, session.begin():
        if new_hash is None:
            login_throttle.record_failure(session, keys=keys, now=datetime.now(UTC))
        else:
            people.change_own_password(
                session, user_id=user.id, password_hash=new_hash, keep_token=session_token
            )
    if new_hash is None:
        raise InvalidInputError("current_password: that is not your current password")
