"""``visionloop models …`` and ``visionloop evaluate`` through the real CLI on a real store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from support.db import free_port
from support.models import write_constant_model
from visionloop.cli import app

pytest.importorskip("mlflow")


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VISIONLOOP_DATA_DIR", str(tmp_path / "var"))
    return tmp_path


def _run(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_register_list_promote_rollback(env: Path) -> None:
    a = write_constant_model(env / "a.onnx", np.full((1, 8, 4), 0.1, np.float32))
    b = write_constant_model(env / "b.onnx", np.full((1, 8, 4), 0.2, np.float32))
    assert "no registered versions" in _run("models", "list")
    assert "version 1" in _run("models", "register", str(a), "--tag", "map50=0.9")
    out = _run("models", "register", str(b), "--alias", "production", "--by", "ci")
    assert "production -> version 2" in out
    _run("models", "promote", "1", "--reason", "b is worse", "--by", "alice")
    listed = json.loads(_run("models", "list", "--json"))
    assert [(v["version"], v["aliases"]) for v in listed] == [("1", ["production"]), ("2", [])]
    assert listed[0]["metrics"] == {"map50": 0.9}
    table = _run("models", "list")
    assert "production" in table and "0.900" in table
    assert "rolled back to version 2" in _run("models", "rollback", "--reason", "oops")
    listed = json.loads(_run("models", "list", "--json"))
    assert [v["aliases"] for v in listed] == [[], ["production"]]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("models", "promote", "7"), "does not exist"),
        (("models", "rollback"), "nothing is production"),
        (("models", "register", "missing.onnx"), "no such model file"),
        (("models", "register", "x.onnx", "--tag", "novalue"), "KEY=VALUE"),
    ],
    ids=["promote-unknown", "rollback-empty", "register-missing", "bad-tag"],
)
def test_errors_are_messages_not_tracebacks(env: Path, args: tuple[str, ...], message: str) -> None:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_evaluate_prints_a_table_and_writes_json(env: Path) -> None:
    import cv2

    pytest.importorskip("faster_coco_eval")

    root = env / "ds"
    for sub in ("images/test", "labels/test"):
        (root / sub).mkdir(parents=True)
    cv2.imwrite(str(root / "images/test/0.png"), np.zeros((64, 64, 3), np.uint8))
    (root / "labels/test/0.txt").write_text("1 0.25 0.25 0.25 0.25\n")
    (root / "data.yaml").write_text("path: .\ntest: images/test\nnames:\n  0: a\n  1: b\n")
    rows = np.zeros((1, 2, 6), np.float32)
    rows[0, 0] = [8, 8, 24, 24, 0.9, 1]
    model = write_constant_model(
        env / "m.onnx", rows, names={0: "a", 1: "b"}, metadata={"end2end": "True"}
    )
    out = _run("evaluate", str(model), str(root), "--json", str(env / "r.json"))
    assert "mAP50 1.0000" in out
    report = json.loads((env / "r.json").read_text())
    assert report["map50"] == pytest.approx(1.0)
    assert report["per_class"]["b"]["ap50"] == pytest.approx(1.0)


def test_mlflow_ui_stops_its_children_on_sigterm(tmp_path: Path) -> None:
    psutil = pytest.importorskip("psutil")
    port = free_port()
    env = {**os.environ, "VISIONLOOP_DATA_DIR": str(tmp_path / "var")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "visionloop", "mlflow-ui", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # Wait for the whole tree: visionloop -> mlflow server -> its uvicorn worker(s).
        deadline = time.monotonic() + 120
        tree: list[Any] = []
        while time.monotonic() < deadline and proc.poll() is None:
            tree = psutil.Process(proc.pid).children(recursive=True)
            if any(c.children() for c in tree):
                break
            time.sleep(0.5)
        assert proc.poll() is None, "mlflow-ui exited early"
        assert any(c.children() for c in tree), "the MLflow server did not start its workers"
        tree = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        _, alive = psutil.wait_procs(tree, timeout=5)
        assert alive == [], f"left running: {[p.cmdline() for p in alive]}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_failed_gate_needs_force_and_list_shows_the_verdict(env: Path) -> None:
    from visionloop.config import Settings
    from visionloop.training.gate import gate_report
    from visionloop.training.registry import Registry

    a = write_constant_model(env / "a.onnx", np.full((1, 8, 4), 0.1, np.float32))
    b = write_constant_model(env / "b.onnx", np.full((1, 8, 4), 0.2, np.float32))
    _run("models", "register", str(a), "--alias", "production")
    _run("models", "register", str(b))
    registry = Registry.from_settings(Settings())
    report = gate_report(
        candidate={"golden": {"map50": 0.5, "map50_95": 0.3}, "recent": None},
        production={"golden": {"map50": 0.9, "map50_95": 0.6}, "recent": None},
        max_golden_drop=0.01,
        recall_floors={},
    )
    registry.set_gate("2", report, run_id=None)

    refused = CliRunner().invoke(app, ["models", "promote", "2", "--reason", "try"])
    assert refused.exit_code == 1
    assert "failed its promotion gate" in refused.output
    listed = json.loads(_run("models", "list", "--json"))
    assert listed[1]["gate_passed"] is False
    assert listed[1]["gate"]["rules"][1]["rule"] == "golden_drop"
    assert "FAILED" in _run("models", "list")

    assert "production -> version 2" in _run(
        "models", "promote", "2", "--reason", "I know", "--force", "--by", "alice"
    )
    forced = registry.get("2").tags
    assert "alice" in forced["production.forced"]


def test_register_with_reference_data_stores_the_validation_frames_profile(env: Path) -> None:
    """`--reference-data DATASET` profiles the val split through the model and stores it with the
    version, where drift checks find it; a dataset without a val split is a message before
    anything is registered."""
    from support.datasets import synthetic_yolo
    from support.models import BASELINE_ONNX
    from visionloop.config import Settings
    from visionloop.monitoring.features import FEATURES
    from visionloop.monitoring.profile import read_profile
    from visionloop.training.registry import Registry

    data_yaml, truth = synthetic_yolo(env / "data", n=10)
    val = sum(1 for t in truth if t.split == "val")
    out = _run("models", "register", str(BASELINE_ONNX), "--reference-data", str(data_yaml.parent))
    assert f"drift reference profile of {val} frames" in out
    registry = Registry.from_settings(Settings())
    path = registry.drift_profile_path("1")
    assert path is not None
    profile = read_profile(path)
    assert set(profile.columns) == set(FEATURES)
    assert {len(column) for column in profile.columns.values()} == {val}
    assert max(profile.columns["max_confidence"]) > 0.5  # the baseline detects the parts

    empty = env / "empty"
    (empty / "images" / "train").mkdir(parents=True)
    missing = CliRunner().invoke(
        app, ["models", "register", str(BASELINE_ONNX), "--reference-data", str(empty)]
    )
    assert missing.exit_code == 1
    assert "error:" in missing.output and "Traceback" not in missing.output
    assert [v["version"] for v in json.loads(_run("models", "list", "--json"))] == ["1"]


def test_your_own_model_with_weights_and_reference_data_from_another_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's "Use your own model": registered from a folder outside the repository with
    a relative data dir, the version keeps its fine-tuning weights and its drift profile; one
    registered without weights makes retraining name the missing flag."""
    from support.datasets import synthetic_yolo
    from support.models import BASELINE_ONNX, BASELINE_PT
    from visionloop.config import Settings
    from visionloop.errors import VisionloopError
    from visionloop.jobs.train import _base_weights
    from visionloop.training.registry import Registry

    work = tmp_path / "plant"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("VISIONLOOP_DATA_DIR", "var")
    data_yaml, _ = synthetic_yolo(work / "data", n=10)
    out = _run(
        "models", "register", str(BASELINE_ONNX), "--weights", str(BASELINE_PT),
        "--reference-data", "data", "--alias", "production",
    )  # fmt: skip
    assert "note:" not in out
    registry = Registry.from_settings(Settings())
    assert (work / "var" / "mlflow.db").is_file()
    weights = registry.weights_path("1")
    assert weights is not None and weights.read_bytes() == BASELINE_PT.read_bytes()
    assert registry.drift_profile_path("1") is not None

    theirs = write_constant_model(work / "theirs.onnx", np.full((1, 8, 4), 0.1, np.float32))
    bare = _run("models", "register", str(theirs), "--alias", "production")
    assert "note: no --weights" in bare and "note: no --reference-data" in bare
    production = registry.production()
    assert production is not None and production.version == "2"
    with pytest.raises(VisionloopError, match=r"--weights best\.pt"):
        _base_weights(registry, production)

    refused = CliRunner().invoke(
        app, ["models", "register", str(BASELINE_ONNX), "--weights", str(data_yaml)]
    )
    assert refused.exit_code == 2 and "is not a .pt file" in refused.output


def test_baseline_prints_the_shipped_folder_from_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    folder = Path(_run("models", "baseline").strip())
    assert folder.is_absolute()
    assert {"model.onnx", "best.pt", "drift_profile.json", "MODEL_CARD.md"} <= {
        p.name for p in folder.iterdir()
    }
