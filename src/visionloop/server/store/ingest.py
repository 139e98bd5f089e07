"""The ingest hot path: frames and their detections in one transaction, idempotent on frame id.

Idempotency is an ``INSERT … ON CONFLICT (id) DO NOTHING`` on both databases: the database, not a
read-then-write, decides which frames are new, so two replicas receiving the same batch at once
still store each frame once. PostgreSQL returns the new frames' keys (``RETURNING pk, id``). On
SQLite an ``executemany`` of the insert is twice as fast as one multi-row ``INSERT … RETURNING``,
so the new frames are read back instead as those with ``pk`` above the largest before the insert:
the transaction began IMMEDIATE and holds the only write lock, and SQLite gives a new row
``max(rowid) + 1``. (Under a DEFERRED transaction a concurrent commit in between would make the
insert fail with SQLITE_BUSY, never miscount.) Detections are then
inserted only for the frames that came back as new, referring to them by ``pk``, and the hourly
rollups the statistics read (``frame_rollups``, ``class_rollups``) are incremented for them in the
same transaction (``INSERT … ON CONFLICT DO UPDATE SET n = n + excluded.n``, rows in key order so
that concurrent batches on PostgreSQL cannot deadlock).

The statements are plain SQL run through the SQLAlchemy connection with DB-API rows: SQLAlchemy's
per-row parameter processing costs about 10 µs a row, several times the database's own work per
row (see docs/performance.md). On PostgreSQL the frames go in as one ``INSERT … SELECT FROM
unnest(arrays)`` (13 parameters instead of 13 per frame) and the detections by ``COPY``, each
about twice as fast as ``executemany`` there. The values are converted here to the form
SQLAlchemy's own types store (SQLite: UUID as 32 hex digits, times as UTC text), so ORM reads see
the same data.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Connection

from visionloop.server.store import rollups
from visionloop.types import FrameRecord

FRAME_COLUMNS = (
    "id",
    "device_id",
    "captured_at",
    "received_at",
    "model_version",
    "width",
    "height",
    "brightness",
    "contrast",
    "sharpness",
    "sample_reason",
    "detection_count",
    "max_confidence",
    "source_index",
)
DETECTION_COLUMNS = (
    "frame_pk",
    "device_id",
    "captured_at",
    "class_id",
    "class_name",
    "confidence",
    "x1",
    "y1",
    "x2",
    "y2",
)


@dataclass(frozen=True, slots=True)
class IngestCounts:
    """How many frames of a batch were new, were already stored, and how many detections the new
    ones carried."""

    accepted: int
    duplicates: int
    detections: int


_ZERO = timedelta(0)


@dataclass(frozen=True, slots=True)
class _Dialect:
    placeholder: str
    uuid_value: Callable[[uuid.UUID], Any]
    time_value: Callable[[datetime], Any]


def _sqlite_time(ts: datetime) -> str:
    # SQLAlchemy's SQLite DATETIME text form 'YYYY-MM-DD HH:MM:SS.ffffff', in UTC like every
    # stored time (the slice drops the '+00:00'; most edge clocks already send UTC).
    if ts.utcoffset() != _ZERO:
        ts = ts.astimezone(UTC)
    return ts.isoformat(" ", "microseconds")[:26]


def _as_is(value: Any) -> Any:
    return value


_DIALECTS = {
    "sqlite": _Dialect("?", lambda u: u.hex, _sqlite_time),
    "postgresql": _Dialect("%s", _as_is, _as_is),
}


def _dialect(connection: Connection) -> _Dialect:
    name = connection.dialect.name
    if name not in _DIALECTS:
        raise NotImplementedError(f"ingest supports SQLite and PostgreSQL, not {name}")
    return _DIALECTS[name]


# PostgreSQL array types of FRAME_COLUMNS and DETECTION_COLUMNS, for unnest().
_PG_FRAME_TYPES = (
    "uuid", "int", "timestamptz", "timestamptz", "text", "int", "int",
    "float8", "float8", "float8", "text", "int", "float8", "int8",
)  # fmt: skip
_PG_FRAMES_SQL = (
    f"INSERT INTO frames ({', '.join(FRAME_COLUMNS)}) "
    f"SELECT * FROM unnest({', '.join(f'%s::{t}[]' for t in _PG_FRAME_TYPES)}) "
    "ON CONFLICT (id) DO NOTHING RETURNING pk, id"
)
_PG_COPY_DETECTIONS = f"COPY detections ({', '.join(DETECTION_COLUMNS)}) FROM STDIN"


def _add_to_rollups(connection: Connection, new: list[Any], *, has_detections: bool) -> None:
    """Count the new frames (and their detections) into the hourly rollups, in SQL."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        pks = [pk for pk, _ in new]
        frames_where, detections_where, param = "pk = ANY(%s)", "frame_pk = ANY(%s)", pks
    else:
        # Under the write lock the new frames are exactly those above the smallest new pk.
        first = min(pk for pk, _ in new)
        frames_where, detections_where, param = "pk >= ?", "frame_pk >= ?", first
    connection.exec_driver_sql(rollups.add_frames_sql(dialect, frames_where), (param,))
    if has_detections:
        connection.exec_driver_sql(rollups.add_detections_sql(dialect, detections_where), (param,))


def _insert_frame_rows(
    connection: Connection, d: _Dialect, rows: list[tuple[Any, ...]]
) -> list[Any]:
    """Insert frames (FRAME_COLUMNS per row), skipping stored ids; the (pk, id) of the new ones."""
    if d.placeholder == "%s":
        # In id order, so that two transactions inserting overlapping batches wait for each
        # other's rows in the same order and cannot deadlock.
        rows = sorted(rows, key=lambda row: row[0])
        columns = tuple(list(column) for column in zip(*rows, strict=True))
        return list(connection.exec_driver_sql(_PG_FRAMES_SQL, columns).all())
    before = connection.exec_driver_sql("SELECT max(pk) FROM frames").scalar() or 0
    connection.exec_driver_sql(_SQLITE_FRAMES_SQL, rows)
    return list(
        connection.exec_driver_sql("SELECT pk, id FROM frames WHERE pk > ?", (before,)).all()
    )


def _insert_detection_rows(
    connection: Connection, d: _Dialect, rows: list[tuple[Any, ...]]
) -> None:
    if d.placeholder == "%s":
        cursor = connection.connection.cursor()
        try:
            with cursor.copy(_PG_COPY_DETECTIONS) as copy:
                for row in rows:
                    copy.write_row(row)
        finally:
            cursor.close()
        return
    connection.exec_driver_sql(_detections_sql(d.placeholder), rows)


_SQLITE_FRAMES_SQL = (
    f"INSERT INTO frames ({', '.join(FRAME_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(FRAME_COLUMNS))}) ON CONFLICT (id) DO NOTHING"
)


@cache
def _detections_sql(placeholder: str) -> str:
    values = ", ".join([placeholder] * len(DETECTION_COLUMNS))
    return f"INSERT INTO detections ({', '.join(DETECTION_COLUMNS)}) VALUES ({values})"


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
    d = _dialect(connection)
    received = d.time_value(received_at)
    frame_rows: list[tuple[Any, ...]] = []
    # Keyed by the id as the database returns it (hex text on SQLite), to match RETURNING rows.
    unique: dict[Any, tuple[FrameRecord, Any]] = {}
    for frame in frames:
        key = d.uuid_value(frame.id)
        if key in unique:
            continue
        captured = d.time_value(frame.captured_at)
        unique[key] = (frame, captured)
        dets = frame.detections
        stats = frame.stats
        frame_rows.append(
            (
                key,
                device_id,
                captured,
                received,
                frame.model_version,
                frame.width,
                frame.height,
                stats.brightness,
                stats.contrast,
                stats.sharpness,
                frame.sample_reason,
                len(dets),
                max([det.confidence for det in dets]) if dets else None,
                frame.source_index,
            )
        )
    new = _insert_frame_rows(connection, d, frame_rows)
    connection.exec_driver_sql(
        f"UPDATE devices SET last_seen_at = {d.placeholder} WHERE id = {d.placeholder}",
        (received, device_id),
    )
    if not new:
        return IngestCounts(accepted=0, duplicates=len(frames), detections=0)

    detection_rows: list[tuple[Any, ...]] = []
    for frame_pk, frame_id in new:
        frame, captured = unique[frame_id]
        for det in frame.detections:
            detection_rows.append(
                (
                    frame_pk,
                    device_id,
                    captured,
                    det.class_id,
                    det.class_name,
                    det.confidence,
                    *det.xyxyn,
                )
            )
    if detection_rows:
        _insert_detection_rows(connection, d, detection_rows)
    _add_to_rollups(connection, new, has_detections=bool(detection_rows))
    return IngestCounts(
        accepted=len(new), duplicates=len(frames) - len(new), detections=len(detection_rows)
    )
