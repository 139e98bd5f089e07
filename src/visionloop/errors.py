"""The one exception tree of visionloop; the server translates it to HTTP in one place."""

from __future__ import annotations


class VisionloopError(Exception):
    """Base of every error visionloop raises on purpose. ``status`` is its HTTP status."""

    status: int = 500


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


class UnsupportedMediaError(VisionloopError):
    """A body of a type the route does not take (an upload that is not an image)."""

    status = 415


class ModelError(VisionloopError):
    """A model file that cannot be loaded or used (wrong format, bad checksum)."""

    status = 422


class SourceError(VisionloopError):
    """A frame source that cannot be opened or read."""

    status = 422
