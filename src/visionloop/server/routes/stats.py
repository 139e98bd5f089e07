"""``GET /api/v1/stats/summary``: counts per class and device and a confidence histogram;
``GET /api/v1/stats/rate``: frames and detections per minute over time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from visionloop.errors import InvalidInputError
from visionloop.server.deps import CurrentUser, SessionDep
from visionloop.server.schemas import (
    ClassStats,
    DeviceStats,
    Histogram,
    RatePointOut,
    RateSeries,
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


RATE_MAX_WINDOW = timedelta(days=7)
MINUTE_BUCKETS_UP_TO = timedelta(hours=1)


@router.get(
    "/stats/rate",
    response_model=RateSeries,
    summary="Frames and detections per minute over a window (at most 7d), in buckets",
)
def rate(
    session: SessionDep,
    _user: CurrentUser,
    window: Annotated[
        str, Query(description="How far back from now, by capture time: 1h, 6h, 24h, 7d")
    ] = "6h",
) -> RateSeries:
    """Buckets are a minute up to a 1h window (read from the frames) and an hour beyond (read
    from the hourly rollups); each point gives its counts and the same as a per-minute rate."""
    try:
        span = parse_window(window)
    except ValueError as exc:
        raise InvalidInputError(f"window: {exc}") from exc
    if span > RATE_MAX_WINDOW:
        raise InvalidInputError("window: at most 7d for a rate series (use /stats/summary)")
    bucket_s = stats_store.MINUTE_S if span <= MINUTE_BUCKETS_UP_TO else stats_store.HOUR_S
    until = datetime.now(UTC)
    points = stats_store.rate_series(session, since=until - span, until=until, bucket_s=bucket_s)
    minutes = bucket_s / 60
    return RateSeries(
        window=window,
        since=points[0].start,
        until=until,
        bucket_s=bucket_s,
        points=[
            RatePointOut(
                start=p.start,
                frames=p.frames,
                detections=p.detections,
                frames_per_min=round(p.frames / minutes, 3),
                detections_per_min=round(p.detections / minutes, 3),
            )
            for p in points
        ],
    )
