"""Cross-site request forgery guard for every route: one ASGI middleware.

A browser attaches the session cookie to any request a hostile page makes it send, so a request
that changes state (POST, PUT, PATCH, DELETE) and carries the session cookie must prove it comes
from this site: a same-origin ``Origin`` header (or, without one, a same-origin ``Referer``), or
the header ``X-Visionloop-CSRF: 1``, which a cross-site page cannot set without a CORS preflight
that this server never grants (the dashboard sends it on every request). Sign-in is held to the
same rule, cookie or not, so that a hostile page cannot sign a browser in to an attacker's
account (login CSRF). A request with an ``Authorization`` header (a device token) is exempt only
when it carries no session cookie: a browser never adds that header by itself, but it does add
the cookie, and a cookie that authenticates is what a forged request rides on, whatever other
header comes with it (issue 20, finding 5: cookie + ``Authorization: Basic …`` passed). A
refused request is a 403 with a JSON ``detail``.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from visionloop.errors import PermissionDeniedError
from visionloop.server.auth import SESSION_COOKIE
from visionloop.server.http_errors import error_response

CSRF_HEADER = "X-Visionloop-CSRF"
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOGIN_PATH = "/api/v1/auth/login"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin_of(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of a URL, or None when it has none (``null``, a bad URL)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[parts.scheme]


def _own_origin(scope: Scope, headers: Headers) -> tuple[str, str, int] | None:
    host = headers.get("host")
    if not host:
        return None
    return _origin_of(f"{scope.get('scheme', 'http')}://{host}")


def needs_proof(method: str, path: str, headers: Headers) -> bool:
    """True for a state-changing request a browser could have been made to send: it signs in,
    or it carries the session cookie (with or without an Authorization header)."""
    if method not in STATE_CHANGING:
        return False
    if path == LOGIN_PATH:
        return True
    return SESSION_COOKIE in cookie_parser(headers.get("cookie", ""))


def is_same_site(scope: Scope, headers: Headers) -> bool:
    """True when the request carries the CSRF header or names this server as its origin."""
    if headers.get(CSRF_HEADER) == "1":
        return True
    claimed = headers.get("origin") or headers.get("referer")
    if not claimed:
        return False
    own = _own_origin(scope, headers)
    return own is not None and _origin_of(claimed) == own


class CsrfMiddleware:
    """Pure ASGI middleware applying ``needs_proof`` / ``is_same_site`` to every HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            if needs_proof(scope["method"], scope["path"], headers) and not is_same_site(
                scope, headers
            ):
                error = PermissionDeniedError(
                    "cross-site request refused: a signed-in request that changes something "
                    f"needs a same-origin Origin header or '{CSRF_HEADER}: 1'"
                )
                await error_response(error)(scope, receive, send)
                return
        await self.app(scope, receive, send)
