"""Issue 21 in the browser: the Models page shows each gate rule's evidence and interval, "Retrain
now" warns with the numbers below the policy's minimum, and the overview's queue widget counts
near-duplicates not queued, per camera."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from support.db import add_device, frame_record
from support.web import LoopDashboard, accessibility_problems, sign_in

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect


def _same_picture_twice(dashboard: LoopDashboard) -> None:
    import cv2
    import numpy as np

    device = add_device(dashboard.app, "line1-cam1")
    ok, jpeg = cv2.imencode(".jpg", np.full((48, 64, 3), 90, np.uint8))
    assert ok
    with TestClient(dashboard.app, headers=device.headers) as camera:
        for _ in range(2):
            record = frame_record(
                sample_reason="uncertain", confidence=0.5, detections=1, width=64, height=48
            )
            assert camera.post("/api/v1/ingest", json={"frames": [record]}).status_code == 200
            r = camera.put(f"/api/v1/frames/{record['id']}/image", content=jpeg.tobytes())
            assert r.status_code == 200, r.text


def test_gate_evidence_retrain_warning_and_queue_hygiene(
    page: Any, loop_dashboard: LoopDashboard
) -> None:
    sign_in(page, loop_dashboard.url, "admin", start="/models/?version=2")
    rules = page.get_by_test_id("gate-rule")
    expect(rules).to_have_count(2)
    recent = rules.nth(0)
    assert "passed (better)" in recent.inner_text()
    assert "42 images" in recent.get_by_test_id("gate-evidence").inner_text()
    assert "scratch 30" in recent.get_by_test_id("gate-evidence").inner_text()
    interval = recent.get_by_test_id("gate-interval").inner_text()
    assert interval == "+0.271 (+0.198 to +0.337)"
    assert "100 images" in rules.nth(1).get_by_test_id("gate-evidence").inner_text()
    assert accessibility_problems(page) == []

    # Retrain now with no label since the last training: warned before and after.
    page.goto(f"{loop_dashboard.url}/jobs/")
    page.get_by_role("button", name="Retrain now").click()
    dialog = page.get_by_role("dialog")
    few = dialog.get_by_test_id("retrain-few-labels")
    expect(few).to_contain_text("Only 0 reviewed frames since the last training")
    expect(few).to_contain_text("policy's 200")
    dialog.get_by_label("Reason").fill("try it")
    dialog.get_by_role("button", name="Queue train job").click()
    page.wait_for_url(re.compile(r"/jobs/\?job=\d+$"))
    expect(page.get_by_test_id("retrain-warning")).to_contain_text(
        "only 0 reviewed frames since the last training, fewer than the policy's 200"
    )

    # The same picture twice from one camera: one task, one near-duplicate counted.
    _same_picture_twice(loop_dashboard)
    page.goto(f"{loop_dashboard.url}/")
    expect(page.get_by_test_id("queue-hygiene")).to_contain_text(
        "line1-cam1 1 open, 0 expired, 1 near-duplicates not queued"
    )
    expect(page.get_by_test_id("queue-open")).to_contain_text("1")
