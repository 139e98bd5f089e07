"""The API docs pages render offline: no external URL, every asset served by the app itself."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from visionloop.config import Settings
from visionloop.server.app import create_app

ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")
EXTERNAL = re.compile(r"""(?:https?:)?//[\w.-]+""")


@pytest.fixture
def client(tmp_path: Path, sqlite_url: str) -> Iterator[TestClient]:
    """The docs do not depend on the database: SQLite only."""
    with TestClient(create_app(Settings(data_dir=tmp_path, database_url=sqlite_url))) as c:
        yield c


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_page_needs_no_network(client: TestClient, page: str) -> None:
    r = client.get(page)
    assert r.status_code == 200
    html = r.text
    assert EXTERNAL.findall(html) == [], "the page loads something from another host"
    assets = ASSET.findall(html)
    assert any(a.endswith(".js") for a in assets), assets
    for url in assets:
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 100, url


def test_swagger_ui_reads_the_served_schema(client: TestClient) -> None:
    html = client.get("/docs").text
    assert "url: '/openapi.json'" in html
    assert client.get("/openapi.json").json()["paths"]
