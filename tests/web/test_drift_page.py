"""The Drift page in a real Chromium against a live server: a device whose frames drifted, its
checks and open alarm, features against the reference band, the Evidently report in a new tab,
and an admin pinning then unpinning a reference. Writes docs/screenshots/drift.png."""

from __future__ import annotations

import gzip
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from support.db import add_device, app_state
from support.drift import window_records
from support.web import (
    TABLET,
    Dashboard,
    accessibility_problems,
    screenshot,
    sideways_overflow,
    sign_in,
)
from visionloop.monitoring.features import (
    FEATURES,
    NUMERICAL_FEATURES,
    quantiles,
    records_table,
)
from visionloop.server.models import DriftCheck
from visionloop.server.store import drift as drift_store

pytestmark = pytest.mark.browser

DEVICE = "line3-cam1"
DRIFTED = ("brightness", "contrast", "max_confidence", "mean_confidence", "top_class")


def _features(reference: Any, window: Any, drifted: tuple[str, ...]) -> list[dict[str, Any]]:
    return [
        {
            "feature": name,
            "method": "K-S p_value" if name in NUMERICAL_FEATURES else "chi-square p_value",
            "score": 0.001 if name in drifted else 0.4,
            "threshold": 0.05,
            "drifted": name in drifted,
        }
        | (
            {
                "reference_quantiles": quantiles(reference.columns[name]),
                "window_quantiles": quantiles(window.columns[name]),
            }
            if name in NUMERICAL_FEATURES
            else {}
        )
        for name in FEATURES
    ]


def _seed_drift(dashboard: Dashboard) -> int:
    """A device with 20 h of nominal frames, then 2 h of ``lighting`` 0.6, and two drifted
    checks of the last window against the first (so its alarm is open); its id."""
    device = add_device(dashboard.app, DEVICE)
    now = datetime.now(UTC)
    nominal = window_records(0, count=120)
    drifted = window_records(1, "lighting", 0.6, count=60)
    for k, r in enumerate(nominal):
        r["captured_at"] = (now - timedelta(hours=22) + k * timedelta(minutes=10)).isoformat()
    for k, r in enumerate(drifted):
        r["captured_at"] = (now - timedelta(hours=2) + k * timedelta(minutes=2)).isoformat()
    with TestClient(dashboard.app, headers=device.headers) as client:
        r = client.post("/api/v1/ingest", json={"frames": nominal + drifted})
        assert r.status_code == 200, r.text
    reference, window = records_table(nominal), records_table(drifted)
    features = _features(reference, window, DRIFTED)
    state = app_state(dashboard.app)
    report = state.blobs.put(
        gzip.compress(b"<html><body><h1>Data drift</h1><p>brightness drifted</p></body></html>")
    )
    for _ in range(2):
        with state.write_sessions() as session, session.begin():
            check = drift_store.add_check(
                session,
                DriftCheck(
                    device_id=device.id,
                    reference_kind="model",
                    reference_version="3",
                    reference_start=now - timedelta(days=1),
                    reference_end=now - timedelta(days=1),
                    reference_frames=len(reference),
                    window_start=now - timedelta(hours=2),
                    window_end=now,
                    window_frames=len(window),
                    window_stride=50,
                    features=features,
                    drifted_features=len(DRIFTED),
                    share_drifted=len(DRIFTED) / len(FEATURES),
                    drifted=True,
                    verdict="drifted",
                    effective_frames=45,
                    report_sha256=report,
                    duration_s=0.8,
                ),
            )
            drift_store.record_verdict(session, check=check, consecutive=2)
    return device.id


def test_drift_page_shows_features_checks_and_alarm_and_admin_pins(
    page: Any, dashboard: Dashboard
) -> None:
    device_id = _seed_drift(dashboard)
    sign_in(page, dashboard.url, "admin", start=f"/drift/?device={device_id}&window=24h")
    row = page.get_by_test_id(f"drift-{DEVICE}")
    row.get_by_text("alarm open").wait_for()
    assert "brightness" in row.inner_text()
    assert "model version 3" in page.get_by_test_id("reference").inner_text()
    chart = page.get_by_test_id("feature-brightness")
    chart.locator("svg .ref-band").wait_for()
    assert "drifted" in chart.inner_text()
    assert chart.locator("svg .iqr").count() >= 10  # intervals with frames over the 24 h
    assert "within reference" in page.get_by_test_id("feature-sharpness").inner_text()
    checks = page.get_by_role("table", name="Drift checks")
    assert checks.get_by_text("▲ drifted").count() == 2
    assert checks.get_by_text("1 in 50 tested").count() == 2  # the window's thinning
    assert page.get_by_role("navigation", name="Pages").get_by_role("link", name="Drift").count()
    screenshot(page, "drift")
    assert accessibility_problems(page) == []

    with page.expect_popup() as popup:
        checks.get_by_role("link", name=re.compile("Evidently report")).first.click()
    report = popup.value
    report.wait_for_load_state()
    assert "brightness drifted" in report.content()
    report.close()

    page.get_by_role("button", name="Accept as the new normal").click()
    page.get_by_role("dialog").get_by_role("button", name="Pin reference").click()
    page.get_by_text("Pinned: the next check compares with this window").wait_for()
    with dashboard.api("viewer") as api:
        status = {s["device"]: s for s in api.get("/api/v1/drift/status").json()}
    assert status[DEVICE]["reference"]["pinned_by"] == "alice-admin"
    page.get_by_test_id("reference").get_by_text("pinned window").wait_for()
    page.get_by_role("button", name="Unpin").click()
    page.get_by_role("dialog").get_by_role("button", name="Unpin").click()
    page.get_by_text("Unpinned").wait_for()
    with dashboard.api("viewer") as api:
        status = {s["device"]: s for s in api.get("/api/v1/drift/status").json()}
    assert status[DEVICE]["reference"] is None
    page.set_viewport_size(TABLET)
    assert sideways_overflow(page) == []


def test_viewer_reads_drift_without_admin_controls(page: Any, dashboard: Dashboard) -> None:
    sign_in(page, dashboard.url, "viewer", start="/drift/")
    page.get_by_test_id("drift-line1-cam1").wait_for()
    assert "not checked yet" in page.get_by_test_id("drift-line1-cam1").inner_text()
    page.get_by_text("No checks of this device yet").wait_for()
    page.get_by_text("No check of this device yet: the reference band appears").wait_for()
    assert page.get_by_role("button", name="Accept as the new normal").count() == 0
    assert page.get_by_role("button", name="Check now").count() == 0


def test_an_inconclusive_check_reads_the_same_on_the_drift_page_and_the_overview(
    page: Any, dashboard: Dashboard
) -> None:
    """The first check after a start holds a few hundred consecutive frames: 6 of 9 features
    'drifted' in its tests, but with ~5 independent frames it is inconclusive, and both pages
    say so (before: 'drifted 6 of 9' on the Drift page, 'no drift' on the Overview)."""
    device = add_device(dashboard.app, "line4-cam2")
    now = datetime.now(UTC)
    frames = window_records(0, count=60)
    for k, r in enumerate(frames):
        r["captured_at"] = (now - timedelta(minutes=5) + k * timedelta(seconds=5)).isoformat()
    with TestClient(dashboard.app, headers=device.headers) as client:
        assert client.post("/api/v1/ingest", json={"frames": frames}).status_code == 200
    table = records_table(frames)
    noisy = (
        "brightness",
        "contrast",
        "sharpness",
        "max_confidence",
        "mean_confidence",
        "top_class",
    )
    reason = "too few independent frames to judge: ~5 in the window (needs 20)"
    state = app_state(dashboard.app)
    with state.write_sessions() as session, session.begin():
        check = drift_store.add_check(
            session,
            DriftCheck(
                device_id=device.id,
                reference_kind="inherited",
                reference_version="1",
                reference_start=now - timedelta(days=1),
                reference_end=now - timedelta(days=1),
                reference_frames=500,
                window_start=now - timedelta(minutes=5),
                window_end=now,
                window_frames=250,
                window_stride=8,
                features=_features(table, table, noisy),
                drifted_features=len(noisy),
                share_drifted=len(noisy) / len(FEATURES),
                drifted=False,
                verdict="inconclusive",
                verdict_reason=reason,
                effective_frames=5,
                report_sha256=None,
                duration_s=0.5,
            ),
        )
        drift_store.record_verdict(session, check=check, consecutive=2)

    sign_in(page, dashboard.url, "viewer", start=f"/drift/?device={device.id}")
    row = page.get_by_test_id("drift-line4-cam2")
    row.get_by_text("inconclusive").wait_for()
    assert "no drift" not in row.inner_text() and "brightness" not in row.inner_text()
    assert "inherited from version 1" in row.inner_text()
    note = page.get_by_test_id("inconclusive")
    assert reason in note.inner_text() and "not counted" in note.inner_text()
    assert "inherited from version 1" in page.get_by_test_id("reference").inner_text()
    checks = page.get_by_role("table", name="Drift checks")
    checks.get_by_text("? inconclusive").wait_for()
    assert "not counted: ~5 independent frames" in checks.inner_text()
    assert "drifted" not in checks.inner_text()
    chart = page.get_by_test_id("feature-brightness")
    chart.locator("svg .ref-band").wait_for()
    assert "drifted" not in chart.inner_text()

    page.goto(f"{dashboard.url}/")
    overview = page.get_by_test_id("drift-line4-cam2")
    overview.get_by_text("inconclusive").wait_for()
    assert "no drift" not in overview.inner_text() and "brightness" not in overview.inner_text()
    with dashboard.api("viewer") as api:
        status = {s["device"]: s for s in api.get("/api/v1/drift/status").json()}
    assert status["line4-cam2"]["state"] == "inconclusive"
    assert status["line4-cam2"]["drifted_features"] == []
    assert status["line4-cam2"]["last_check"]["verdict_reason"] == reason
