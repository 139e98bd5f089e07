"""Pascal VOC datasets: one XML file per image, in the standard layout (``Annotations/*.xml``,
``JPEGImages/``, splits in ``ImageSets/Main/{train,val,test}.txt``) or lying beside the images.

Box corners are VOC's 1-based inclusive pixels: ``xmin = 1`` is the image's left edge and
``xmax = width`` its right one, so ``x1 = xmin - 1`` and ``x2 = xmax`` in continuous pixels.
Tools that write 0-based corners stay inside the one-pixel tolerance and are clipped.

Only a file name's last part is used (``<filename>`` cannot name another folder), and every XML
and image file must resolve inside the dataset's folder (``datasets.paths``): a symbolic link
that leads out is a problem of its own.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from visionloop.datasets.labels import (
    Box,
    BoxError,
    FileProblem,
    LabeledImage,
    Source,
    Split,
    normalise_xyxy,
    source_split,
)
from visionloop.datasets.paths import OutsideDatasetError, confine
from visionloop.datasets.yolo import IMAGE_SUFFIXES
from visionloop.errors import InvalidInputError


def _text(node: ET.Element, path: str) -> str:
    found = node.find(path)
    if found is None or found.text is None or not found.text.strip():
        raise BoxError(f"no <{path}>")
    return found.text.strip()


def _find_image(xml_path: Path, root: ET.Element, image_dir: Path) -> Path | None:
    file_name = root.findtext("filename")
    if file_name and file_name.strip():
        candidate = image_dir / Path(file_name.strip()).name
        if candidate.is_file():
            return candidate
    for suffix in IMAGE_SUFFIXES:
        for candidate in (
            image_dir / f"{xml_path.stem}{suffix}",
            image_dir / f"{xml_path.stem}{suffix.upper()}",
        ):
            if candidate.is_file():
                return candidate
    return None


def _read_xml(
    dataset: Path, xml_path: Path, image_dir: Path, split: Split | None
) -> LabeledImage | FileProblem:
    try:
        confine(dataset, xml_path)
    except OutsideDatasetError as exc:
        return FileProblem(xml_path, str(exc))
    try:
        root = ET.parse(xml_path).getroot()
    except (ET.ParseError, OSError) as exc:
        return FileProblem(xml_path, f"not a readable XML file ({exc})")
    if root.tag != "annotation":
        return FileProblem(xml_path, f"not a VOC annotation (root element <{root.tag}>)")
    image = _find_image(xml_path, root, image_dir)
    if image is None:
        return FileProblem(
            xml_path,
            f"its image ({root.findtext('filename') or xml_path.stem}) is not in {image_dir}",
        )
    try:
        confine(dataset, image)
    except OutsideDatasetError as exc:
        return FileProblem(image, str(exc))
    try:
        size_wh: tuple[int, int] | None = (
            int(_text(root, "size/width")),
            int(_text(root, "size/height")),
        )
    except (BoxError, ValueError):
        size_wh = None
    if size_wh is not None and min(size_wh) <= 0:
        size_wh = None  # some tools write 0: the image's own size is used
    boxes: list[Box] = []
    try:
        for n, obj in enumerate(root.iter("object"), 1):
            name = _text(obj, "name")
            try:
                xmin, ymin, xmax, ymax = (
                    float(_text(obj, f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")
                )
            except ValueError as exc:
                raise BoxError(f"object {n} ({name}): bndbox corners must be numbers") from exc
            if size_wh is None:
                raise BoxError("no <size> with width and height: boxes cannot be normalised")
            try:
                boxes.append(Box(name, normalise_xyxy((xmin - 1, ymin - 1, xmax, ymax), size_wh)))
            except BoxError as exc:
                raise BoxError(f"object {n} ({name}): {exc}") from exc
    except BoxError as exc:
        return FileProblem(xml_path, str(exc))
    return LabeledImage(image=image, boxes=tuple(boxes), size_wh=size_wh, split=split)


def _voc_splits(root: Path) -> dict[str, Split]:
    splits: dict[str, Split] = {}
    main = root / "ImageSets" / "Main"
    for name in ("train", "val", "test"):
        listing = main / f"{name}.txt"
        split = source_split(name)
        if listing.is_file() and split is not None:
            for line in listing.read_text().splitlines():
                if line.strip():
                    splits.setdefault(line.split()[0], split)
    return splits


def read_voc(path: Path) -> Source:
    """Read a VOC dataset: a folder with ``Annotations/`` and ``JPEGImages/``, or any folder whose
    XML files lie beside their images (searched recursively). Class names in order of first
    appearance."""
    path = Path(path)
    if not path.is_dir():
        raise InvalidInputError(f"{path}: a VOC dataset is a folder")
    items: list[LabeledImage | FileProblem] = []
    dataset = path.resolve()
    if (path / "Annotations").is_dir():
        splits = _voc_splits(path)
        image_dir = path / "JPEGImages"
        for xml_path in sorted((path / "Annotations").glob("*.xml")):
            items.append(_read_xml(dataset, xml_path, image_dir, splits.get(xml_path.stem)))
    else:
        for xml_path in sorted(path.rglob("*.xml")):
            items.append(_read_xml(dataset, xml_path, xml_path.parent, None))
    if not items:
        raise InvalidInputError(
            f"{path}: no VOC annotations (Annotations/*.xml or XML files beside images)"
        )
    names: dict[str, None] = {}
    for item in items:
        if isinstance(item, LabeledImage):
            names.update((b.class_name, None) for b in item.boxes)
    return Source(items=items, class_names=tuple(names))
