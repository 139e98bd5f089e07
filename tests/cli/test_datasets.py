"""``visionloop dataset import|export`` through the real CLI on SQLite and PostgreSQL, and the
exported folder accepted by ``visionloop evaluate`` and ``visionloop train``."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi import FastAPI
from typer.testing import CliRunner

from support.datasets import synthetic_yolo, to_voc
from support.db import count_rows
from visionloop.cli import app as cli
from visionloop.config import Settings
from visionloop.shipped import BASELINE_ONNX
from visionloop.training.evaluate import dataset_digest

runner = CliRunner()
KEEP_SPLITS = ("--split-from-source", "--add-classes")
TINY_TRAINING = ("--epochs", "1", "--imgsz", "96", "--batch", "8", "--no-register")
BASELINE = BASELINE_ONNX


def _env(settings: Settings) -> dict[str, str]:
    return {
        "VISIONLOOP_DATA_DIR": str(settings.data_dir),
        "VISIONLOOP_DATABASE_URL": settings.database_url,
    }


def _output(result: object) -> str:
    return " ".join(str(getattr(result, "output", "")).split())  # rich wraps at terminal width


def test_import_asks_before_adding_classes_then_reports_and_exports(
    settings: Settings, app: FastAPI, tmp_path: Path
) -> None:
    env = _env(settings)
    _, truth = synthetic_yolo(tmp_path / "yolo", n=6)
    to_voc(truth, tmp_path / "voc")
    (tmp_path / "voc" / "JPEGImages" / truth[0].path.name).write_bytes(b"not a jpeg")
    args = ["dataset", "import", str(tmp_path / "voc"), "--format", "voc"]

    refused = runner.invoke(cli, args, env=env, input="n\n")
    assert refused.exit_code == 1
    assert "new classes (" in _output(refused)
    assert count_rows(app, "frames") == 0

    accepted = runner.invoke(cli, [*args, "--device", "supplier-b"], env=env, input="y\n")
    out = _output(accepted)
    assert accepted.exit_code == 1, out  # one bad file: the exit status says so
    assert f"{truth[0].path.name}: corrupt image" in out
    assert "imported 5 images" in out and "1 files with errors" in out
    assert count_rows(app, "frames") == 5

    again = runner.invoke(cli, [*args, "--add-classes"], env=env)
    assert "imported 0 images" in _output(again) and "5 already stored" in _output(again)

    exported = runner.invoke(cli, ["dataset", "export", str(tmp_path / "out")], env=env)
    assert exported.exit_code == 0, exported.output
    assert "exported 5 frames" in _output(exported)
    digest = json.loads((tmp_path / "out" / "manifest.json").read_text())["digest"]
    assert f"digest {digest}" in _output(exported) and digest == dataset_digest(tmp_path / "out")

    coco = runner.invoke(
        cli,
        ["dataset", "export", str(tmp_path / "coco"), "--format", "coco", "--since", "2000-01-01"],
        env=env,
    )
    assert coco.exit_code == 0, coco.output
    assert (tmp_path / "coco" / "annotations" / "instances_train.json").is_file()

    unknown = runner.invoke(
        cli, ["dataset", "import", str(tmp_path / "yolo"), "--format", "voc"], env=env
    )
    assert unknown.exit_code == 1 and "no VOC annotations" in _output(unknown)
