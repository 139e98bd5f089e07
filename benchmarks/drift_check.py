"""Cost of one whole drift check over a large window on a real database (a benchmark, not a
test): ``visionloop.monitoring.checks.check_device`` as the worker's ``drift_check`` job runs it,
reading the device's reference and current windows (frames, detections, features), running
Evidently's DataDriftPreset with its HTML report, and storing the check.

    .venv/bin/python benchmarks/drift_check.py [--window 10000] [--db sqlite] [--repeats 3]

The device gets twice ``--window`` nominal frames of the synthetic line with the simulated
detector's detections (``visionloop.vision.synthetic.records``; 1,000 rendered frames repeated
with fresh ids and capture times, since rendering is not what is measured), so its automatic
reference (its first ``--window`` frames) and its current window are both full: the most a check
reads, with ``--reference auto``; with ``--reference model`` (the default, what a device
running a registered version with a profile gets) the reference comes from the profile and
only the current window is read. Evidently is imported (and warmed by one check) before the
timed checks, as in a worker, which imports it once.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.progress import track

from ingest import fresh_database
from machine import cpu_name, load_average
from visionloop.config import Settings
from visionloop.monitoring.profile import Profile
from visionloop.server.db import create_db_engine, write_engine
from visionloop.types import FrameRecord
from visionloop.vision.synthetic.line import SyntheticLine
from visionloop.vision.synthetic.records import SIZE_WH, simulated_records
from visionloop.vision.synthetic.schedule import Drift

RENDERED = 1_000
MODEL_VERSION = "1"  # what simulated_records report
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def seed_frames(url: str, total: int) -> None:
    """``total`` nominal frame records for device 1, in batches through the ingest store."""
    from visionloop.server.store.ingest import insert_frames

    line = SyntheticLine(seed=0, size_wh=SIZE_WH)
    rendered = simulated_records(line, draw=0, count=RENDERED, drift=Drift("nominal", 0.0), t0=T0)
    engine = create_db_engine(url)
    gap = timedelta(milliseconds=100)
    try:
        for start in track(range(0, total, RENDERED), description="storing frames"):
            batch = []
            for i in range(start, min(start + RENDERED, total)):
                record = dict(rendered[i % RENDERED])
                record["id"] = str(uuid.uuid4())
                record["captured_at"] = (T0 + i * gap).isoformat()
                batch.append(FrameRecord.model_validate(record))
            with write_engine(engine).begin() as connection:
                insert_frames(connection, device_id=1, frames=batch, received_at=datetime.now(UTC))
    finally:
        engine.dispose()


def model_profile(window: int) -> Profile:
    """A model version's reference profile of ``window`` nominal frames (the frames' own
    records, as ``models register --reference-data`` would profile them)."""
    from visionloop.monitoring.features import records_table

    line = SyntheticLine(seed=0, size_wh=SIZE_WH)
    rendered = simulated_records(line, draw=1, count=RENDERED, drift=Drift("nominal", 0.0), t0=T0)
    table = records_table(rendered[i % RENDERED] for i in range(window))
    return Profile(version=MODEL_VERSION, features=table, created_at=T0)


def timed_checks(settings: Settings, repeats: int, profile: Profile | None) -> list[float]:
    """Seconds of each of ``repeats`` checks of device 1, after an untimed first one; the stored
    checks are deleted before each (a check of the same frames again is skipped). With
    ``profile``, the device's model version has that reference profile (the default in
    production: only the current window is read); without, the automatic reference."""
    from sqlalchemy import text
    from sqlalchemy.orm import sessionmaker

    from visionloop.monitoring.checks import check_device
    from visionloop.server.blobs import LocalBlobStore

    engine = create_db_engine(settings.database_url, pool_size=1)
    read = sessionmaker(engine, expire_on_commit=False)
    write = sessionmaker(write_engine(engine), expire_on_commit=False)
    blobs = LocalBlobStore(settings.blobs_path)
    seconds = []
    try:
        for i in range(repeats + 1):
            with write_engine(engine).begin() as connection:  # else: "no new frames"
                connection.execute(text("DELETE FROM drift_alarms"))
                connection.execute(text("DELETE FROM drift_checks"))
            started = time.perf_counter()
            outcome = check_device(
                read_sessions=read,
                write_sessions=write,
                blobs=blobs,
                settings=settings,
                device_id=1,
                profiles=lambda version: profile if version == MODEL_VERSION else None,
            )
            if outcome.skipped:
                raise SystemExit(f"the check was skipped: {outcome.skipped}")
            if i:
                seconds.append(time.perf_counter() - started)
    finally:
        engine.dispose()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--window", type=int, default=10_000, help="frames per window")
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--repeats", type=int, default=3, help="timed checks")
    parser.add_argument(
        "--reference",
        choices=("model", "auto"),
        default="model",
        help="the model version's profile (production's default) or the device's first frames",
    )
    args = parser.parse_args()
    console = Console()
    console.print(f"CPU: {cpu_name()}, {os.cpu_count()} CPUs; load average {load_average()}")
    with tempfile.TemporaryDirectory() as tmp, fresh_database(args.db, Path(tmp), "drift") as db:
        seed_frames(db.url, 2 * args.window)
        settings = Settings(
            database_url=db.url, data_dir=Path(tmp) / "var", drift_window=args.window
        )
        started = time.perf_counter()
        import evidently  # noqa: F401  (what a worker pays once)

        imported = time.perf_counter() - started
        profile = model_profile(args.window) if args.reference == "model" else None
        seconds = timed_checks(settings, args.repeats, profile)
    console.print(
        f"{args.db}, window {args.window:,} frames against "
        + (
            f"a model profile of {args.window:,}"
            if profile
            else f"an automatic reference of {args.window:,}"
        )
        + f": Evidently import {imported:.2f} s (once per worker); whole check "
        f"median {statistics.median(seconds):.2f} s over {len(seconds)} "
        f"({', '.join(f'{s:.2f}' for s in seconds)}); load average after {load_average()}"
    )


if __name__ == "__main__":
    main()
