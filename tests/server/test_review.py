"""Matching predictions to labels, and the Wilson score interval."""

from __future__ import annotations

import pytest

from visionloop.server.review import Label, MatchCounts, Prediction, iou, match, wilson_interval

A = (0.1, 0.1, 0.3, 0.3)
B = (0.5, 0.5, 0.9, 0.9)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (A, A, 1.0),
        (A, B, 0.0),
        ((0.0, 0.0, 0.2, 0.2), (0.1, 0.0, 0.3, 0.2), 1 / 3),
        ((0.0, 0.0, 0.2, 0.2), (0.2, 0.0, 0.4, 0.2), 0.0),  # touching edges
    ],
    ids=["same", "apart", "half-overlap", "touching"],
)
def test_iou(a: tuple[float, ...], b: tuple[float, ...], expected: float) -> None:
    assert iou(a, b) == pytest.approx(expected)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("predictions", "labels", "expected"),
    [
        ([], [], MatchCounts(0, 0, 0)),
        ([Prediction(0, 0.9, A)], [], MatchCounts(0, 1, 0)),
        ([], [Label(0, A)], MatchCounts(0, 0, 1)),
        ([Prediction(0, 0.9, A)], [Label(0, A)], MatchCounts(1, 0, 0)),
        ([Prediction(1, 0.9, A)], [Label(0, A)], MatchCounts(0, 1, 1)),  # wrong class
        ([Prediction(0, 0.9, A)], [Label(0, (0.1, 0.1, 0.3, 0.5))], MatchCounts(0, 1, 1)),
        # Two predictions on one label: only the more confident one matches.
        ([Prediction(0, 0.4, A), Prediction(0, 0.9, A)], [Label(0, A)], MatchCounts(1, 1, 0)),
        (
            [Prediction(0, 0.9, A), Prediction(2, 0.8, B)],
            [Label(0, A), Label(2, B), Label(1, B)],
            MatchCounts(2, 0, 1),
        ),
    ],
    ids=[
        "nothing",
        "false-alarm",
        "miss",
        "hit",
        "wrong-class",
        "iou-below-half",
        "duplicate",
        "mixed",
    ],
)
def test_match(predictions: list[Prediction], labels: list[Label], expected: MatchCounts) -> None:
    assert match(predictions, labels) == expected


def test_match_is_greedy_by_confidence() -> None:
    # The confident prediction takes the label it overlaps best; the other finds its own.
    left, right = (0.0, 0.0, 0.4, 0.4), (0.1, 0.0, 0.5, 0.4)
    preds = [Prediction(0, 0.5, left), Prediction(0, 0.9, right)]
    labels = [Label(0, left), Label(0, right)]
    assert match(preds, labels) == MatchCounts(2, 0, 0)


# Reference values: Wilson (1927); e.g. statsmodels' proportion_confint(method="wilson").
@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        (0, 10, 0.0, 0.2775),
        (5, 10, 0.2366, 0.7634),
        (1, 100, 0.0018, 0.0545),
        (10, 10, 0.7225, 1.0),
        (4, 8, 0.2152, 0.7848),
        (81, 263, 0.2553, 0.3662),
    ],
)
def test_wilson_interval_known_values(k: int, n: int, low: float, high: float) -> None:
    got = wilson_interval(k, n)
    assert got == (pytest.approx(low, abs=1e-4), pytest.approx(high, abs=1e-4))


def test_wilson_interval_edges() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(0, 5)[0] == 0.0
    assert wilson_interval(5, 5)[1] == 1.0
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(3, 2)
