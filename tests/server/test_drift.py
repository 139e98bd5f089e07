"""Drift routes: pin and unpin a reference, queue checks that the worker runs, read checks,
reports and status, the webhook and the heartbeat's answer (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from support.db import DeviceCredentials, add_device, app_state
from support.drift import BASE_TIME, window_records
from visionloop.config import Settings
from visionloop.csp import inline_script_hashes
from visionloop.jobs.kinds import default_kinds
from visionloop.jobs.worker import Worker
from visionloop.monitoring.alarms import queue_alert
from visionloop.monitoring.features import FEATURES
from visionloop.monitoring.report_html import json_string_for_script
from visionloop.server.models import DriftCheck
from visionloop.server.store import drift as drift_store

WINDOW = 60


class _Receiver(BaseHTTPRequestHandler):
    events: list[dict[str, Any]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.events.append(json.loads(body))  # type: ignore[attr-defined]
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    server.events = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", server.events  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()


@pytest.fixture
def settings(
    settings: Settings,
    webhook: tuple[str, list[dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
) -> Settings:
    url, _ = webhook
    updated = settings.model_copy(
        update={
            "drift_window": WINDOW,
            "alert_webhook_url": url,
            "job_heartbeat_seconds": 0.2,
            "job_poll_seconds": 0.1,
        }
    )
    # The worker's job processes read their settings from the environment.
    for key, value in {
        "VISIONLOOP_DATA_DIR": str(updated.data_dir),
        "VISIONLOOP_DATABASE_URL": updated.database_url,
        "VISIONLOOP_DRIFT_WINDOW": str(WINDOW),
        "VISIONLOOP_ALERT_WEBHOOK_URL": url,
    }.items():
        monkeypatch.setenv(key, value)
    return updated


@pytest.fixture
def cam(app: FastAPI) -> Iterator[tuple[DeviceCredentials, TestClient]]:
    device = add_device(app, "cam1")
    with TestClient(app, headers=device.headers) as c:
        yield device, c


def _ingest(client: TestClient, records: list[dict[str, Any]]) -> None:
    r = client.post("/api/v1/ingest", json={"frames": records})
    assert r.status_code == 200, r.text


def _run_jobs(app: FastAPI) -> int:
    state = app_state(app)
    worker = Worker(engine=state.engine, settings=state.settings, kinds=default_kinds())
    ran = 0
    while worker.run(once=True):
        ran += 1
    return ran


def test_the_worker_checks_opens_the_alarm_and_the_device_is_told(
    app: FastAPI,
    cam: tuple[DeviceCredentials, TestClient],
    admin_client: TestClient,
    viewer_client: TestClient,
    webhook: tuple[str, list[dict[str, Any]]],
) -> None:
    device, client = cam
    _, events = webhook
    _ingest(client, window_records(0, count=WINDOW))
    for draw in (1, 2):
        _ingest(client, window_records(draw, "lighting", 0.6, count=WINDOW))
        r = admin_client.post("/api/v1/drift/checks", json={"device_id": device.id})
        assert r.status_code == 202, r.text
        assert r.json()["device_ids"] == [device.id]
        assert _run_jobs(app) == (1 if draw == 1 else 2)  # then the webhook job
        job = admin_client.get(f"/api/v1/jobs/{r.json()['job_id']}").json()
        assert job["status"] == "succeeded", job
        assert job["result"]["checks"][0]["drifted"] is True
    assert [e["type"] for e in events] == ["drift_alarm_opened"]
    assert events[0]["device"] == "cam1" and "brightness" in events[0]["drifted_features"]

    status = viewer_client.get("/api/v1/drift/status").json()
    assert [(s["device"], s["alarm"]) for s in status] == [("cam1", True)]
    assert status[0]["since"] is not None and "brightness" in status[0]["drifted_features"]

    beat = client.post("/api/v1/devices/heartbeat", json={})
    assert beat.json() == {"drift_alarm": True, "audit_rate_factor": 10.0}
    metrics = viewer_client.get("/metrics").text
    assert 'visionloop_drift_alarm{device="cam1"} 1.0' in metrics

    checks = viewer_client.get("/api/v1/drift/checks", params={"device_id": device.id}).json()
    assert len(checks["items"]) == 2 and checks["next_cursor"] is None
    newest = checks["items"][0]
    assert newest["has_report"] and newest["drifted"]
    report = viewer_client.get(f"/api/v1/drift/checks/{newest['id']}/report")
    assert report.status_code == 200
    assert report.headers["content-type"].startswith("text/html")
    for feature in FEATURES:
        assert feature in report.text


HOSTILE_CLASS = "</script><img src=x onerror=alert(document.domain)>"


def test_a_hostile_class_name_reaches_the_report_only_as_escaped_text(
    app: FastAPI,
    cam: tuple[DeviceCredentials, TestClient],
    admin_client: TestClient,
    viewer_client: TestClient,
) -> None:
    """Issue 20, finding 1: a device names its class ``</script><img …>``; the worker's report
    holds it only escaped inside its data script, lists its own scripts by hash, and is served
    in a sandbox (opaque origin) that runs those scripts and nothing else."""
    device, client = cam
    _ingest(client, window_records(0, count=WINDOW))
    hostile = window_records(1, "lighting", 0.6, count=WINDOW)
    for record in hostile:
        for detection in record["detections"]:
            detection["class_name"] = HOSTILE_CLASS
    _ingest(client, hostile)
    r = admin_client.post("/api/v1/drift/checks", json={"device_id": device.id})
    assert r.status_code == 202, r.text
    _run_jobs(app)
    checks = viewer_client.get("/api/v1/drift/checks", params={"device_id": device.id}).json()
    report = viewer_client.get(f"/api/v1/drift/checks/{checks['items'][0]['id']}/report")
    assert report.status_code == 200
    assert HOSTILE_CLASS not in report.text and "<img" not in report.text
    assert json_string_for_script(HOSTILE_CLASS) in report.text  # \u003c/script\u003e…
    policy = report.headers["content-security-policy"]
    assert policy.startswith("sandbox allow-scripts;") and "allow-same-origin" not in policy
    scripts = inline_script_hashes(report.text)
    assert len(scripts) == 4  # Evidently's data, its globalThis shim, its library, its call
    assert f"script-src {' '.join(scripts)};" in policy
    assert "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
    assert report.headers["x-content-type-options"] == "nosniff"


def test_the_heartbeat_answer_is_plain_without_an_alarm(
    cam: tuple[DeviceCredentials, TestClient],
) -> None:
    _, client = cam
    beat = client.post("/api/v1/devices/heartbeat", json={})
    assert beat.json() == {"drift_alarm": False, "audit_rate_factor": 1.0}
    assert 'visionloop_drift_alarm{device="cam1"} 0.0' in client.get("/metrics").text


def test_pin_and_unpin_a_reference(
    admin_client: TestClient, viewer_client: TestClient, cam: tuple[DeviceCredentials, TestClient]
) -> None:
    device, _ = cam
    body = {
        "device_id": device.id,
        "since": BASE_TIME.isoformat(),
        "until": (BASE_TIME + timedelta(hours=1)).isoformat(),
    }
    r = admin_client.post("/api/v1/drift/reference", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["pinned_by"] == "alice-admin"
    status = viewer_client.get("/api/v1/drift/status").json()
    assert status[0]["reference"]["device_id"] == device.id and status[0]["alarm"] is False
    path = f"/api/v1/drift/reference/{device.id}"
    assert admin_client.delete(path).status_code == 204
    assert admin_client.delete(path).status_code == 404
    assert viewer_client.get("/api/v1/drift/status").json()[0]["reference"] is None


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param({"since": "2026-11-02T00:00:00Z"}, 422, id="since-after-until"),
        pytest.param({"since": "2026-11-01T00:00:00"}, 422, id="naive"),
        pytest.param({"since": "0001-01-01T00:00:00+05:00"}, 422, id="year-1"),
        pytest.param({"device_id": 999_999}, 404, id="unknown-device"),
    ],
)
def test_a_bad_reference_is_refused(
    admin_client: TestClient,
    cam: tuple[DeviceCredentials, TestClient],
    body: dict[str, Any],
    status: int,
) -> None:
    device, _ = cam
    full = {
        "device_id": device.id,
        "since": "2026-11-01T00:00:00Z",
        "until": "2026-11-01T12:00:00Z",
    }
    r = admin_client.post("/api/v1/drift/reference", json=full | body)
    assert r.status_code == status, r.text
    assert r.json()["detail"]


def test_queue_a_check_of_every_enabled_device(app: FastAPI, admin_client: TestClient) -> None:
    assert admin_client.post("/api/v1/drift/checks", json={}).status_code == 404  # none yet
    a, b = add_device(app, "a"), add_device(app, "b")
    add_device(app, "off", disabled=True)
    r = admin_client.post("/api/v1/drift/checks", json={})
    assert r.status_code == 202
    assert sorted(r.json()["device_ids"]) == sorted([a.id, b.id])
    assert admin_client.post("/api/v1/drift/checks", json={"device_id": 999}).status_code == 404


def _add_check(app: FastAPI, device_id: int, features: list[dict[str, Any]] | None = None) -> int:
    with app_state(app).write_sessions() as session, session.begin():
        check = drift_store.add_check(
            session,
            DriftCheck(
                device_id=device_id,
                reference_kind="auto",
                reference_start=BASE_TIME,
                reference_end=BASE_TIME,
                reference_frames=30,
                window_start=BASE_TIME,
                window_end=BASE_TIME,
                window_frames=30,
                window_stride=3,
                features=features or [],
                drifted_features=0,
                share_drifted=0.0,
                drifted=False,
                report_sha256=None,
                duration_s=0.1,
            ),
        )
        return check.id


def test_viewers_never_see_the_webhook_url_and_the_job_reads_it_when_it_runs(
    app: FastAPI,
    cam: tuple[DeviceCredentials, TestClient],
    viewer_client: TestClient,
    webhook: tuple[str, list[dict[str, Any]]],
) -> None:
    """Issue 20, finding 2: the webhook URL is a credential; the alert job's params hold the
    event only, and the job POSTs to the URL of its own settings."""
    device, _ = cam
    url, events = webhook
    check_id = _add_check(app, device.id)
    state = app_state(app)
    with state.write_sessions() as session, session.begin():
        check = session.get(DriftCheck, check_id)
        assert check is not None
        queue_alert(session, settings=state.settings, check=check, event="opened")
    jobs = viewer_client.get("/api/v1/jobs", params={"kind": "alert_webhook"})
    assert jobs.status_code == 200
    (job,) = jobs.json()["items"]
    assert set(job["params"]) == {"event"}
    detail = viewer_client.get(f"/api/v1/jobs/{job['id']}")
    assert url not in jobs.text and url not in detail.text
    assert "127.0.0.1" not in jobs.text + detail.text
    assert _run_jobs(app) == 1
    assert [e["type"] for e in events] == ["drift_alarm_opened"]
    after = viewer_client.get(f"/api/v1/jobs/{job['id']}")
    assert after.json()["status"] == "succeeded" and url not in after.text


def test_checks_are_listed_newest_first_by_pages(
    app: FastAPI, viewer_client: TestClient, cam: tuple[DeviceCredentials, TestClient]
) -> None:
    device, _ = cam
    ids = [_add_check(app, device.id) for _ in range(5)]
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = viewer_client.get("/api/v1/drift/checks", params=params).json()
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]
    one = viewer_client.get(f"/api/v1/drift/checks/{ids[0]}").json()
    assert one["id"] == ids[0] and one["has_report"] is False
    assert (one["window_stride"], one["reference_stride"]) == (3, 1)
    assert viewer_client.get(f"/api/v1/drift/checks/{ids[0]}/report").status_code == 404
    bad = viewer_client.get("/api/v1/drift/checks", params={"cursor": "99999999999999999999"})
    assert bad.status_code == 422
    later = viewer_client.get("/api/v1/drift/checks", params={"since": "2100-01-01T00:00:00Z"})
    assert later.json()["items"] == []


def test_features_over_time_beside_the_reference(
    app: FastAPI, viewer_client: TestClient, cam: tuple[DeviceCredentials, TestClient]
) -> None:
    device, client = cam
    now = datetime.now(UTC)
    records = window_records(0, count=WINDOW)
    for k, r in enumerate(records):  # the last 2 h, one frame every 2 minutes
        r["captured_at"] = (now - timedelta(minutes=2 * k + 1)).isoformat()
    _ingest(client, records)
    empty = viewer_client.get("/api/v1/drift/features", params={"device_id": device.id}).json()
    assert empty["reference_kind"] is None
    assert all(f["reference_quantiles"] is None for f in empty["features"])
    band = [0.1, 0.2, 0.3, 0.4, 0.5]
    check_id = _add_check(
        app,
        device.id,
        [
            {
                "feature": "brightness",
                "method": "K-S p_value",
                "score": 0.5,
                "threshold": 0.05,
                "drifted": False,
                "reference_quantiles": band,
                "window_quantiles": band,
            }
        ],
    )
    r = viewer_client.get("/api/v1/drift/features", params={"device_id": device.id, "window": "6h"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["reference_check_id"] == check_id and body["reference_kind"] == "auto"
    assert body["interval_s"] == 6 * 3600 / 48 and body["quantiles"][2] == 0.5
    series = {f["feature"]: f for f in body["features"]}
    assert series["brightness"]["reference_quantiles"] == band
    points = series["brightness"]["points"]
    assert sum(p["frames"] for p in points) == WINDOW  # 2 h of the 6 h hold every frame
    assert all(p["quantiles"] == sorted(p["quantiles"]) for p in points)
    stats = [r["stats"]["brightness"] for r in records]
    assert min(stats) <= points[-1]["quantiles"][2] <= max(stats)


@pytest.mark.parametrize(
    "params",
    [{"window": "24x"}, {"window": "5m"}, {"window": "31d"}, {"device_id": 999}],
    ids=["unit", "too-short", "too-long", "no-device"],
)
def test_bad_feature_queries_are_refused(
    viewer_client: TestClient, cam: tuple[DeviceCredentials, TestClient], params: dict[str, Any]
) -> None:
    device, _ = cam
    r = viewer_client.get("/api/v1/drift/features", params={"device_id": device.id} | params)
    assert r.status_code in (404, 422), r.text
    assert r.json()["detail"]


def test_an_inconclusive_check_is_shown_as_such_and_never_as_drift(
    app: FastAPI, viewer_client: TestClient, cam: tuple[DeviceCredentials, TestClient]
) -> None:
    device, _ = cam
    drifted = [
        {"feature": name, "method": "K-S p_value", "score": 0.001, "threshold": 0.05}
        | {"drifted": True}
        for name in ("brightness", "contrast", "sharpness")
    ]
    check_id = _add_check(app, device.id, drifted)
    with app_state(app).write_sessions() as session, session.begin():
        check = drift_store.get_check(session, check_id=check_id)
        check.verdict, check.effective_frames = "inconclusive", 5
        check.verdict_reason = "too few independent frames to judge: ~5 in the window (needs 11)"
        drift_store.record_verdict(session, check=check, consecutive=2)
    (status,) = viewer_client.get("/api/v1/drift/status").json()
    assert (status["state"], status["alarm"], status["drifted_features"]) == (
        "inconclusive",
        False,
        [],
    )
    last = status["last_check"]
    assert (last["verdict"], last["effective_frames"], last["drifted"]) == (
        "inconclusive",
        5,
        False,
    )
    assert last["verdict_reason"].startswith("too few independent frames")
    metrics = viewer_client.get("/metrics").text
    assert 'visionloop_drift_alarm{device="cam1"} 0.0' in metrics
    assert 'visionloop_drift_share{device="cam1"}' not in metrics
