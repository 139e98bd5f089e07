"""Request dependencies as ``Annotated`` aliases: handlers declare what they need.

People authenticate with the session cookie, devices with ``Authorization: Bearer <token>``.
A device token on a person's route (or a person's cookie on a device route) is a 403: valid
credentials of the wrong kind. No credentials at all, or unknown ones, is a 401.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from visionloop.errors import AuthenticationError, PermissionDeniedError
from visionloop.server.auth import SESSION_COOKIE, Role
from visionloop.server.state import ServerState, server_state
from visionloop.server.store import devices as device_store
from visionloop.server.store import people
from visionloop.server.store.devices import AuthenticatedDevice
from visionloop.server.store.people import AuthenticatedUser

StateDep = Annotated[ServerState, Depends(server_state)]


def _read_session(state: StateDep) -> Iterator[Session]:
    with state.read_sessions() as session, session.begin():
        yield session


def _write_session(state: StateDep) -> Iterator[Session]:
    with state.write_lock(), state.write_sessions() as session, session.begin():
        yield session


# Both commit when the handler returns and roll back when it raises, before the response is sent.
SessionDep = Annotated[Session, Depends(_read_session, scope="function")]
WriteSessionDep = Annotated[Session, Depends(_write_session, scope="function")]


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header, if any."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _device_or_none(state: ServerState, token: str | None) -> AuthenticatedDevice | None:
    if token is None:
        return None
    device = state.device_cache.get(token)
    if device is None:
        with state.engine.connect() as connection:
            device = device_store.device_for_token(connection, token=token)
        if device is not None:
            state.device_cache.put(token, device)
    return device


def _user_or_none(state: ServerState, request: Request) -> AuthenticatedUser | None:
    """The person behind the session cookie; their session's idle time restarts (written at most
    once a minute per session, in its own short transaction)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    idle = timedelta(minutes=state.settings.session_idle_minutes)
    with state.read_sessions() as session:
        found = people.user_for_session(session, token=token, idle=idle)
    if found is None:
        return None
    if found.needs_touch:
        with state.write_lock(), state.write_sessions() as session, session.begin():
            people.touch_session(session, token=token)
    return found.user


def current_device(request: Request, state: StateDep) -> AuthenticatedDevice:
    """The enabled device whose bearer token came with the request."""
    token = bearer_token(request)
    return _check_device(request, state, token, _device_or_none(state, token))


async def current_device_async(request: Request, state: StateDep) -> AuthenticatedDevice:
    """``current_device`` without a thread hop when the token is cached (the ingest hot path)."""
    token = bearer_token(request)
    device = state.device_cache.get(token) if token is not None else None
    if device is None:
        return await run_in_threadpool(current_device, request, state)
    return _check_device(request, state, token, device)


def _check_device(
    request: Request, state: ServerState, token: str | None, device: AuthenticatedDevice | None
) -> AuthenticatedDevice:
    if device is None:
        if token is None and _user_or_none(state, request) is not None:
            raise PermissionDeniedError("this route is for edge devices: send a device token")
        if token is None:
            raise AuthenticationError("missing device token: send 'Authorization: Bearer <token>'")
        raise AuthenticationError("unknown or revoked device token")
    if device.disabled:
        raise PermissionDeniedError(f"device {device.name!r} is disabled")
    return device


def signed_in_user(request: Request, state: StateDep) -> AuthenticatedUser:
    """The signed-in person (any role), even one who must change their password first."""
    user = _user_or_none(state, request)
    if user is None:
        if _device_or_none(state, bearer_token(request)) is not None:
            raise PermissionDeniedError("a device token cannot use this route: sign in as a person")
        raise AuthenticationError("sign in first (POST /api/v1/auth/login)")
    return user


def current_user(request: Request, state: StateDep) -> AuthenticatedUser:
    """The signed-in person (any role) who need not change their password first."""
    user = signed_in_user(request, state)
    if user.must_change_password:
        raise PermissionDeniedError(
            "change your password first (POST /api/v1/auth/password): an admin reset it"
        )
    return user


def require_role(role: Role) -> Callable[[AuthenticatedUser], AuthenticatedUser]:
    """A dependency admitting people with ``role`` or a higher one."""

    def check(user: Annotated[AuthenticatedUser, Depends(current_user)]) -> AuthenticatedUser:
        if not user.role.at_least(role):
            raise PermissionDeniedError(f"this needs the {role.value} role (you are {user.role})")
        return user

    return check


DeviceDep = Annotated[AuthenticatedDevice, Depends(current_device_async)]
CurrentUser = Annotated[AuthenticatedUser, Depends(current_user)]
SignedInUser = Annotated[AuthenticatedUser, Depends(signed_in_user)]
ReviewerUser = Annotated[AuthenticatedUser, Depends(require_role(Role.REVIEWER))]
AdminUser = Annotated[AuthenticatedUser, Depends(require_role(Role.ADMIN))]


# Ids in paths, bounded by their column (INTEGER: 32 bits, BIGINT: 64), so an id no row can
# have is a 422 naming it, never a database overflow.
INT32_MAX = 2**31 - 1
DeviceIdPath = Annotated[int, Path(ge=1, le=INT32_MAX, description="A device's id.")]
UserIdPath = Annotated[int, Path(ge=1, le=INT32_MAX, description="A person's id.")]
JobIdPath = Annotated[int, Path(ge=1, le=INT32_MAX, description="A job's id.")]
