"""Thinning a window of consecutive frames to near-independent ones before the drift tests: the
synthetic line's consecutive frames are strongly correlated, random ones are not, and without
thinning two consecutive nominal windows of the same line 'drift'."""

from __future__ import annotations

import functools
import math
from datetime import UTC, datetime

import pytest

from visionloop.monitoring.evidently_check import compare
from visionloop.monitoring.features import (
    FEATURES,
    NUMERICAL_FEATURES,
    FeatureTable,
    records_table,
)
from visionloop.monitoring.thinning import (
    MIN_EFFECTIVE_FRAMES,
    decorrelation_lag,
    effective_frames,
    thin,
)
from visionloop.vision.synthetic.line import SyntheticLine
from visionloop.vision.synthetic.records import SIZE_WH, simulated_records
from visionloop.vision.synthetic.schedule import Drift

T0 = datetime(2026, 11, 1, tzinfo=UTC)


@functools.cache
def _records(draw: int, count: int, consecutive: bool, scenario: str = "nominal") -> FeatureTable:
    line = SyntheticLine(seed=0, size_wh=SIZE_WH)
    intensity = 0.0 if scenario == "nominal" else 0.6
    return records_table(
        simulated_records(
            line,
            draw=draw,
            count=count,
            drift=Drift(scenario, intensity),
            t0=T0,
            consecutive=consecutive,
        )
    )


def test_random_frames_are_not_thinned() -> None:
    table = _records(0, 600, consecutive=False)
    assert decorrelation_lag(table, max_lag=100) <= 2
    thinned = thin(table, keep=30)
    assert thinned.stride == decorrelation_lag(table, max_lag=20)
    assert len(thinned.table) >= 300


def test_consecutive_frames_are_thinned_by_the_time_a_part_takes_to_cross() -> None:
    line = SyntheticLine(seed=0, size_wh=SIZE_WH)
    table = _records(0, 3000, consecutive=True)
    lag = decorrelation_lag(table, max_lag=1000)
    # A part is in view for frames_per_view (146) frames; features decorrelate well before.
    assert 30 <= lag <= line.frames_per_view, lag
    thinned = thin(table, keep=10)
    assert thinned.stride == lag
    assert len(thinned.table) == math.ceil(3000 / lag)
    for name in NUMERICAL_FEATURES:
        assert thinned.table.columns[name] == table.columns[name][::lag]


def test_thinning_keeps_at_least_keep_frames() -> None:
    table = _records(0, 600, consecutive=True)
    thinned = thin(table, keep=30)
    assert thinned.stride == 20  # capped: 600 // 30
    assert len(thinned.table) == 30
    assert thin(_records(0, 20, consecutive=True), keep=30).stride == 1


def test_a_constant_window_is_not_thinned() -> None:
    table = FeatureTable()
    for _ in range(100):
        table.add(dict.fromkeys(NUMERICAL_FEATURES, 1.0) | {"top_class": "none"})
    assert thin(table, keep=10).stride == 1


def test_consecutive_nominal_windows_do_not_drift_once_thinned() -> None:
    reference, current = (_records(draw, 3000, consecutive=True) for draw in (1, 2))
    untested = compare(reference, current, drift_share=0.4, keep=len(current))
    assert untested.window_stride == 1
    assert untested.drifted, "two runs of 3,000 consecutive frames drift without thinning"
    result = compare(reference, current, drift_share=0.4)
    assert result.window_stride > 20 and result.reference_stride > 20
    assert result.window_rows == math.ceil(3000 / result.window_stride)
    assert not result.drifted, [v.feature for v in result.features if v.drifted]


@pytest.mark.parametrize("scenario", ["blur", "lighting"])
def test_a_thinned_window_still_drifts_under_a_preset(scenario: str) -> None:
    profile = _records(3, 500, consecutive=False)
    result = compare(profile, _records(4, 3000, True, scenario), drift_share=0.4)
    assert result.reference_stride <= 2 and result.window_stride > 20
    assert result.drifted


def test_effective_frames_count_independent_samples() -> None:
    assert effective_frames(_records(0, 600, consecutive=False)) >= 200  # random: most of them
    short = _records(0, 250, consecutive=True)
    assert effective_frames(short) < MIN_EFFECTIVE_FRAMES  # a part or two in view
    assert effective_frames(_records(0, 3000, consecutive=True)) >= 2 * MIN_EFFECTIVE_FRAMES


def test_a_drift_beginning_inside_a_window_does_not_hide_the_lines_lag() -> None:
    """The step from nominal to blurred lengthens the lag of the half it falls in (its
    autocorrelation stays high), not the other half's: the window still counts as testable."""
    nominal = _records(0, 3000, consecutive=True)
    blurred = _records(0, 3000, consecutive=True, scenario="blur")
    for at in (900, 1500, 2100):
        stepped = FeatureTable(
            columns={k: nominal.columns[k][:at] + blurred.columns[k][at:] for k in FEATURES}
        )
        assert effective_frames(stepped) >= MIN_EFFECTIVE_FRAMES, at
