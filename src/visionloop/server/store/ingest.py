"""The ingest hot path: frames and their detections in one transaction, idempotent on frame id.

Idempotency is an ``INSERT … ON CONFLICT DO NOTHING … RETURNING id`` (SQLite ≥ 3.35 and
PostgreSQL both have it): the database, not a read-then-write, decides which frames are new, so
two replicas receiving the same batch at once still store each frame once. Detections are then
inserted only for the frames that came back as new.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Insert, update
from sqlalchemy.dialects import postgresql, sqlite

from visionloop.server.models import Device, detections_table, frames_table
from visionloop.types import FrameRecord


@dataclass(frozen=True, slots=True)
class IngestCounts:
    """How many frames of a batch were new, were already stored, and how many detections the new
    ones carried."""

    accepted: int
    duplicates: int
    detections: int


def _insert_ignoring_conflicts(connection: Connection) -> Insert:
    dialect = connection.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(frames_table).on_conflict_do_nothing(index_elements=["id"])
    if dialect == "sqlite":
        return sqlite.insert(frames_table).on_conflict_do_nothing(index_elements=["id"])
    raise NotImplementedError(f"ingest supports SQLite and PostgreSQL, not {dialect}")


def insert_frames(
    connection: Connection,
    *,
    device_id: int,
    frames: Sequence[FrameRecord],
    received_at: datetime,
) -> IngestCounts:
    """Store a validated batch for ``device_id`` inside the caller's transaction.

    A frame id seen earlier in the same batch or already stored counts as a duplicate; only the
    first copy is kept.
    """
    frame_rows: list[dict[str, Any]] = []
    by_id: dict[uuid.UUID, FrameRecord] = {}
    for frame in frames:
        if frame.id in by_id:
            continue
        by_id[frame.id] = frame
        dets = frame.detections
        frame_rows.append(
            {
                "id": frame.id,
                "device_id": device_id,
                "captured_at": frame.captured_at,
                "received_at": received_at,
                "model_version": frame.model_version,
                "width": frame.width,
                "height": frame.height,
                "brightness": frame.stats.brightness,
                "contrast": frame.stats.contrast,
                "sharpness": frame.stats.sharpness,
                "sample_reason": frame.sample_reason,
                "detection_count": len(dets),
                "max_confidence": max(d.confidence for d in dets) if dets else None,
            }
        )
    stmt = _insert_ignoring_conflicts(connection).returning(frames_table.c.id)
    new_ids = list(connection.execute(stmt, frame_rows).scalars())

    detection_rows: list[dict[str, Any]] = []
    for frame_id in new_ids:
        frame = by_id[frame_id]
        captured_at = frame.captured_at
        for det in frame.detections:
            x1, y1, x2, y2 = det.xyxyn
            detection_rows.append(
                {
                    "frame_id": frame_id,
                    "device_id": device_id,
                    "captured_at": captured_at,
                    "class_id": det.class_id,
                    "class_name": det.class_name,
                    "confidence": det.confidence,
                    "x1": x1,
                    "y1": y1,
                    "x2": x2,
                    "y2": y2,
                }
            )
    if detection_rows:
        connection.execute(detections_table.insert(), detection_rows)
    connection.execute(
        update(Device).where(Device.id == device_id).values(last_seen_at=received_at)
    )
    return IngestCounts(
        accepted=len(new_ids), duplicates=len(frames) - len(new_ids), detections=len(detection_rows)
    )
