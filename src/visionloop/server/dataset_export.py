"""``visionloop dataset export``: the reviewed frames and their latest labels as a YOLO folder or a
COCO dataset, with ``manifest.json`` (every file's sha256 and the dataset digest).

Files are named by frame id and written in frame-id order (``data.yaml`` holds no absolute path),
and each frame's split is ``datasets.split.split_of(frame id)``, so the same labels give the same
files, the same manifest and the same digest, and a frame never changes split between exports.
Class ids are those of ``label_classes`` (the YOLO class id); a gap in the ids is filled with a
placeholder name so that YOLO's ``0..nc-1`` numbering holds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from sqlalchemy.orm import Session, sessionmaker

from visionloop.datasets.coco import CocoWriter
from visionloop.datasets.labels import SPLITS, Box, BoxError, Split, clip_xyxyn
from visionloop.datasets.manifest import write_manifest
from visionloop.datasets.split import split_of
from visionloop.datasets.yolo import YoloWriter
from visionloop.errors import InvalidInputError, NotFoundError
from visionloop.server.blobs import BlobStore
from visionloop.server.store import datasets as dataset_store
from visionloop.server.store import labeling as labeling_store

log = logging.getLogger(__name__)

ExportFormat = Literal["yolo", "coco"]
_SUFFIXES = {"image/jpeg": ".jpg", "image/png": ".png"}


@dataclass
class ExportReport:
    """What an export wrote: images and boxes per split, the digest, frames left out and why."""

    out: Path
    dataset_format: ExportFormat
    digest: str = ""
    images: dict[Split, int] = field(default_factory=lambda: dict.fromkeys(SPLITS, 0))
    boxes: dict[Split, int] = field(default_factory=lambda: dict.fromkeys(SPLITS, 0))
    skipped: list[str] = field(default_factory=list)


def _dense_names(names: dict[int, str]) -> dict[int, str]:
    top = max(names, default=-1)
    return {k: names.get(k, f"unused_{k}") for k in range(top + 1)}


def _boxes(labels: list[dict[str, object]], names: dict[int, str]) -> list[Box]:
    boxes = []
    for label in labels:
        class_id = label.get("class_id")
        if not isinstance(class_id, int) or class_id not in names:
            raise BoxError(f"class id {class_id!r} is not in the class list")
        xyxyn = label.get("xyxyn")
        if not isinstance(xyxyn, list) or len(xyxyn) != 4:
            raise BoxError(f"labels {label!r} have no [x1, y1, x2, y2] box")
        x1, y1, x2, y2 = (float(v) for v in xyxyn)
        boxes.append(Box(names[class_id], clip_xyxyn((x1, y1, x2, y2))))
    return boxes


def export_dataset(
    out: Path,
    *,
    read_sessions: sessionmaker[Session],
    blobs: BlobStore,
    dataset_format: ExportFormat = "yolo",
    since: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ExportReport:
    """Write the reviewed frames (latest labels submitted at or after ``since``, if given) under
    ``out``, which must not exist or be empty. ``progress(done, total)`` after each frame."""
    if dataset_format not in ("yolo", "coco"):
        raise InvalidInputError(f"export format must be yolo or coco, not {dataset_format!r}")
    if since is not None and since.tzinfo is None:
        raise InvalidInputError("--since needs a time zone, e.g. 2026-11-26T10:00:00Z")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InvalidInputError(f"{out} already exists and is not an empty folder")
    report = ExportReport(out=out, dataset_format=dataset_format)
    with read_sessions() as session:
        names = _dense_names(dict(labeling_store.list_classes(session)))
        total = dataset_store.count_reviewed(session, since=since)
        if total == 0:
            raise InvalidInputError(
                "no reviewed frames to export" + (" since then" if since else "")
            )
        out.mkdir(parents=True, exist_ok=True)
        writer: YoloWriter | CocoWriter = (
            YoloWriter(out, names) if dataset_format == "yolo" else CocoWriter(out, names)
        )
        for done, frame in enumerate(dataset_store.reviewed_frames(session, since=since), 1):
            _export_one(frame, writer=writer, blobs=blobs, names=names, report=report)
            if progress is not None:
                progress(done, total)
    writer.finish()
    report.digest = write_manifest(
        out,
        dataset_format=dataset_format,
        names=names,
        entries=writer.entries,
        extra={
            "since": since.isoformat() if since else None,
            "splits": {s: {"images": report.images[s], "boxes": report.boxes[s]} for s in SPLITS},
        },
    )
    log.info(
        "exported %d frames to %s (digest %s)", sum(report.images.values()), out, report.digest
    )
    return report


def _export_one(
    frame: dataset_store.ReviewedFrame,
    *,
    writer: YoloWriter | CocoWriter,
    blobs: BlobStore,
    names: dict[int, str],
    report: ExportReport,
) -> None:
    suffix = _SUFFIXES.get(frame.image_content_type or "")
    if frame.image_sha256 is None or suffix is None:
        report.skipped.append(f"frame {frame.id}: no image")
        return
    try:
        boxes = _boxes(frame.labels, names)
        image = blobs.get(frame.image_sha256)
    except (BoxError, NotFoundError, KeyError, TypeError, ValueError) as exc:
        report.skipped.append(f"frame {frame.id}: {exc}")
        return
    split = split_of(frame.id)
    stem = str(frame.id)
    if isinstance(writer, YoloWriter):
        writer.add(stem=stem, split=split, image=image, suffix=suffix, boxes=boxes)
    else:
        writer.add(
            stem=stem,
            split=split,
            image=image,
            suffix=suffix,
            size_wh=(frame.width, frame.height),
            boxes=boxes,
        )
    report.images[split] += 1
    report.boxes[split] += len(boxes)
