"""The API docs pages (Swagger UI at ``/docs``, ReDoc at ``/redoc``) served from assets shipped
in a Python package, so they render with no network (FastAPI's self-hosting recipe).

The assets come from ``fastapi-offline``, which packages current ``swagger-ui-dist`` 5.x and
ReDoc 2.x files (the ``swagger-ui-bundle`` package ships Swagger UI 4, which cannot render the
OpenAPI 3.1 schema FastAPI writes).

Both pages are served with ``docs_policy`` (``server/security_headers.py``): the packaged assets
and the page's own inline script, by hash.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from visionloop.csp import inline_script_hashes
from visionloop.server.security_headers import CSP_HEADER, docs_policy

ASSETS_URL = "/docs-assets"
ASSETS_DIR = Path(str(files("fastapi_offline") / "static"))
SWAGGER_PARAMETERS = {"validatorUrl": None}
"""No badge that sends the schema to an online validator."""


def _with_policy(page: HTMLResponse) -> HTMLResponse:
    page.headers[CSP_HEADER] = docs_policy(inline_script_hashes(bytes(page.body).decode()))
    return page


def install_docs(app: FastAPI) -> None:
    """Add ``/docs``, ``/redoc`` and their assets to an app built with ``docs_url=None`` and
    ``redoc_url=None``."""
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    oauth2_redirect_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} API",
            oauth2_redirect_url=f"{root}{oauth2_redirect_url}",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            swagger_ui_parameters={**SWAGGER_PARAMETERS, **(app.swagger_ui_parameters or {})},
        )
        return _with_policy(page)

    @app.get(oauth2_redirect_url, include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return _with_policy(get_swagger_ui_oauth2_redirect_html())

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} API",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )
        return _with_policy(page)
