"""Writing YOLO and COCO datasets and their manifest: what is written reads back the same, and
the manifest's digest is the one training tags a model version with."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from visionloop.datasets.coco import CocoWriter, read_coco
from visionloop.datasets.labels import Box, LabeledImage
from visionloop.datasets.manifest import write_manifest
from visionloop.datasets.yolo import YoloWriter, read_yolo
from visionloop.training.evaluate import dataset_digest

NAMES = {0: "scratch", 1: "dent", 2: "odd: name"}
BOXES = [Box("dent", (0.1, 0.2, 0.3, 0.4)), Box("odd: name", (0.5, 0.5, 1.0, 1.0))]
IMAGE = b"\xff\xd8\xff not really a jpeg"


def _write(root: Path, writer_type: type[YoloWriter] | type[CocoWriter]) -> str:
    writer = writer_type(root, NAMES)
    if isinstance(writer, YoloWriter):
        writer.add(stem="a", split="train", image=IMAGE, suffix=".jpg", boxes=BOXES)
        writer.add(stem="b", split="test", image=IMAGE + b"2", suffix=".jpg", boxes=[])
    else:
        kw = {"suffix": ".jpg", "size_wh": (200, 100)}
        writer.add(stem="a", split="train", image=IMAGE, boxes=BOXES, **kw)  # type: ignore[arg-type]
        writer.add(stem="b", split="test", image=IMAGE + b"2", boxes=[], **kw)  # type: ignore[arg-type]
    writer.finish()
    return write_manifest(root, dataset_format="x", names=NAMES, entries=writer.entries)


def _items(source_items: list[object]) -> dict[str, LabeledImage]:
    out = {}
    for item in source_items:
        assert isinstance(item, LabeledImage)
        out[item.image.name] = item
    return out


@pytest.mark.parametrize("writer_type", [YoloWriter, CocoWriter], ids=["yolo", "coco"])
def test_written_dataset_reads_back_with_the_same_boxes_and_splits(
    tmp_path: Path, writer_type: type[YoloWriter] | type[CocoWriter]
) -> None:
    _write(tmp_path, writer_type)
    source = read_yolo(tmp_path) if writer_type is YoloWriter else read_coco(tmp_path)
    items = _items(source.items)  # type: ignore[arg-type]
    assert set(items) == {"a.jpg", "b.jpg"}
    assert items["a.jpg"].split == "train" and items["b.jpg"].split == "test"
    assert [b.class_name for b in items["a.jpg"].boxes] == ["dent", "odd: name"]
    for got, want in zip(items["a.jpg"].boxes, BOXES, strict=True):
        assert got.xyxyn == pytest.approx(want.xyxyn, abs=1e-6)
    assert items["b.jpg"].boxes == ()
    assert set(NAMES.values()) <= set(source.class_names)


@pytest.mark.parametrize("writer_type", [YoloWriter, CocoWriter], ids=["yolo", "coco"])
def test_manifest_lists_every_file_and_its_digest_ignores_where_the_folder_lies(
    tmp_path: Path, writer_type: type[YoloWriter] | type[CocoWriter]
) -> None:
    digest = _write(tmp_path / "one", writer_type)
    assert _write(tmp_path / "elsewhere", writer_type) == digest
    manifest = json.loads((tmp_path / "one" / "manifest.json").read_text())
    on_disk = sorted(
        p.relative_to(tmp_path / "one").as_posix()
        for p in (tmp_path / "one").rglob("*")
        if p.is_file() and p.name != "manifest.json"
    )
    assert [f["path"] for f in manifest["files"]] == on_disk
    assert manifest["digest"] == digest
    assert manifest["classes"] == [{"id": k, "name": v} for k, v in NAMES.items()]


def test_yolo_manifest_digest_is_the_training_dataset_digest(tmp_path: Path) -> None:
    assert _write(tmp_path, YoloWriter) == dataset_digest(tmp_path)


def test_changing_one_box_changes_the_digest(tmp_path: Path) -> None:
    digest = _write(tmp_path / "one", YoloWriter)
    label = tmp_path / "one" / "labels" / "train" / "a.txt"
    label.write_text(label.read_text().replace("0.200000", "0.200001", 1))
    assert dataset_digest(tmp_path / "one") != digest
