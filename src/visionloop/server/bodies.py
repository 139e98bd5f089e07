"""Request body limits for every route, enforced by one ASGI middleware before anything is parsed.

Every request body is read here, counted as it arrives, and handed to the app whole only when it
is within its route's allowance: ``DEFAULT_BODY_LIMIT`` (64 KiB), or what ``BODY_ALLOWANCES``
grants. A declared ``Content-Length`` over the allowance is refused before a byte is read; a body
streamed without one (chunked) is refused as soon as it passes the allowance. Either way the
answer is a 413 with a JSON ``detail``, before authentication and before any parsing, so no
route (present or future) parses an unbounded body.

**A route that needs a bigger body adds one line to ``BODY_ALLOWANCES``** (its method, its
path template as FastAPI writes it, and a function of the settings giving its limit in bytes).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from visionloop.config import Settings
from visionloop.errors import BadRequestError, PayloadTooLargeError, VisionloopError
from visionloop.server.http_errors import error_response

DEFAULT_BODY_LIMIT = 64 * 1024


@dataclass(frozen=True, slots=True)
class BodyAllowance:
    """A route allowed a body bigger than ``DEFAULT_BODY_LIMIT``. ``path`` is the full route
    template (``{name}`` matches one path segment); ``limit`` reads the bytes from the settings."""

    method: str
    path: str
    limit: Callable[[Settings], int]


BODY_ALLOWANCES: tuple[BodyAllowance, ...] = (
    BodyAllowance("POST", "/api/v1/ingest", lambda s: s.max_batch_bytes),
    BodyAllowance("PUT", "/api/v1/frames/{frame_id}/image", lambda s: s.max_image_bytes),
)


def _template_regex(path: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}/]+\})", path)
    return re.compile(
        "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts if p) + "/?"
    )


class BodyLimits:
    """The allowance table resolved against one app's settings."""

    def __init__(
        self,
        settings: Settings,
        allowances: tuple[BodyAllowance, ...] = BODY_ALLOWANCES,
        default: int = DEFAULT_BODY_LIMIT,
    ) -> None:
        self.default = default
        self._table = [
            (a.method.upper(), _template_regex(a.path), a.limit(settings)) for a in allowances
        ]

    def limit_for(self, method: str, path: str) -> int:
        """The largest body, in bytes, that ``method path`` may carry."""
        for allowed_method, pattern, limit in self._table:
            if method == allowed_method and pattern.fullmatch(path):
                return limit
        return self.default


class BodyLimitMiddleware:
    """Pure ASGI middleware: reads each HTTP request body within its limit, or answers 413."""

    def __init__(self, app: ASGIApp, limits: BodyLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.limit_for(scope["method"], scope["path"])
        try:
            _check_declared_length(Headers(scope=scope).get("content-length"), limit)
            first = await _read_body(receive, limit)
        except VisionloopError as exc:
            await error_response(exc)(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            # The whole body once, then the client's own messages (a disconnect) afterwards.
            nonlocal replayed
            if not replayed:
                replayed = True
                return first
            return await receive()

        await self.app(scope, replay, send)


def _check_declared_length(declared: str | None, limit: int) -> None:
    if declared is None:
        return
    try:
        size = int(declared)
    except ValueError as exc:
        raise BadRequestError("invalid Content-Length header") from exc
    if size > limit:
        raise PayloadTooLargeError(
            f"a request body of {size} bytes is over this route's limit of {limit} bytes"
        )


async def _read_body(receive: Receive, limit: int) -> Message:
    """The request body as one ``http.request`` message (or the disconnect that cut it short)."""
    chunks: list[bytes] = []
    total = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return message
        chunk: bytes = message.get("body", b"")
        total += len(chunk)
        if total > limit:
            raise PayloadTooLargeError(
                f"the request body is over this route's limit of {limit} bytes"
            )
        chunks.append(chunk)
        if not message.get("more_body", False):
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
