"""``dataset export`` from the store (SQLite and PostgreSQL): the reviewed frames' latest labels as
YOLO or COCO, the same labels giving the same files and digest, and a frame never changing split
between exports."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi import FastAPI
from sqlalchemy import select

from support.datasets import synthetic_yolo
from support.db import app_state
from visionloop.datasets.coco import read_coco
from visionloop.datasets.labels import LabeledImage
from visionloop.datasets.split import split_of
from visionloop.datasets.yolo import read_yolo
from visionloop.errors import InvalidInputError
from visionloop.server.dataset_export import ExportReport, export_dataset
from visionloop.server.dataset_import import import_dataset
from visionloop.server.models import Frame, LabelSubmission
from visionloop.server.store import labeling as labeling_store
from visionloop.training.evaluate import dataset_digest


def _export(app: FastAPI, out: Path, **kwargs: Any) -> ExportReport:
    state = app_state(app)
    return export_dataset(out, read_sessions=state.read_sessions, blobs=state.blobs, **kwargs)


def _seed(app: FastAPI, tmp_path: Path, *, n: int = 12, seed: int = 7) -> None:
    data_yaml, _ = synthetic_yolo(tmp_path / f"src-{seed}", n=n, seed=seed)
    state = app_state(app)
    report = import_dataset(
        read_yolo(data_yaml),
        read_sessions=state.read_sessions,
        write_sessions=state.write_sessions,
        blobs=state.blobs,
        confirm_new_classes=lambda names: True,
    )
    assert report.imported == n


def _review(app: FastAPI, frame_id: uuid.UUID, labels: list[dict[str, Any]]) -> None:
    """A later submission for a frame, as a reviewer's would be."""
    with app_state(app).write_sessions() as session, session.begin():
        pk = session.scalar(select(Frame.pk).where(Frame.id == frame_id))
        session.add(
            LabelSubmission(
                frame_pk=pk,
                source="review",
                submitted_at=datetime.now(UTC),
                labels=labels,
                tp=0,
                fp=0,
                fn=0,
            )
        )


def _frame_ids(app: FastAPI) -> list[uuid.UUID]:
    with app_state(app).read_sessions() as session:
        return sorted(session.scalars(select(Frame.id)))


def test_yolo_export_writes_latest_labels_in_stable_splits_with_a_manifest(
    app: FastAPI, tmp_path: Path
) -> None:
    _seed(app, tmp_path)
    ids = _frame_ids(app)
    relabelled = ids[0]
    _review(app, relabelled, [{"class_id": 1, "xyxyn": [0.25, 0.25, 0.5, 0.75]}])

    report = _export(app, tmp_path / "out")
    out = tmp_path / "out"
    assert sum(report.images.values()) == len(ids) and report.skipped == []
    with app_state(app).read_sessions() as session:
        names = dict(labeling_store.list_classes(session))
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["names"] == names and data["nc"] == len(names)
    assert {data[s] for s in ("train", "val", "test")} == {f"images/{s}" for s in report.images}
    for frame_id in ids:
        split = split_of(frame_id)
        assert (out / "images" / split / f"{frame_id}.jpg").is_file()
        assert (out / "labels" / split / f"{frame_id}.txt").is_file()
    label = out / "labels" / split_of(relabelled) / f"{relabelled}.txt"
    assert label.read_text() == "1 0.375000 0.500000 0.250000 0.500000\n"
    assert report.boxes == {
        s: sum(len(p.read_text().splitlines()) for p in (out / "labels" / s).glob("*.txt"))
        for s in report.boxes
    }

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["digest"] == report.digest == dataset_digest(out)
    assert manifest["format"] == "yolo" and manifest["since"] is None
    assert len(manifest["files"]) == 2 * len(ids) + 1  # images, labels, data.yaml
    assert manifest["splits"]["train"]["images"] == report.images["train"]


def test_same_labels_same_digest_and_frames_never_change_split(
    app: FastAPI, tmp_path: Path
) -> None:
    _seed(app, tmp_path)
    first = _export(app, tmp_path / "one")
    second = _export(app, tmp_path / "two")
    assert second.digest == first.digest
    assert (tmp_path / "one" / "manifest.json").read_bytes() == (
        tmp_path / "two" / "manifest.json"
    ).read_bytes()

    _seed(app, tmp_path, n=6, seed=8)  # more labels: a new digest, old frames stay put
    third = _export(app, tmp_path / "three")
    assert third.digest != first.digest
    for path in (tmp_path / "one" / "images").rglob("*.jpg"):
        assert (tmp_path / "three" / path.relative_to(tmp_path / "one")).is_file()

    ids = _frame_ids(app)
    _review(app, ids[3], [])  # a relabelled frame: new digest, same split
    fourth = _export(app, tmp_path / "four")
    assert fourth.digest != third.digest
    assert fourth.images == third.images


def test_since_exports_only_frames_labelled_since(app: FastAPI, tmp_path: Path) -> None:
    _seed(app, tmp_path, n=5)
    cut = datetime.now(UTC)
    ids = _frame_ids(app)
    _review(app, ids[2], [{"class_id": 0, "xyxyn": [0.1, 0.1, 0.2, 0.2]}])
    report = _export(app, tmp_path / "out", since=cut)
    assert sum(report.images.values()) == 1
    assert (tmp_path / "out" / "images" / split_of(ids[2]) / f"{ids[2]}.jpg").is_file()
    with pytest.raises(InvalidInputError, match="no reviewed frames to export since then"):
        _export(app, tmp_path / "later", since=cut + timedelta(hours=1))
    assert not (tmp_path / "later").exists()


def test_coco_export_reads_back_with_the_same_boxes(app: FastAPI, tmp_path: Path) -> None:
    _seed(app, tmp_path, n=6)
    _export(app, tmp_path / "yolo")
    report = _export(app, tmp_path / "coco", dataset_format="coco")
    assert json.loads((tmp_path / "coco" / "manifest.json").read_text())["digest"] == report.digest

    def boxes(items: list[object]) -> dict[str, list[tuple[str, tuple[float, ...]]]]:
        out = {}
        for item in items:
            assert isinstance(item, LabeledImage)
            out[item.image.stem] = [(b.class_name, b.xyxyn) for b in item.boxes]
        return out

    from_yolo = boxes(read_yolo(tmp_path / "yolo").items)  # type: ignore[arg-type]
    from_coco = boxes(read_coco(tmp_path / "coco").items)  # type: ignore[arg-type]
    assert from_yolo.keys() == from_coco.keys()
    for stem, want in from_yolo.items():
        got = from_coco[stem]
        assert [c for c, _ in got] == [c for c, _ in want]
        for (_, a), (_, b) in zip(got, want, strict=True):
            assert a == pytest.approx(b, abs=1e-4)


def test_export_refuses_a_non_empty_folder_and_an_empty_store(app: FastAPI, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="no reviewed frames to export"):
        _export(app, tmp_path / "out")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(InvalidInputError, match="not an empty folder"):
        _export(app, tmp_path / "full")
