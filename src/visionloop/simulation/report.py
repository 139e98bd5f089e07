"""The simulation's measurements and its outputs: ``report.json``, ``report.md`` (the same as a
table) and ``timeline.png`` (live mAP50 over frames per strategy, with the loop's events)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from visionloop.config import Settings

if TYPE_CHECKING:
    from visionloop.server.models import Job
    from visionloop.simulation.live import FrameSeen, LivePoint
    from visionloop.simulation.oracle import OracleReviewer
    from visionloop.simulation.runner import TestSets
    from visionloop.simulation.scenario import Scenario


def test_set_scores(
    settings: Settings, sets: TestSets, baseline: str, imgsz: int
) -> dict[str, dict[str, float | None]]:
    """mAP50 of the starting (baseline) and the final production model on the golden set and
    the drifted test set, with ``training.evaluate`` at the edge's input size:
    ``{"golden": {"before", "after"}, "drifted_test": {...}}``."""
    from visionloop.training.evaluate import EVAL_CONF, EVAL_IOU, evaluate
    from visionloop.training.registry import Registry
    from visionloop.vision.detector import load_detector

    registry = Registry.from_settings(settings)
    production = registry.production()
    final = production.version if production is not None else baseline

    def score(version: str, dataset: Path) -> float:
        detector = load_detector(
            registry.onnx_path(version),
            backend="onnxruntime",
            precision="fp32",
            conf=EVAL_CONF,
            iou=EVAL_IOU,
            imgsz=imgsz,
            multi_label=True,
            version=version,
        )
        return round(evaluate(detector, dataset, split="test").map50, 4)

    scores: dict[str, dict[str, float | None]] = {}
    for key, dataset in (("golden", sets.golden), ("drifted_test", sets.drifted)):
        before = score(baseline, dataset)
        after = score(final, dataset) if final != baseline else before
        scores[key] = {"before": before, "after": after, "change": round(after - before, 4)}
    return scores


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    a = start if start.tzinfo else start.replace(tzinfo=UTC)
    b = end if end.tzinfo else end.replace(tzinfo=UTC)
    return round((b - a).total_seconds(), 1)


def _window_mean(live: list[LivePoint], lo: int, hi: int, *, whole: bool = True) -> float | None:
    """Mean live mAP50 of the windows lying inside frames ``[lo, hi)`` (``whole=False``: whose
    centre lies there)."""
    values = [
        p.map50
        for p in live
        if p.map50 is not None
        and ((p.start >= lo and p.end <= hi) if whole else lo <= (p.start + p.end) / 2 < hi)
    ]
    return round(sum(values) / len(values), 4) if values else None


def strategy_entry(
    scenario: Scenario,
    strategy: str,
    *,
    seen: list[FrameSeen],
    live: list[LivePoint],
    job: Job | None,
    alarms: list[datetime],
    oracle: OracleReviewer | None,
    scores: dict[str, dict[str, float | None]],
    baseline: str,
    wall_s: float,
) -> dict[str, Any]:
    """One strategy's row of the report (see the README's Simulation section for each field)."""
    from visionloop.simulation.runner import index_at

    onset = scenario.drift.start
    onset_at = next((f.captured_at for f in seen if f.index >= onset), None)
    # Alarms that opened before the drift are false alarms (consecutive frames of the line show
    # few parts, so windows of them can differ from the reference without any drift).
    early = [a for a in alarms if (_seconds(onset_at, a) or 0.0) < 0]
    alarm_at = next((a for a in alarms if a not in early), None)
    promoted = next((f for f in seen if f.model_version != baseline), None)
    last = seen[-1].index if seen else 0
    before = _window_mean(live, max(onset - 2 * scenario.live_window, 0), onset)
    after_points = [p.map50 for p in live if p.start >= onset and p.map50 is not None]
    lowest = round(min(after_points), 4) if after_points else None
    # The end of the run: its last frames, on the new model when one reached the edge.
    tail_from = last + 1 - max(scenario.after_promotion, scenario.live_window)
    if promoted is not None:
        tail_from = max(tail_from, promoted.index)
    final = _window_mean(live, tail_from, last + 1, whole=False)
    recovered = _recovered(before, lowest, final)
    # The drifted plateau: frames at full drift, before a new model reached the edge (a mean of
    # windows, less noisy than the single lowest one).
    ramp_end = onset + scenario.drift.ramp
    plateau = _window_mean(live, ramp_end, promoted.index if promoted else last + 1)
    started_at = job.started_at if job is not None else None
    finished_at = job.finished_at if job is not None else None
    result = (job.result or {}) if job is not None else {}
    return {
        "strategy": strategy,
        "map50_before_drift": before,
        "map50_after_drift": lowest,
        "map50_final": final,
        "recovered_fraction": recovered,
        "map50_drifted_plateau": plateau,
        "recovered_fraction_of_plateau": _recovered(before, plateau, final),
        "golden_map50_before": scores["golden"]["before"],
        "golden_map50_after": scores["golden"]["after"],
        "drifted_test_map50_before": scores["drifted_test"]["before"],
        "drifted_test_map50_after": scores["drifted_test"]["after"],
        "labels_used": oracle.submitted if oracle is not None else 0,
        "oracle_boxes": oracle.boxes if oracle is not None else 0,
        "oracle_dropped": oracle.dropped if oracle is not None else 0,
        "oracle_mislabeled": oracle.mislabeled if oracle is not None else 0,
        "seconds_drift_to_alarm": _seconds(onset_at, alarm_at),
        "alarms_before_drift": len(early),
        "seconds_drift_to_retraining": _seconds(onset_at, started_at),
        "seconds_drift_to_promotion_on_edge": _seconds(
            onset_at, promoted.captured_at if promoted else None
        ),
        "retraining_wall_seconds": _seconds(started_at, finished_at),
        "train_job": None
        if job is None
        else {
            "id": job.id,
            "status": job.status,
            "version": result.get("version"),
            "gate_passed": result.get("gate_passed"),
            "gate_summary": result.get("gate_summary"),
            "images": result.get("images"),
            "seconds": result.get("seconds"),
        },
        "frames": {
            "drift_onset": onset,
            "alarm": index_at(seen, alarm_at),
            "retraining_start": index_at(seen, started_at),
            "retraining_end": index_at(seen, finished_at),
            "promotion_on_edge": promoted.index if promoted else None,
            "last": last,
            "received": len(seen),
        },
        "model_versions": {"start": baseline, "end": seen[-1].model_version if seen else None},
        "timeline": [[p.start, p.end, p.map50] for p in live],
        "wall_seconds": round(wall_s, 1),
    }


def _recovered(before: float | None, low: float | None, final: float | None) -> float | None:
    """(final - low) / (before - low): the share of the lost mAP50 won back."""
    if before is None or low is None or final is None or before - low <= 1e-9:
        return None
    return round((final - low) / (before - low), 4)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:.{digits}f}"
    return str(value)


ROWS: tuple[tuple[str, str, int], ...] = (
    ("live mAP50 before drift", "map50_before_drift", 3),
    ("live mAP50 after drift (lowest)", "map50_after_drift", 3),
    ("live mAP50 final", "map50_final", 3),
    ("recovered fraction", "recovered_fraction", 2),
    ("live mAP50 drifted plateau (mean)", "map50_drifted_plateau", 3),
    ("recovered fraction of the plateau's loss", "recovered_fraction_of_plateau", 2),
    ("drifted test set mAP50 before", "drifted_test_map50_before", 3),
    ("drifted test set mAP50 after", "drifted_test_map50_after", 3),
    ("golden set mAP50 before", "golden_map50_before", 3),
    ("golden set mAP50 after", "golden_map50_after", 3),
    ("labels used", "labels_used", 0),
    ("drift onset → alarm (s)", "seconds_drift_to_alarm", 0),
    ("false alarms before the drift", "alarms_before_drift", 0),
    ("drift onset → retraining start (s)", "seconds_drift_to_retraining", 0),
    ("drift onset → new model on the edge (s)", "seconds_drift_to_promotion_on_edge", 0),
    ("retraining wall time (s)", "retraining_wall_seconds", 0),
    ("run wall time (s)", "wall_seconds", 0),
)


def markdown(report: dict[str, Any]) -> str:
    """``report.md``: the scenario and one column per strategy."""
    runs = report["strategies"]
    lines = [
        "# visionloop simulate",
        "",
        f"`{report['command']}`",
        "",
        f"Schedule `{report['scenario']['schedule']}`, budget {report['scenario']['budget']} "
        f"labels, seed {report['scenario']['seed']}, oracle noise "
        f"{report['scenario']['oracle_noise']:g}; {report['machine']}; started "
        f"{report['started_at']}.",
        "",
        "| | " + " | ".join(r["strategy"] for r in runs) + " |",
        "|---|" + "---|" * len(runs),
    ]
    for label, key, digits in ROWS:
        cells = [
            _fmt(float(r[key]) if isinstance(r[key], int | float) and digits else r[key], digits)
            for r in runs
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    gates = [(r["train_job"] or {}).get("gate_summary") or "no train job" for r in runs]
    lines.append("| gate | " + " | ".join(str(g).replace("|", "/") for g in gates) + " |")
    return "\n".join(lines) + "\n"


def _gate_cell(job: dict[str, Any] | None) -> str:
    if job is None:
        return "no train job"
    if job.get("gate_summary"):
        return str(job["gate_summary"])
    return f"train job {job['status']} (no verdict)"


def plot_timeline(report: dict[str, Any], path: Path) -> None:
    """``timeline.png``: live mAP50 (window centre on the x axis) per strategy, a line at the
    drift onset and markers for alarm (^), retraining start (s) and promotion on the edge (*)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5), dpi=110)
    onset = report["scenario"]["drift_onset"]
    ax.axvline(onset, color="grey", linestyle="--", linewidth=1, label="drift onset")
    markers = (("alarm", "^", "drift alarm"), ("retraining_start", "s", "retraining start"),
               ("promotion_on_edge", "*", "new model on the edge"))  # fmt: skip
    for k, run in enumerate(report["strategies"]):
        color = f"C{k}"
        points = [((s + e) / 2, m) for s, e, m in run["timeline"] if m is not None]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, color=color, linewidth=1.6, label=run["strategy"])
        for key, marker, name in markers:
            frame = run["frames"].get(key)
            if frame is None:
                continue
            y = _value_near(points, frame)
            ax.plot([frame], [y], marker=marker, color=color, markersize=10, linestyle="none",
                    label=name if k == 0 else None)  # fmt: skip
    ax.set_xlabel("frame of the line")
    ax.set_ylabel(f"live mAP50 (window of {report['scenario']['live_window']} frames)")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title(f"visionloop simulate: {report['scenario']['schedule']}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _value_near(points: list[tuple[float, float]], frame: int) -> float:
    if not points:
        return 0.0
    return min(points, key=lambda p: abs(p[0] - frame))[1]


def write_report(report: dict[str, Any], out: Path) -> None:
    """``report.json``, ``report.md`` and ``timeline.png`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "report.md").write_text(markdown(report))
    plot_timeline(report, out / "timeline.png")
