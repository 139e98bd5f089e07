"""The promotion gate's rules, one table of cases (pure: evaluations in, report out)."""

from __future__ import annotations

from typing import Any

import pytest

from visionloop.training.gate import gate_report


def _eval(map50: float, **recalls: float) -> dict[str, Any]:
    return {
        "map50": map50,
        "map50_95": map50 / 2,
        "images": 10,
        "per_class": {n: {"ap50": map50, "recall": r, "instances": 5} for n, r in recalls.items()},
    }


CASES: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, float], bool, set[str]]] = [
    (
        "better-everywhere",
        {"golden": _eval(0.99, crack=0.95), "recent": _eval(0.9, crack=0.95)},
        {"golden": _eval(0.99, crack=0.99), "recent": _eval(0.5, crack=0.5)},
        {"crack": 0.9},
        True,
        set(),
    ),
    (
        "golden-drop-over",
        {"golden": _eval(0.97), "recent": _eval(0.9)},
        {"golden": _eval(0.99), "recent": _eval(0.5)},
        {},
        False,
        {"golden_drop"},
    ),
    (
        "golden-drop-exactly-the-limit",
        {"golden": _eval(0.98), "recent": _eval(0.9)},
        {"golden": _eval(0.99), "recent": _eval(0.5)},
        {},
        True,
        set(),
    ),
    (
        "worse-on-recent",
        {"golden": _eval(0.99), "recent": _eval(0.4)},
        {"golden": _eval(0.99), "recent": _eval(0.5)},
        {},
        False,
        {"recent_map50"},
    ),
    (
        "recall-floor-on-recent",
        {"golden": _eval(0.99, crack=0.95), "recent": _eval(0.9, crack=0.8)},
        {"golden": _eval(0.99), "recent": _eval(0.5)},
        {"crack": 0.9},
        False,
        {"recall_floor:crack"},
    ),
    (
        "no-recent-slice-is-skipped",
        {"golden": _eval(0.99), "recent": None},
        {"golden": _eval(0.99), "recent": None},
        {},
        True,
        set(),
    ),
    (
        "no-golden-set-fails",
        {"golden": None, "recent": _eval(0.9)},
        {"golden": None, "recent": _eval(0.5)},
        {},
        False,
        {"golden_drop"},
    ),
]


@pytest.mark.parametrize(
    ("candidate", "production", "floors", "passed", "failed_rules"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_gate_rules(
    candidate: dict[str, Any],
    production: dict[str, Any],
    floors: dict[str, float],
    passed: bool,
    failed_rules: set[str],
) -> None:
    report = gate_report(
        candidate=candidate, production=production, max_golden_drop=0.01, recall_floors=floors
    )
    assert report["passed"] is passed
    assert {r["rule"] for r in report["rules"] if not r["passed"]} == failed_rules
    assert report["summary"].startswith("passed" if passed else "failed")
    assert report["settings"] == {
        "max_golden_drop": 0.01,
        "max_recent_drop": 0.0,
        "recall_floors": floors,
    }
    if candidate["golden"] is not None:
        assert report["sets"]["golden"]["candidate"]["map50"] == candidate["golden"]["map50"]


@pytest.mark.parametrize(
    ("max_recent_drop", "passed"), [(0.0, False), (0.1, True), (0.05, False)], ids=str
)
def test_recent_rule_allows_a_set_drop(max_recent_drop: float, passed: bool) -> None:
    both = {"golden": _eval(0.9), "recent": _eval(0.8)}
    report = gate_report(
        candidate={"golden": _eval(0.9), "recent": _eval(0.72)},
        production=both,
        max_golden_drop=0.01,
        recall_floors={},
        max_recent_drop=max_recent_drop,
    )
    recent = next(r for r in report["rules"] if r["rule"] == "recent_map50")
    assert recent["passed"] is passed
    assert report["passed"] is passed
    assert ("within" if passed else "below" if not max_recent_drop else "over") in recent["detail"]
