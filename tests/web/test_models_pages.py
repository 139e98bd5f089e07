"""The Models page, retraining on the jobs page and the overview's loop widgets, in a real
Chromium against a live server (a real local MLflow registry and job worker where needed).

Screenshots: models.png, retraining.png (with ``DASHBOARD_SCREENSHOTS``).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from support.db import add_device
from support.labeling import review_everything, send_frames
from support.web import (
    TABLET,
    VIEWPORT,
    Dashboard,
    LoopDashboard,
    accessibility_problems,
    screenshot,
    sideways_overflow,
    sign_in,
)

pytestmark = pytest.mark.browser
# Playwright is a dev extra: without it these tests skip (as the browser fixture does).
expect = pytest.importorskip("playwright.sync_api").expect


def _production(dashboard: Dashboard) -> str:
    with dashboard.api("viewer") as api:
        return str(api.get("/api/v1/models/production").json()["version"])


def test_admin_promotes_over_a_failed_gate_and_rolls_back(
    page: Any, browser: Any, loop_dashboard: LoopDashboard
) -> None:
    sign_in(page, loop_dashboard.url, "admin", start="/models/")
    for version in ("1", "2", "3"):
        page.get_by_test_id(f"version-{version}").wait_for()
    assert "production" in page.get_by_test_id("version-1").inner_text()
    assert page.get_by_role("figure", name=re.compile("mAP50 on the golden set")).is_visible()
    assert "gate failed" in page.get_by_test_id("version-3").inner_text()
    assert "job 1" in page.get_by_test_id("version-3").inner_text()

    page.get_by_test_id("version-3").click()
    page.wait_for_url("**/models/?version=3")
    rules = page.get_by_test_id("gate-rule")
    expect(rules).to_have_count(2)
    assert "failed" in rules.nth(1).inner_text() and "golden_drop" in rules.nth(1).inner_text()
    assert page.get_by_role("link", name="train job 1").is_visible()
    assert "Drift reference: " in page.get_by_test_id("drift-reference").inner_text()
    assert accessibility_problems(page) == []
    screenshot(page, "models")

    # A failed gate: the reason alone is not enough, the override must be ticked.
    page.get_by_test_id("version-3").get_by_role("button", name="Promote").click()
    dialog = page.get_by_role("dialog")
    confirm = dialog.get_by_role("button", name="Promote")
    assert confirm.is_disabled()
    dialog.get_by_label("Reason").fill("hotfix for line 2")
    assert confirm.is_disabled()
    dialog.get_by_label(re.compile("Override the failed gate")).check()
    confirm.click()
    page.get_by_test_id("action-result").filter(has_text="Version 3 is production now").wait_for()
    assert _production(loop_dashboard) == "3"
    with loop_dashboard.api("viewer") as api:
        v3 = next(m for m in api.get("/api/v1/models").json() if m["version"] == "3")
    assert v3["tags"]["production.promoted_reason"] == "hotfix for line 2"
    assert "production.forced" in v3["tags"]
    assert v3["drift_reference"].startswith(("its own profile", "inherited from version"))
    page.get_by_test_id("alias-history").filter(has_text="hotfix for line 2").wait_for()

    page.get_by_role("button", name="Roll back production").click()
    dialog.get_by_label("Reason").fill("more false alarms")
    dialog.get_by_role("button", name="Roll back").click()
    page.get_by_test_id("action-result").filter(
        has_text="rolled back from version 3 to version 1"
    ).wait_for()
    assert _production(loop_dashboard) == "1"

    page.set_viewport_size(TABLET)
    assert sideways_overflow(page) == []

    # A viewer reads the same page without the admin's controls.
    viewer = browser.new_context(viewport=VIEWPORT).new_page()
    sign_in(viewer, loop_dashboard.url, "viewer", start="/models/")
    viewer.get_by_test_id("version-3").wait_for()
    assert viewer.get_by_role("button", name="Promote").count() == 0
    assert viewer.get_by_role("button", name="Roll back production").count() == 0
    viewer.context.close()


def test_admin_retrains_now_and_watches_the_job_progress(
    page: Any, loop_dashboard: LoopDashboard
) -> None:
    device = add_device(loop_dashboard.app, "line1-cam1")
    from fastapi.testclient import TestClient

    with (
        TestClient(loop_dashboard.app, headers=device.headers) as device_client,
        loop_dashboard.api("reviewer") as reviewer,
    ):
        review_everything(reviewer, send_frames(device_client, {"train": 4, "val": 2}))
    loop_dashboard.start_worker()

    sign_in(page, loop_dashboard.url, "admin", start="/jobs/")
    with loop_dashboard.api("viewer") as api:
        status = api.get("/api/v1/retraining/status").json()
    labels = page.get_by_test_id("labels-since-training")
    labels.filter(has_text="/").wait_for()
    assert labels.inner_text().startswith(
        f"{status['labels_since_last_training']:,} / {status['min_labels']:,}"
    )
    assert page.get_by_test_id("policy-reason").inner_text() == status["reason"]

    page.get_by_role("button", name="Retrain now").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Reason").fill("new scratches on line 1")
    dialog.get_by_role("button", name="Queue train job").click()
    page.wait_for_url(re.compile(r"/jobs/\?job=\d+$"))
    job_id = int(page.url.rsplit("=", 1)[1])
    row = page.get_by_test_id(f"job-{job_id}")
    row.wait_for()
    assert "train" in row.inner_text()

    # The worker runs it: running, and the bar moves past the export (10 %) within seconds.
    bar = row.get_by_role("progressbar")
    page.wait_for_function(
        "(el) => Number(el.getAttribute('aria-valuenow')) >= 10",
        arg=bar.element_handle(),
        timeout=60_000,
    )
    assert "running" in row.inner_text()
    expect(page.get_by_test_id("job-log")).not_to_have_text("(nothing logged yet)")

    # A second press while it runs: 409, and the page names the running job.
    page.get_by_role("button", name="Retrain now").click()
    dialog.get_by_label("Reason").fill("again")
    dialog.get_by_role("button", name="Queue train job").click()
    page.get_by_test_id("retrain-result").filter(
        has_text=f"already queued or running: job {job_id}"
    ).wait_for()
    assert accessibility_problems(page) == []
    screenshot(page, "retraining")
    page.set_viewport_size(TABLET)
    assert sideways_overflow(page) == []

    page.get_by_role("button", name="Cancel job").click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel job").click()
    row.get_by_text("⏹ cancelled").wait_for(timeout=20_000)
    with loop_dashboard.api("viewer") as api:
        assert api.get(f"/api/v1/jobs/{job_id}").json()["status"] == "cancelled"


NO_VALUE = "\N{EN DASH}"


def _percent(value: float | None) -> str:
    return NO_VALUE if value is None else f"{value * 100:.1f} %"


def test_overview_loop_widgets_equal_the_api(page: Any, dashboard: Dashboard) -> None:
    sign_in(page, dashboard.url, "viewer", start="/?window=1h")
    page.get_by_test_id("rate-peak").wait_for()
    with dashboard.api("viewer") as api:
        rate = api.get("/api/v1/stats/rate", params={"window": "1h"}).json()
        retraining = api.get("/api/v1/retraining/status").json()
        labeling = api.get("/api/v1/labeling/stats").json()
        drift = api.get("/api/v1/drift/status").json()
    peak = max(rate["points"], key=lambda p: p["frames_per_min"])
    assert (
        page.get_by_test_id("rate-peak")
        .inner_text()
        .startswith(f"peak {peak['frames_per_min']:.1f} frames/min")
    )
    assert sum(p["frames"] for p in rate["points"]) == 6
    expect(page.get_by_test_id("labels-since-training")).to_have_text(
        f"{retraining['labels_since_last_training']:,}"
    )
    production = labeling["since_production"]["version"]
    expect(page.get_by_test_id("production-version")).to_have_text(f"version {production}")
    reviews = next((v for v in labeling["versions"] if v["model_version"] == production), None)
    expect(page.get_by_test_id("production-precision")).to_have_text(
        _percent(reviews["precision"]) if reviews else NO_VALUE
    )
    expect(page.get_by_test_id("production-miss-rate")).to_have_text(
        _percent(reviews["miss_rate"]) if reviews else NO_VALUE
    )
    for device in drift:
        expect(page.get_by_test_id(f"drift-{device['device']}")).to_contain_text(
            "alarm" if device["alarm"] else "not checked yet"
        )
    assert page.get_by_role(
        "figure", name=re.compile("Frames and detections per minute")
    ).is_visible()
    page.set_viewport_size(TABLET)
    assert sideways_overflow(page) == []
