"""Operations: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient

from support.db import app_state, frame_batch
from support.outage import DATABASES, own_database
from visionloop.config import Settings
from visionloop.server.app import create_app
from visionloop.server.migrate import alembic_config, head_revision


def test_healthz_and_readyz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}


def test_readyz_is_503_when_the_database_is_unreachable(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, database_url="postgresql+psycopg://postgres@127.0.0.1:1/none"
    )
    with TestClient(create_app(settings)) as c:
        assert c.get("/healthz").status_code == 200
        r = c.get("/readyz")
        assert r.status_code == 503
        assert r.json() == {"detail": "database unreachable"}


def test_metrics_count_requests_by_route_template(
    device_client: TestClient, viewer_client: TestClient, client: TestClient
) -> None:
    body = frame_batch(2)
    device_client.post("/api/v1/ingest", json=body)
    viewer_client.get(f"/api/v1/frames/{body['frames'][0]['id']}")
    r = client.get("/metrics")
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert (
        'visionloop_http_request_duration_seconds_count{method="POST",route="/api/v1/ingest",'
        'status="200"} 1.0' in text
    )
    assert 'route="/api/v1/frames/{frame_id}"' in text
    assert "visionloop_frames_ingested_total 2.0" in text


def test_each_app_has_its_own_metrics(tmp_path: Path, sqlite_url: str) -> None:
    a = create_app(Settings(data_dir=tmp_path / "a", database_url=sqlite_url))
    b = create_app(Settings(data_dir=tmp_path / "b", database_url=sqlite_url))
    with TestClient(a) as ca, TestClient(b) as cb:
        ca.get("/healthz")
        assert 'route="/healthz"' in ca.get("/metrics").text
        assert 'route="/healthz"' not in cb.get("/metrics").text


def test_openapi_is_served(client: TestClient) -> None:
    assert client.get("/openapi.json").json()["info"]["title"] == "visionloop"
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize("kind", DATABASES)
def test_readyz_is_503_until_the_schema_is_at_the_head_migration(kind: str, tmp_path: Path) -> None:
    script = ScriptDirectory.from_config(alembic_config())
    head = head_revision()
    assert head is not None
    previous = script.get_revision(head).down_revision
    assert isinstance(previous, str)
    with own_database(kind, tmp_path) as db:
        db.recreate_empty()
        db.migrate(previous)
        app = create_app(Settings(data_dir=tmp_path / "data", database_url=db.url))
        try:
            with TestClient(app) as c:
                r = c.get("/readyz")
                assert r.status_code == 503
                assert r.headers["retry-after"]
                assert previous in r.json()["detail"] and head in r.json()["detail"]
                db.migrate()
                assert c.get("/readyz").json() == {"status": "ready"}
        finally:
            app_state(app).engine.dispose()
