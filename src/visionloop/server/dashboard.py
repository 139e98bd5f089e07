"""The dashboard: the static Next.js export in ``server/static/`` served at ``/``.

It is the router's *default* app, so it only sees requests that no API or operations route
matched, fully or by path (a wrong method on a real route stays a 405). Paths under ``/api/``
and methods other than GET and HEAD keep the router's JSON 404; any other path is a file of the
export, a page folder's ``index.html`` (the export is built with ``trailingSlash``), or the
app's own ``404.html``. The export is built by ``make web`` (web/); without it, ``/`` says so.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

STATIC_DIR = Path(__file__).parent / "static"
API_PATH_PREFIX = "/api/"
NOT_BUILT = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>visionloop: dashboard not built</title></head><body style="font-family:system-ui">
<h1>The dashboard is not built</h1>
<p>This server has no dashboard build in <code>{where}</code>. Run <code>make web</code>
(Node 20 and npm) in the source tree, then restart. The API works without it: see
<a href="/docs">/docs</a>.</p></body></html>"""


def dashboard_built(directory: Path = STATIC_DIR) -> bool:
    """True when ``directory`` holds an export (its ``index.html``)."""
    return (directory / "index.html").is_file()


class DashboardFallback:
    """ASGI app serving the export for GET/HEAD outside ``/api/``; ``not_found`` otherwise."""

    def __init__(self, not_found: ASGIApp, directory: Path = STATIC_DIR) -> None:
        self.not_found = not_found
        self.directory = directory
        self.files = StaticFiles(directory=directory, html=True, check_dir=False)

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
            await HTMLResponse(page, status_code=404)(scope, receive, send)
            return
        await self.files(scope, receive, send)


def install_dashboard(app: FastAPI, directory: Path = STATIC_DIR) -> None:
    """Make the dashboard the fallback of ``app``'s router (call after every route is added)."""
    app.router.default = DashboardFallback(app.router.default, directory)
