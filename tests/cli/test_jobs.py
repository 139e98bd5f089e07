"""``visionloop jobs …`` and ``visionloop worker --once`` through the real CLI: an ``evaluate``
job of a registered model runs end to end in a worker's subprocess."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from support.models import write_constant_model
from visionloop.cli import app

pytest.importorskip("mlflow")
pytest.importorskip("faster_coco_eval")

NAMES = {0: "scratch", 1: "dent", 2: "crack", 3: "stain"}
BOX = (8, 8, 24, 24)  # x1, y1, x2, y2 of a scratch in every 64x64 image


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in [k for k in os.environ if k.startswith("VISIONLOOP_")]:
        if key != "VISIONLOOP_TEST_PG_URL":
            monkeypatch.delenv(key)
    monkeypatch.setenv("VISIONLOOP_DATA_DIR", str(tmp_path / "var"))
    return tmp_path


def _run(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def _dataset(root: Path, images: int = 4) -> Path:
    (root / "images" / "test").mkdir(parents=True)
    (root / "labels" / "test").mkdir(parents=True)
    x1, y1, x2, y2 = BOX
    for i in range(images):
        cv2.imwrite(str(root / "images" / "test" / f"{i}.png"), np.zeros((64, 64, 3), np.uint8))
        row = f"0 {(x1 + x2) / 128} {(y1 + y2) / 128} {(x2 - x1) / 64} {(y2 - y1) / 64}\n"
        (root / "labels" / "test" / f"{i}.txt").write_text(row)
    names = "".join(f"  {k}: {v}\n" for k, v in NAMES.items())
    (root / "data.yaml").write_text(f"path: {root}\ntest: images/test\nnames:\n{names}")
    return root


def test_an_evaluate_job_runs_end_to_end(env: Path) -> None:
    rows = np.zeros((1, 8, 6), np.float32)
    rows[0, 0] = (*BOX, 0.9, 0)  # finds the scratch, exactly
    model = write_constant_model(
        env / "m.onnx", rows, names=NAMES, imgsz_hw=(64, 64), metadata={"end2end": "True"}
    )
    _run("models", "register", str(model), "--alias", "production")
    data = _dataset(env / "ds")

    added = _run("jobs", "add", "evaluate", "model_version=production", f"dataset={data}")
    job_id = added.strip().splitlines()[-1]
    assert "queued" in _run("jobs", "list")
    assert "ran 1 job" in _run("worker", "--once", "--kinds", "evaluate")
    shown = _run("jobs", "show", job_id)
    assert f"job {job_id} (evaluate) succeeded 100% done" in shown
    result = json.loads(shown.split("result: ", 1)[1].split("\nlog", 1)[0])
    assert result["model_version"] == "1" and result["map50"] == pytest.approx(1.0)
    assert result["images"] == 4
    assert "[visionloop] succeeded" in _run("jobs", "show", job_id, "--log")
    assert "already succeeded" in _run("jobs", "cancel", job_id, code=1)
    assert "no job was queued" in _run("worker", "--once")


def test_cancel_a_queued_job_from_the_cli(env: Path) -> None:
    added = _run("jobs", "add", "evaluate", "model_version=2", "dataset=/data/x")
    job_id = added.strip().splitlines()[-1]
    assert f"job {job_id} cancelled" in _run("jobs", "cancel", job_id)
    assert "cancelled" in _run("jobs", "list", "--status", "cancelled")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("jobs", "add", "nosuch"), "unknown job kind 'nosuch'"),
        (("jobs", "add", "evaluate", "dataset=data/x"), "params.model_version: Field required"),
        (("jobs", "add", "evaluate", "model_version"), "not KEY=VALUE"),
        (("jobs", "show", "42"), "no job 42"),
        (("jobs", "list", "--status", "done"), "--status must be one of"),
        (("worker", "--kinds", "evaluate,nosuch"), "unknown job kind nosuch"),
    ],
    ids=["unknown-kind", "bad-params", "not-key-value", "no-job", "bad-status", "worker-kinds"],
)
def test_errors_are_messages_not_tracebacks(env: Path, args: tuple[str, ...], message: str) -> None:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code != 0
    assert message in result.output


def test_a_train_job_with_few_labels_warns(env: Path) -> None:
    rows = np.zeros((1, 8, 6), np.float32)
    model = write_constant_model(
        env / "m.onnx", rows, names=NAMES, imgsz_hw=(64, 64), metadata={"end2end": "True"}
    )
    _run("models", "register", str(model), "--alias", "production")
    result = CliRunner().invoke(app, ["jobs", "add", "train", "reason=try"])
    assert result.exit_code == 0, result.output
    assert (
        "warning: only 0 reviewed frames since the last training, fewer than the policy's 200 "
        "(VISIONLOOP_RETRAIN_MIN_LABELS)" in result.output
    )
    assert result.output.strip().splitlines()[-1].isdigit()  # the job id stays the last line
