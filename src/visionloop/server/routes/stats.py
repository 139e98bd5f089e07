"""``GET /api/v1/stats/summary``: counts per class and device and a confidence histogram."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from visionloop.errors import InvalidInputError
from visionloop.server.deps import CurrentUser, SessionDep
from visionloop.server.schemas import (
    ClassStats,
    DeviceStats,
    Histogram,
    StatsSummary,
    parse_window,
)
from visionloop.server.store import stats as stats_store

router = APIRouter(tags=["stats"])


@router.get("/stats/summary", response_model=StatsSummary, summary="Aggregates over a time window")
def summary(
    session: SessionDep,
    _user: CurrentUser,
    window: Annotated[
        str, Query(description="How far back from now, by capture time: 15m, 24h, 7d…")
    ] = "24h",
) -> StatsSummary:
    try:
        span = parse_window(window)
    except ValueError as exc:
        raise InvalidInputError(f"window: {exc}") from exc
    until = datetime.now(UTC)
    since = until - span
    s = stats_store.summary(session, since=since, until=until)
    bins = stats_store.HISTOGRAM_BINS
    return StatsSummary(
        window=window,
        since=since,
        until=until,
        frames=s.frames,
        detections=s.detections,
        per_class=[
            ClassStats(class_name=c.class_name, frames=c.frames, detections=c.detections)
            for c in s.per_class
        ],
        per_device=[
            DeviceStats(
                device_id=d.device_id,
                name=d.name,
                frames=d.frames,
                detections=d.detections,
                last_seen_at=d.last_seen_at,
            )
            for d in s.per_device
        ],
        confidence_histogram=Histogram(
            edges=[round(i / bins, 6) for i in range(bins + 1)], counts=s.histogram_counts
        ),
        frames_total=s.frames_total,
        detections_total=s.detections_total,
    )
