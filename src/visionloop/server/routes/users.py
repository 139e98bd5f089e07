"""People's lifecycle (admins): list, add, change role, disable and enable, reset a password,
sign out everywhere, delete; and the audit list of those changes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from visionloop.server.deps import AdminUser, SessionDep, UserIdPath, WriteSessionDep
from visionloop.server.models import UserAuditEvent
from visionloop.server.passwords import new_temporary_password
from visionloop.server.schemas import (
    AuditEventOut,
    PasswordReset,
    PasswordResetDone,
    PersonCreate,
    PersonCreated,
    PersonOut,
    PersonUpdate,
    SignOutDone,
)
from visionloop.server.store import login_throttle, people
from visionloop.server.store.people import Actor, AuthenticatedUser, UserSummary

router = APIRouter(tags=["users"])

_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "Yourself, or the last enabled admin"}
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such person (or deleted)"}}


def _actor(user: AuthenticatedUser) -> Actor:
    return Actor(id=user.id, name=user.name)


def person_out(row: UserSummary) -> PersonOut:
    return PersonOut(
        id=row.id,
        name=row.name,
        role=row.role,
        disabled=row.disabled,
        must_change_password=row.must_change_password,
        created_at=row.created_at,
        last_sign_in_at=row.last_sign_in_at,
        deleted_at=row.deleted_at,
        sessions=row.sessions,
        reviews=row.reviews,
    )


def audit_out(event: UserAuditEvent) -> AuditEventOut:
    return AuditEventOut(
        id=event.id,
        at=event.at,
        actor=event.actor,
        action=event.action,
        target_id=event.target_id,
        target=event.target,
        detail=event.detail,
    )


@router.get("/users", response_model=list[PersonOut], summary="Every person (admin)")
def list_users(
    session: SessionDep,
    _admin: AdminUser,
    deleted: Annotated[bool, Query(description="Include deleted people.")] = False,
) -> list[PersonOut]:
    return [person_out(u) for u in people.list_users(session, include_deleted=deleted)]


@router.post(
    "/users",
    response_model=PersonCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Add a person (admin); they change the first password at their first sign-in",
    responses={409: {"description": "The name is taken (deleted people keep theirs)"}},
)
def create_user(body: PersonCreate, session: WriteSessionDep, admin: AdminUser) -> PersonCreated:
    temporary = new_temporary_password() if body.password is None else None
    user = people.create_user(
        session,
        name=body.name,
        role=body.role,
        password=body.password or temporary or "",
        must_change_password=True,
        actor=_actor(admin),
    )
    return PersonCreated(
        person=person_out(people.summary(session, user_id=user.id)),
        temporary_password=temporary,
    )


# {user_id:int}: only digits route here, so /users/audit is never a person (a DELETE of it is a
# 405 naming GET, not a 422 about the id).
@router.patch(
    "/users/{user_id:int}",
    response_model=PersonOut,
    summary="Change a person's role (admin); it applies to their next request",
    responses={**_NOT_FOUND, **_CONFLICT},
)
def update_user(
    user_id: UserIdPath, body: PersonUpdate, session: WriteSessionDep, admin: AdminUser
) -> PersonOut:
    people.set_role(session, user_id=user_id, role=body.role, actor=_actor(admin))
    return person_out(people.summary(session, user_id=user_id))


@router.post(
    "/users/{user_id:int}/disable",
    response_model=PersonOut,
    summary="Disable a person (admin): their sessions end at once, sign-in is refused",
    responses={**_NOT_FOUND, **_CONFLICT},
)
def disable_user(user_id: UserIdPath, session: WriteSessionDep, admin: AdminUser) -> PersonOut:
    people.set_disabled(session, user_id=user_id, disabled=True, actor=_actor(admin))
    return person_out(people.summary(session, user_id=user_id))


@router.post(
    "/users/{user_id:int}/enable",
    response_model=PersonOut,
    summary="Enable a disabled person (admin)",
    responses=_NOT_FOUND,
)
def enable_user(user_id: UserIdPath, session: WriteSessionDep, admin: AdminUser) -> PersonOut:
    people.set_disabled(session, user_id=user_id, disabled=False, actor=_actor(admin))
    return person_out(people.summary(session, user_id=user_id))


@router.post(
    "/users/{user_id:int}/password",
    response_model=PasswordResetDone,
    summary="Reset a person's password (admin): they must change it at their next sign-in",
    responses={**_NOT_FOUND, **_CONFLICT},
)
def reset_password(
    user_id: UserIdPath, body: PasswordReset, session: WriteSessionDep, admin: AdminUser
) -> PasswordResetDone:
    """Their sessions end and their failed sign-ins are forgotten. The answer holds the
    temporary password when the request gave none (shown once)."""
    temporary = new_temporary_password() if body.password is None else None
    user = people.reset_password(
        session, user_id=user_id, password=body.password or temporary or "", actor=_actor(admin)
    )
    login_throttle.forget_name(session, name=user.name)
    return PasswordResetDone(
        person=person_out(people.summary(session, user_id=user_id)),
        temporary_password=temporary,
    )


@router.post(
    "/users/{user_id:int}/sign-out",
    response_model=SignOutDone,
    summary="End every session of a person (admin): sign out everywhere",
    responses=_NOT_FOUND,
)
def sign_out_user(user_id: UserIdPath, session: WriteSessionDep, admin: AdminUser) -> SignOutDone:
    ended = people.sign_out_everywhere(session, user_id=user_id, actor=_actor(admin))
    return SignOutDone(sessions_ended=ended)


@router.delete(
    "/users/{user_id:int}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete a person (admin); their reviews keep their name, which is not reused",
    responses={**_NOT_FOUND, **_CONFLICT},
)
def delete_user(user_id: UserIdPath, session: WriteSessionDep, admin: AdminUser) -> None:
    people.delete_user(session, user_id=user_id, actor=_actor(admin))


@router.get(
    "/users/audit",
    response_model=list[AuditEventOut],
    summary="Changes to people's accounts, newest first: who did what, to whom, when (admin)",
)
def list_audit(
    session: SessionDep,
    _admin: AdminUser,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_id: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="Events older than this id.")
    ] = None,
    user_id: Annotated[
        int | None, Query(ge=1, le=2**31 - 1, description="Only events about this person.")
    ] = None,
) -> list[AuditEventOut]:
    events = people.list_audit(session, limit=limit, before_id=before_id, target_id=user_id)
    return [audit_out(e) for e in events]
