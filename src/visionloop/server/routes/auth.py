"""Signing people in and out with an HttpOnly, SameSite session cookie."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from visionloop.server.auth import SESSION_COOKIE
from visionloop.server.deps import CurrentUser, StateDep, WriteSessionDep
from visionloop.server.schemas import LoginRequest, UserOut
from visionloop.server.signin import sign_in
from visionloop.server.store import people

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post(
    "/login",
    response_model=UserOut,
    summary="Sign in; sets the session cookie",
    responses={
        401: {"description": "Wrong user name or password"},
        403: {"description": "No same-origin Origin header and no X-Visionloop-CSRF: 1"},
        429: {"description": "Too many failed sign-ins for this name or address; see Retry-After"},
    },
)
def login(body: LoginRequest, request: Request, response: Response, state: StateDep) -> UserOut:
    address = request.client.host if request.client else None
    user, token = sign_in(state, name=body.username, password=body.password, address=address)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(state.settings.session_ttl_hours * 3600),
        httponly=True,
        samesite="lax",
        secure=state.settings.cookie_secure,
        path="/",
    )
    return UserOut(id=user.id, name=user.name, role=user.role)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Sign out; ends the session and clears the cookie",
)
def logout(request: Request, response: Response, session: WriteSessionDep) -> None:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        people.logout(session, token=token)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")


@router.get("/me", response_model=UserOut, summary="Who is signed in")
def me(user: CurrentUser) -> UserOut:
    return UserOut(id=user.id, name=user.name, role=user.role)
