"""Security headers (issue 20, findings 1 and 12): every response is ``nosniff`` and, unless it is
a document of ours, sandboxed with nothing allowed; the dashboard, the API docs and drift reports
allow exactly their own inline scripts, by hash."""

from __future__ import annotations

import gzip
import re
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from support.db import add_device, app_state, frame_record
from visionloop.csp import inline_script_hashes
from visionloop.monitoring.report_html import (
    ReportNames,
    json_string_for_script,
    report_script_hashes,
    restore_names,
    with_script_policy,
)
from visionloop.server.dashboard import install_dashboard
from visionloop.server.models import DriftCheck
from visionloop.server.security_headers import API_POLICY
from visionloop.server.store import drift as drift_store

HOSTILE = "</script><img src=x onerror=alert(document.domain)>"


def _directives(policy: str) -> dict[str, list[str]]:
    return {
        name: values
        for name, *values in (part.split() for part in policy.split(";") if part.strip())
    }


def _jpeg() -> bytes:
    pixels = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", pixels)
    assert ok
    return buf.tobytes()


def test_frame_images_json_and_refusals_are_nosniff_and_sandboxed(
    device_client: TestClient, viewer_client: TestClient, client: TestClient
) -> None:
    record = frame_record(sample_reason="uncertain", width=160, height=120)
    assert device_client.post("/api/v1/ingest", json={"frames": [record]}).status_code == 200
    assert device_client.put(f"/api/v1/frames/{record['id']}/image", content=_jpeg()).is_success
    responses = {
        "image": viewer_client.get(f"/api/v1/frames/{record['id']}/image"),
        "json": viewer_client.get("/api/v1/devices"),
        "401": client.get("/api/v1/devices"),
        "404": viewer_client.get("/api/v1/no-such-route"),
        "413": device_client.post("/api/v1/devices/heartbeat", content=b"x" * 70_000),
        "healthz": client.get("/healthz"),
    }
    for name, r in responses.items():
        assert r.headers["x-content-type-options"] == "nosniff", name
        assert r.headers["content-security-policy"] == API_POLICY, name
        assert r.headers["x-frame-options"] == "DENY", name
    assert responses["image"].headers["content-type"] == "image/jpeg"
    assert "sandbox" in _directives(API_POLICY)
    assert _directives(API_POLICY)["default-src"] == ["'none'"]


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/docs/oauth2-redirect"])
def test_api_docs_allow_only_their_own_inline_scripts(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 200
    policy = _directives(r.headers["content-security-policy"])
    hashes = inline_script_hashes(r.text)
    assert bool(hashes) == (path != "/redoc")  # ReDoc's page has no inline script
    assert policy["script-src"] == ["'self'", *hashes]
    assert "'unsafe-inline'" not in policy["script-src"]
    assert policy["frame-ancestors"] == ["'none'"]


def test_the_dashboard_allows_its_pages_inline_scripts_and_nothing_else(
    app: FastAPI, tmp_path: Path
) -> None:
    export = tmp_path / "export"
    (export / "review").mkdir(parents=True)
    (export / "index.html").write_text("<html><script>self.a=1</script></html>")
    (export / "review" / "index.html").write_text(
        '<html><script src="/_next/x.js"></script><script>self.b=2</script>'
        '<script type="application/json">{"inert": 1}</script></html>'
    )
    install_dashboard(app, export)
    web = TestClient(app)
    r = web.get("/review/")
    assert r.status_code == 200 and "self.b=2" in r.text
    policy = _directives(r.headers["content-security-policy"])
    want = inline_script_hashes("<script>self.a=1</script><script>self.b=2</script>")
    assert policy["script-src"] == ["'self'", *want]
    assert policy["default-src"] == ["'self'"] and policy["frame-ancestors"] == ["'none'"]
    assert r.headers["x-content-type-options"] == "nosniff"
    # A rebuild (index.html changes) is read again.
    (export / "index.html").write_text("<html><script>self.c=3</script></html>")
    r = web.get("/")
    assert (
        inline_script_hashes("<script>self.c=3</script>")[0] in r.headers["content-security-policy"]
    )


def test_the_dashboard_not_built_page_runs_no_script(app: FastAPI, tmp_path: Path) -> None:
    install_dashboard(app, tmp_path / "nothing")
    r = TestClient(app).get("/")
    assert r.status_code == 404
    policy = _directives(r.headers["content-security-policy"])
    assert "sandbox" in policy and "script-src" not in policy
    assert policy["default-src"] == ["'none'"]


def test_report_names_reach_the_html_only_escaped_for_a_script() -> None:
    names = ReportNames()
    token = names.alias(HOSTILE)
    assert names.alias(HOSTILE) == token and re.fullmatch(r"[a-z0-9]+", token)
    html = f'<!DOCTYPE html><html lang="en"><head><script>var d = ["{token}", "ok"];</script>'
    restored = restore_names(html, names)
    assert HOSTILE not in restored and "<img" not in restored
    assert json_string_for_script(HOSTILE) in restored
    assert json_string_for_script(HOSTILE).startswith("\\u003c/script\\u003e")
    assert json_string_for_script('a"b\u2028') == 'a\\"b\\u2028'
    # One script (the data), listed by hash in the report's own first element.
    final = with_script_policy(restored)
    assert report_script_hashes(final[:4096]) == inline_script_hashes(restored)
    assert len(report_script_hashes(final)) == 1
    # A report without that element (an older one) lists no script.
    assert report_script_hashes(html) == []


def test_a_hostile_class_name_cannot_run_script_in_its_drift_report(
    app: FastAPI, viewer_client: TestClient
) -> None:
    """The report route serves a stored report in a sandbox (opaque origin) whose only scripts
    are the ones the report lists; an older report that lists none runs no script."""
    device = add_device(app, "cam1")
    state = app_state(app)
    written = with_script_policy(
        '<!DOCTYPE html><html lang="en"><head><script>var d = 1;</script></head></html>'
    )
    old = f'<html><script>var d = ["{HOSTILE}"];</script></html>'
    now = datetime.now(UTC)
    ids = []
    for html in (written, old):
        with state.write_sessions() as session, session.begin():
            check = drift_store.add_check(
                session,
                DriftCheck(
                    device_id=device.id,
                    reference_kind="window",
                    reference_start=now,
                    reference_end=now,
                    reference_frames=1,
                    window_start=now,
                    window_end=now,
                    window_frames=1,
                    features=[],
                    drifted_features=0,
                    share_drifted=0.0,
                    drifted=False,
                    report_sha256=state.blobs.put(gzip.compress(html.encode())),
                    duration_s=0.1,
                ),
            )
            ids.append(check.id)
    for check_id, scripts in zip(ids, (inline_script_hashes(written), ["'none'"]), strict=True):
        r = viewer_client.get(f"/api/v1/drift/checks/{check_id}/report")
        assert r.status_code == 200
        policy = _directives(r.headers["content-security-policy"])
        assert policy["sandbox"] == ["allow-scripts"]  # no allow-same-origin: opaque origin
        assert policy["script-src"] == scripts
        assert policy["default-src"] == ["'none'"] and policy["form-action"] == ["'none'"]
        assert r.headers["x-content-type-options"] == "nosniff"
