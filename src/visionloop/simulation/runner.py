"""One simulated run per labeling strategy: the real server, worker and edge agent on a fresh
temporary store, the oracle reviewer, then the measurements.

The simulator only plays the camera (an edge agent on the synthetic line with the drift
schedule) and the reviewer (the oracle, from frame ``review_at`` on, at most ``budget`` tasks).
Everything else is the system's own doing: the retraining policy queues the train job once the
budget's labels are in (``VISIONLOOP_RETRAIN_*MIN_LABELS`` = the budget), the gate decides the
promotion, and the agent swaps to the new production model through its model watcher.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from visionloop.config import LabelingStrategy, Settings
from visionloop.errors import VisionloopError
from visionloop.server.models import DriftAlarm, Frame, Job
from visionloop.simulation.live import FrameSeen, frames_seen, live_map50
from visionloop.simulation.oracle import OracleReviewer, sign_in
from visionloop.simulation.processes import (
    Child,
    child_environment,
    free_port,
    wait_for_production,
    wait_ready,
)
from visionloop.simulation.scenario import Scenario
from visionloop.simulation.truth import LineTruth
from visionloop.vision.synthetic.line import SyntheticLine

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
ORACLE_USER = "oracle"
DEVICE_NAME = "sim-cam"
POLL_S = 1.0
GOLDEN_SEED = 1
TEST_SEED = 2


@dataclass(frozen=True)
class TestSets:
    """The fixed sets every strategy is measured on (YOLO folders, ``test`` split)."""

    golden: Path
    drifted: Path


def write_test_sets(scenario: Scenario, folder: Path) -> TestSets:
    """The golden set (nominal, seed 1) and the drifted test set (the schedule's scenario at
    full intensity, seed 2), at the scenario's frame size; written once, reused."""
    from visionloop.vision.synthetic.dataset import write_dataset

    sets = TestSets(golden=folder / "golden", drifted=folder / "drifted")
    if not (sets.golden / "data.yaml").is_file():
        write_dataset(
            sets.golden,
            n=scenario.golden_images,
            scenario="nominal",
            seed=GOLDEN_SEED,
            splits=(0, 0, 1),
            size_wh=scenario.size_wh,
        )
    if not (sets.drifted / "data.yaml").is_file():
        write_dataset(
            sets.drifted,
            n=scenario.test_images,
            scenario=scenario.drifted_spec,
            seed=TEST_SEED,
            splits=(0, 0, 1),
            size_wh=scenario.size_wh,
        )
    return sets


def settings_environment(
    scenario: Scenario, strategy: LabelingStrategy, store: Path, golden: Path
) -> dict[str, str]:
    """The ``VISIONLOOP_*`` settings of the run's server and worker."""
    return {
        "VISIONLOOP_DATA_DIR": str(store),
        "VISIONLOOP_GOLDEN_SET": str(golden),
        "VISIONLOOP_LABELING_STRATEGY": strategy,
        "VISIONLOOP_RETRAIN_MIN_LABELS": str(scenario.budget),
        "VISIONLOOP_RETRAIN_DRIFT_MIN_LABELS": str(scenario.budget),
        "VISIONLOOP_RETRAIN_POLICY_INTERVAL": str(scenario.policy_interval),
        "VISIONLOOP_RETRAIN_COOLDOWN": "86400",  # one round per run
        "VISIONLOOP_RETRAIN_EPOCHS": str(scenario.epochs),
        "VISIONLOOP_RETRAIN_IMGSZ": str(scenario.imgsz),
        "VISIONLOOP_GATE_MAX_GOLDEN_DROP": str(scenario.max_golden_drop),
        "VISIONLOOP_GATE_MIN_RECENT_IMAGES": str(scenario.gate_min_images),
        "VISIONLOOP_GATE_PROMOTE_ON": scenario.gate_promote_on,
        "VISIONLOOP_DRIFT_INTERVAL": str(scenario.drift_interval),
        "VISIONLOOP_DRIFT_WINDOW": str(scenario.drift_window),
        # Blur and noise drift 4 of the 9 features (README, Drift monitoring).
        "VISIONLOOP_DRIFT_ALARM_SHARE": "0.4",
        "VISIONLOOP_JOB_POLL_SECONDS": "0.5",
    }


def _prepare_store(settings: Settings) -> tuple[str, str, str]:
    """Migrate, add the oracle (reviewer) and the device, register the shipped baseline as
    production. Returns the oracle's password, the device token and the baseline version."""
    from visionloop.server.auth import Role
    from visionloop.server.db import create_db_engine, write_engine
    from visionloop.server.migrate import upgrade
    from visionloop.server.store import devices, people
    from visionloop.shipped import BASELINE_ONNX
    from visionloop.training.registry import Registry, ensure_baseline

    engine = create_db_engine(settings.database_url, pool_size=1)
    try:
        upgrade(engine)
        password = secrets.token_urlsafe(16)
        with Session(write_engine(engine)) as session, session.begin():
            people.create_user(session, name=ORACLE_USER, role=Role.REVIEWER, password=password)
            _, token = devices.create_device(session, name=DEVICE_NAME)
    finally:
        engine.dispose()
    if not BASELINE_ONNX.is_file():
        raise VisionloopError(f"the shipped baseline {BASELINE_ONNX} is missing")
    registry = Registry.from_settings(settings)
    ensure_baseline(registry)
    production = registry.production()
    if production is None:
        raise VisionloopError("the baseline was not registered as production")
    return password, token, production.version


@dataclass
class _Watch:
    """What the runner saw while the run went on."""

    alarms: list[datetime] = dataclasses.field(default_factory=list)
    last_index: int = -1
    train_job: Job | None = None
    promoted_index: int | None = None


def _observe(session: Session, watch: _Watch, baseline: str) -> None:
    last = session.scalar(select(Frame.source_index).order_by(Frame.source_index.desc()).limit(1))
    watch.last_index = int(last) if last is not None else -1
    opened = session.scalar(select(DriftAlarm.opened_at).where(DriftAlarm.is_open))
    if opened is not None and opened not in watch.alarms:
        watch.alarms.append(opened)
    watch.train_job = session.scalar(
        select(Job).where(Job.kind == "train").order_by(Job.id).limit(1)
    )
    if watch.promoted_index is None:
        first = session.scalar(
            select(Frame.source_index)
            .where(Frame.model_version != baseline, Frame.source_index.is_not(None))
            .order_by(Frame.source_index)
            .limit(1)
        )
        watch.promoted_index = int(first) if first is not None else None


def _round_over(watch: _Watch) -> bool:
    """The train job finished without a promotion reaching the edge (failed, or the gate
    refused its candidate)."""
    job = watch.train_job
    if job is None or job.status in ("queued", "running"):
        return False
    return not (
        job.status == "succeeded" and job.result and "production" in job.result.get("aliases", [])
    )


def _done(scenario: Scenario, watch: _Watch, round_over_at: int | None) -> bool:
    if watch.last_index < scenario.frames:
        return False
    if watch.promoted_index is not None:
        return watch.last_index >= watch.promoted_index + scenario.after_promotion
    return round_over_at is not None and watch.last_index >= round_over_at + scenario.live_window


def _edge_args(scenario: Scenario, url: str, token_file: Path, store: Path) -> list[str]:
    w, h = scenario.size_wh
    return [
        "edge",
        "--server", url,
        "--token-file", str(token_file),
        "--source", f"synthetic:{scenario.schedule}",
        "--seed", str(scenario.seed),
        "--synthetic-size", f"{w}x{h}",
        "--imgsz", str(scenario.imgsz),
        # As in production: OpenVINO where installed (bf16 on CPUs that have it), else ORT; one
        # inference thread, which holds up best while training shares the cores.
        "--backend", "auto",
        "--precision", "auto",
        "--threads", "1",
        "--fps-limit", f"{scenario.fps:g}",
        "--model-poll", "2",
        "--heartbeat", "2",
        "--max-sampled-per-minute", "1000",
        "--drain-timeout", "20",
        "--outbox", str(store / "edge" / "outbox.db"),
    ]  # fmt: skip


def run_strategy(
    scenario: Scenario,
    strategy: LabelingStrategy,
    *,
    sets: TestSets,
    logs: Path,
    progress: Progress,
) -> dict[str, Any]:
    """Run the loop once with ``strategy`` on a fresh temporary store; returns its report
    entry (see ``report.strategy_entry``)."""
    from visionloop.server.db import create_db_engine

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"visionloop-sim-{strategy}-") as tmp:
        store = Path(tmp)
        env_settings = settings_environment(scenario, strategy, store, sets.golden)
        settings = Settings(
            data_dir=store,
            database_url="",
            mlflow_tracking_uri="",
            blob_dir=None,
            golden_set=sets.golden,
        )
        progress(f"{strategy}: preparing a fresh store in {store}")
        password, token, baseline = _prepare_store(settings)
        token_file = store / "device-token"
        token_file.write_text(token + "\n")
        env = child_environment(env_settings)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        children: list[Child] = []
        watch = _Watch()
        oracle: OracleReviewer | None = None
        engine = create_db_engine(settings.database_url, pool_size=1)
        sessions = sessionmaker(engine)
        try:
            server = Child("server", ["serve", "--port", str(port)], env, logs / "server.log")
            children.append(server)
            wait_ready(url, server)
            wait_for_production(url, token, server)
            children.append(Child("worker", ["worker"], env, logs / "worker.log"))
            edge_args = _edge_args(scenario, url, token_file, store)
            children.append(Child("edge", edge_args, env, logs / "edge.log"))
            progress(f"{strategy}: server on {url}, worker and edge agent started")
            with httpx.Client(base_url=url, timeout=30.0) as client:
                sign_in(client, username=ORACLE_USER, password=password)
                truth = LineTruth(
                    SyntheticLine(
                        seed=scenario.seed, size_wh=scenario.size_wh, schedule=scenario.schedule
                    )
                )
                oracle = OracleReviewer(
                    client, truth, noise=scenario.oracle_noise, rng=random.Random(scenario.seed)
                )
                round_over_at: int | None = None
                last_note = 0.0
                while True:
                    for child in children:
                        child.check()
                    with sessions() as session:
                        _observe(session, watch, baseline)
                    if (
                        watch.last_index >= scenario.review_at
                        and oracle.submitted < scenario.budget
                    ):
                        oracle.review(scenario.budget - oracle.submitted)
                    if round_over_at is None and _round_over(watch):
                        round_over_at = watch.last_index
                    if _done(scenario, watch, round_over_at):
                        break
                    if time.monotonic() - started > scenario.timeout_s:
                        progress(f"{strategy}: timed out after {scenario.timeout_s:.0f} s")
                        break
                    if time.monotonic() - last_note >= 5.0:
                        last_note = time.monotonic()
                        progress(_status_line(strategy, scenario, watch, oracle.submitted))
                    time.sleep(POLL_S)
        finally:
            for child in reversed(children):
                child.stop()
        progress(f"{strategy}: measuring (live mAP50, test sets)")
        with sessions() as session:
            seen = frames_seen(session)
            live = live_map50(
                session,
                LineTruth(
                    SyntheticLine(
                        seed=scenario.seed, size_wh=scenario.size_wh, schedule=scenario.schedule
                    )
                ),
                window=scenario.live_window,
                stride=scenario.live_stride,
                until=(seen[-1].index + 1) if seen else 0,
            )
            job = session.scalar(select(Job).where(Job.kind == "train").order_by(Job.id).limit(1))
            if job is not None:
                session.expunge(job)
        engine.dispose()
        # The run's database (frames, detections, tasks, jobs) outlives the temporary store, so
        # that the live measurement can be recomputed with other windows.
        shutil.copyfile(store / "visionloop.db", logs / "visionloop.db")
        from visionloop.simulation.report import strategy_entry, test_set_scores

        scores = test_set_scores(settings, sets, baseline, scenario.imgsz)
        return strategy_entry(
            scenario,
            strategy,
            seen=seen,
            live=live,
            job=job,
            alarms=watch.alarms,
            oracle=oracle,
            scores=scores,
            baseline=baseline,
            wall_s=time.monotonic() - started,
        )


def _status_line(strategy: str, scenario: Scenario, watch: _Watch, labels: int) -> str:
    job = watch.train_job
    if job is None:
        training = "no train job yet"
    else:
        training = f"train job {job.status} {job.progress:.0%} {job.message}".strip()
    alarm = f"drift alarms opened: {len(watch.alarms)}"
    promoted = (
        f", new model on the edge since frame {watch.promoted_index}"
        if watch.promoted_index is not None
        else ""
    )
    return (
        f"{strategy}: frame {max(watch.last_index, 0)} (drift from {scenario.drift.start}), "
        f"labels {labels}/{scenario.budget}, {alarm}, {training}{promoted}"
    )


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def index_at(seen: list[FrameSeen], moment: datetime | None) -> int | None:
    """The last frame captured at or before ``moment`` (None: no moment, or before any)."""
    if moment is None:
        return None
    when = _utc(moment)
    found = None
    for frame in seen:
        if _utc(frame.captured_at) <= when:
            found = frame.index
        else:
            break
    return found


def machine() -> str:
    """The CPU model, its core count and the load average (figures depend on all three)."""
    import os

    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    try:
        load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        load = "?"
    return f"{model}, {os.cpu_count()} cores, load average at start {load}"


def run_simulation(
    scenario: Scenario,
    strategies: list[LabelingStrategy],
    out: Path,
    *,
    command: str,
    progress: Progress,
) -> dict[str, Any]:
    """Each strategy in turn from the same seed and schedule; the report (written to ``out``
    after each strategy, so a long comparison keeps what it finished)."""
    from visionloop.simulation.report import write_report

    out.mkdir(parents=True, exist_ok=True)
    progress(f"writing the golden and drifted test sets to {out / 'sets'}")
    sets = write_test_sets(scenario, out / "sets")
    drift = scenario.drift
    report: dict[str, Any] = {
        "command": command,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "scenario": {
            **dataclasses.asdict(scenario),
            "drift_onset": drift.start,
            "drift_ramp": drift.ramp,
            "drifted_test_set": scenario.drifted_spec,
        },
        "strategies": [],
    }
    for strategy in strategies:
        entry = run_strategy(
            scenario, strategy, sets=sets, logs=out / "logs" / strategy, progress=progress
        )
        report["strategies"].append(entry)
        write_report(report, out)
        progress(
            f"{strategy}: live mAP50 {entry['map50_before_drift']} before drift, "
            f"{entry['map50_after_drift']} lowest, {entry['map50_final']} final; "
            f"recovered {entry['recovered_fraction']}"
        )
    return report
