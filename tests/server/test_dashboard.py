"""The dashboard fallback: the static export at / for paths no route takes; the API unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from visionloop.server.dashboard import install_dashboard


@pytest.fixture
def export(tmp_path: Path) -> Path:
    """A tiny stand-in for the Next.js export (trailingSlash layout)."""
    root = tmp_path / "export"
    (root / "review").mkdir(parents=True)
    (root / "_next" / "static").mkdir(parents=True)
    (root / "index.html").write_text("<html>overview</html>")
    (root / "review" / "index.html").write_text("<html>review</html>")
    (root / "404.html").write_text("<html>no such page</html>")
    (root / "_next" / "static" / "app.js").write_text("console.log(1)")
    (tmp_path / "secret.txt").write_text("outside the export")
    return root


@pytest.fixture
def web(app: FastAPI, export: Path) -> TestClient:
    install_dashboard(app, export)
    return TestClient(app)


@pytest.mark.parametrize(
    ("path", "status", "body"),
    [
        ("/", 200, "overview"),
        ("/review/", 200, "review"),
        ("/review", 200, "review"),  # redirected to /review/
        ("/_next/static/app.js", 200, "console.log(1)"),
        ("/no-such-page", 404, "no such page"),
        ("/../secret.txt", 404, "no such page"),
    ],
    ids=["root", "page", "page-without-slash", "asset", "unknown-page", "traversal"],
)
def test_pages_and_assets_come_from_the_export(
    web: TestClient, path: str, status: int, body: str
) -> None:
    r = web.get(path)
    assert r.status_code == status
    assert body in r.text


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/v1/no-such-route", 404),
        ("GET", "/api", 404),
        ("POST", "/no-such-page", 404),
        ("GET", "/api/v1/auth/login", 405),
        ("DELETE", "/", 404),
    ],
    ids=["unknown-api", "api-root", "post-outside-api", "wrong-method", "delete-root"],
)
def test_the_api_keeps_its_json_errors(
    web: TestClient, method: str, path: str, status: int
) -> None:
    r = web.request(method, path)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/json"
    assert "detail" in r.json()


@pytest.mark.parametrize("path", ["/healthz", "/openapi.json", "/docs", "/metrics"])
def test_operations_routes_are_untouched(web: TestClient, path: str) -> None:
    r = web.get(path)
    assert r.status_code == 200
    assert "overview" not in r.text


def test_a_server_without_the_build_says_how_to_make_it(app: FastAPI, tmp_path: Path) -> None:
    install_dashboard(app, tmp_path / "empty")
    r = TestClient(app).get("/")
    assert r.status_code == 404
    assert "make web" in r.text
    assert TestClient(app).get("/api/v1/nope").json() == {"detail": "Not Found"}
