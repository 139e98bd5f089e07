"""Operations: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from support.db import frame_batch
from visionloop.config import Settings
from visionloop.server.app import create_app


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
