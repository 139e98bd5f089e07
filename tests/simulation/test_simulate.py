"""``visionloop simulate``: the scenario's options and reports (quick). The real fast
comparison of two strategies through server, worker, edge agent and oracle runs from the
installed wheel in an empty folder (``tests/packaging/test_wheel.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from support.simulate import FIELDS
from visionloop.errors import InvalidInputError
from visionloop.simulation.report import markdown, plot_timeline
from visionloop.simulation.scenario import FAST, FULL, Scenario, parse_strategies


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("uncertainty,random", ["uncertainty", "random"]),
        (" hybrid , random ,hybrid", ["hybrid", "random"]),
    ],
    ids=["two", "spaces-and-repeats"],
)
def test_strategies_are_parsed_in_order(text: str, expected: list[str]) -> None:
    assert parse_strategies(text) == expected


@pytest.mark.parametrize("text", ["", "uncertainty,oracle", ","], ids=["empty", "unknown", "none"])
def test_bad_strategies_are_refused(text: str) -> None:
    with pytest.raises(InvalidInputError):
        parse_strategies(text)


@pytest.mark.parametrize(
    "changes",
    [
        {"schedule": "nominal"},
        {"schedule": "blur:0.5@10"},
        {"schedule": "fog@100"},
        {"budget": 0},
        {"oracle_noise": 1.5},
    ],
    ids=["no-drift", "drift-before-a-window", "unknown-scenario", "no-budget", "noise-over-1"],
)
def test_bad_scenarios_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        Scenario(**{**FAST.__dict__, **changes})


def test_another_schedule_moves_the_review_point_with_the_drift() -> None:
    moved = FULL.with_schedule("lighting:0.6@3000+300")
    assert moved.review_at - 3300 == FULL.review_at - 1800
    assert moved.frames >= moved.review_at
    assert moved.drifted_spec == "lighting:0.6"


@pytest.mark.parametrize(
    "args",
    [
        ["--compare", "uncertainty,bogus"],
        ["--schedule", "nominal"],
        ["--oracle-noise", "2"],
    ],
    ids=["unknown-strategy", "no-drift", "noise-out-of-range"],
)
def test_cli_refuses_bad_options_before_starting_anything(args: list[str], tmp_path: Path) -> None:
    from visionloop.cli import run

    assert run(["simulate", "--fast", "--out", str(tmp_path / "out"), *args]) != 0
    assert not (tmp_path / "out").exists()


def _entry(strategy: str) -> dict[str, Any]:
    entry: dict[str, Any] = dict.fromkeys(FIELDS, 0.5)
    entry |= {"map50_drifted_plateau": 0.3, "recovered_fraction_of_plateau": 0.9}
    entry |= {
        "strategy": strategy,
        "labels_used": 40,
        "seconds_drift_to_alarm": None,
        "alarms_before_drift": 1,
        "train_job": {"status": "succeeded", "gate_summary": "passed"},
        "frames": {"alarm": None, "retraining_start": 300, "promotion_on_edge": 700},
        "timeline": [[0, 60, 0.99], [30, 90, None], [200, 260, 0.2], [700, 760, 0.8]],
        "wall_seconds": 80.0,
    }
    return entry


def test_report_renders_as_a_table_and_a_plot(tmp_path: Path) -> None:
    report = {
        "command": "visionloop simulate --fast",
        "started_at": "2026-12-03T08:00:00+00:00",
        "machine": "a CPU",
        "scenario": {**FAST.__dict__, "drift_onset": 150},
        "strategies": [_entry("uncertainty"), _entry("random")],
    }
    text = markdown(report)
    assert "| | uncertainty | random |" in text
    assert "| labels used | 40 | 40 |" in text
    assert "| drift onset → alarm (s) | n/a | n/a |" in text
    plot_timeline(report, tmp_path / "timeline.png")
    assert (tmp_path / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_event_frames_come_from_capture_times() -> None:
    from datetime import UTC, datetime, timedelta

    from visionloop.simulation.live import FrameSeen
    from visionloop.simulation.runner import index_at

    t0 = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
    seen = [FrameSeen(i, t0 + timedelta(seconds=i), "1") for i in range(10)]
    assert index_at(seen, None) is None
    assert index_at(seen, t0 - timedelta(seconds=1)) is None
    assert index_at(seen, t0 + timedelta(seconds=4.5)) == 4
    assert index_at(seen, (t0 + timedelta(seconds=30)).replace(tzinfo=None)) == 9
