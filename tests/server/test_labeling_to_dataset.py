"""The loop's human step end to end, on SQLite and PostgreSQL: uncertain frames of the synthetic
line arrive through the ingest and image routes, become tasks, a reviewer leases each one and
submits its true boxes, ``visionloop dataset export`` writes those labels as a YOLO folder, and
``visionloop evaluate`` and ``visionloop train`` accept that folder."""

from __future__ import annotations

import importlib.util
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from support.db import app_state
from visionloop.cli import app as cli
from visionloop.config import Settings
from visionloop.datasets.labels import SPLITS
from visionloop.datasets.split import id_in_split, split_of
from visionloop.server.model_catalog import ModelCatalog
from visionloop.training.registry import ModelVersion
from visionloop.vision.synthetic import CLASS_NAMES, SyntheticLine

CSRF = {"X-Visionloop-CSRF": "1"}
BASELINE = Path(__file__).resolve().parents[2] / "models" / "baseline" / "model.onnx"
PER_SPLIT = {"train": 10, "val": 3, "test": 3}
NS = uuid.UUID("9d1f7f0e-1c1b-4c55-8a56-6b3f0f6d2a10")


class _ProductionRegistry:
    """The baseline's class names as the production model's (no MLflow store needed)."""

    def production(self) -> ModelVersion:
        return ModelVersion(
            version="1",
            aliases=["production"],
            sha256="0" * 64,
            size_bytes=1,
            metrics={},
            tags={"classes": ",".join(CLASS_NAMES)},
            created_at=datetime(2026, 11, 1, tzinfo=UTC),
        )


def _send_frames(device_client: TestClient) -> dict[str, list[dict[str, Any]]]:
    """Ingest uncertain frames of the synthetic line with their images; frame ids are picked so
    that each split gets ``PER_SPLIT`` of them. Returns frame id -> true labels."""
    line = SyntheticLine(seed=11)
    w, h = line.size_wh
    truth: dict[str, list[dict[str, Any]]] = {}
    k = 0
    for split, count in PER_SPLIT.items():
        for _ in range(count):
            scene = line.render(k * line.frames_per_view)
            frame_id = str(id_in_split(NS, str(k), split))  # type: ignore[arg-type]
            k += 1
            labels = [
                {"class_id": int(c), "xyxyn": [x1 / w, y1 / h, x2 / w, y2 / h]}
                for (x1, y1, x2, y2), c in zip(
                    scene.xyxy.tolist(), scene.class_id.tolist(), strict=True
                )
            ]
            record = {
                "id": frame_id,
                "captured_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "model_version": "1",
                "width": w,
                "height": h,
                "stats": {"brightness": 0.5, "contrast": 0.2, "sharpness": 100.0},
                "detections": [
                    {"class_id": 0, "class_name": CLASS_NAMES[0], "confidence": 0.5,
                     "xyxyn": [0.1, 0.1, 0.2, 0.2]}
                ],
                "sample_reason": "uncertain",
            }  # fmt: skip
            r = device_client.post("/api/v1/ingest", json={"frames": [record]})
            assert r.status_code == 200, r.text
            ok, jpeg = cv2.imencode(".jpg", scene.frame_bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
            assert ok
            r = device_client.put(f"/api/v1/frames/{frame_id}/image", content=jpeg.tobytes())
            assert r.status_code == 200, r.text
            truth[frame_id] = labels
    return truth


def _review_everything(reviewer_client: TestClient, truth: dict[str, list[dict[str, Any]]]) -> None:
    reviewed = set()
    while (r := reviewer_client.post("/api/v1/labeling/next", headers=CSRF)).status_code == 200:
        task = r.json()["task"]
        assert task["frame_id"] not in reviewed
        labels = truth[task["frame_id"]]
        done = reviewer_client.post(
            f"/api/v1/labeling/tasks/{task['id']}/submit", json={"labels": labels}, headers=CSRF
        )
        assert done.status_code == 200, done.text
        reviewed.add(task["frame_id"])
    assert r.status_code == 204
    assert reviewed == set(truth)


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
        app_state(app).settings, registry_factory=lambda _s: _ProductionRegistry()
    )
    truth = _send_frames(device_client)
    _review_everything(reviewer_client, truth)

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
