"""Signing people in and out with an HttpOnly, SameSite session cookie; changing one's own
password; signing out everywhere."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from visionloop.server.auth import SESSION_COOKIE
from visionloop.server.deps import SignedInUser, StateDep, WriteSessionDep
from visionloop.server.schemas import LoginRequest, PasswordChange, SignOutDone, UserOut
from visionloop.server.signin import change_password, sign_in
from visionloop.server.store import people
from visionloop.server.store.people import Actor, AuthenticatedUser

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
    """A person whose password an admin reset signs in with ``must_change_password`` true, and
    may then only change it (POST /auth/password), read /auth/me and sign out."""
    user, token = sign_in(
        state, name=body.username, password=body.password, address=client_address(request)
    )
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(state.settings.session_ttl_hours * 3600),
        httponly=True,
        samesite="lax",
        secure=state.settings.cookie_secure,
        path="/",
    )
    return user_out(user)


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
def me(user: SignedInUser) -> UserOut:
    return user_out(user)


@router.post(
    "/password",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Change your own password; your other sessions end",
    responses={
        422: {"description": "Wrong current password, or a new one the rules refuse"},
        429: {"description": "Too many failed sign-ins for this name or address; see Retry-After"},
    },
)
def change_own_password(
    body: PasswordChange, request: Request, state: StateDep, user: SignedInUser
) -> None:
    change_password(
        state,
        user=user,
        current_password=body.current_password,
        new_password=body.new_password,
        address=client_address(request),
        session_token=request.cookies.get(SESSION_COOKIE),
    )


@router.post(
    "/sign-out-everywhere",
    response_model=SignOutDone,
    summary="End every session of yours, this one included, and clear the cookie",
)
def sign_out_everywhere(
    response: Response, session: WriteSessionDep, user: SignedInUser
) -> SignOutDone:
    ended = people.sign_out_everywhere(
        session, user_id=user.id, actor=Actor(id=user.id, name=user.name)
    )
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    return SignOutDone(sessions_ended=ended)


def user_out(user: AuthenticatedUser) -> UserOut:
    return UserOut(
        id=user.id,
        name=user.name,
        role=user.role,
        must_change_password=user.must_change_password,
    )


def client_address(request: Request) -> str | None:
    """The client's address: the connecting one, or the one a trusted proxy passed on
    (VISIONLOOP_TRUSTED_PROXIES; the app's proxy-headers middleware has set it)."""
    return request.client.host if request.client else None
