"""YOLO datasets: reading a ``data.yaml`` (or an ``images/`` + ``labels/`` tree) and writing one.

A label file holds one row per object, ``class x_centre y_centre width height`` normalised to
0..1 (a segmentation row, ``class x1 y1 x2 y2 …``, is read as the box around its points). An
image's label file is found the YOLO way: the last ``images`` folder of its path becomes
``labels`` and the suffix ``.txt``; a missing label file is an image without objects.

Every file read must lie inside the dataset's folder (the data.yaml's, or the tree's; see
``datasets.paths``): ``path:`` in data.yaml is followed only inside it, and a split entry, a line of
a list file, an image or a label file that is absolute or leads out (``..``, a symbolic link) is a
problem of its own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from visionloop.datasets.labels import (
    SPLITS,
    Box,
    BoxError,
    FileProblem,
    LabeledImage,
    Source,
    Split,
    clip_xyxyn,
    source_split,
)
from visionloop.datasets.manifest import FileEntry, file_entry
from visionloop.datasets.paths import OutsideDatasetError, confine, dataset_root, is_inside
from visionloop.errors import InvalidInputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


# --- reading


def _load_yaml(path: Path) -> dict[str, object]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InvalidInputError(f"{path}: cannot read the dataset description ({exc})") from exc
    if not isinstance(data, dict):
        raise InvalidInputError(f"{path}: not a YOLO data.yaml (expected a mapping)")
    return data


def _names(raw: object, where: Path) -> list[str]:
    if isinstance(raw, list):
        return [str(n) for n in raw]
    if isinstance(raw, dict):
        try:
            ids = sorted(int(k) for k in raw)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"{where}: class ids in 'names' must be integers") from exc
        if ids != list(range(len(ids))):
            raise InvalidInputError(f"{where}: class ids in 'names' must be 0..n-1")
        by_id = {int(k): str(v) for k, v in raw.items()}
        return [by_id[i] for i in ids]
    raise InvalidInputError(f"{where}: no class names ('names' as a list or an id: name mapping)")


def label_path(image: Path) -> Path:
    """The label file of an image: ``…/images/…/x.jpg`` -> ``…/labels/…/x.txt``."""
    parts = list(image.parts)
    if "images" not in parts:
        return image.with_suffix(".txt")
    idx = len(parts) - 1 - parts[::-1].index("images")
    parts[idx] = "labels"
    return Path(*parts).with_suffix(".txt")


def _images_under(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )


def _split_images(
    dataset: Path, root: Path, entry: object, where: Path
) -> list[Path | FileProblem]:
    """The images of one split entry of data.yaml: a folder, a .txt list of images, or a list.
    An entry or a listed image outside ``dataset`` (the resolved dataset folder) is a
    FileProblem."""
    entries = entry if isinstance(entry, list) else [entry]
    images: list[Path | FileProblem] = []
    for item in entries:
        path = root / str(item)
        if not is_inside(dataset, path):
            images.append(FileProblem(path, f"split entry {item!r}: {_outside(dataset, path)}"))
        elif path.is_dir():
            images.extend(_images_under(path))
        elif path.is_file() and path.suffix == ".txt":
            for line in path.read_text().splitlines():
                if line.strip():
                    # An absolute line is kept as written: the image check refuses it.
                    images.append(root / line.strip())
        else:
            raise InvalidInputError(f"{where}: split entry {item!r} is neither a folder nor a list")
    return images


def _outside(dataset: Path, path: Path) -> str:
    try:
        confine(dataset, path)
    except OutsideDatasetError as exc:
        return str(exc)
    return "inside the dataset folder"  # pragma: no cover - called only for outside paths


def _parse_labels(path: Path, names: Sequence[str]) -> tuple[Box, ...]:
    if not path.is_file():
        return ()
    boxes: list[Box] = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        try:
            cls = int(fields[0])
            values = [float(v) for v in fields[1:]]
        except ValueError as exc:
            raise BoxError(f"{path.name}:{lineno}: not a YOLO label row: {line!r}") from exc
        if not 0 <= cls < len(names):
            raise BoxError(f"{path.name}:{lineno}: class {cls} is not in 0..{len(names) - 1}")
        if len(values) == 4:
            cx, cy, w, h = values
            xyxyn = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        elif len(values) >= 6 and len(values) % 2 == 0:
            xs, ys = values[0::2], values[1::2]
            xyxyn = (min(xs), min(ys), max(xs), max(ys))
        else:
            raise BoxError(f"{path.name}:{lineno}: expected 'class cx cy w h': {line!r}")
        try:
            boxes.append(Box(names[cls], clip_xyxyn(xyxyn)))
        except BoxError as exc:
            raise BoxError(f"{path.name}:{lineno}: {exc}") from exc
    return tuple(boxes)


def _tree_layout(root: Path) -> tuple[list[str], dict[Split | None, list[Path | FileProblem]]]:
    """An ``images/`` + ``labels/`` tree without data.yaml: names from ``classes.txt``."""
    dataset = dataset_root(root)
    classes = next(
        (
            p
            for p in (root / "classes.txt", root / "labels" / "classes.txt")
            if p.is_file() and is_inside(dataset, p)
        ),
        None,
    )
    if classes is None:
        raise InvalidInputError(
            f"{root}: no data.yaml and no classes.txt: YOLO labels number their classes, "
            "so the names must come from one of them"
        )
    names = [line.strip() for line in classes.read_text().splitlines() if line.strip()]
    by_split: dict[Split | None, list[Path | FileProblem]] = {}
    images_dir = root / "images"
    for sub in sorted(p for p in images_dir.iterdir() if p.is_dir()):
        by_split.setdefault(source_split(sub.name), []).extend(_images_under(sub))
    loose = sorted(
        p for p in images_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if loose:
        by_split.setdefault(None, []).extend(loose)
    return names, by_split


def read_yolo(path: Path) -> Source:
    """Read a YOLO dataset: a ``data.yaml``, a folder holding one, or an ``images/`` + ``labels/``
    tree with ``classes.txt``. Splits named train, val (valid) or test are kept as the source's
    split. Raises InvalidInputError when the dataset as a whole cannot be read."""
    path = Path(path)
    dataset = dataset_root(path)
    yaml_path = path if path.is_file() else None
    if yaml_path is None:
        yaml_path = next(
            (
                path / n
                for n in ("data.yaml", "data.yml")
                if (path / n).is_file() and is_inside(dataset, path / n)
            ),
            None,
        )
    by_split: dict[Split | None, list[Path | FileProblem]] = {}
    if yaml_path is not None:
        data = _load_yaml(yaml_path)
        names = _names(data.get("names"), yaml_path)
        root = Path(str(data.get("path") or yaml_path.parent))
        if not root.is_absolute():
            root = yaml_path.parent / root
        if not root.is_dir() or not is_inside(dataset, root):
            # A moved dataset (or a path: that leads out of it): its own folder.
            root = yaml_path.parent
        for key in ("train", "val", "valid", "test"):
            if data.get(key):
                split = source_split(key)
                by_split.setdefault(split, []).extend(
                    _split_images(dataset, root, data[key], yaml_path)
                )
    elif (path / "images").is_dir():
        names, by_split = _tree_layout(path)
    else:
        raise InvalidInputError(
            f"{path}: not a YOLO dataset (no data.yaml, and no images/ folder beside labels/)"
        )
    items: list[LabeledImage | FileProblem] = []
    seen: set[Path] = set()
    for split, images in by_split.items():
        for image in images:
            if isinstance(image, FileProblem):
                items.append(image)
                continue
            if image in seen:  # listed in two splits: the first wins
                continue
            seen.add(image)
            label = label_path(image)
            try:
                confine(dataset, image)
                if label.exists():
                    confine(dataset, label)
            except OutsideDatasetError as exc:
                items.append(FileProblem(image, str(exc)))
                continue
            try:
                boxes = _parse_labels(label, names)
            except BoxError as exc:
                items.append(FileProblem(image, f"label file {label.name}: {exc}"))
                continue
            except (OSError, UnicodeDecodeError) as exc:
                items.append(FileProblem(image, f"cannot read label file {label}: {exc}"))
                continue
            items.append(LabeledImage(image=image, boxes=boxes, split=split))
    if not items:
        raise InvalidInputError(f"{path}: the YOLO dataset lists no images")
    return Source(items=items, class_names=tuple(names))


# --- writing


def yolo_row(class_id: int, xyxyn: tuple[float, float, float, float]) -> str:
    """One label row ``class cx cy w h``, 6 decimals (the synthetic line's own format)."""
    x1, y1, x2, y2 = xyxyn
    return f"{class_id} {(x1 + x2) / 2:.6f} {(y1 + y2) / 2:.6f} {x2 - x1:.6f} {y2 - y1:.6f}"


class YoloWriter:
    """Writes ``images/{split}/<stem><suffix>``, ``labels/{split}/<stem>.txt`` and ``data.yaml``
    (every split listed, class names by id) under an empty folder ``root``."""

    def __init__(self, root: Path, names: Mapping[int, str]) -> None:
        self.root = root
        self.names = dict(names)
        self._ids = {name: k for k, name in self.names.items()}
        self.entries: list[FileEntry] = []
        for split in SPLITS:
            (root / "images" / split).mkdir(parents=True, exist_ok=True)
            (root / "labels" / split).mkdir(parents=True, exist_ok=True)

    def _write(self, path: Path, data: bytes) -> None:
        path.write_bytes(data)
        self.entries.append(file_entry(self.root, path, data))

    def add(
        self, *, stem: str, split: Split, image: bytes, suffix: str, boxes: Sequence[Box]
    ) -> None:
        """One image and its label file (empty for an image without objects)."""
        self._write(self.root / "images" / split / f"{stem}{suffix}", image)
        rows = "".join(yolo_row(self._ids[b.class_name], b.xyxyn) + "\n" for b in boxes)
        self._write(self.root / "labels" / split / f"{stem}.txt", rows.encode())

    def finish(self) -> Path:
        """Write ``data.yaml``; return its path."""
        lines = [
            # No 'path': Ultralytics and ``visionloop evaluate`` then resolve the splits from
            # this file's folder, so the file is the same wherever the folder is moved.
            "# visionloop dataset export (see manifest.json)",
            *(f"{split}: images/{split}" for split in SPLITS),
            f"nc: {len(self.names)}",
            "names:",
            # JSON strings are valid YAML scalars, which keeps odd class names safe.
            *(f"  {k}: {json.dumps(v)}" for k, v in sorted(self.names.items())),
        ]
        data_yaml = self.root / "data.yaml"
        self._write(data_yaml, ("\n".join(lines) + "\n").encode())
        return data_yaml
