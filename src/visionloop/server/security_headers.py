"""Security headers on every response, set by one ASGI middleware, and the Content-Security-Policy
of each kind of document the server sends.

Every response gets ``X-Content-Type-Options: nosniff`` (a frame image or a JSON body is never
read as HTML or script), ``X-Frame-Options: DENY``, ``Referrer-Policy: same-origin`` and, unless
the route set its own, ``API_POLICY``: a sandbox with nothing allowed, so that anything opened
in a tab that is not the dashboard (JSON, an image, an error page) can run no script and has no
origin. Documents that need script name it:

- the dashboard (``server/dashboard.py``): ``dashboard_policy``, its own files plus its pages'
  inline scripts by hash;
- the API docs (``server/docs.py``): ``docs_policy``, the packaged assets plus the page's inline
  script by hash, in a sandbox that keeps its origin (Try it out sends the session cookie);
- drift reports (``routes/drift.py``): ``report_policy``, a sandbox with an opaque origin (no
  cookie, no same-origin request) whose only scripts are those the report itself lists by hash
  (see ``monitoring/report_html.py``); no hash, no script.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP_HEADER = "Content-Security-Policy"
API_POLICY = (
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'; sandbox"
)
"""Any response that is not a document of ours: JSON, images, models, metrics, error pages."""


def _policy(directives: dict[str, Iterable[str]]) -> str:
    return "; ".join(" ".join([name, *values]).strip() for name, values in directives.items())


def report_policy(script_hashes: Iterable[str]) -> str:
    """A drift report: sandboxed (opaque origin, no forms, popups or navigation of other
    windows), inline scripts only by the hashes the report lists, nothing fetched."""
    scripts = list(script_hashes) or ["'none'"]
    return _policy(
        {
            "sandbox": ["allow-scripts"],
            "default-src": ["'none'"],
            "script-src": scripts,
            "style-src": ["'unsafe-inline'"],
            "img-src": ["data:", "blob:"],
            "font-src": ["data:"],
            "base-uri": ["'none'"],
            "form-action": ["'none'"],
            "frame-ancestors": ["'none'"],
        }
    )


def docs_policy(script_hashes: Iterable[str]) -> str:
    """Swagger UI and ReDoc: their packaged files and their page's inline script; requests to
    this server only."""
    return _policy(
        {
            "sandbox": [
                "allow-scripts",
                "allow-same-origin",
                "allow-forms",
                "allow-popups",
                "allow-downloads",
            ],
            "default-src": ["'none'"],
            "script-src": ["'self'", *script_hashes],
            "style-src": ["'self'", "'unsafe-inline'"],
            "img-src": ["'self'", "data:"],
            "font-src": ["'self'", "data:"],
            "connect-src": ["'self'"],
            "worker-src": ["'self'", "blob:"],
            "base-uri": ["'none'"],
            "form-action": ["'self'"],
            "frame-ancestors": ["'none'"],
        }
    )


def dashboard_policy(script_hashes: Iterable[str]) -> str:
    """A dashboard page: scripts from this origin and the page's own inline ones by hash
    (Next's export writes its flight data as inline scripts); requests to this server only."""
    return _policy(
        {
            "default-src": ["'self'"],
            "script-src": ["'self'", *script_hashes],
            "style-src": ["'self'", "'unsafe-inline'"],
            "img-src": ["'self'", "data:", "blob:"],
            "font-src": ["'self'", "data:"],
            "connect-src": ["'self'"],
            "object-src": ["'none'"],
            "base-uri": ["'self'"],
            "form-action": ["'self'"],
            "frame-ancestors": ["'none'"],
        }
    )


DEFAULT_HEADERS: tuple[tuple[str, str], ...] = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    (CSP_HEADER, API_POLICY),
)


class SecurityHeadersMiddleware:
    """Pure ASGI middleware adding ``DEFAULT_HEADERS`` that a response has not set itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in DEFAULT_HEADERS:
                    if name not in headers:
                        headers.append(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)
