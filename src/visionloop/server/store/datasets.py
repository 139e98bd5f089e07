"""Dataset import and export in the database: the import device, imported frames with their
labels, and the reviewed frames with their latest labels (the class list is ``store.labeling``'s).

An imported frame and its ``label_submissions`` row (source ``import``) go in one transaction,
the frame with ``INSERT … ON CONFLICT (id) DO NOTHING``: its id is derived from the image's
content hash, so the database, not a read before the write, makes a second import of the same
image a no-op. The frame is counted into ``frame_rollups`` like an ingested one (the statistics
read frames and rollups together).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Insert, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from visionloop.server.models import Device, Frame, LabelSubmission
from visionloop.server.store import rollups
from visionloop.server.store.devices import device_name

IMPORT_MODEL_VERSION = "import"
IMPORT_SOURCE = "import"


def _now() -> datetime:
    return datetime.now(UTC)


# --- the import device


def import_device(session: Session, *, name: str) -> int:
    """The id of device ``name``; created disabled, without tokens, when missing (imported frames
    belong to a device, but no agent ever sends as it)."""
    name = device_name(name)
    device_id = session.execute(select(Device.id).where(Device.name == name)).scalar()
    if device_id is not None:
        return int(device_id)
    now = _now()
    device = Device(name=name, created_at=now, disabled_at=now)
    session.add(device)
    session.flush()
    return device.id


# --- imported frames


@dataclass(frozen=True, slots=True)
class ImportedFrame:
    """A frame made from an imported image. ``labels`` are ``[{"class_id", "xyxyn"}]``."""

    id: uuid.UUID
    device_id: int
    width: int
    height: int
    brightness: float
    contrast: float
    sharpness: float
    image_sha256: str
    image_content_type: str
    labels: list[dict[str, Any]]


def stored_frame_ids(session: Session, *, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Which of ``ids`` are stored frames."""
    return set(session.scalars(select(Frame.id).where(Frame.id.in_(ids))))


def _insert_ignoring_conflict(session: Session, values: dict[str, Any]) -> Insert:
    if session.get_bind().dialect.name == "postgresql":
        pg = postgresql.insert(Frame).values(**values).on_conflict_do_nothing(index_elements=["id"])
        return pg.returning(Frame.pk)
    lite = sqlite.insert(Frame).values(**values).on_conflict_do_nothing(index_elements=["id"])
    return lite.returning(Frame.pk)


def insert_imported_frame(session: Session, *, frame: ImportedFrame) -> bool:
    """Store the frame and its labels (one submission, source ``import``) in the caller's
    transaction. False, and nothing stored, when a frame with this id exists."""
    now = _now()
    stmt = _insert_ignoring_conflict(
        session,
        {
            "id": frame.id,
            "device_id": frame.device_id,
            "captured_at": now,
            "received_at": now,
            "model_version": IMPORT_MODEL_VERSION,
            "width": frame.width,
            "height": frame.height,
            "brightness": frame.brightness,
            "contrast": frame.contrast,
            "sharpness": frame.sharpness,
            "sample_reason": None,
            "detection_count": 0,
            "max_confidence": None,
            "image_sha256": frame.image_sha256,
            "image_content_type": frame.image_content_type,
        },
    )
    pk = session.execute(stmt).scalar()
    if pk is None:
        return False
    session.add(
        LabelSubmission(
            frame_pk=pk,
            source=IMPORT_SOURCE,
            submitted_at=now,
            labels=frame.labels,
            tp=0,
            fp=0,
            fn=0,
        )
    )
    session.flush()
    dialect = session.get_bind().dialect.name
    placeholder = "%s" if dialect == "postgresql" else "?"
    session.connection().exec_driver_sql(
        rollups.add_frames_sql(dialect, f"pk = {placeholder}"), (pk,)
    )
    return True


# --- reviewed frames


@dataclass(frozen=True, slots=True)
class ReviewedFrame:
    """A frame with at least one submission, and the labels of its latest one."""

    id: uuid.UUID
    width: int
    height: int
    image_sha256: str | None
    image_content_type: str | None
    labels: list[dict[str, Any]]
    labeled_at: datetime


def _reviewed_stmt(since: datetime | None) -> Any:
    latest = (
        select(LabelSubmission.frame_pk, func.max(LabelSubmission.id).label("submission_id"))
        .group_by(LabelSubmission.frame_pk)
        .subquery()
    )
    stmt = (
        select(
            Frame.id,
            Frame.width,
            Frame.height,
            Frame.image_sha256,
            Frame.image_content_type,
            LabelSubmission.labels,
            LabelSubmission.submitted_at,
        )
        .join(latest, latest.c.frame_pk == Frame.pk)
        .join(LabelSubmission, LabelSubmission.id == latest.c.submission_id)
    )
    if since is not None:
        stmt = stmt.where(LabelSubmission.submitted_at >= since)
    return stmt


def count_reviewed(session: Session, *, since: datetime | None = None) -> int:
    """How many frames ``reviewed_frames`` yields."""
    return int(
        session.execute(select(func.count()).select_from(_reviewed_stmt(since).subquery())).scalar()
        or 0
    )


def reviewed_frames(session: Session, *, since: datetime | None = None) -> Iterator[ReviewedFrame]:
    """Reviewed frames (those with a submission) and their latest labels, by frame id; with
    ``since``, only those whose latest labels were submitted at or after it. Streams in chunks."""
    stmt = _reviewed_stmt(since).order_by(Frame.id).execution_options(yield_per=500)
    for row in session.execute(stmt):
        yield ReviewedFrame(
            id=row.id,
            width=row.width,
            height=row.height,
            image_sha256=row.image_sha256,
            image_content_type=row.image_content_type,
            labels=list(row.labels),
            labeled_at=row.submitted_at,
        )
