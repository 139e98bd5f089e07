"""A drift report carrying hostile class names, opened by an admin in a real Chromium: the
report renders (its own scripts run, allowed by hash) and nothing a device sent runs as script
(issue 20, finding 1). Also the dashboard's own pages run under their CSP without a violation."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from support.db import add_device, app_state
from support.drift import window_records
from support.web import Dashboard, sign_in
from visionloop.monitoring.evidently_check import compare
from visionloop.monitoring.features import records_table
from visionloop.server.models import DriftCheck
from visionloop.server.store import drift as drift_store

pytestmark = pytest.mark.browser

HOSTILE = (
    "</script><img src=x onerror=alert(document.domain)>",
    "</script><script>window.pwned=1;alert(1)</script>",
)


def _hostile_check(dashboard: Dashboard) -> int:
    """A drift check whose report was written by the real report writer from a window where a
    device named its classes ``HOSTILE``; the check's id."""
    device = add_device(dashboard.app, "hostile-cam")
    reference = window_records(0, count=120)
    current = window_records(1, "lighting", 0.6, count=60)
    for k, record in enumerate(current):
        for detection in record["detections"]:
            detection["class_name"] = HOSTILE[k % len(HOSTILE)]
    comparison = compare(records_table(reference), records_table(current), drift_share=0.4)
    html = gzip.decompress(comparison.report_html_gz).decode()
    assert all(name not in html for name in HOSTILE) and "<img src=x" not in html
    state = app_state(dashboard.app)
    now = datetime.now(UTC)
    with state.write_sessions() as session, session.begin():
        check = drift_store.add_check(
            session,
            DriftCheck(
                device_id=device.id,
                reference_kind="window",
                reference_start=now - timedelta(days=1),
                reference_end=now - timedelta(hours=3),
                reference_frames=len(reference),
                window_start=now - timedelta(hours=2),
                window_end=now,
                window_frames=len(current),
                features=[v.to_dict() for v in comparison.features],
                drifted_features=comparison.drifted_features,
                share_drifted=comparison.share_drifted,
                drifted=comparison.drifted,
                report_sha256=state.blobs.put(comparison.report_html_gz),
                duration_s=1.0,
            ),
        )
        return check.id


def _watch(page: Any) -> tuple[list[str], list[str]]:
    """Dialogs opened and CSP violations reported on ``page`` (any frame), as they happen."""
    dialogs: list[str] = []
    violations: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on(
        "console",
        lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
    )
    return dialogs, violations


def test_a_report_with_hostile_class_names_renders_and_runs_no_device_script(
    page: Any, dashboard: Dashboard
) -> None:
    check_id = _hostile_check(dashboard)
    sign_in(page, dashboard.url, "admin", start="/drift/")
    dialogs, violations = _watch(page)
    response = page.goto(f"{dashboard.url}/api/v1/drift/checks/{check_id}/report")
    assert response.status == 200
    policy = response.headers["content-security-policy"]
    assert policy.startswith("sandbox allow-scripts;") and "allow-same-origin" not in policy
    # The report's own scripts ran: Evidently drew its dashboard, with the hostile names as text.
    page.get_by_text("top_class").first.wait_for()
    page.wait_for_load_state("networkidle")
    assert page.evaluate("window.origin") == "null"  # sandboxed: no cookie, no same-origin API
    assert page.evaluate("window.pwned") is None
    assert page.locator("img[src=x]").count() == 0
    assert dialogs == []
    assert violations == []  # nothing was even tried: the names never became markup


def test_the_dashboard_runs_under_its_policy_without_a_violation(
    page: Any, dashboard: Dashboard
) -> None:
    """Each page of the export runs with only its listed inline scripts (measured: three per
    page) and files of this origin."""
    dialogs, violations = _watch(page)
    sign_in(page, dashboard.url, "admin", start="/drift/")
    for path in ("/", "/devices/", "/frames/", "/jobs/", "/models/", "/review/", "/live/"):
        response = page.goto(dashboard.url + path)
        assert response.status == 200, path
        assert "script-src 'self' 'sha256-" in response.headers["content-security-policy"]
        page.get_by_role("navigation", name="Pages").wait_for()
        page.wait_for_load_state("networkidle")
    assert violations == [] and dialogs == []
