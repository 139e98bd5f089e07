"""Browser end-to-end fixtures: Debian's Chromium driven by Playwright against a live server
that serves the built dashboard.

- ``browser``: one headless Chromium per test session (``/usr/bin/chromium``, installed by
  ``scripts/install-browser.sh``; never ``playwright install``).
- ``dashboard``: a ``Dashboard``: a live server on a fresh SQLite store seeded like a running line
  (a device with a heartbeat, frames from the synthetic line with images, so review tasks exist,
  a running and a queued job, and an admin, a reviewer and a viewer, password
  ``TEST_PASSWORD``); ``.url``, ``.app``, ``.api(role)`` (a signed-in TestClient). Outside
  pytest (benchmarks/dashboard.py), ``serve_dashboard(settings, frames=...)`` starts the same.

- ``loop_dashboard``: a live server on a fresh SQLite store and a real local MLflow registry:
  version 1 the baseline in production, version 2 the baseline registered again by a (finished)
  train job with a passing gate, version 3 the same with a failed gate; no frames. Its
  ``.start_worker()`` runs a job worker in a thread with tiny retraining settings.

``screenshot(page, name)`` keeps a screenshot in ``$DASHBOARD_SCREENSHOTS`` (``make
web-screenshots``: docs/screenshots/). Without the web build (``make web``) or Chromium these
tests skip with the reason, except with ``CI=true``, where they fail: CI must run them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from support.db import (
    TEST_PASSWORD,
    LiveServer,
    add_device,
    add_user,
    app_state,
    frame_record,
    signed_in_client,
)
from visionloop.config import Settings
from visionloop.server.app import create_app
from visionloop.server.dashboard import STATIC_DIR, dashboard_built
from visionloop.server.model_catalog import ModelCatalog
from visionloop.server.store import devices as device_store
from visionloop.server.store import jobs as job_store
from visionloop.training.registry import ModelVersion
from visionloop.types import Heartbeat
from visionloop.vision.synthetic.defects import CLASS_NAMES
from visionloop.vision.synthetic.line import SyntheticLine

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
# `make web-screenshots` sets it to docs/screenshots; otherwise screenshots are taken, not kept
# (so that a test run leaves the working tree clean).
SCREENSHOTS_ENV = "DASHBOARD_SCREENSHOTS"
VIEWPORT = {"width": 1280, "height": 800}
TABLET = {"width": 768, "height": 1000}  # reviewers on the line: every page fits it
USERS = {"admin": "alice-admin", "reviewer": "rita-reviewer", "viewer": "victor-viewer"}
PRODUCTION_VERSION = "3"
SEEDED_FRAMES = 6


def _missing(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the browser tests must run)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not dashboard_built():
        _missing(f"the dashboard is not built in {STATIC_DIR}: run `make web`")
    if not CHROMIUM.is_file():
        _missing(f"{CHROMIUM} is missing: run scripts/install-browser.sh")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (the dev extra)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh light-theme page at 1280 px; the test fails on any JavaScript error it raised."""
    context = browser.new_context(viewport=VIEWPORT, color_scheme="light", locale="en-US")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


class _ProductionRegistry:
    """A registry whose production version labels the synthetic line's classes."""

    def production(self) -> ModelVersion:
        return ModelVersion(
            version=PRODUCTION_VERSION,
            aliases=["production"],
            sha256="0" * 64,
            size_bytes=1,
            metrics={},
            tags={"classes": ",".join(CLASS_NAMES)},
            created_at=datetime.now(UTC) - timedelta(days=1),
        )


@dataclass
class Dashboard:
    url: str
    app: FastAPI
    device_name: str

    def api(self, role: str) -> TestClient:
        """A TestClient signed in as a new person with ``role`` (close it after use)."""
        return signed_in_client(self.app, f"api-{role}-{uuid.uuid4().hex[:6]}", role)


def _jpeg(frame_bgr: np.ndarray[Any, Any]) -> bytes:
    ok, buf = cv2.imencode(".jpg", frame_bgr, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return buf.tobytes()


def seed_line(app: FastAPI, *, frames: int = SEEDED_FRAMES) -> str:
    """A device named ``line1-cam1`` with a heartbeat and ``frames`` uncertain frames of the
    synthetic line (ground-truth boxes as the model's predictions, images uploaded); returns
    the device's name."""
    device = add_device(app, "line1-cam1")
    add_device(app, "line2-cam1")  # never seen: the overview shows it as such
    state = app_state(app)
    with state.write_sessions() as session, session.begin():
        device_store.record_heartbeat(
            session,
            device_id=device.id,
            heartbeat=Heartbeat(
                model_version=PRODUCTION_VERSION,
                fps=38.24,
                latency_ms={"preprocess": 1.8, "infer": 21.4, "postprocess": 0.9},
                outbox_backlog=12,
                dropped_frames=3,
                sent_at=datetime.now(UTC) - timedelta(seconds=0.2),
            ),
        )
    line = SyntheticLine(seed=7)
    rng = np.random.default_rng(7)
    now = datetime.now(UTC)
    with TestClient(app, headers=device.headers) as client:
        for i in range(frames):
            scene = line.render(40 + 37 * i)
            h, w = scene.frame_bgr.shape[:2]
            detections = [
                {
                    "class_id": int(c),
                    "class_name": CLASS_NAMES[int(c)],
                    "confidence": round(float(rng.uniform(0.3, 0.7)), 3),
                    "xyxyn": [
                        float(np.clip(v / (w if k % 2 == 0 else h), 0, 1))
                        for k, v in enumerate(box)
                    ],
                }
                for box, c in zip(scene.xyxy.tolist(), scene.class_id.tolist(), strict=True)
            ]
            record = frame_record(
                captured_at=now - timedelta(minutes=frames - i),
                sample_reason="uncertain",
                model_version=PRODUCTION_VERSION,
                width=w,
                height=h,
            )
            record["detections"] = detections
            r = client.post("/api/v1/ingest", json={"frames": [record]})
            assert r.status_code == 200, r.text
            r = client.put(f"/api/v1/frames/{record['id']}/image", content=_jpeg(scene.frame_bgr))
            assert r.status_code == 200, r.text
    return device.name


def seed_jobs(app: FastAPI) -> None:
    """Two evaluate jobs: job 1 running at 40 % with a log, job 2 queued behind it."""
    state = app_state(app)
    params = {"model_version": PRODUCTION_VERSION, "dataset": "/data/golden", "split": "val"}
    with state.write_sessions() as session, session.begin():
        for _ in range(2):
            job_store.enqueue(
                session, kind="evaluate", params=params, created_by="alice-admin", max_attempts=3
            )
    with state.write_sessions() as session, session.begin():
        claimed = job_store.claim(
            session, worker_id="worker-e2e", kinds=["evaluate"], lease_seconds=600
        )
        assert claimed is not None
        job_store.heartbeat(
            session,
            claimed=claimed,
            progress=0.4,
            message="40/100 images",
            log_chunk="loading model 3\nevaluating 100 images\n",
            log_tail="loading model 3\nevaluating 100 images\n",
        )


@contextmanager
def serve_dashboard(settings: Settings, *, frames: int = SEEDED_FRAMES) -> Iterator[Dashboard]:
    """A live server over ``settings`` (its database migrated and empty) seeded like a running
    line: the people of ``USERS``, ``seed_line`` with ``frames`` frames, ``seed_jobs``, and a
    registry whose production version is ``PRODUCTION_VERSION``. Stopped on exit."""
    app = create_app(settings)
    app.state.model_catalog = ModelCatalog(
        app_state(app).settings, registry_factory=lambda _s: _ProductionRegistry()
    )
    for role, name in USERS.items():
        add_user(app, name, role)
    device_name = seed_line(app, frames=frames)
    seed_jobs(app)
    server = LiveServer(app)
    server.start()
    try:
        yield Dashboard(url=server.url, app=app, device_name=device_name)
    finally:
        server.stop()
        app_state(app).engine.dispose()


@pytest.fixture
def dashboard(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Dashboard]:
    for key in list(os.environ):
        if key.startswith("VISIONLOOP_") and key != "VISIONLOOP_TEST_PG_URL":
            monkeypatch.delenv(key)
    with serve_dashboard(Settings(data_dir=tmp_path, database_url=sqlite_url)) as dashboard:
        yield dashboard


# Retraining settings that make a train job quick (as in tests/jobs/test_train.py).
TINY_TRAINING = {
    "VISIONLOOP_RETRAIN_EPOCHS": "1",
    "VISIONLOOP_RETRAIN_IMGSZ": "64",
    "VISIONLOOP_RETRAIN_BATCH": "8",
    "VISIONLOOP_RETRAIN_REPLAY": "0.5",
    "VISIONLOOP_RETRAIN_COOLDOWN": "0",
    "VISIONLOOP_JOB_POLL_SECONDS": "0.2",
    "VISIONLOOP_JOB_HEARTBEAT_SECONDS": "0.5",
}


def _gate(passed: bool) -> dict[str, Any]:
    """A gate report as ``training.gate.gate_report`` writes one (two rules, with evidence and
    the recent set's bootstrap interval)."""
    drop = 0.004 if passed else 0.2
    golden_evidence = {"set": "golden", "images": 100, "boxes": {"scratch": 61, "dent": 40}}
    rules = [
        {
            "rule": "recent_map50",
            "verdict": "better",
            "passed": True,
            "skipped": False,
            "judged": True,
            "evidence": {"set": "recent", "images": 42, "boxes": {"scratch": 30, "dent": 17}},
            "interval": {
                "difference": 0.271,
                "low": 0.198,
                "high": 0.337,
                "confidence": 0.95,
                "resamples": 2000,
                "images": 42,
                "seed": 0,
                "seconds": 0.2,
            },
            "detail": "recent: better: mAP50 0.9700 (candidate) vs 0.6990 (production), "
            "difference +0.2710 (95% interval +0.1980 to +0.3370, 2,000 resamples); "
            "42 images; boxes: dent 17, scratch 30",
        },
        {
            "rule": "golden_drop",
            "verdict": "within budget" if passed else "over budget",
            "passed": passed,
            "skipped": False,
            "judged": True,
            "evidence": golden_evidence,
            "interval": None,
            "detail": f"golden mAP50 {0.95 - drop:.4f} (candidate) vs 0.9500 (production): drop "
            f"{drop:.4f} {'within' if passed else 'over'} 0.02; 100 images; boxes: dent 40, "
            "scratch 61",
        },
    ]
    brief = {"map50": 0.95 - drop, "map50_95": 0.7, "images": 100, "per_class": {}}
    prod = {"map50": 0.95, "map50_95": 0.71, "images": 100, "per_class": {}}
    failed = [r["detail"] for r in rules if not r["passed"]]
    return {
        "passed": passed,
        "promote": passed,
        "decision": "promote" if passed else "reject",
        "reason": ("failed: " + "; ".join(failed)) if failed else "",
        "identical": None,
        "summary": ("failed: " + "; ".join(failed)) if failed else "passed: golden drop small",
        "rules": rules,
        "sets": {
            "golden": {"candidate": brief, "production": prod},
            "recent": {
                "candidate": {**brief, "map50": 0.97, "images": 42},
                "production": {**prod, "map50": 0.699, "images": 42},
            },
        },
        "settings": {"max_golden_drop": 0.02, "recall_floors": {}},
    }


def _finished_train_job(app: FastAPI) -> int:
    state = app_state(app)
    with state.write_sessions() as session, session.begin():
        job = job_store.enqueue(
            session,
            kind="train",
            params={"reason": "seeded", "trigger": "person"},
            created_by="alice-admin",
            max_attempts=1,
        )
        job_id = job.id
    with state.write_sessions() as session, session.begin():
        claimed = job_store.claim(
            session, worker_id="worker-e2e", kinds=["train"], lease_seconds=60
        )
        assert claimed is not None
        job_store.finish(
            session,
            claimed=claimed,
            status=job_store.JobStatus.SUCCEEDED,
            message="registered",
            result={"version": "2"},
            log_chunk="registered version 2\n",
            log_tail="registered version 2\n",
        )
    return job_id


@dataclass
class LoopDashboard(Dashboard):
    settings: Settings
    worker: Any = None

    def start_worker(self) -> None:
        """A worker thread running every job kind (stopped with the fixture)."""
        import threading

        from visionloop.jobs.kinds import default_kinds
        from visionloop.jobs.worker import Worker

        self.worker = Worker(
            engine=app_state(self.app).engine, settings=self.settings, kinds=default_kinds()
        )
        threading.Thread(target=self.worker.run, daemon=True).start()


@pytest.fixture(scope="session")
def mlflow_store_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty local MLflow store with its schema made, once a session: MLflow migrates a new
    SQLite store in 5 to 15 s, and each ``loop_dashboard`` starts from a copy instead."""
    from visionloop.training.registry import Registry

    folder = tmp_path_factory.mktemp("mlflow-template")
    settings = Settings(data_dir=folder, database_url=f"sqlite:///{folder / 'unused.db'}")
    assert Registry.from_settings(settings).versions() == []
    return Path(settings.mlflow_tracking_uri.removeprefix("sqlite:///"))


@pytest.fixture
def loop_dashboard(
    tmp_path: Path,
    sqlite_url: str,
    mlflow_store_template: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[LoopDashboard]:
    import shutil

    from support.models import BASELINE_ONNX
    from visionloop.training.registry import Registry, ensure_baseline

    if not BASELINE_ONNX.is_file():
        _missing(f"{BASELINE_ONNX} is missing (the shipped baseline)")
    for key in list(os.environ):
        if key.startswith("VISIONLOOP_") and key != "VISIONLOOP_TEST_PG_URL":
            monkeypatch.delenv(key)
    # Also in the environment: a train job's subprocess reads its settings from there.
    env = {
        "VISIONLOOP_DATA_DIR": str(tmp_path),
        "VISIONLOOP_DATABASE_URL": sqlite_url,
        **TINY_TRAINING,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    shutil.copy(mlflow_store_template, settings.mlflow_tracking_uri.removeprefix("sqlite:///"))
    app = create_app(settings)
    for role, name in USERS.items():
        add_user(app, name, role)
    registry = Registry.from_settings(settings)
    ensure_baseline(registry, BASELINE_ONNX)
    job_id = _finished_train_job(app)
    for passed in (True, False):
        version = registry.register(
            BASELINE_ONNX,
            tags={"origin": "retrain", "train_job_id": str(job_id), "base_version": "1"},
            description=f"the baseline again ({'passing' if passed else 'failing'} its gate)",
        )
        registry.set_gate(version.version, _gate(passed), run_id=None)
    server = LiveServer(app)
    server.start()
    dashboard = LoopDashboard(url=server.url, app=app, device_name="", settings=settings)
    try:
        yield dashboard
    finally:
        if dashboard.worker is not None:
            dashboard.worker.stop()
        server.stop()
        app_state(app).engine.dispose()


def sideways_overflow(page: Any) -> list[str]:
    """The elements that reach past the viewport's right edge (what gives the page a horizontal
    scroll bar), one line each: tag, test id or class, and how far they reach. Empty when the page
    fits. Children of an element that scrolls sideways itself (a wide table in its wrapper) fit."""
    return list(
        page.evaluate(
            """() => {
              const width = document.documentElement.clientWidth;
              if (document.documentElement.scrollWidth <= width) return [];
              const scrolls = (el) => {
                for (let p = el.parentElement; p; p = p.parentElement) {
                  const o = getComputedStyle(p).overflowX;
                  if (o === 'auto' || o === 'scroll' || o === 'hidden') return true;
                }
                return false;
              };
              const out = [];
              for (const el of document.body.querySelectorAll('*')) {
                const right = el.getBoundingClientRect().right;
                if (right <= width + 0.5 || scrolls(el)) continue;
                const name =
                  el.dataset.testid || el.getAttribute('aria-label') || el.className || '';
                const tag = el.tagName.toLowerCase();
                out.push(`${tag} ${name}: right edge ${Math.round(right)} px > ${width} px`);
              }
              return out.slice(0, 12);
            }"""
        )
    )


def sign_in(page: Any, base_url: str, role: str, *, start: str = "/") -> None:
    """Open ``start`` (which sends the browser to sign-in), sign in as ``role``, and wait to be
    back on ``start``."""
    page.goto(base_url + start)
    page.wait_for_url("**/signin/**")
    page.get_by_label("User name").fill(USERS[role])
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/signin" not in url)


AXE = Path(__file__).resolve().parents[2] / "web" / "node_modules" / "axe-core" / "axe.min.js"
AXE_FAILING_IMPACTS = ("serious", "critical")


def accessibility_problems(page: Any) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now, one line each."""
    if not AXE.is_file():
        _missing(f"{AXE} is missing: run `make web` (npm ci)")
    # Evaluated, not added as a <script>: the dashboard's CSP refuses inline scripts it does not
    # list (DevTools evaluation is outside the page's policy).
    page.evaluate(AXE.read_text(encoding="utf-8"))
    result = page.evaluate("() => axe.run(document, { resultTypes: ['violations'] })")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in AXE_FAILING_IMPACTS
    ]


def screenshot(page: Any, name: str) -> None:
    """A full-page screenshot, kept as ``<$DASHBOARD_SCREENSHOTS>/<name>.png`` when that is set."""
    # A function, not an expression: Playwright evaluates a bare expression with the page's
    # eval(), which the dashboard's CSP (no 'unsafe-eval') refuses.
    page.wait_for_function(
        "() => [...document.images].every((i) => i.complete && i.naturalWidth > 0)"
    )
    folder = os.environ.get(SCREENSHOTS_ENV)
    if not folder:
        page.screenshot(full_page=True)
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)
