"""`visionloop drift check` queues a drift_check job; `visionloop drift status` lists devices."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from visionloop.cli import app
from visionloop.config import Settings
from visionloop.server.db import create_db_engine, write_engine
from visionloop.server.migrate import upgrade
from visionloop.server.store import devices as device_store
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
