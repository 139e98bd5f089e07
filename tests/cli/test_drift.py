"""`visionloop drift check` queues a drift_check job; `visionloop drift status` lists devices."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from visionloop.cli import app
from visionloop.config import Settings
from visionloop.server.db import create_db_engine, write_engine
from visionloop.server.migrate import upgrade
from visionloop.server.models import DriftCheck
from visionloop.server.store import devices as device_store
from visionloop.server.store import drift as drift_store
from visionloop.server.store import jobs as job_store


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in [k for k in os.environ if k.startswith("VISIONLOOP_")]:
        if key != "VISIONLOOP_TEST_PG_URL":
            monkeypatch.delenv(key)
    monkeypatch.setenv("VISIONLOOP_DATA_DIR", str(tmp_path))
    return tmp_path


def _run(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def test_drift_check_and_status(data_dir: Path) -> None:
    assert "no enabled device to check" in _run("drift", "check", code=1)
    engine = create_db_engine(Settings(data_dir=data_dir).database_url)
    upgrade(engine)
    with Session(write_engine(engine)) as session, session.begin():
        device_store.create_device(session, name="cam7")
    assert "no enabled device named 'other'" in _run("drift", "check", "--device", "other", code=1)
    job_id = int(_run("drift", "check", "--device", "cam7").splitlines()[-1])
    with Session(engine) as session:
        job = job_store.get_job(session, job_id=job_id)
        assert job.kind == "drift_check" and job.created_by == "cli"
    engine.dispose()
    out = _run("drift", "status")
    assert "cam7" in out and "never" in out


def test_drift_status_words_an_inconclusive_check_as_the_dashboard_does(data_dir: Path) -> None:
    engine = create_db_engine(Settings(data_dir=data_dir).database_url)
    upgrade(engine)
    at = datetime(2026, 11, 1, tzinfo=UTC)
    with Session(write_engine(engine)) as session, session.begin():
        device, _ = device_store.create_device(session, name="cam8")
        check = drift_store.add_check(
            session,
            DriftCheck(
                device_id=device.id,
                reference_kind="auto",
                reference_start=at,
                reference_end=at,
                reference_frames=250,
                window_start=at,
                window_end=at,
                window_frames=250,
                features=[{"feature": "brightness", "drifted": True}],
                drifted_features=1,
                share_drifted=1.0,
                drifted=False,
                verdict="inconclusive",
                verdict_reason="too few",
                duration_s=0.1,
            ),
        )
        drift_store.record_verdict(session, check=check, consecutive=2)
    engine.dispose()
    out = _run("drift", "status")
    assert "inconclusive" in out and "cam8: latest check inconclusive: too few" in out
    assert "brightness" not in out and "1/1" not in out
