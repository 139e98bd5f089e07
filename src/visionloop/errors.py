"""The one exception tree of visionloop; the server translates it to HTTP in one place."""

from __future__ import annotations

from typing import Any


class VisionloopError(Exception):
    """Base of every error visionloop raises on purpose. ``status`` is its HTTP status.

    ``extra`` holds machine-readable details that the server adds beside ``detail`` in the JSON
    body (for example which frames of a batch were bad).
    """

    status: int = 500

    def __init__(self, message: str = "", **extra: Any) -> None:
        super().__init__(message)
        self.extra: dict[str, Any] = extra


class BadRequestError(VisionloopError):
    """A request that cannot be read at all (malformed JSON)."""

    status = 400


class InvalidInputError(VisionloopError):
    """Input that is well-formed but wrong (a bad value, an impossible request)."""

    status = 422


class NotFoundError(VisionloopError):
    """A named thing does not exist."""

    status = 404


class ConflictError(VisionloopError):
    """The request conflicts with the current state (a name already taken)."""

    status = 409


class AuthenticationError(VisionloopError):
    """No credentials, or wrong ones."""

    status = 401


class PermissionDeniedError(VisionloopError):
    """Valid credentials that may not do this (a viewer writing, a disabled device)."""

    status = 403


class PayloadTooLargeError(VisionloopError):
    """A request body over its limit."""

    status = 413


class TooManyRequestsError(VisionloopError):
    """Too many attempts (failed sign-ins) in a short time; retry after ``retry_after_s``."""

    status = 429

    def __init__(self, message: str = "", *, retry_after_s: int, **extra: Any) -> None:
        super().__init__(message, **extra)
        self.retry_after_s = retry_after_s


class UnsupportedMediaError(VisionloopError):
    """A body of a type the route does not take (an upload that is not an image)."""

    status = 415


class ModelError(VisionloopError):
    """A model file that cannot be loaded or used (wrong format, bad checksum)."""

    status = 422


class SourceError(VisionloopError):
    """A frame source that cannot be opened or read."""

    status = 422


class UnavailableError(VisionloopError):
    """A service the request needs (the model registry) cannot be reached now; retry later."""

    status = 503
