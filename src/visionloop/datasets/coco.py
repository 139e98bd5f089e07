"""COCO detection datasets: reading one or more ``instances`` JSON files with their image folder,
and writing one JSON per split.

A box is ``bbox = [x, y, width, height]`` in pixels of the image's declared ``width`` and
``height``. Crowd regions (``iscrowd: 1``) mark groups, not objects, and are skipped. A JSON's
split is read from its name (``instances_train2017.json`` -> train). An image's ``file_name`` is
looked for relative to the JSON's folder, the folder above it, and their ``images/``, and must
lie inside the dataset's folder (see ``datasets.paths``): an absolute ``file_name``, or one that
leads out by ``..`` or a symbolic link, is a problem of that image.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from visionloop.datasets.labels import (
    SPLITS,
    Box,
    BoxError,
    FileProblem,
    LabeledImage,
    Source,
    Split,
    normalise_xyxy,
    source_split,
)
from visionloop.datasets.manifest import MANIFEST_NAME, FileEntry, file_entry
from visionloop.datasets.paths import OutsideDatasetError, confine, dataset_root
from visionloop.errors import InvalidInputError

COCO_CATEGORY_OFFSET = 1
"""Written category id = class id + 1: COCO keeps 0 free (many tools read it as background)."""


def _split_from_name(path: Path) -> Split | None:
    for token in re.split(r"[_\-.\s]+", path.stem.lower()):
        split = source_split(token.rstrip("0123456789"))
        if split is not None:
            return split
    return None


def _json_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise InvalidInputError(f"{path}: no such file or folder")
    files = [f for f in sorted(path.glob("*.json")) if f.name != MANIFEST_NAME]
    files = files or sorted((path / "annotations").glob("*.json"))
    if not files:
        raise InvalidInputError(f"{path}: no COCO .json file in it or in its annotations/")
    return files


def _find_image(root: Path, json_path: Path, file_name: str) -> Path | None:
    """The image ``file_name`` names, or None when there is none; OutsideDatasetError when the
    name is absolute or the only file it names lies outside ``root``."""
    if Path(file_name).is_absolute() or Path(file_name).drive:
        raise OutsideDatasetError(
            f"refused: file_name {file_name!r} is an absolute path, outside the dataset "
            f"folder {root} (every file a dataset names must be inside its folder)"
        )
    outside: OutsideDatasetError | None = None
    for base in (json_path.parent, json_path.parent.parent):
        for folder in (base, base / "images"):
            candidate = folder / file_name
            if candidate.is_file():
                try:
                    confine(root, candidate)
                except OutsideDatasetError as exc:
                    outside = outside or exc
                    continue
                return candidate
    if outside is not None:
        raise outside
    return None


def _load(json_path: Path) -> dict[str, Any]:
    try:
        data = json.loads(json_path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InvalidInputError(f"{json_path}: not a readable JSON file ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise InvalidInputError(f"{json_path}: not a COCO file (no 'images' list)")
    return data


def _read_one(root: Path, json_path: Path, names: list[str]) -> list[LabeledImage | FileProblem]:
    data = _load(json_path)
    categories: dict[int, str] = {}
    for cat in data.get("categories") or []:
        try:
            categories[int(cat["id"])] = str(cat["name"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"{json_path}: a category without id or name") from exc
        if categories[int(cat["id"])] not in names:
            names.append(categories[int(cat["id"])])
    by_image: dict[object, list[dict[str, Any]]] = {}
    for ann in data.get("annotations") or []:
        if isinstance(ann, dict):
            by_image.setdefault(ann.get("image_id"), []).append(ann)
    split = _split_from_name(json_path)
    items: list[LabeledImage | FileProblem] = []
    for image in data["images"]:
        try:
            file_name = str(image["file_name"])
            size_wh = (int(image["width"]), int(image["height"]))
        except (KeyError, TypeError, ValueError):
            items.append(
                FileProblem(
                    json_path, f"image entry without file_name/width/height: {image!r}"[:300]
                )
            )
            continue
        try:
            path = _find_image(root, json_path, file_name)
        except OutsideDatasetError as exc:
            items.append(FileProblem(json_path.parent / file_name, str(exc)))
            continue
        if path is None:
            items.append(FileProblem(json_path.parent / file_name, "image file not found"))
            continue
        try:
            boxes = tuple(
                _box(ann, categories, size_wh)
                for ann in by_image.get(image.get("id"), [])
                if not ann.get("iscrowd")
            )
        except BoxError as exc:
            items.append(FileProblem(path, f"{json_path.name}: {exc}"))
            continue
        items.append(LabeledImage(image=path, boxes=boxes, size_wh=size_wh, split=split))
    return items


def _box(ann: dict[str, Any], categories: Mapping[int, str], size_wh: tuple[int, int]) -> Box:
    try:
        category = categories[int(ann["category_id"])]
    except (KeyError, TypeError, ValueError) as exc:
        raise BoxError(
            f"annotation {ann.get('id')}: unknown category_id {ann.get('category_id')!r}"
        ) from exc
    try:
        x, y, w, h = (float(v) for v in ann["bbox"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BoxError(f"annotation {ann.get('id')}: bbox must be [x, y, width, height]") from exc
    try:
        return Box(category, normalise_xyxy((x, y, x + w, y + h), size_wh))
    except BoxError as exc:
        raise BoxError(f"annotation {ann.get('id')}: {exc}") from exc


def read_coco(path: Path) -> Source:
    """Read a COCO JSON file, or every ``*.json`` of a folder (or of its ``annotations/``).
    Images must lie inside the dataset's folder (``datasets.paths.dataset_root``)."""
    names: list[str] = []
    items: list[LabeledImage | FileProblem] = []
    root = dataset_root(Path(path))
    for json_path in _json_files(Path(path)):
        if Path(path).is_dir():  # a file named by the user is theirs; one found in it is not
            confine(root, json_path)
        items.extend(_read_one(root, json_path, names))
    if not items:
        raise InvalidInputError(f"{path}: the COCO files list no images")
    return Source(items=items, class_names=tuple(names))


class CocoWriter:
    """Writes ``images/{split}/<stem><suffix>`` and ``annotations/instances_{split}.json`` (whose
    ``file_name`` is relative to the dataset folder) under an empty folder ``root``."""

    def __init__(self, root: Path, names: Mapping[int, str]) -> None:
        self.root = root
        self.names = dict(names)
        self._ids = {name: k for k, name in self.names.items()}
        self.entries: list[FileEntry] = []
        self._images: dict[Split, list[dict[str, Any]]] = {s: [] for s in SPLITS}
        self._annotations: dict[Split, list[dict[str, Any]]] = {s: [] for s in SPLITS}
        for split in SPLITS:
            (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "annotations").mkdir(parents=True, exist_ok=True)

    def _write(self, path: Path, data: bytes) -> None:
        path.write_bytes(data)
        self.entries.append(file_entry(self.root, path, data))

    def add(
        self,
        *,
        stem: str,
        split: Split,
        image: bytes,
        suffix: str,
        size_wh: tuple[int, int],
        boxes: Sequence[Box],
    ) -> None:
        """One image and its boxes (pixel ``bbox`` rounded to 0.01 px)."""
        path = self.root / "images" / split / f"{stem}{suffix}"
        self._write(path, image)
        images = self._images[split]
        image_id = len(images) + 1
        w, h = size_wh
        images.append(
            {
                "id": image_id,
                "file_name": path.relative_to(self.root).as_posix(),
                "width": w,
                "height": h,
            }
        )
        annotations = self._annotations[split]
        for box in boxes:
            x1, y1, x2, y2 = box.xyxyn
            bbox = [
                round(x1 * w, 2),
                round(y1 * h, 2),
                round((x2 - x1) * w, 2),
                round((y2 - y1) * h, 2),
            ]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": self._ids[box.class_name] + COCO_CATEGORY_OFFSET,
                    "bbox": bbox,
                    "area": round(bbox[2] * bbox[3], 2),
                    "iscrowd": 0,
                }
            )

    def finish(self) -> list[Path]:
        """Write one ``instances_{split}.json`` per split; return their paths."""
        categories = [
            {"id": k + COCO_CATEGORY_OFFSET, "name": v, "supercategory": ""}
            for k, v in sorted(self.names.items())
        ]
        paths = []
        for split in SPLITS:
            body = {
                "info": {"description": f"visionloop dataset export, {split} split"},
                "images": self._images[split],
                "annotations": self._annotations[split],
                "categories": categories,
            }
            path = self.root / "annotations" / f"instances_{split}.json"
            self._write(path, (json.dumps(body, indent=1) + "\n").encode())
            paths.append(path)
        return paths
