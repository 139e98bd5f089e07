"""The loop's human step end to end, on SQLite and PostgreSQL: uncertain frames of the synthetic
line arrive through the ingest and image routes, become tasks, a reviewer leases each one and
submits its true boxes, ``visionloop dataset export`` writes those labels as a YOLO folder, and
``visionloop evaluate`` and ``visionloop train`` accept that folder."""

from __future__ import annotations

import importlib.util
import json
import uuid
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from support.db import app_state
from support.labeling import ProductionRegistry, review_everything, send_frames
from visionloop.cli import app as cli
from visionloop.config import Settings
from visionloop.datasets.labels import SPLITS
from visionloop.datasets.split import split_of
from visionloop.server.model_catalog import ModelCatalog
from visionloop.shipped import BASELINE_ONNX

BASELINE = BASELINE_ONNX
PER_SPLIT = {"train": 10, "val": 3, "test": 3}


NEEDS_EVALUATE = pytest.mark.skipif(
    importlib.util.find_spec("faster_coco_eval") is None,
    reason="needs the train extra (faster-coco-eval)",
)


def _loop_to_dataset(
    app: FastAPI,
    settings: Settings,
    device_client: TestClient,
    reviewer_client: TestClient,
    out: Path,
) -> dict[str, str]:
    """Frames in, reviews, ``dataset export`` to ``out``; checks the folder, returns the CLI's
    environment for the store."""
    app.state.model_catalog = ModelCatalog(
        app_state(app).settings, registry_factory=lambda _s: ProductionRegistry()
    )
    truth = send_frames(device_client, PER_SPLIT)
    review_everything(reviewer_client, truth)

    env = {
        "VISIONLOOP_DATA_DIR": str(settings.data_dir),
        "VISIONLOOP_DATABASE_URL": settings.database_url,
    }
    exported = CliRunner().invoke(cli, ["dataset", "export", str(out)], env=env)
    assert exported.exit_code == 0, exported.output
    manifest = json.loads((out / "manifest.json").read_text())
    boxes = dict.fromkeys(SPLITS, 0)
    for frame_id, labels in truth.items():
        split = split_of(uuid.UUID(frame_id))
        boxes[split] += len(labels)
        rows = (out / "labels" / split / f"{frame_id}.txt").read_text().splitlines()
        assert sorted(int(r.split()[0]) for r in rows) == sorted(lab["class_id"] for lab in labels)
    assert manifest["splits"] == {s: {"images": PER_SPLIT[s], "boxes": boxes[s]} for s in SPLITS}
    return env


@NEEDS_EVALUATE
def test_uncertain_frames_to_reviewed_labels_to_a_dataset_evaluate_accepts(
    app: FastAPI,
    settings: Settings,
    device_client: TestClient,
    reviewer_client: TestClient,
    tmp_path: Path,
) -> None:
    out = tmp_path / "dataset"
    env = _loop_to_dataset(app, settings, device_client, reviewer_client, out)
    evaluated = CliRunner().invoke(
        cli, ["evaluate", str(BASELINE), str(out), "--split", "test"], env=env
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert "mAP50" in evaluated.output


@pytest.mark.train
@pytest.mark.skipif(
    importlib.util.find_spec("ultralytics") is None, reason="needs the train extra (ultralytics)"
)
# SQLite only: the store's part runs on both databases above; training reads only the folder.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_train_accepts_a_dataset_of_reviewed_labels(
    app: FastAPI,
    settings: Settings,
    device_client: TestClient,
    reviewer_client: TestClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "dataset"
    env = _loop_to_dataset(app, settings, device_client, reviewer_client, out)
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "ultralytics"))
    for name in ("YOLO_OFFLINE", "YOLO_AUTOINSTALL", "YOLO_VERBOSE", "OMP_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    args = ["--epochs", "1", "--imgsz", "64", "--batch", "8", "--no-register"]
    trained = CliRunner().invoke(
        cli, ["train", str(out / "data.yaml"), "--out", str(tmp_path / "run"), *args], env=env
    )
    assert trained.exit_code == 0, f"{trained.output}\n{trained.exception!r}"
    report = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert report["images"] == PER_SPLIT["test"]
