"""Cached windows of synthetic-line frame records for the drift tests (see
``visionloop.vision.synthetic.records``)."""

from __future__ import annotations

import functools
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from visionloop.vision.synthetic.line import SyntheticLine
from visionloop.vision.synthetic.records import SIZE_WH, simulated_records
from visionloop.vision.synthetic.schedule import Drift

BASE_TIME = datetime(2026, 11, 1, tzinfo=UTC)
WINDOW_GAP = timedelta(hours=1)


@functools.cache
def _window(seed: int, draw: int, scenario: str, intensity: float, count: int) -> str:
    line = SyntheticLine(seed=seed, size_wh=SIZE_WH)
    records = simulated_records(
        line,
        draw=draw,
        count=count,
        drift=Drift(scenario, intensity),
        t0=BASE_TIME + draw * WINDOW_GAP,
    )
    return json.dumps(records)


def window_records(
    draw: int, scenario: str = "nominal", intensity: float = 0.0, *, count: int, seed: int = 0
) -> list[dict[str, Any]]:
    """The ``draw``-th window of ``count`` frames (captured an hour after the previous draw's),
    cached across tests: rendering is the slow part. Fresh frame ids on every call."""
    records: list[dict[str, Any]] = json.loads(_window(seed, draw, scenario, intensity, count))
    for r in records:
        r["id"] = str(uuid.uuid4())
    return records
