"""Small labeled datasets for import tests: a synthetic YOLO dataset and the same images and boxes
as Pascal VOC and COCO, plus the ground truth to compare an import with.

Boxes are read from the YOLO label files here (not through ``visionloop.datasets``), so a reader
bug cannot hide behind the same code on both sides.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2

from visionloop.vision.synthetic import CLASS_NAMES, write_dataset


@dataclass(frozen=True)
class TruthImage:
    """One image of a test dataset: its file, split, size and boxes (class name, pixel xyxy)."""

    path: Path
    split: str
    size_wh: tuple[int, int]
    boxes: list[tuple[str, tuple[float, float, float, float]]]


def synthetic_yolo(root: Path, *, n: int = 10, seed: int = 7) -> tuple[Path, list[TruthImage]]:
    """A YOLO dataset of ``n`` synthetic frames under ``root``; its data.yaml and ground truth."""
    data_yaml = write_dataset(root, n=n, seed=seed, splits=(0.6, 0.2, 0.2))
    truth = []
    for image in sorted((root / "images").rglob("*.jpg")):
        split = image.parent.name
        h, w = cv2.imread(str(image)).shape[:2]
        boxes = []
        label = root / "labels" / split / f"{image.stem}.txt"
        for line in label.read_text().splitlines():
            cls, cx, cy, bw, bh = line.split()
            x, y, ww, hh = float(cx) * w, float(cy) * h, float(bw) * w, float(bh) * h
            boxes.append((CLASS_NAMES[int(cls)], (x - ww / 2, y - hh / 2, x + ww / 2, y + hh / 2)))
        truth.append(TruthImage(image, split, (w, h), boxes))
    return data_yaml, truth


def to_voc(truth: list[TruthImage], root: Path, *, beside: bool = False) -> list[TruthImage]:
    """The same images as VOC: ``Annotations/`` + ``JPEGImages/`` + ``ImageSets/Main`` (or, with
    ``beside``, each XML next to its image in one folder). Returns the ground truth there."""
    images_dir = root if beside else root / "JPEGImages"
    xml_dir = root if beside else root / "Annotations"
    images_dir.mkdir(parents=True, exist_ok=True)
    xml_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for t in truth:
        image = images_dir / t.path.name
        shutil.copyfile(t.path, image)
        objects = "".join(
            f"<object><name>{name}</name><difficult>0</difficult><bndbox>"
            f"<xmin>{x1 + 1:.3f}</xmin><ymin>{y1 + 1:.3f}</ymin>"
            f"<xmax>{x2:.3f}</xmax><ymax>{y2:.3f}</ymax></bndbox></object>"
            for name, (x1, y1, x2, y2) in t.boxes
        )
        w, h = t.size_wh
        (xml_dir / f"{t.path.stem}.xml").write_text(
            f"<annotation><folder>x</folder><filename>{image.name}</filename>"
            f"<size><width>{w}</width><height>{h}</height><depth>3</depth></size>"
            f"{objects}</annotation>"
        )
        out.append(TruthImage(image, t.split, t.size_wh, t.boxes))
    if not beside:
        main = root / "ImageSets" / "Main"
        main.mkdir(parents=True)
        for split in ("train", "val", "test"):
            stems = [t.path.stem for t in truth if t.split == split]
            (main / f"{split}.txt").write_text("".join(s + "\n" for s in stems))
    return out


def to_coco(truth: list[TruthImage], root: Path) -> tuple[Path, list[TruthImage]]:
    """The same images as one COCO JSON (``root/annotations.json``) and ``root/images/``; category
    ids start at 7 (any numbering must work). Returns the JSON and the ground truth there."""
    (root / "images").mkdir(parents=True)
    images, annotations, out = [], [], []
    for k, t in enumerate(truth, 1):
        image = root / "images" / t.path.name
        shutil.copyfile(t.path, image)
        w, h = t.size_wh
        images.append({"id": k * 10, "file_name": image.name, "width": w, "height": h})
        for name, (x1, y1, x2, y2) in t.boxes:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": k * 10,
                    "category_id": 7 + CLASS_NAMES.index(name),
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
        out.append(TruthImage(image, t.split, t.size_wh, t.boxes))
    categories = [{"id": 7 + i, "name": name} for i, name in enumerate(CLASS_NAMES)]
    path = root / "annotations.json"
    path.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )
    return path, out
