"""Drift detection quality and cost on the synthetic line, through the real check code
(``visionloop.monitoring.evidently_check.compare``, Evidently's DataDriftPreset) and the alarm
rule (``VISIONLOOP_DRIFT_ALARM_CONSECUTIVE`` drifted checks in a row), without HTTP or a database.

    .venv/bin/python benchmarks/drift.py [--window 500] [--frames random|consecutive]
        [--nominal 50] [--max-windows 6] [--share 0.3] [--also-shares 0.4,0.5]
        [--consecutive 2] [--jobs 1] [--markdown]
    .venv/bin/python benchmarks/drift.py --effective 250,500,1000,2000,5000 [--nominal 50]
        [--share 0.4] [--jobs 1] [--json out.json]

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

``--effective W1,W2,…`` measures instead where a check's verdict stops meaning anything: for
each of ``--nominal`` seeds, two runs of consecutive nominal frames of its line (draws 0 and 1),
and for each window size W the first W frames of the second compared with the first W of the
first (as against an automatic or pinned reference) and with the seed-0 line's random frames
(as against a model profile). Each comparison is listed by its effective sample size (the
fewer of the two windows' independent frames, ``monitoring.thinning.effective_frames``) with
whether it came out drifted at ``--share``: the table says below which effective size nominal
windows give false "drifted" verdicts (the check's ``MIN_EFFECTIVE_FRAMES``).

A check is drifted when its share of drifted features is at least the alarm share, so one run
also gives the outcome at the ``--also-shares`` (from the same shares: no second comparison);
the per-feature count of false verdicts in the nominal windows says which features are noisy.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from rich.console import Console
from rich.table import Table

from visionloop.monitoring.evidently_check import compare
from visionloop.monitoring.features import (
    FeatureTable,
    feature_table,
    records_table,
)
from visionloop.monitoring.thinning import MIN_EFFECTIVE_FRAMES, effective_frames
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


Seen = tuple[float, int]
"""One check as the alarm rule sees it: its share drifted and its effective frames (under
``--min-effective``: inconclusive)."""
MIN_EFFECTIVE = MIN_EFFECTIVE_FRAMES
"""``--min-effective``, set by ``main`` (module level: the worker processes read it)."""


def _delay(seen: list[Seen], share: float, consecutive: int) -> int | None:
    """The window (1-based) at which ``consecutive`` checks in a row reached ``share``; an
    inconclusive check neither counts nor breaks a streak (as ``store.drift.record_verdict``)."""
    streak = 0
    for k, (s, effective) in enumerate(seen, start=1):
        if effective < MIN_EFFECTIVE:
            continue
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
) -> tuple[list[Seen], list[float]]:
    """Windows of the seed-0 line under a preset until every tried share alarmed (or
    ``--max-windows``): what each check saw and the comparisons' times."""
    line = SyntheticLine(seed=0, size_wh=SIZE_WH)
    seen: list[Seen] = []
    timings = []
    for k in range(1, args.max_windows + 1):
        current = _window(line, k, Drift(preset, intensity), args.window, consecutive=args.seq)
        t = time.perf_counter()
        result = compare(reference, current, drift_share=args.share)
        timings.append(time.perf_counter() - t)
        seen.append((result.share_drifted, result.effective_frames))
        if all(_delay(seen, s, args.consecutive) is not None for s in shares_tried):
            break
    return seen, timings


def _nominal_run(
    profiles: dict[int, FeatureTable], seed: int, args: argparse.Namespace
) -> tuple[list[Seen], dict[int, list[Seen]], list[str], list[float], list[int]]:
    """``--consecutive`` nominal windows of the line of ``seed``, each compared with that
    line's own first nominal window and with each of ``profiles`` (random frames of the seed-0
    line by count: what a model profile is to a device on another line): what the checks saw
    against each, the features that drifted against the own reference, the comparisons' times
    and the current windows' strides."""
    line = SyntheticLine(seed=seed, size_wh=SIZE_WH)
    nominal = Drift("nominal", 0.0)
    own_ref = _window(line, 0, nominal, args.window, consecutive=args.seq)
    own: list[Seen] = []
    against: dict[int, list[Seen]] = {size: [] for size in profiles}
    flagged: list[str] = []
    timings, strides = [], []
    for k in range(1, args.consecutive + 1):
        current = _window(line, k, nominal, args.window, consecutive=args.seq)
        t = time.perf_counter()
        result = compare(own_ref, current, drift_share=args.share)
        timings.append(time.perf_counter() - t)
        own.append((result.share_drifted, result.effective_frames))
        strides.append(result.window_stride)
        flagged += [v.feature for v in result.features if v.drifted]
        for size, profile in profiles.items():
            vs = compare(profile, current, drift_share=args.share)
            against[size].append((vs.share_drifted, vs.effective_frames))
    return own, against, flagged, timings, strides


def _head(table: FeatureTable, rows: int) -> FeatureTable:
    head = FeatureTable()
    head.columns = {name: values[:rows] for name, values in table.columns.items()}
    return head


class NominalCheck(NamedTuple):
    """One nominal comparison of ``--effective``."""

    seed: int
    window: int
    reference: str  # "own" (the line's own consecutive frames) or "profile" (random frames)
    effective: int
    share_drifted: float
    drifted: bool


def _effective_run(
    shared: FeatureTable, seed: int, sizes: list[int], share: float
) -> list[NominalCheck]:
    """For each window size, the nominal comparisons of the line of ``seed`` (see the module
    doc's ``--effective``)."""
    line = SyntheticLine(seed=seed, size_wh=SIZE_WH)
    nominal = Drift("nominal", 0.0)
    longest = max(sizes)
    first = _window(line, 0, nominal, longest, consecutive=True)
    second = _window(line, 1, nominal, longest, consecutive=True)
    out = []
    for size in sizes:
        reference, current = _head(first, size), _head(second, size)
        current_eff = effective_frames(current)
        for kind, ref in (("own", reference), ("profile", shared)):
            result = compare(ref, current, drift_share=share)
            effective = min(current_eff, effective_frames(ref))
            out.append(
                NominalCheck(seed, size, kind, effective, result.share_drifted, result.drifted)
            )
    return out


EFFECTIVE_BINS = (0, 5, 10, 15, 20, 25, 30, 40, 60, 10**9)
KINDS = ("own", "profile")


def effective_main(args: argparse.Namespace) -> None:
    sizes = [int(x) for x in args.effective.split(",") if x]
    shared = _window(SyntheticLine(seed=0, size_wh=SIZE_WH), 0, Drift("nominal", 0.0), 500)
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        runs = [
            pool.submit(_effective_run, shared, seed, sizes, args.share)
            for seed in range(1, args.nominal + 1)
        ]
        rows = []
        for run in runs:  # in seed order: --progress holds every seed done so far
            rows += run.result()
            _progress(args, [r._asdict() for r in run.result()])
    if args.json:
        Path(args.json).write_text(json.dumps([r._asdict() for r in rows]))
    heads = (
        "effective frames",
        "checks (own / profile)",
        "drifted (own / profile)",
        "highest share",
    )
    table = Table(*heads)
    md = ["| " + " | ".join(heads) + " |", "|---|---|---|---|"]
    for low, high in itertools.pairwise(EFFECTIVE_BINS):
        group = [r for r in rows if low <= r.effective < high]
        if not group:
            continue
        cells = [
            f"{low}-{high - 1}" if high < 10**9 else f"{low}+",
            " / ".join(str(sum(r.reference == k for r in group)) for k in KINDS),
            " / ".join(str(sum(r.drifted and r.reference == k for r in group)) for k in KINDS),
            f"{max(r.share_drifted for r in group):.2f}",
        ]
        table.add_row(*cells)
        md.append("| " + " | ".join(cells) + " |")
    console = Console()
    if args.markdown:
        print("\n".join(md))
    else:
        console.print(table)
    for size in sizes:
        at = [r for r in rows if r.window == size]
        effs = sorted(r.effective for r in at if r.reference == "profile")
        drifted = ", ".join(f"{k} {sum(r.drifted for r in at if r.reference == k)}" for k in KINDS)
        console.print(
            f"window {size}: effective frames median {statistics.median(effs):g}, range "
            f"{effs[0]}-{effs[-1]}; drifted at {args.share:g}: {drifted} of {args.nominal}"
        )


def _camera_run(seed: int, args: argparse.Namespace) -> list[int]:
    """The effective frames of each of ``--camera-checks`` checks of a camera at ``--fps``
    checked every ``--interval`` seconds from its start, each over its latest ``--window``
    frames (what a check against a model profile reads): the line of ``seed``, nominal."""
    per_check = round(args.fps * args.interval)
    total = per_check * args.camera_checks
    line = SyntheticLine(seed=seed, size_wh=SIZE_WH)
    frames = _window(line, 1, Drift("nominal", 0.0), total, consecutive=True)
    out = []
    for k in range(1, args.camera_checks + 1):
        end = k * per_check
        out.append(effective_frames(_slice(frames, max(0, end - args.window), end)))
    return out


def _slice(table: FeatureTable, start: int, end: int) -> FeatureTable:
    part = FeatureTable()
    part.columns = {name: values[start:end] for name, values in table.columns.items()}
    return part


def camera_main(args: argparse.Namespace) -> None:
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        runs = [pool.submit(_camera_run, seed, args) for seed in range(1, args.nominal + 1)]
        seen = []
        for run in runs:
            seen.append(run.result())
            _progress(args, {"effective": seen[-1]})
    checks = sum(len(s) for s in seen)
    low = [sum(e < MIN_EFFECTIVE for e in s) for s in seen]
    first = [next((k for k, e in enumerate(s, 1) if e >= MIN_EFFECTIVE), None) for s in seen]
    Console().print(
        f"camera at {args.fps:g} FPS, a check every {args.interval:g} s over the latest "
        f"{args.window} frames, {args.camera_checks} checks from its start, {args.nominal} "
        f"seeds: {sum(low)} of {checks} checks inconclusive (under {MIN_EFFECTIVE} independent "
        f"frames; per seed {low}); first conclusive check per seed {first}; effective frames "
        f"per check, median over seeds: "
        + " ".join(f"{statistics.median(s[k] for s in seen):g}" for k in range(args.camera_checks))
    )


def _progress(args: argparse.Namespace, record: object) -> None:
    """Append one finished unit (a seed, a preset) to ``--progress`` as a JSON line, so that a
    long run's partial results can be read while it runs."""
    if args.progress:
        with open(args.progress, "a") as f:
            f.write(json.dumps(record) + "\n")


def _shown(seen: list[Seen]) -> str:
    return " ".join(f"{x:.2f}" + ("?" if eff < MIN_EFFECTIVE else "") for x, eff in seen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=int, default=500)
    parser.add_argument("--frames", choices=("random", "consecutive"), default="random")
    parser.add_argument("--nominal", type=int, default=50)
    parser.add_argument(
        "--first-seed", type=int, default=1, help="Nominal seeds start here (to extend a run)."
    )
    parser.add_argument("--max-windows", type=int, default=6)
    parser.add_argument("--share", type=float, default=0.3)
    parser.add_argument("--also-shares", default="0.4,0.5")
    parser.add_argument("--consecutive", type=int, default=2)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--jobs", type=int, default=1, help="Processes rendering windows.")
    parser.add_argument(
        "--presets",
        default=",".join(f"{p}:{i:g}" for p in PRESETS for i in INTENSITIES),
        help="Drifts to time, preset:intensity, comma-separated.",
    )
    parser.add_argument(
        "--profile-sizes",
        default="",
        help="Random nominal frames in the model profiles the nominal windows are compared "
        "with, comma-separated (default: --window of them); the drifted windows are compared "
        "with the largest.",
    )
    parser.add_argument(
        "--effective", default="", help="Window sizes: false verdicts by effective size."
    )
    parser.add_argument(
        "--min-effective",
        type=int,
        default=MIN_EFFECTIVE_FRAMES,
        help="Checks with fewer independent frames are inconclusive (the check's rule).",
    )
    parser.add_argument("--json", default="", help="Every comparison's outcome here.")
    parser.add_argument("--progress", default="", help="Each seed's outcome, as it finishes.")
    parser.add_argument(
        "--camera-checks",
        type=int,
        default=0,
        help="Instead: this many checks of a camera (--fps, --interval) from its start, "
        "counting the inconclusive ones.",
    )
    parser.add_argument("--fps", type=float, default=5.0)
    parser.add_argument("--interval", type=float, default=300.0, help="Seconds between checks.")
    args = parser.parse_args()
    global MIN_EFFECTIVE
    MIN_EFFECTIVE = args.min_effective
    if args.effective:
        effective_main(args)
        return
    if args.camera_checks:
        camera_main(args)
        return
    args.seq = args.frames == "consecutive"
    shares_tried = [args.share] + [float(x) for x in args.also_shares.split(",") if x]

    started = time.perf_counter()
    import evidently.presets  # noqa: F401  # timed: the worker's job pays it once

    import_s = time.perf_counter() - started
    line = SyntheticLine(seed=0, size_wh=SIZE_WH)
    nominal = Drift("nominal", 0.0)
    sizes = [int(x) for x in args.profile_sizes.split(",") if x] or [args.window]
    profiles = {size: _window(line, 0, nominal, size) for size in sizes}
    reference = profiles[max(sizes)]  # what the drifted windows are compared with
    presets = [(p, float(i)) for p, i in (x.split(":") for x in args.presets.split(",") if x)]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        drift_runs = [
            pool.submit(_preset_run, reference, preset, intensity, args, shares_tried)
            for preset, intensity in presets
        ]
        nominal_runs = [
            pool.submit(_nominal_run, profiles, seed, args)
            for seed in range(args.first_seed, args.first_seed + args.nominal)
        ]
        rows = []
        timings: list[float] = []
        for (preset, intensity), run in zip(presets, drift_runs, strict=True):
            seen, took = run.result()
            rows.append((preset, intensity, seen))
            timings += took
            _progress(args, {"preset": preset, "intensity": intensity, "seen": seen})
        nominal_seen: list[list[Seen]] = []
        profile_seen: dict[int, list[list[Seen]]] = {size: [] for size in sizes}
        noisy: Counter[str] = Counter()
        strides: list[int] = []
        for run in nominal_runs:
            own, against, flagged, took, stride = run.result()
            _progress(args, {"own": own, "profiles": {str(k): v for k, v in against.items()}})
            strides += stride
            nominal_seen.append(own)
            for size in sizes:
                profile_seen[size].append(against[size])
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
    table = Table("preset", "intensity", *heads, "share drifted per window (?: inconclusive)")
    cells = []
    for preset, intensity, seen in rows:
        delays = [_delay(seen, s, args.consecutive) for s in shares_tried]
        cells.append(
            [
                preset,
                f"{intensity:g}",
                *(str(d) if d is not None else "-" for d in delays),
                _shown(seen),
            ]
        )

    def false_alarms(runs: list[list[Seen]], s: float) -> int:
        return sum(_delay(seen, s, args.consecutive) is not None for seen in runs)

    def inconclusive(runs: list[list[Seen]]) -> int:
        return sum(eff < MIN_EFFECTIVE for seen in runs for _, eff in seen)

    checks = args.consecutive * args.nominal
    nominal_rows = []
    for s in shares_tried:
        drifted = sum(
            x >= s - 1e-9 and eff >= MIN_EFFECTIVE for seen in nominal_seen for x, eff in seen
        )
        against = ", ".join(
            f"{false_alarms(profile_seen[size], s)} against a profile of {size} random frames"
            for size in sizes
        )
        nominal_rows.append(
            f"share {s:g}: {drifted} drifted checks of {checks}, "
            f"{false_alarms(nominal_seen, s)} false alarms in {args.nominal} seeds against their "
            f"own line ({against})"
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "presets": [[p, i, seen] for p, i, seen in rows],
                    "own": nominal_seen,
                    "profiles": {str(k): v for k, v in profile_seen.items()},
                }
            )
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
    worst = max((x for seen in nominal_seen for x, e in seen if e >= MIN_EFFECTIVE), default=0.0)
    console.print(
        f"nominal: highest share of a counted check {worst:.2f}; inconclusive checks: "
        f"{inconclusive(nominal_seen)} of {checks} against their own line, "
        + ", ".join(
            f"{inconclusive(profile_seen[size])} against the {size}-frame profile" for size in sizes
        )
        + "; false per-feature verdicts "
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
