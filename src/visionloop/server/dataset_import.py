"""``visionloop dataset import``: a YOLO, COCO or VOC dataset into the store as reviewed frames.

Each image is read, hashed, decoded and checked (a JPEG or PNG that does not decode or is cut
short, a size that differs from its annotation) before anything of it is stored; then its bytes go
to the blob store (content-addressed, so harmless to repeat) and its frame and labels into the
database in one transaction. A bad file is a ``FileProblem`` in the report and never stops the
others. The frame id is a uuid5 of the image's sha256, so the same image imported twice, from the
same or another dataset, is stored once.

``keep_source_split``: the frame id is picked (``datasets.split.id_in_split``) so that the export's
stable split puts the frame in the source's own train, val or test split; an image already stored
keeps the split it has.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from visionloop.datasets.labels import FileProblem, LabeledImage, Source
from visionloop.datasets.split import id_in_split, possible_ids
from visionloop.errors import InvalidInputError
from visionloop.server.blobs import BlobStore
from visionloop.server.store import datasets as dataset_store
from visionloop.server.store import labeling as labeling_store
from visionloop.vision.preprocess import frame_stats

log = logging.getLogger(__name__)

IMPORT_NAMESPACE = uuid.UUID("5b0a3c1e-7f4d-4e0b-9c53-2d8e6a1f9b70")
"""uuid5 namespace of imported frame ids (the key is the image file's sha256 hex)."""
DEFAULT_IMPORT_DEVICE = "import"
_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass
class ImportReport:
    """What an import did: images stored, images already stored, boxes stored, bad files."""

    images: int = 0
    imported: int = 0
    duplicates: int = 0
    boxes: int = 0
    classes_added: list[str] = field(default_factory=list)
    problems: list[FileProblem] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _CheckedImage:
    data: bytes
    content_type: str
    size_wh: tuple[int, int]
    stats: tuple[float, float, float]


def _check_image(item: LabeledImage, data: bytes) -> _CheckedImage:
    """Decode and check one image; InvalidInputError says what is wrong with it."""
    if data.startswith(_JPEG_MAGIC) and not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise InvalidInputError("corrupt image: the JPEG is cut short (no end-of-image marker)")
    if data.startswith(_PNG_MAGIC) and not data.endswith(b"IEND\xaeB`\x82"):
        raise InvalidInputError("corrupt image: the PNG is cut short (no IEND chunk)")
    image = cv2.imdecode(
        np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    )
    if image is None or image.size == 0:
        raise InvalidInputError("corrupt image: it does not decode as an image")
    h, w = image.shape[:2]
    if item.size_wh is not None and item.size_wh != (w, h):
        aw, ah = item.size_wh
        raise InvalidInputError(f"the annotation says {aw}x{ah} but the image is {w}x{h}")
    if data.startswith(_JPEG_MAGIC):
        content_type = "image/jpeg"
    elif data.startswith(_PNG_MAGIC):
        content_type = "image/png"
    else:  # BMP, TIFF, WebP…: kept losslessly as PNG, the other type the server serves
        ok, encoded = cv2.imencode(".png", image)
        if not ok:  # pragma: no cover - OpenCV encodes any 8-bit BGR image
            raise InvalidInputError("the image could not be converted to PNG")
        data, content_type = encoded.tobytes(), "image/png"
    stats = frame_stats(image.astype(np.uint8, copy=False))
    return _CheckedImage(
        data=data,
        content_type=content_type,
        size_wh=(w, h),
        stats=(stats.brightness, stats.contrast, stats.sharpness),
    )


def resolve_classes(
    session: Session,
    *,
    source: Source,
    confirm: Callable[[list[str]], bool],
    model_class_names: Callable[[], Sequence[str]] | None = None,
) -> tuple[dict[str, int], list[str]]:
    """Name -> class id for every class the source's boxes use, adding the unknown ones (next free
    ids, source ``import``) when ``confirm(unknown names)`` agrees; InvalidInputError, nothing
    added, when it does not. An empty class list is first seeded with ``model_class_names()``
    (the production model's), as the labeling routes do, so that class ids stay the model's."""
    if model_class_names is not None and not labeling_store.has_classes(session):
        labeling_store.seed_classes(session, names=list(model_class_names()))
    ids = {name: k for k, name in labeling_store.list_classes(session)}
    unknown = [name for name in source.used_class_names() if name not in ids]
    if unknown:
        if not confirm(unknown):
            raise InvalidInputError(
                f"classes not in the class list: {', '.join(unknown)} "
                "(add them with --add-classes, or rename them in the dataset)"
            )
        for name in unknown:
            class_id, _ = labeling_store.add_class(session, name=name, source="import")
            ids[name] = class_id
    return ids, unknown


def import_dataset(
    source: Source,
    *,
    read_sessions: sessionmaker[Session],
    write_sessions: sessionmaker[Session],
    blobs: BlobStore,
    device_name: str = DEFAULT_IMPORT_DEVICE,
    keep_source_split: bool = False,
    confirm_new_classes: Callable[[list[str]], bool],
    model_class_names: Callable[[], Sequence[str]] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Store every image of ``source`` with its boxes as a reviewed frame of ``device_name``.

    Classes are matched by name; unknown ones are added only if ``confirm_new_classes`` agrees
    (before any image is stored; see ``resolve_classes``). ``progress(done, total)`` is called
    after each source item.
    """
    report = ImportReport(images=len(source.items))
    with write_sessions() as session, session.begin():
        class_ids, report.classes_added = resolve_classes(
            session,
            source=source,
            confirm=confirm_new_classes,
            model_class_names=model_class_names,
        )
        device_id = dataset_store.import_device(session, name=device_name)
    total = len(source.items)
    for done, item in enumerate(source.items, 1):
        if isinstance(item, FileProblem):
            report.problems.append(item)
        else:
            try:
                _import_one(
                    item,
                    report=report,
                    read_sessions=read_sessions,
                    write_sessions=write_sessions,
                    blobs=blobs,
                    device_id=device_id,
                    class_ids=class_ids,
                    keep_source_split=keep_source_split,
                )
            except (InvalidInputError, OSError) as exc:
                report.problems.append(FileProblem(item.image, str(exc)))
        if progress is not None:
            progress(done, total)
    log.info(
        "import: %d images, %d stored, %d already stored, %d problems",
        report.images,
        report.imported,
        report.duplicates,
        len(report.problems),
    )
    return report


def _import_one(
    item: LabeledImage,
    *,
    report: ImportReport,
    read_sessions: sessionmaker[Session],
    write_sessions: sessionmaker[Session],
    blobs: BlobStore,
    device_id: int,
    class_ids: dict[str, int],
    keep_source_split: bool,
) -> None:
    raw = item.image.read_bytes()
    key = hashlib.sha256(raw).hexdigest()
    with read_sessions() as session:
        stored = dataset_store.stored_frame_ids(session, ids=possible_ids(IMPORT_NAMESPACE, key))
    if stored:
        report.duplicates += 1
        return
    checked = _check_image(item, raw)
    frame_id = id_in_split(IMPORT_NAMESPACE, key, item.split if keep_source_split else None)
    labels = _labels(item, class_ids)
    blob_key = blobs.put(checked.data)
    frame = dataset_store.ImportedFrame(
        id=frame_id,
        device_id=device_id,
        width=checked.size_wh[0],
        height=checked.size_wh[1],
        brightness=checked.stats[0],
        contrast=checked.stats[1],
        sharpness=checked.stats[2],
        image_sha256=blob_key,
        image_content_type=checked.content_type,
        labels=labels,
    )
    with write_sessions() as session, session.begin():
        new = dataset_store.insert_imported_frame(session, frame=frame)
    if new:
        report.imported += 1
        report.boxes += len(labels)
    else:  # another import stored it between the check and the insert
        report.duplicates += 1


def _labels(item: LabeledImage, class_ids: dict[str, int]) -> list[dict[str, object]]:
    return [
        {"class_id": class_ids[box.class_name], "xyxyn": [round(v, 6) for v in box.xyxyn]}
        for box in item.boxes
    ]


def problem_lines(problems: Sequence[FileProblem]) -> list[str]:
    """One ``path: message`` line per bad file."""
    return [f"{p.path}: {p.message}" for p in problems]
