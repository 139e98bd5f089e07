"""Drift detection quality and cost on the synthetic line, through the real check code
(``visionloop.monitoring.evidently_check.compare``, Evidently's DataDriftPreset) and the alarm
rule (``VISIONLOOP_DRIFT_ALARM_CONSECUTIVE`` drifted checks in a row), without HTTP or a database.

    .venv/bin/python benchmarks/drift.py [--window 500] [--frames random|consecutive]
        [--nominal 50] [--max-windows 6] [--share 0.3] [--also-shares 0.4,0.5]
        [--consecutive 2] [--jobs 1] [--markdown]

Windows are frames of the line (see ``visionloop.vision.synthetic.records``) with detections
from its simulated detector: with ``--frames random`` (the default) random frames, with
``--frames consecutive`` runs of consecutive frames, as a camera sends them (the check thins
them by their decorrelation lag, see ``visionloop.monitoring.thinning``). For each preset
(lighting, blur, noise, new_texture) at intensity 0.3 and 0.6: the reference is a window of
random nominal frames (what a model version's profile is), the drift starts at the first
current window, and the table gives the windows from onset to the alarm (the alarm rule's
minimum is ``--consecutive``; "-" when none within ``--max-windows``). Then ``--nominal``
nominal windows (other seeds, each against its own first nominal window, as an automatic or
pinned reference is, and against the seed-0 line's random frames, as a model profile is to a
device on another line) count the false drifted checks and false alarms (``--consecutive``
drifted in a row). ``--jobs`` renders windows in that many processes.
Also the import time of Evidently and the median time of one comparison at ``--window`` rows
and at 10,000 rows.

A check is drifted when its share of drifted features is at least the alarm share, so one run
also gives the outcome at the ``--also-shares`` (from the same shares: no second comparison);
the per-feature count of false verdicts in the nominal windows says which features are noisy.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime

from rich.console import Console
from rich.table import Table

from visionloop.monitoring.evidently_check import compare
from visionloop.monitoring.features import (
    FeatureTable,
    feature_table,
    records_table,
)
from visionloop.vision.synthetic.line import SyntheticLine
from visionloop.vision.synthetic.records import SIZE_WH, simulated_records
from visionloop.vision.synthetic.schedule import Drift

PRESETS = ("lighting", "blur", "noise", "new_texture")
INTENSITIES = (0.3, 0.6)
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _window(
    line: SyntheticLine, draw: int, drift: Drift, count: int, *, consecutive: bool = False
) -> FeatureTable:
    return records_table(
        simulated_records(line, draw=draw, count=count, drift=drift, t0=T0, consecutive=consecutive)
    )


def _delay(shares: list[float], share: float, consecutive: int) -> int | None:
    """The window (1-based) at which ``consecutive`` checks in a row reached ``share``."""
    streak = 0
    for k, s in enumerate(shares, start=1):
        streak = streak + 1 if s >= share - 1e-9 else 0
        if streak >= consecutive:
            return k
    return None


def _preset_run(
    reference: FeatureTable,
    preset: str,
    intensity: float,
    args: argparse.Namespace,
    shares_tried: list[float],
) -> tuple[list[float], list[float]]:
    """Windows of the seed-0 line under a preset until every tried share alarmed (or
    ``--max-windows``): their shares drifted and the comparisons' times."""
    line = SyntheticLine(seed=0, size_wh=SIZE_WH)
    shares: list[float] = []
    timings = []
    for k in range(1, args.max_windows + 1):
        current = _window(line, k, Drift(preset, intensity), args.window, consecutive=args.seq)
        t = time.perf_counter()
        result = compare(reference, current, drift_share=args.share)
        timings.append(time.perf_counter() - t)
        shares.append(result.share_drifted)
        if all(_delay(shares, s, args.consecutive) is not None for s in shares_tried):
            break
    return shares, timings


def _nominal_run(
    shared: FeatureTable, seed: int, args: argparse.Namespace
) -> tuple[list[float], list[float], list[str], list[float], list[int]]:
    """``--consecutive`` nominal windows of the line of ``seed``, each compared with that
    line's own first nominal window and with ``shared`` (the seed-0 line's: what a model
    profile is to a device on another line): both lists of shares, the features that drifted
    against the own reference, the comparisons' times and the current windows' strides."""
    line = SyntheticLine(seed=seed, size_wh=SIZE_WH)
    nominal = Drift("nominal", 0.0)
    own_ref = _window(line, 0, nominal, args.window, consecutive=args.seq)
    own, against_shared, flagged, timings, strides = [], [], [], [], []
    for k in range(1, args.consecutive + 1):
        current = _window(line, k, nominal, args.window, consecutive=args.seq)
        t = time.perf_counter()
        result = compare(own_ref, current, drift_share=args.share)
        timings.append(time.perf_counter() - t)
        own.append(result.share_drifted)
        strides.append(result.window_stride)
        flagged += [v.feature for v in result.features if v.drifted]
        against_shared.append(compare(shared, current, drift_share=args.share).share_drifted)
    return own, against_shared, flagged, timings, strides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=int, default=500)
    parser.add_argument("--frames", choices=("random", "consecutive"), default="random")
    parser.add_argument("--nominal", type=int, default=50)
    parser.add_argument("--max-windows", type=int, default=6)
    parser.add_argument("--share", type=float, default=0.3)
    parser.add_argument("--also-shares", default="0.4,0.5")
    parser.add_argument("--consecutive", type=int, default=2)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--jobs", type=int, default=1, help="Processes rendering windows.")
    args = parser.parse_args()
    args.seq = args.frames == "consecutive"
    shares_tried = [args.share] + [float(x) for x in args.also_shares.split(",") if x]

    started = time.perf_counter()
    import evidently.presets  # noqa: F401  # timed: the worker's job pays it once

    import_s = time.perf_counter() - started
    line = SyntheticLine(seed=0, size_wh=SIZE_WH)
    nominal = Drift("nominal", 0.0)
    reference = _window(line, 0, nominal, args.window)
    presets = [(p, i) for p in PRESETS for i in INTENSITIES]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        drift_runs = [
            pool.submit(_preset_run, reference, preset, intensity, args, shares_tried)
            for preset, intensity in presets
        ]
        nominal_runs = [
            pool.submit(_nominal_run, reference, seed, args) for seed in range(1, args.nominal + 1)
        ]
        rows = []
        timings: list[float] = []
        for (preset, intensity), run in zip(presets, drift_runs, strict=True):
            shares, took = run.result()
            rows.append((preset, intensity, shares))
            timings += took
        nominal_shares: list[list[float]] = []
        shared_shares: list[list[float]] = []
        noisy: Counter[str] = Counter()
        strides: list[int] = []
        for run in nominal_runs:
            own, shared, flagged, took, stride = run.result()
            strides += stride
            nominal_shares.append(own)
            shared_shares.append(shared)
            noisy.update(flagged)
            timings += took
    big = _window(line, 99, nominal, 2000)
    big_ref = feature_table([])
    for _ in range(5):  # 10,000 rows each side, from 2,000 rendered frames
        for name, values in big.columns.items():
            big_ref.columns[name].extend(values)
    t = time.perf_counter()
    compare(big_ref, big_ref, drift_share=args.share)
    big_s = time.perf_counter() - t

    heads = [f"windows to alarm at {s:g}" for s in shares_tried]
    table = Table("preset", "intensity", *heads, "share drifted per window")
    cells = []
    for preset, intensity, shares in rows:
        delays = [_delay(shares, s, args.consecutive) for s in shares_tried]
        cells.append(
            [
                preset,
                f"{intensity:g}",
                *(str(d) if d is not None else "-" for d in delays),
                " ".join(f"{s:.2f}" for s in shares),
            ]
        )
    nominal_rows = []
    for s in shares_tried:
        checks = sum(x >= s - 1e-9 for seen in nominal_shares for x in seen)
        alarms = sum(_delay(seen, s, args.consecutive) is not None for seen in nominal_shares)
        shared_alarms = sum(_delay(seen, s, args.consecutive) is not None for seen in shared_shares)
        nominal_rows.append(
            f"share {s:g}: {checks} drifted checks of {args.consecutive * args.nominal}, "
            f"{alarms} false alarms in {args.nominal} seeds ({shared_alarms} against the "
            "seed-0 reference)"
        )
    console = Console()
    if args.markdown:
        print("| preset | intensity | " + " | ".join(heads) + " | share drifted per window |")
        print("|---" * (len(heads) + 3) + "|")
        for row in cells:
            print("| " + " | ".join(row) + " |")
    else:
        for row in cells:
            table.add_row(*row)
        console.print(table)
    console.print(
        f"window {args.window} {args.frames} frames, {args.consecutive} drifted checks in a "
        "row; nominal " + "; ".join(nominal_rows)
    )
    worst = max((x for seen in nominal_shares for x in seen), default=0.0)
    worst_shared = max((x for seen in shared_shares for x in seen), default=0.0)
    console.print(
        f"nominal: highest share {worst:.2f} ({worst_shared:.2f} against the seed-0 "
        "reference); false per-feature verdicts "
        + (", ".join(f"{f} {n}" for f, n in noisy.most_common()) or "none")
        + f"; nominal windows thinned to 1 frame in {statistics.median(strides):g} (median, "
        f"range {min(strides)}-{max(strides)})"
    )
    console.print(
        f"Evidently import {import_s:.1f} s; one comparison at {args.window} rows: median "
        f"{statistics.median(timings):.2f} s; at 10,000 rows: {big_s:.2f} s"
    )


if __name__ == "__main__":
    main()
