"""Signing a person in: throttle check, password check outside any transaction, session row.

The argon2 check takes tens of milliseconds on purpose. It runs between two short transactions,
never inside one: on SQLite a write transaction holds the database's only write lock, so a
stream of bad passwords checked inside one would stall every ingest and heartbeat.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from visionloop.errors import AuthenticationError, TooManyRequestsError
from visionloop.server.state import ServerState
from visionloop.server.store import login_throttle, people
from visionloop.server.store.people import AuthenticatedUser


def sign_in(
    state: ServerState, *, name: str, password: str, address: str | None
) -> tuple[AuthenticatedUser, str]:
    """Check a name and password and open a session; returns the person and the session token.

    Raises TooManyRequestsError (429, with the seconds to wait) when the name or the address
    had ``login_failures_per_minute`` failures within the last minute (checked first, so a
    throttled attempt costs no argon2 check), AuthenticationError (401) for wrong credentials.
    """
    settings = state.settings
    keys = login_throttle.keys_for(name=name, address=address)
    with state.read_sessions() as session, session.begin():
        wait = login_throttle.retry_after(
            session,
            keys=keys,
            limit=settings.login_failures_per_minute,
            now=datetime.now(UTC),
        )
        candidate = None if wait is not None else people.find_login(session, name=name)
    if wait is not None:
        raise TooManyRequestsError(
            f"too many failed sign-ins: try again in {wait} s", retry_after_s=wait
        )
    matches = people.password_matches(candidate, password)
    with state.write_lock(), state.write_sessions() as session, session.begin():
        if candidate is None or not matches:
            login_throttle.record_failure(session, keys=keys, now=datetime.now(UTC))
            token = None
        else:
            login_throttle.forget(session, key=keys[0])
            ttl = timedelta(hours=settings.session_ttl_hours)
            token = people.open_session(session, user_id=candidate.user.id, ttl=ttl)
    if candidate is None or token is None:
        raise AuthenticationError("wrong user name or password")
    return candidate.user, token
