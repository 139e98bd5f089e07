"""The error answers each route can give, written into the OpenAPI schema from what the route
depends on (issue 20, finding 9), so that clients and schemathesis see every status they get.

Derived per operation, and added only where the route does not document the status itself:

- a person's or a device's credentials (``current_user``, ``require_role``, ``current_device``):
  401 (none, or unknown) and 403 (the wrong kind, the wrong role, disabled);
- a path parameter: 404 (nothing has that id);
- a request body, or a state-changing method: 400 (unreadable JSON), 403 (CSRF: a cookie
  request without same-site proof), 409 (conflicts with the current state: a name taken, a
  lease held by another) and 413 (over the body limit);
- anything with parameters or a body: 422, already FastAPI's.

Every error body is ``{"detail": …}`` (``http_errors``), documented once as
``HTTPValidationError``; an error a route lists without a body gets that one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from visionloop.server.csrf import STATE_CHANGING
from visionloop.server.deps import (
    current_device,
    current_device_async,
    current_user,
    signed_in_user,
)
from visionloop.server.routes.models import device_or_person

ERROR_REF = "#/components/schemas/HTTPValidationError"
DESCRIPTIONS = {
    "400": "The body is not readable JSON.",
    "401": "No credentials, or unknown ones.",
    "403": "Credentials of the wrong kind or role, a disabled device, or a cross-site request.",
    "404": "Nothing has that id.",
    "409": "The request conflicts with the current state.",
    "413": "The body is over its limit.",
}
_AUTH_CALLS: frozenset[Callable[..., Any]] = frozenset(
    {current_user, signed_in_user, current_device, current_device_async, device_or_person}
)


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def _needs_credentials(route: APIRoute) -> bool:
    return any(
        call in _AUTH_CALLS or getattr(call, "__qualname__", "").startswith("require_role")
        for call in _calls(route.dependant)
    )


def error_statuses(route: APIRoute) -> list[str]:
    """The error statuses ``route`` can answer with (see the module doc), as strings."""
    statuses: set[str] = set()
    if _needs_credentials(route):
        statuses |= {"401", "403"}
    if route.dependant.path_params:
        statuses.add("404")
    if route.dependant.body_params or set(route.methods or ()) & STATE_CHANGING:
        statuses |= {"400", "403", "409", "413"}
    return sorted(statuses)


def document_error_responses(app: FastAPI, routers: Iterable[tuple[str, APIRouter]]) -> None:
    """Wrap ``app.openapi`` so that each operation of ``routers`` (each with the prefix it is
    mounted under) lists ``error_statuses``."""
    generate = app.openapi
    routes = [
        (prefix + route.path_format, route)
        for prefix, router in routers
        for route in router.routes
        if isinstance(route, APIRoute) and route.include_in_schema
    ]

    def openapi() -> dict[str, Any]:
        schema = generate()  # cached by FastAPI; the edit below is idempotent
        for path, route in routes:
            operations = schema.get("paths", {}).get(path, {})
            for method in route.methods or ():
                operation = operations.get(method.lower())
                if operation is None:
                    continue
                responses = operation.setdefault("responses", {})
                for status in error_statuses(route):
                    responses.setdefault(status, {"description": DESCRIPTIONS[status]})
                for status, response in responses.items():
                    # An error a route names without a body has the body every error has.
                    if status[0] in "45" and "content" not in response:
                        response["content"] = {"application/json": {"schema": {"$ref": ERROR_REF}}}
        return schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
