"""The one place where errors become HTTP responses: every error body is ``{"detail": ...}``.

``visionloop.errors`` map to their ``status``; FastAPI's request validation errors and pydantic
validation errors become a 422 whose ``detail`` names each bad field as a path such as
``frames[3].detections[0].confidence``; malformed JSON is a 400. A database that cannot be
reached (or whose schema is not this server's) is a 503 with ``Retry-After`` and one log line, not
a 500 with a traceback: see :func:`database_unavailable`. A 405's ``Allow`` names every method
served at the path, whichever route serves it.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic_core import ErrorDetails
from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount

from visionloop.errors import (
    AuthenticationError,
    BadRequestError,
    InvalidInputError,
    TooManyRequestsError,
    UnavailableError,
    VisionloopError,
)

logger = logging.getLogger(__name__)

MAX_LISTED_ERRORS = 20
UNAVAILABLE_RETRY_AFTER_S = 5
"""What a 503 (a database or registry that cannot be reached) tells clients to wait, seconds."""
DATABASE_UNAVAILABLE = "the database is unavailable; retry later"
SCHEMA_NOT_MIGRATED = (
    "the database schema is not at this server's version (a database recreated empty, or one "
    "not yet migrated): run `visionloop db upgrade`; retry later"
)

# SQLite reports an unreachable file, a full disk, a lock held too long and a missing table as
# OperationalError, but also a syntax error (a bug): only these messages mean "unavailable".
_SQLITE_UNAVAILABLE = (
    "unable to open database file",
    "disk i/o error",
    "database is locked",
    "database table is locked",
    "readonly database",
    "database or disk is full",
)
_SQLITE_NO_SCHEMA = "no such table"
# PostgreSQL's SQLSTATEs for a table or column this server expects and the database lacks.
_PG_NO_SCHEMA = frozenset({"42P01", "42703"})


def format_loc(loc: Sequence[int | str]) -> str:
    """A location as a path: ``("frames", 3, "stats")`` -> ``frames[3].stats``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


def _error_entries(errors: Sequence[ErrorDetails | dict[str, Any]]) -> list[dict[str, Any]]:
    entries = []
    for err in errors[:MAX_LISTED_ERRORS]:
        loc = tuple(err.get("loc", ()))
        if loc and loc[0] == "body":
            loc = loc[1:]
        entries.append({"loc": format_loc(loc), "msg": err.get("msg", ""), "type": err["type"]})
    return entries


def validation_error(errors: Sequence[ErrorDetails | dict[str, Any]]) -> VisionloopError:
    """A pydantic error list as one visionloop error: BadRequestError for malformed JSON,
    InvalidInputError otherwise. ``detail`` lists the bad fields; ``errors`` carries them."""
    json_errors = [e for e in errors if e["type"] == "json_invalid"]
    if json_errors:
        ctx = json_errors[0].get("ctx") or {}
        reason = ctx.get("error", json_errors[0].get("msg", ""))
        return BadRequestError(f"malformed JSON: {reason}")
    entries = _error_entries(errors)
    detail = "; ".join(f"{e['loc']}: {e['msg']}" for e in entries)
    if len(errors) > len(entries):
        detail += f"; and {len(errors) - len(entries)} more"
    return InvalidInputError(f"invalid input: {detail}", errors=entries)


def error_response(exc: VisionloopError) -> JSONResponse:
    """The JSON response of a visionloop error (also used by the ASGI middlewares, which run
    outside FastAPI's exception handlers)."""
    body: dict[str, Any] = {"detail": str(exc) or type(exc).__name__, **exc.extra}
    headers: dict[str, str] = {}
    if isinstance(exc, AuthenticationError):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, TooManyRequestsError):
        headers["Retry-After"] = str(exc.retry_after_s)
    if isinstance(exc, UnavailableError):
        headers["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER_S)
    return JSONResponse(body, status_code=exc.status, headers=headers or None)


async def _visionloop_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, VisionloopError)
    if isinstance(exc, UnavailableError):  # expected while a service is down: one line
        logger.warning("%s %s: 503, %s", request.method, request.url.path, exc)
    elif exc.status >= 500:
        logger.error("server error: %s", exc, exc_info=exc)
    return error_response(exc)


async def _request_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(validation_error(list(exc.errors())))


PROBED_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
"""The methods a 405's ``Allow`` may name: those some route of the app serves at the path."""


def allowed_methods(request: Request, answered: str) -> str:
    """The ``Allow`` of a 405 at ``request``'s path: ``answered`` (what the refusing route or
    mounted app said) and every method some route fully matches there, sorted.

    Starlette answers a 405 from the first route whose path matches, so its ``Allow`` names only
    that route's methods; a path served by GET on one route and POST on another must list both.
    Routes are asked by method, since FastAPI nests included routers. A mount matches any method
    (its app answers its own 405, whose ``Allow`` is ``answered``), so it is not asked. HEAD is
    listed only where a route serves it (FastAPI's API routes do not).
    """
    methods = {m.strip() for m in answered.split(",") if m.strip()}
    routes = [r for r in request.app.router.routes if not isinstance(r, Mount)]
    for method in PROBED_METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in routes):
            methods.add(method)
    return ", ".join(sorted(methods))


async def _http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = exc.headers
    if exc.status_code == 405:
        answered = (headers or {}).get("Allow", "")
        headers = {**(headers or {}), "Allow": allowed_methods(request, answered)}
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)


async def _data_error(_request: Request, exc: Exception) -> JSONResponse:
    # The database refused a value that passed validation (PostgreSQL: a NUL character in text,
    # a number out of its column's range). The transaction is rolled back: nothing is stored.
    logger.warning("database refused a value: %s", exc)
    return error_response(
        InvalidInputError(
            "a value cannot be stored: text with a NUL character, or a number out of range"
        )
    )


def database_unavailable(exc: BaseException) -> str | None:
    """The ``detail`` of a 503 when ``exc`` means the database cannot serve now, else None.

    Unavailable: any PostgreSQL ``OperationalError`` (cannot connect, connection dropped, the
    database not accepting connections, a statement cancelled), a connection found closed, the
    pool exhausted, SQLite's unopenable, locked or full file; and a schema that lacks this
    server's tables (a database recreated empty): that is an operations problem, not a bug.
    Anything else (a syntax error, a constraint) is left to the 500 handler.
    """
    if isinstance(exc, PoolTimeoutError):
        return DATABASE_UNAVAILABLE
    if not isinstance(exc, DBAPIError):
        return None
    orig = exc.orig
    if getattr(orig, "sqlstate", None) in _PG_NO_SCHEMA:
        return SCHEMA_NOT_MIGRATED
    if isinstance(orig, sqlite3.Error):
        message = str(orig).lower()
        if _SQLITE_NO_SCHEMA in message:
            return SCHEMA_NOT_MIGRATED
        if isinstance(exc, OperationalError) and any(m in message for m in _SQLITE_UNAVAILABLE):
            return DATABASE_UNAVAILABLE
        return None
    if isinstance(exc, OperationalError | InterfaceError) or exc.connection_invalidated:
        return DATABASE_UNAVAILABLE
    return None


def first_line(exc: BaseException) -> str:
    """The first line of what the database driver said (a log line, not a traceback)."""
    orig = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(orig).strip().splitlines()
    return lines[0] if lines else type(orig).__name__


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    detail = database_unavailable(exc)
    if detail is None:
        raise exc  # a bug: the 500 handler logs it with its traceback
    # One line per request: during an outage every request fails the same way, and a traceback
    # each would bury the log.
    logger.warning(
        "%s %s: 503, database unavailable: %s",
        request.method,
        request.url.path,
        first_line(exc),
    )
    return JSONResponse(
        {"detail": detail},
        status_code=503,
        headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER_S)},
    )


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error", exc_info=exc)
    return JSONResponse({"detail": "internal server error"}, status_code=500)


# What the 422 answers above look like, replacing FastAPI's default (a list of pydantic errors)
# in the OpenAPI schema, so that clients and fuzzers check answers against the real shape.
_ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {"type": "string", "description": "What was wrong, in words a user acts on."},
        "errors": {
            "type": "array",
            "items": {"$ref": "#/components/schemas/ValidationError"},
            "description": "Each bad field (validation errors only).",
        },
    },
}
_FIELD_ERROR_SCHEMA: dict[str, Any] = {
    "title": "FieldError",
    "type": "object",
    "required": ["loc", "msg", "type"],
    "properties": {
        "loc": {"type": "string", "description": "The field, e.g. frames[3].stats.brightness"},
        "msg": {"type": "string"},
        "type": {"type": "string"},
    },
}


def _document_errors(app: FastAPI) -> None:
    """Make the OpenAPI schema describe the error bodies this module writes."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()  # cached by FastAPI; the edit below is idempotent
        components = schema.get("components", {}).get("schemas", {})
        if "HTTPValidationError" in components:
            components["HTTPValidationError"] = _ERROR_SCHEMA
            components["ValidationError"] = _FIELD_ERROR_SCHEMA
        return schema

    # FastAPI's documented way to change the schema ("Extending OpenAPI").
    app.openapi = openapi  # type: ignore[method-assign]


def install_error_handlers(app: FastAPI) -> None:
    """Register the translations above on ``app`` and document their shape in its schema."""
    app.add_exception_handler(VisionloopError, _visionloop_error)
    app.add_exception_handler(RequestValidationError, _request_validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(DataError, _data_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(PoolTimeoutError, _database_error)
    app.add_exception_handler(Exception, _unexpected)
    _document_errors(app)
