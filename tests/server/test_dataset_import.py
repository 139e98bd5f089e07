"""``dataset import`` into the store (SQLite and PostgreSQL): every box of a small YOLO, COCO and
VOC dataset lands as a reviewed frame, a second import adds nothing, bad files are reported one by
one with nothing of them stored, and unknown classes are added only when confirmed."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from support.datasets import TruthImage, synthetic_yolo, to_coco, to_voc
from support.db import app_state, count_rows
from visionloop.datasets.coco import read_coco
from visionloop.datasets.labels import Source
from visionloop.datasets.split import split_of
from visionloop.datasets.voc import read_voc
from visionloop.datasets.yolo import read_yolo
from visionloop.errors import InvalidInputError
from visionloop.server.dataset_import import IMPORT_NAMESPACE, ImportReport, import_dataset
from visionloop.server.models import Device, DeviceToken, Frame, FrameRollup, LabelSubmission
from visionloop.server.store import labeling as labeling_store
from visionloop.vision.preprocess import frame_stats
from visionloop.vision.synthetic import CLASS_NAMES


def _import(app: FastAPI, source: Source, **kwargs: Any) -> ImportReport:
    state = app_state(app)
    kwargs.setdefault("confirm_new_classes", lambda names: True)
    return import_dataset(
        source,
        read_sessions=state.read_sessions,
        write_sessions=state.write_sessions,
        blobs=state.blobs,
        **kwargs,
    )


def _frame_id(path: Path) -> uuid.UUID:
    return uuid.uuid5(IMPORT_NAMESPACE, hashlib.sha256(path.read_bytes()).hexdigest())


def _stored(app: FastAPI) -> dict[uuid.UUID, tuple[Frame, LabelSubmission]]:
    with app_state(app).read_sessions() as session:
        rows = session.execute(
            select(Frame, LabelSubmission).join(
                LabelSubmission, LabelSubmission.frame_pk == Frame.pk
            )
        ).all()
        return {frame.id: (frame, sub) for frame, sub in rows}


def _source(fmt: str, tmp_path: Path, n: int = 8) -> tuple[Source, list[TruthImage]]:
    data_yaml, truth = synthetic_yolo(tmp_path / "yolo", n=n)
    if fmt == "yolo":
        return read_yolo(data_yaml), truth
    if fmt == "coco":
        path, truth = to_coco(truth, tmp_path / "coco")
        return read_coco(path), truth
    truth = to_voc(truth, tmp_path / "voc")
    return read_voc(tmp_path / "voc"), truth


@pytest.mark.parametrize("fmt", ["yolo", "coco", "voc"])
def test_import_lands_every_box_and_a_second_import_adds_nothing(
    app: FastAPI, tmp_path: Path, fmt: str
) -> None:
    source, truth = _source(fmt, tmp_path)
    n_boxes = sum(len(t.boxes) for t in truth)
    assert n_boxes > 0

    report = _import(app, source)
    assert report.problems == []
    assert (report.imported, report.duplicates, report.boxes) == (len(truth), 0, n_boxes)
    assert sorted(report.classes_added) == sorted({n for t in truth for n, _ in t.boxes})

    state = app_state(app)
    with state.read_sessions() as session:
        names = dict(labeling_store.list_classes(session))
        device = session.scalars(select(Device).where(Device.name == "import")).one()
        assert device.disabled_at is not None
        assert session.scalar(select(func.count()).select_from(DeviceToken)) == 0
        assert session.scalar(select(func.sum(FrameRollup.frames))) == len(truth)
    stored = _stored(app)
    assert len(stored) == len(truth)
    for t in truth:
        frame, submission = stored[_frame_id(t.path)]
        assert (frame.width, frame.height) == t.size_wh
        assert frame.device_id == device.id and frame.model_version == "import"
        assert frame.sample_reason is None and frame.detection_count == 0
        assert submission.source == "import" and submission.user_id is None
        assert state.blobs.get(frame.image_sha256 or "") == t.path.read_bytes()
        assert frame.image_content_type == "image/jpeg"
        w, h = t.size_wh
        got = sorted((names[lab["class_id"]], lab["xyxyn"]) for lab in submission.labels)
        want = sorted((c, [x1 / w, y1 / h, x2 / w, y2 / h]) for c, (x1, y1, x2, y2) in t.boxes)
        assert [g[0] for g in got] == [x[0] for x in want]
        for (_, a), (_, b) in zip(got, want, strict=True):
            assert a == pytest.approx(b, abs=2e-5)

    again = _import(app, source)
    assert (again.imported, again.duplicates, again.boxes, again.problems) == (0, len(truth), 0, [])
    assert again.classes_added == []
    assert count_rows(app, "frames") == len(truth)
    assert count_rows(app, "label_submissions") == len(truth)


def test_imported_frame_stats_are_the_edge_agents_frame_stats(app: FastAPI, tmp_path: Path) -> None:
    source, truth = _source("yolo", tmp_path, n=3)
    _import(app, source)
    frame, _ = _stored(app)[_frame_id(truth[0].path)]
    stats = frame_stats(cv2.imread(str(truth[0].path)))
    assert (frame.brightness, frame.contrast, frame.sharpness) == pytest.approx(
        (stats.brightness, stats.contrast, stats.sharpness)
    )


def test_bad_files_are_reported_each_and_nothing_of_them_is_stored(
    app: FastAPI, tmp_path: Path
) -> None:
    data_yaml, truth = synthetic_yolo(tmp_path / "yolo", n=8)
    garbage, truncated, bad_box, wrong_size = truth[0], truth[1], truth[2], truth[3]
    garbage.path.write_bytes(b"this is not an image")
    data = truncated.path.read_bytes()
    truncated.path.write_bytes(data[: len(data) // 2])
    (data_yaml.parent / "labels" / bad_box.split / f"{bad_box.path.stem}.txt").write_text(
        "0 1.2 0.5 0.1 0.1\n"
    )
    cv2.imwrite(str(wrong_size.path), cv2.imread(str(wrong_size.path))[:100, :100])
    coco_path, coco_truth = to_coco(truth[3:], tmp_path / "coco")  # annotation says 640x480

    coco = _import(app, read_coco(coco_path))
    assert [p.message for p in coco.problems] == [
        "the annotation says 640x480 but the image is 100x100"
    ]
    assert (coco.imported, coco.duplicates) == (len(coco_truth) - 1, 0)
    report = _import(app, read_yolo(data_yaml))
    problems = {p.path.name: p.message for p in report.problems}
    assert problems == {
        garbage.path.name: "corrupt image: it does not decode as an image",
        truncated.path.name: "corrupt image: the JPEG is cut short (no end-of-image marker)",
        bad_box.path.name: problems[bad_box.path.name],
    }
    assert "outside 0..1" in problems[bad_box.path.name]
    # As YOLO (no size declared) the 100x100 image is fine; the other four were stored already.
    assert (report.imported, report.duplicates) == (1, len(coco_truth) - 1)
    stored = _stored(app)
    assert len(stored) == 5 and count_rows(app, "label_submissions") == 5
    for t in (garbage, truncated, bad_box):
        assert _frame_id(t.path) not in stored


def test_unknown_classes_need_confirmation_and_known_ones_keep_their_ids(
    app: FastAPI, tmp_path: Path
) -> None:
    source, truth = _source("yolo", tmp_path)
    state = app_state(app)
    with state.write_sessions() as session, session.begin():
        labeling_store.seed_classes(session, names=["dent", "bolt"])
    asked: list[list[str]] = []

    def refuse(names: list[str]) -> bool:
        asked.append(names)
        return False

    with pytest.raises(InvalidInputError, match="--add-classes"):
        _import(app, source, confirm_new_classes=refuse)
    used = [c for c in CLASS_NAMES if any(n == c for t in truth for n, _ in t.boxes)]
    assert asked == [[c for c in used if c != "dent"]]
    assert count_rows(app, "frames") == 0 and count_rows(app, "label_classes") == 2

    report = _import(app, source)
    with state.read_sessions() as session:
        names = dict(labeling_store.list_classes(session))
    assert names[0] == "dent" and names[1] == "bolt"
    assert [names[k] for k in sorted(names)][2:] == report.classes_added


def test_split_from_source_keeps_each_images_split_and_an_image_keeps_its_first_split(
    app: FastAPI, tmp_path: Path
) -> None:
    data_yaml, truth = synthetic_yolo(tmp_path / "yolo", n=10)
    report = _import(app, read_yolo(data_yaml), keep_source_split=True, device_name="line-9")
    assert report.imported == len(truth)
    ids = {frame.id: frame for frame, _ in _stored(app).values()}
    assert sorted(split_of(i) for i in ids) == sorted(t.split for t in truth)
    # The same images imported again without the source's split: already stored, unchanged.
    again = _import(app, read_yolo(data_yaml))
    assert (again.imported, again.duplicates) == (0, len(truth))
    assert set(_stored(app)) == set(ids)


def test_an_empty_class_list_starts_as_the_production_models_names(
    app: FastAPI, tmp_path: Path
) -> None:
    source, _ = _source("yolo", tmp_path, n=6)
    model_names = ["stain", "crack", "dent", "scratch", "hole"]
    report = _import(app, source, model_class_names=lambda: model_names)
    assert report.classes_added == []
    with app_state(app).read_sessions() as session:
        assert labeling_store.list_classes(session) == list(enumerate(model_names))


def _secret_image(folder: Path) -> Path:
    """A decodable JPEG outside every dataset: importing it would store it (as on the probe's
    ``../../../secret/private.jpg``)."""
    folder.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(5).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    path = folder / "private.jpg"
    cv2.imwrite(str(path), pixels)
    return path


def _hostile_coco(tmp_path: Path, secret: Path, how: str) -> Source:
    _, truth = synthetic_yolo(tmp_path / "yolo", n=3)
    json_path, _ = to_coco(truth, tmp_path / "coco")
    data = json.loads(json_path.read_text())
    if how == "symlink":
        (tmp_path / "coco" / "images" / "link.jpg").symlink_to(secret)
        file_name = "link.jpg"
    else:
        file_name = str(secret) if how == "absolute" else "../secret/private.jpg"
    data["images"].append({"id": 999, "file_name": file_name, "width": 64, "height": 48})
    json_path.write_text(json.dumps(data))
    return read_coco(json_path)


def _hostile_yolo(tmp_path: Path, secret: Path, how: str) -> Source:
    data_yaml, _ = synthetic_yolo(tmp_path / "yolo", n=3)
    text = data_yaml.read_text()
    if how == "absolute train":
        text += f"valid: {secret.parent}\n"
    elif how == "absolute list line":
        (data_yaml.parent / "extra.txt").write_text(f"{secret}\n")
        text += "valid: extra.txt\n"
    elif how == "path key":
        for split in ("train", "val", "test"):
            (secret.parent / "images" / split).mkdir(parents=True)
        (secret.parent / "images" / "train" / "private.jpg").symlink_to(secret)
        text = re.sub(r"(?m)^path:.*$", f"path: {secret.parent}", text)
    else:  # a symbolic link among the images
        (data_yaml.parent / "images" / "train" / "link.jpg").symlink_to(secret)
    data_yaml.write_text(text)
    return read_yolo(data_yaml)


def _hostile_voc(tmp_path: Path, secret: Path) -> Source:
    _, truth = synthetic_yolo(tmp_path / "yolo", n=3)
    to_voc(truth, tmp_path / "voc")
    (tmp_path / "voc" / "JPEGImages" / "link.jpg").symlink_to(secret)
    (tmp_path / "voc" / "Annotations" / "link.xml").write_text(
        "<annotation><filename>link.jpg</filename>"
        "<size><width>64</width><height>48</height></size></annotation>"
    )
    return read_voc(tmp_path / "voc")


@pytest.mark.parametrize(
    ("fmt", "how"),
    [
        ("coco", "dot-dot file_name"),
        ("coco", "absolute"),
        ("coco", "symlink"),
        ("yolo", "absolute train"),
        ("yolo", "absolute list line"),
        ("yolo", "path key"),
        ("yolo", "symlink"),
        ("voc", "symlink"),
    ],
    ids=lambda v: v.replace(" ", "-"),
)
def test_files_outside_the_dataset_folder_are_refused_each_and_nothing_of_them_is_stored(
    app: FastAPI, tmp_path: Path, fmt: str, how: str
) -> None:
    """Finding 3 of issue 20: a dataset reads only files inside its own folder."""
    secret = _secret_image(tmp_path / "secret")
    if fmt == "coco":
        source = _hostile_coco(tmp_path, secret, how)
    elif fmt == "yolo":
        source = _hostile_yolo(tmp_path, secret, how)
    else:
        source = _hostile_voc(tmp_path, secret)
    report = _import(app, source)
    assert _frame_id(secret) not in _stored(app)
    assert report.imported == 3  # the dataset's own images
    if how != "path key":  # path: leading out is not followed: the dataset's own folder is read
        assert len(report.problems) == 1, report.problems
        assert "outside the dataset folder" in report.problems[0].message
