"""The loop closed, on SQLite and PostgreSQL: reviewed labels made through the labeling API
reach ``retrain_min_labels`` -> the workers' scheduler queues a ``train`` job -> a worker runs it
(a real fine-tune of the baseline with tiny settings) -> a new version is registered with its
gate report (and its INT8 model, with OpenVINO) -> auto-promoted -> ``GET
/api/v1/models/production`` serves it to a real edge agent running all along, whose model watcher
swaps its detector to it. And a candidate that is worse on the golden set is registered but never
promoted; a second trigger gets 409.
"""

from __future__ import annotations

import importlib.util
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import sessionmaker

from support.db import DeviceCredentials, LiveServer, app_state
from support.labeling import CSRF, review_everything, send_frames
from support.models import BASELINE_ONNX, BASELINE_PT, have_ultralytics
from visionloop.config import Settings
from visionloop.edge.agent import Agent, AgentConfig, AgentSummary
from visionloop.edge.sampler import SamplerConfig
from visionloop.edge.sync import SyncConfig
from visionloop.jobs.kinds import default_kinds
from visionloop.jobs.scheduler import Scheduler, default_schedule
from visionloop.jobs.worker import Worker
from visionloop.monitoring.profile import read_profile
from visionloop.server.db import write_engine
from visionloop.server.model_catalog import ModelCatalog
from visionloop.server.store import jobs as job_store
from visionloop.server.store.jobs import JobStatus
from visionloop.training.evaluate import split_files
from visionloop.training.registry import Registry, ensure_baseline

pytestmark = [
    pytest.mark.train,
    pytest.mark.skipif(
        not (have_ultralytics() and BASELINE_ONNX.is_file() and BASELINE_PT.is_file()),
        reason="needs the train extra and the shipped baseline",
    ),
]

TINY = {
    "VISIONLOOP_RETRAIN_EPOCHS": "1",
    "VISIONLOOP_RETRAIN_IMGSZ": "64",
    "VISIONLOOP_RETRAIN_BATCH": "8",
    "VISIONLOOP_RETRAIN_REPLAY": "0.5",
    "VISIONLOOP_RETRAIN_MIN_LABELS": "10",
    "VISIONLOOP_RETRAIN_COOLDOWN": "0",
}


@pytest.fixture
def quantize_env() -> dict[str, str]:
    """No INT8 step (tens of seconds): the test of the whole round turns it on."""
    return {"VISIONLOOP_RETRAIN_QUANTIZE": "false"}


@pytest.fixture
def golden(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from visionloop.vision.synthetic.dataset import write_dataset

    path = tmp_path_factory.mktemp("golden") / "golden"
    write_dataset(path, n=4, scenario="nominal", seed=1, splits=(0, 0, 1))
    return path


@pytest.fixture
def gate_env() -> dict[str, str]:
    """The gate a tiny candidate passes: any golden-set drop, no minimum evidence, no worse on
    the recent slice suffices (overridden per test)."""
    return {
        "VISIONLOOP_GATE_MAX_GOLDEN_DROP": "1",
        "VISIONLOOP_GATE_MIN_RECENT_IMAGES": "0",
        "VISIONLOOP_GATE_PROMOTE_ON": "no_worse",
    }


@pytest.fixture
def settings(
    settings: Settings,
    golden: Path,
    gate_env: dict[str, str],
    quantize_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> Settings:
    """The same store, with tiny retraining settings, also in the environment (the job's
    subprocess reads its settings from there). As a user runs it: from a folder outside the
    repository, with a relative data dir (which once doubled itself in the job's data.yaml)."""
    monkeypatch.chdir(settings.data_dir.parent)
    env = {
        "VISIONLOOP_DATA_DIR": settings.data_dir.name,
        "VISIONLOOP_DATABASE_URL": settings.database_url,
        "VISIONLOOP_GOLDEN_SET": str(golden),
        **TINY,
        **gate_env,
        **quantize_env,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    found = Settings()
    ensure_baseline(Registry.from_settings(found), BASELINE_ONNX)
    return found


@pytest.fixture
def worker(app: FastAPI, settings: Settings) -> Iterator[Worker]:
    yield Worker(engine=app_state(app).engine, settings=settings, kinds=default_kinds())


HAVE_INT8 = all(importlib.util.find_spec(m) is not None for m in ("openvino", "nncf"))


class RunningAgent:
    """A real edge agent on the synthetic line against ``url``, in a thread until :meth:`stop`."""

    def __init__(self, url: str, token: str, tmp_path: Path) -> None:
        config = AgentConfig(
            server=url,
            token=token,
            source="synthetic",
            outbox_path=tmp_path / "edge" / "outbox.db",
            backend="onnxruntime",
            threads=1,
            sampler=SamplerConfig(audit_rate=0.0, max_per_minute=1),
            fps_limit=4.0,  # light beside the training subprocess
            model_poll_s=0.3,
            sync=SyncConfig(heartbeat_s=0.5),
            drain_timeout_s=5.0,
            seed=3,
        )
        self.agent = Agent(config)
        self.summary: AgentSummary | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self.summary = self.agent.run()

    def wait_for(self, version: str, timeout: float) -> None:
        """Until the pipeline has detected at least one frame with ``version``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pipeline = self.agent.pipeline
            if pipeline is not None and pipeline.summary(0.0).versions.get(version, 0) > 0:
                return
            assert self._thread.is_alive(), "the agent stopped early"
            time.sleep(0.1)
        pipeline = self.agent.pipeline
        seen = pipeline.summary(0.0).versions if pipeline is not None else None
        raise AssertionError(f"no frame detected with model {version} in {timeout} s: {seen}")

    def stop(self) -> AgentSummary:
        self.agent.stop()
        self._thread.join(30)
        assert self.summary is not None, "the agent did not stop"
        return self.summary


def _catalog(app: FastAPI) -> ModelCatalog:
    catalog: ModelCatalog = app.state.model_catalog
    return catalog


@pytest.mark.parametrize("quantize_env", [{}], ids=["int8-on"])
def test_labels_become_the_production_model(
    app: FastAPI,
    settings: Settings,
    worker: Worker,
    device_client: TestClient,
    reviewer_client: TestClient,
    admin_client: TestClient,
    viewer_client: TestClient,
    device: DeviceCredentials,
    live_server: LiveServer,
    tmp_path: Path,
) -> None:
    # No held-out frames: the recent rule is skipped and a tiny candidate can pass the gate.
    truth = send_frames(device_client, {"train": 8, "val": 2})
    review_everything(reviewer_client, truth)
    app.state.model_catalog = ModelCatalog(settings, ttl_s=0.2)  # a promotion reaches the edge
    # within a poll, not 5 s
    camera = RunningAgent(live_server.url, device.token, tmp_path)
    camera.wait_for("1", timeout=60)

    status = viewer_client.get("/api/v1/retraining/status").json()
    assert status["eligible"] is True, status
    assert status["labels_since_last_training"] == 10
    assert status["min_labels"] == 10
    assert status["drift_alarm"] is False
    assert status["auto_promote"] is True
    assert status["last_job"] is None

    sessions = sessionmaker(write_engine(app_state(app).engine), expire_on_commit=False)
    assert "retrain-policy" in Scheduler(default_schedule(settings)).run_due(sessions)
    with sessions() as session:
        job = job_store.active_job(session, kind="train")
        assert job is not None
        assert job.created_by == "scheduler"
        job_id = job.id

    again = admin_client.post("/api/v1/retraining/trigger", json={"reason": "now"}, headers=CSRF)
    assert again.status_code == 409, again.text
    assert again.json()["job_id"] == job_id

    assert worker.run_one() == JobStatus.SUCCEEDED, _log(app, job_id)
    done = admin_client.get(f"/api/v1/jobs/{job_id}").json()
    result = done["result"]
    assert result["version"] == "2"
    assert result["gate_passed"] is True
    assert result["aliases"] == ["staging", "production"]
    assert result["images"]["test"] == 0
    assert result["replay_images"]["train"] + result["replay_images"]["val"] == 4
    stages = {"export", "replay", "train", "evaluate", "gate", "register"}
    assert set(result["seconds"]) == stages | ({"quantize"} if HAVE_INT8 else set())
    if HAVE_INT8:  # the INT8 model is checked on the golden set; accepted or not, it is stored
        assert set(result["int8"]) == {"accepted", "map50_fp32", "map50_int8"}, result["int8"]
    else:
        assert "skipped" in result["int8"]
    assert "epoch 1/1" in done["log_tail"] or "registered" in done["log_tail"]

    models = viewer_client.get("/api/v1/models").json()
    assert [m["version"] for m in models] == ["2", "1"]
    new = models[0]
    assert new["aliases"] == ["production", "staging"]
    assert new["gate_passed"] is True
    assert new["train_job_id"] == job_id
    rules = {r["rule"]: r for r in new["gate"]["rules"]}
    assert rules["golden_drop"]["passed"] is True
    assert rules["recent_map50"]["skipped"] is True
    assert new["tags"]["base_version"] == "1"
    # Its drift reference: the training and validation images it was trained with and the
    # golden set's (4), profiled through the new model before any promotion (issue 19: a
    # version trained on drifted labels takes what it learned as its normal).
    profile = Registry.from_settings(settings).drift_profile_path("2")
    assert profile is not None, _log(app, job_id)
    data_yaml = settings.data_dir / "retrain" / f"job-{job_id}" / "data.yaml"
    trained = sum(len(split_files(data_yaml, split).images) for split in ("train", "val"))
    assert trained >= result["images"]["val"] + result["replay_images"]["val"] > 0
    assert len(read_profile(profile).columns["brightness"]) == trained + 4

    _catalog(app).invalidate()
    production = device_client.get("/api/v1/models/production").json()
    assert production["version"] == "2"
    onnx = device_client.get(production["download_url"])
    assert onnx.status_code == 200
    assert onnx.headers["x-model-sha256"] == production["sha256"]
    if HAVE_INT8:
        assert production["int8"] is not None  # quantized before the promotion

    # The edge agent running since before training swapped to version 2 by itself.
    camera.wait_for("2", timeout=30)
    seen = camera.stop()
    assert seen.model_error is None
    assert seen.model_version == "2"
    assert seen.pipeline is not None and set(seen.pipeline.versions) == {"1", "2"}

    after = viewer_client.get("/api/v1/retraining/status").json()
    assert after["labels_since_last_training"] == 0
    assert after["eligible"] is False
    assert after["last_job"]["id"] == job_id

    # People roll back and promote again, with a reason recorded with who.
    back = admin_client.post(
        "/api/v1/models/rollback", json={"reason": "check the old one"}, headers=CSRF
    )
    assert back.status_code == 200, back.text
    assert back.json()["version"] == "1"
    assert back.json()["tags"]["production.rolled_back_by"] == "alice-admin"
    again_up = admin_client.post(
        "/api/v1/models/2/promote", json={"reason": "fine after all"}, headers=CSRF
    )
    assert again_up.status_code == 200, again_up.text
    assert again_up.json()["tags"]["production.promoted_reason"] == "fine after all"
    assert device_client.get("/api/v1/models/production").json()["version"] == "2"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("gate_env", [{}], ids=["default-gate"])
def test_a_worse_candidate_is_registered_not_promoted(
    app: FastAPI,
    settings: Settings,
    worker: Worker,
    device_client: TestClient,
    reviewer_client: TestClient,
    admin_client: TestClient,
) -> None:
    assert settings.gate_max_golden_drop == 0.01
    truth = send_frames(device_client, {"train": 8, "val": 2, "test": 2})
    review_everything(reviewer_client, truth)
    r = admin_client.post("/api/v1/retraining/trigger", json={"reason": "try"}, headers=CSRF)
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]

    assert worker.run_one() == JobStatus.SUCCEEDED, _log(app, job_id)
    result = admin_client.get(f"/api/v1/jobs/{job_id}").json()["result"]
    assert result["gate_passed"] is False
    assert result["aliases"] == []
    assert "golden mAP50" in result["gate_summary"]

    models = {m["version"]: m for m in admin_client.get("/api/v1/models").json()}
    assert models["2"]["aliases"] == []
    assert models["2"]["gate_passed"] is False
    recent = {r["rule"]: r for r in models["2"]["gate"]["rules"]}["recent_map50"]
    # Both models were evaluated on the 2 held-out images: too few to judge (the minimum is 30).
    assert recent["verdict"] == "not judged"
    assert recent["evidence"]["images"] == 2
    assert "fewer than the 30 needed" in recent["detail"]
    assert models["1"]["aliases"] == ["production"]

    refused = admin_client.post("/api/v1/models/2/promote", json={"reason": "x"}, headers=CSRF)
    assert refused.status_code == 409
    assert "failed its promotion gate" in refused.json()["detail"]
    forced = admin_client.post(
        "/api/v1/models/2/promote", json={"reason": "I know", "force": True}, headers=CSRF
    )
    assert forced.status_code == 200, forced.text
    assert "alice-admin" in forced.json()["tags"]["production.forced"]


def _log(app: FastAPI, job_id: int) -> str:
    with app_state(app).read_sessions() as session:
        return job_store.job_log(session, job_id=job_id)[-4000:]
