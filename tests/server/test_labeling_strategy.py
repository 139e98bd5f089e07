"""The labeling strategies' priority formulas."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from visionloop.server import labeling_strategy as s


@pytest.mark.parametrize(
    ("confidence", "expected"), [(0.5, 1.0), (0.0, 0.0), (1.0, 0.0), (0.25, 0.5), (0.9, 0.2)]
)
def test_detection_uncertainty(confidence: float, expected: float) -> None:
    assert s.detection_uncertainty(confidence) == pytest.approx(expected)


def test_frame_uncertainty_takes_the_most_uncertain_detection() -> None:
    assert s.frame_uncertainty([]) == (0.0, None)
    u, top = s.frame_uncertainty([("dent", 0.95), ("scratch", 0.45), ("crack", 0.2)])
    assert (u, top) == (pytest.approx(0.9), "scratch")


@pytest.mark.parametrize(
    ("distance", "expected"), [(0, 1.0), (6, 0.5), (12, 0.0), (40, 0.0)], ids=str
)
def test_duplicate_penalty_falls_with_hamming_distance(distance: int, expected: float) -> None:
    h = 0x0123_4567_89AB_CDEF
    other = h ^ ((1 << distance) - 1)
    assert s.duplicate_penalty(h, [other, h ^ ((1 << 63) | (1 << 62) - 1)]) == pytest.approx(
        expected
    )


def test_duplicate_penalty_without_history_or_hash() -> None:
    assert s.duplicate_penalty(123, []) == 0.0
    assert s.duplicate_penalty(None, [123]) == 0.0


def test_class_balance_favours_rare_classes() -> None:
    recent = ["scratch"] * 8 + ["dent"] * 2
    assert s.class_balance("scratch", recent) == 0.0
    assert s.class_balance("dent", recent) == pytest.approx(0.75)
    assert s.class_balance("crack", recent) == 1.0
    assert s.class_balance(None, recent) == 0.0
    assert s.class_balance("dent", []) == 0.0


def test_priorities_per_strategy() -> None:
    assert s.automatic_priority("uncertainty", uncertainty=0.7, duplicate=1, balance=1) == 0.7
    hybrid = s.automatic_priority("hybrid", uncertainty=0.7, duplicate=0.5, balance=1.0)
    assert hybrid == pytest.approx(0.7 - 0.25 + 0.25)
    draws = [
        s.automatic_priority("random", uncertainty=0.7, rng=random.Random(i)) for i in range(50)
    ]
    assert all(0 <= d < 1 for d in draws)
    assert len(set(draws)) == 50


def test_manual_tasks_outrank_everything_oldest_first() -> None:
    t0 = datetime(2026, 11, 29, tzinfo=UTC)
    first, later = s.manual_priority(t0), s.manual_priority(t0 + timedelta(seconds=1))
    assert first > later > 2.0  # above any automatic priority (at most 1 + 0.25)
