"""The dashboard: the static Next.js export in ``server/static/`` served at ``/``.

It is the router's *default* app, so it only sees requests that no API or operations route
matched, fully or by path (a wrong method on a real route stays a 405). Paths under ``/api/``
and methods other than GET and HEAD keep the router's JSON 404; any other path is a file of the
export, a page folder's ``index.html`` (the export is built with ``trailingSlash``), or the
app's own ``404.html``. The export is built by ``make web`` (web/); without it, ``/`` says so.

Every file of the export is served with ``dashboard_policy`` (``server/security_headers.py``):
scripts from this origin, plus the inline scripts the export's pages hold, allowed by hash. Each
page of a Next 16 export holds three (measured): Turbopack's chunk list (~210 bytes, per page),
the flight data's initialisation (``self.__next_f``, the same on every page) and the page's
flight data (~5.5 KB). Their hashes are read from the export's HTML files when first needed and
again whenever ``index.html`` changes (a rebuild), one policy for every page.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.datastructures import MutableHeaders
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from visionloop.csp import inline_script_hashes
from visionloop.server.security_headers import CSP_HEADER, dashboard_policy

STATIC_DIR = Path(__file__).parent / "static"
API_PATH_PREFIX = "/api/"
NOT_BUILT = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>visionloop: dashboard not built</title></head><body style="font-family:system-ui">
<h1>The dashboard is not built</h1>
<p>This server has no dashboard build in <code>{where}</code>. Run <code>make web</code>
(Node 20 and npm) in the source tree, then restart. The API works without it: see
<a href="/docs">/docs</a>.</p></body></html>"""
NOT_BUILT_POLICY = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; sandbox"


def export_policy(directory: Path) -> str:
    """``dashboard_policy`` allowing the inline scripts of every HTML file of the export."""
    hashes: dict[str, None] = {}
    for page in sorted(directory.rglob("*.html")):
        hashes.update(dict.fromkeys(inline_script_hashes(page.read_text(encoding="utf-8"))))
    return dashboard_policy(hashes)


def dashboard_built(directory: Path = STATIC_DIR) -> bool:
    """True when ``directory`` holds an export (its ``index.html``)."""
    return (directory / "index.html").is_file()


class DashboardFallback:
    """ASGI app serving the export for GET/HEAD outside ``/api/``; ``not_found`` otherwise."""

    def __init__(self, not_found: ASGIApp, directory: Path = STATIC_DIR) -> None:
        self.not_found = not_found
        self.directory = directory
        self.files = StaticFiles(directory=directory, html=True, check_dir=False)
        self._policy: tuple[int, str] | None = None

    def policy(self) -> str:
        """The export's policy (``export_policy``), read again when ``index.html`` changes."""
        stamp = (self.directory / "index.html").stat().st_mtime_ns
        if self._policy is None or self._policy[0] != stamp:
            self._policy = (stamp, export_policy(self.directory))
        return self._policy[1]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope["method"] not in {"GET", "HEAD"}
            or path.startswith(API_PATH_PREFIX)
            or path == API_PATH_PREFIX.rstrip("/")
        ):
            await self.not_found(scope, receive, send)
            return
        if not dashboard_built(self.directory):
            page = NOT_BUILT.format(where=self.directory)
            response = HTMLResponse(page, status_code=404, headers={CSP_HEADER: NOT_BUILT_POLICY})
            await response(scope, receive, send)
            return
        policy = self.policy()

        async def send_with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[CSP_HEADER] = policy
            await send(message)

        await self.files(scope, receive, send_with_policy)


def install_dashboard(app: FastAPI, directory: Path = STATIC_DIR) -> None:
    """Make the dashboard the fallback of ``app``'s router (call after every route is added)."""
    app.router.default = DashboardFallback(app.router.default, directory)
