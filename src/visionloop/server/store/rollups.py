"""SQL that keeps the hourly rollups (``frame_rollups``, ``class_rollups``): the same statements
add a new batch's frames after ingest and rebuild the tables from scratch.

Each is an ``INSERT … SELECT … GROUP BY`` over the chosen frames or detections with
``ON CONFLICT DO UPDATE SET n = n + excluded.n``: the database aggregates, in key order (so that
concurrent batches on PostgreSQL take row locks in the same order and cannot deadlock).
"""

from __future__ import annotations

from functools import cache

from visionloop.server.models import CONF_COLUMNS, HISTOGRAM_BINS


def _hour(dialect: str) -> str:
    if dialect == "postgresql":
        return "date_trunc('hour', captured_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
    # SQLite keeps times as 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC) text.
    return "substr(captured_at, 1, 13) || ':00:00.000000'"


def _bucket(dialect: str) -> str:
    top = HISTOGRAM_BINS - 1
    if dialect == "postgresql":
        return f"LEAST(CAST(floor(confidence * {HISTOGRAM_BINS}) AS INTEGER), {top})"
    return f"min(CAST(confidence * {HISTOGRAM_BINS} AS INTEGER), {top})"


@cache
def add_frames_sql(dialect: str, where: str) -> str:
    """Add the frames matching ``where`` (SQL over ``frames``) to ``frame_rollups``."""
    hour = _hour(dialect)
    return (
        "INSERT INTO frame_rollups (hour, device_id, frames, detections) "
        f"SELECT {hour}, device_id, count(*), sum(detection_count) FROM frames "
        f"WHERE {where} GROUP BY 1, 2 ORDER BY 1, 2 "
        "ON CONFLICT (hour, device_id) DO UPDATE SET "
        "frames = frame_rollups.frames + excluded.frames, "
        "detections = frame_rollups.detections + excluded.detections"
    )


@cache
def add_detections_sql(dialect: str, where: str) -> str:
    """Add the detections matching ``where`` (SQL over ``detections``) to ``class_rollups``."""
    hour = _hour(dialect)
    bucket = _bucket(dialect)
    bins = ", ".join(
        f"sum(CASE WHEN {bucket} = {k} THEN 1 ELSE 0 END)" for k in range(HISTOGRAM_BINS)
    )
    counts = ("frames", "detections", *CONF_COLUMNS)
    updates = ", ".join(f"{c} = class_rollups.{c} + excluded.{c}" for c in counts)
    return (
        f"INSERT INTO class_rollups (hour, device_id, class_name, {', '.join(counts)}) "
        f"SELECT {hour}, device_id, class_name, count(DISTINCT frame_pk), count(*), {bins} "
        f"FROM detections WHERE {where} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3 "
        f"ON CONFLICT (hour, device_id, class_name) DO UPDATE SET {updates}"
    )
