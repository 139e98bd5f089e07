"""CLI command: simulate (``visionloop simulate``, the closed loop measured end to end)."""

from __future__ import annotations

import dataclasses
import shlex
import signal
import time
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from visionloop.config import LabelingStrategy


def simulate(
    out: Annotated[Path, typer.Option(help="Folder for report.json, report.md, timeline.png.")],
    schedule: Annotated[
        str | None,
        typer.Option(
            help=(
                "The line's drift, NAME[:INTENSITY][@START[+RAMP]] (default blur:0.5@1500+300; "
                "--fast: blur:0.5@150+30)."
            )
        ),
    ] = None,
    frames: Annotated[
        int | None,
        typer.Option(min=1, help="Frames of the line to run at least (default 4000; --fast: 400)."),
    ] = None,
    budget: Annotated[
        int | None,
        typer.Option(min=1, help="Labels the oracle gives (default 200; --fast: 40)."),
    ] = None,
    strategy: Annotated[
        LabelingStrategy | None,
        typer.Option(help="One labeling strategy to run (uncertainty, random or hybrid)."),
    ] = None,
    compare: Annotated[
        str | None,
        typer.Option(
            help=(
                "Run these strategies one after the other from the same seed and schedule "
                "(comma-separated; overrides --strategy). Default: uncertainty,random,hybrid "
                "unless --strategy is given."
            )
        ),
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the line and the oracle.")] = 0,
    oracle_noise: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="Share of true boxes the oracle drops or mislabels (0..1)."
        ),
    ] = 0.0,
    fast: Annotated[
        bool,
        typer.Option(
            "--fast", help="A small configuration (320x240 frames, one tiny epoch) for tests."
        ),
    ] = False,
) -> None:
    """Run the whole loop on a fresh temporary store and measure what it recovers.

    Starts a server, a job worker and one edge agent on the synthetic line with the drift
    schedule, and an oracle reviewer that labels tasks through the labeling API with each
    frame's ground truth. Retraining is left to the policy, promotion to the gate, the swap to
    the agent. Reports the edge's live mAP50 over the run and the golden and drifted test sets
    before and after, per strategy.
    """
    from visionloop.simulation.runner import run_simulation
    from visionloop.simulation.scenario import FAST, FULL, parse_strategies

    base = FAST if fast else FULL
    scenario = base if schedule is None else base.with_schedule(schedule)
    changes: dict[str, object] = {"seed": seed, "oracle_noise": oracle_noise}
    if frames is not None:
        changes["frames"] = frames
    if budget is not None:
        changes["budget"] = budget
    scenario = dataclasses.replace(scenario, **changes)  # type: ignore[arg-type]  # mypy cannot check replace() kwargs given as a dict
    if compare is not None:
        strategies = parse_strategies(compare)
    elif strategy is not None:
        strategies = [strategy]
    else:
        strategies = parse_strategies("uncertainty" if fast else "uncertainty,random,hybrid")
    started = time.monotonic()

    def progress(message: str) -> None:
        typer.echo(f"[{time.monotonic() - started:6.0f} s] {message}")

    given = [
        ("--schedule", scenario.schedule),
        ("--frames", scenario.frames),
        ("--budget", scenario.budget),
        ("--compare", ",".join(strategies)),
        ("--seed", seed),
        ("--oracle-noise", f"{oracle_noise:g}"),
    ]
    command = shlex.join(
        ["visionloop", "simulate", *(["--fast"] if fast else [])]
        + [str(part) for pair in given for part in pair]
        + ["--out", str(out)]
    )

    def leave(signum: int, _frame: FrameType | None) -> None:
        # Unwinds through the runner, which stops its server, worker and agent on the way out.
        raise KeyboardInterrupt(signal.Signals(signum).name)

    # Also for SIGINT: a shell starts background commands with SIGINT ignored.
    before = signal.signal(signal.SIGINT, leave), signal.signal(signal.SIGTERM, leave)
    try:
        report = run_simulation(scenario, strategies, out, command=command, progress=progress)
    finally:
        signal.signal(signal.SIGINT, before[0])
        signal.signal(signal.SIGTERM, before[1])
    typer.echo((out / "report.md").read_text())
    typer.echo(f"wrote {out / 'report.json'}, {out / 'report.md'}, {out / 'timeline.png'}")
    if not report["strategies"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the top-level app."""
    app.command("simulate")(simulate)
