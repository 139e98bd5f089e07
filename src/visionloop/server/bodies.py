"""Reading raw request bodies with a size limit enforced before anything is parsed."""

from __future__ import annotations

from starlette.requests import Request

from visionloop.errors import BadRequestError, PayloadTooLargeError


async def read_limited(request: Request, limit: int, *, what: str) -> bytes:
    """The whole body, or PayloadTooLargeError as soon as it passes ``limit`` bytes.

    A declared Content-Length over the limit is refused before a byte is read; a body streamed
    without one (chunked) is counted as it arrives.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError as exc:
            raise BadRequestError("invalid Content-Length header") from exc
        if size > limit:
            raise PayloadTooLargeError(f"{what} of {size} bytes is over the limit of {limit}")
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise PayloadTooLargeError(f"{what} is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
