"""The in-memory form every dataset format reads into and writes from.

A box is ``xyxyn`` (normalised 0..1 of the image, ``x1 < x2``, ``y1 < y2``) with a class *name*:
names, not ids, are what formats agree on (each numbers its classes its own way). A reader yields
one ``LabeledImage`` per image, or a ``FileProblem`` saying why a file cannot be used, so that one
bad file never stops the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Split = Literal["train", "val", "test"]
SPLITS: tuple[Split, ...] = ("train", "val", "test")

# How far a box may reach past the image before it is an error rather than rounding: boxes
# written by annotation tools (VOC's 1-based pixels, float COCO boxes) often overshoot by a pixel,
# and YOLO's centre/size rows by a rounding error.
EDGE_TOLERANCE_PX = 1.0
EDGE_TOLERANCE_N = 1e-4


@dataclass(frozen=True, slots=True)
class Box:
    """One labelled object: class name and normalised ``xyxyn`` box."""

    class_name: str
    xyxyn: tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class LabeledImage:
    """One image of a source dataset and its boxes.

    ``size_wh`` is the size the annotation declares (VOC, COCO), None when it declares none (YOLO);
    the importer checks it against the decoded image. ``split`` is the source's own split, if it
    has one.
    """

    image: Path
    boxes: tuple[Box, ...]
    size_wh: tuple[int, int] | None = None
    split: Split | None = None


@dataclass(frozen=True, slots=True)
class FileProblem:
    """A source file that cannot be imported, and why (a sentence a user can act on)."""

    path: Path
    message: str


class BoxError(ValueError):
    """A box that is not inside its image or is empty."""


def source_split(name: str) -> Split | None:
    """A source's split name as ours: ``train``, ``val`` (also ``valid``, ``validation``) or
    ``test``; None for anything else (``trainval``, ``all``)."""
    key = name.strip().lower()
    if key in ("train", "training"):
        return "train"
    if key in ("val", "valid", "validation"):
        return "val"
    if key in ("test", "testing"):
        return "test"
    return None


def normalise_xyxy(
    xyxy: tuple[float, float, float, float], size_wh: tuple[int, int]
) -> tuple[float, float, float, float]:
    """Pixel ``xyxy`` to ``xyxyn``. Overshoot up to ``EDGE_TOLERANCE_PX`` is clipped; a box further
    outside the image, or with no area, raises BoxError naming the box and the image size."""
    w, h = size_wh
    x1, y1, x2, y2 = xyxy
    tol = EDGE_TOLERANCE_PX
    if not (-tol <= x1 < x2 <= w + tol and -tol <= y1 < y2 <= h + tol):  # NaN compares false
        raise BoxError(
            f"box x1={x1:g} y1={y1:g} x2={x2:g} y2={y2:g} is outside the {w}x{h} image or empty"
        )
    return (max(x1, 0.0) / w, max(y1, 0.0) / h, min(x2, float(w)) / w, min(y2, float(h)) / h)


def clip_xyxyn(xyxyn: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """A normalised box, checked: inside 0..1 (overshoot up to ``EDGE_TOLERANCE_N`` is clipped)
    with ``x1 < x2`` and ``y1 < y2``; else BoxError."""
    x1, y1, x2, y2 = xyxyn
    lo, hi = -EDGE_TOLERANCE_N, 1.0 + EDGE_TOLERANCE_N
    if not (lo <= x1 < x2 <= hi and lo <= y1 < y2 <= hi):  # NaN compares false
        raise BoxError(
            f"box x1={x1:.6g} y1={y1:.6g} x2={x2:.6g} y2={y2:.6g} (normalised) is outside "
            "0..1 or empty"
        )
    return (max(x1, 0.0), max(y1, 0.0), min(x2, 1.0), min(y2, 1.0))


@dataclass(frozen=True, slots=True)
class Source:
    """A source dataset as read: its images (or problem files) and its class names in the source's
    own order (YOLO and COCO number their classes; VOC in order of first appearance)."""

    items: list[LabeledImage | FileProblem]
    class_names: tuple[str, ...]

    def used_class_names(self) -> list[str]:
        """Class names some box uses, in the source's order."""
        used = {
            box.class_name
            for item in self.items
            if isinstance(item, LabeledImage)
            for box in item.boxes
        }
        return [name for name in self.class_names if name in used] + sorted(
            used - set(self.class_names)
        )
