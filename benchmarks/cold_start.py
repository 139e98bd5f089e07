"""Cold start: the first ``POST /labeling/next`` of many reviewers on a freshly started server over
a fresh store (a benchmark, not a test).

Per database: a fresh, migrated database and data folder; the shipped baseline registered as the
production model in a fresh MLflow store (as ``visionloop demo`` does; ``--no-baseline``: no
MLflow store at all, which the server creates on first use); ``--tasks`` open labeling
tasks; ``--reviewers`` signed-in reviewers. Then uvicorn serves the real app in a subprocess
(``app_factory``, as ``visionloop serve`` does) and, ``--delay`` seconds after ``/healthz`` first
answers, every reviewer asks for a task at the same moment. Prints the first request's
milliseconds (min / median / max over the reviewers) and the median of ``--rounds`` more rounds.
The class list starts empty, so the first lease seeds it from the production model's class names:
the request that needs the model registry.

    .venv/bin/python benchmarks/cold_start.py                       # SQLite and PostgreSQL
    .venv/bin/python benchmarks/cold_start.py --db postgresql --delay 15
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from ingest import fresh_database, server
from labeling import reviewer_sessions, seed
from visionloop.config import Settings
from visionloop.server.db import create_db_engine


def register_baseline(data_dir: Path, database_url: str) -> None:
    """The shipped baseline as version 1, alias production, in ``data_dir``'s MLflow store."""
    from visionloop.training.registry import Registry, ensure_baseline

    ensure_baseline(Registry.from_settings(Settings(data_dir=data_dir, database_url=database_url)))


def empty_class_list(url: str) -> None:
    """As on a fresh store: no label classes yet (the seeding above adds some)."""
    from sqlalchemy import text

    engine = create_db_engine(url, pool_size=1)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM label_classes"))
    engine.dispose()


def first_leases(url: str, tokens: list[str]) -> tuple[list[float], Counter[int]]:
    """Every reviewer asks for a task at the same moment: each request's milliseconds, and the
    answers' statuses (200 a task, 204 none, 503 "retry": the class list is still loading)."""
    times: list[float] = [0.0] * len(tokens)
    statuses = [0] * len(tokens)
    barrier = threading.Barrier(len(tokens))

    def lease(i: int) -> None:
        with httpx.Client(
            base_url=url,
            cookies={"visionloop_session": tokens[i]},
            headers={"X-Visionloop-CSRF": "1"},
            timeout=120,
        ) as c:
            barrier.wait()
            t0 = time.perf_counter()
            r = c.post("/api/v1/labeling/next")
            times[i] = (time.perf_counter() - t0) * 1000
            if r.status_code not in (200, 204, 503):
                raise RuntimeError(f"next: {r.status_code} {r.text[:200]}")
            if r.status_code == 200 and not r.json()["classes"]:
                raise RuntimeError("a task came with no class to label it with")
            statuses[i] = r.status_code

    threads = [threading.Thread(target=lease, args=(i,)) for i in range(len(tokens))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return times, Counter(statuses)


def first_task(url: str, token: str) -> float:
    """When (``perf_counter``) one reviewer, retrying every 0.5 s, first gets a task."""
    with httpx.Client(
        base_url=url,
        cookies={"visionloop_session": token},
        headers={"X-Visionloop-CSRF": "1"},
        timeout=120,
    ) as c:
        while True:
            r = c.post("/api/v1/labeling/next")
            if r.status_code == 200:
                return time.perf_counter()
            if r.status_code != 503:
                raise RuntimeError(f"next: {r.status_code} {r.text[:200]}")
            time.sleep(0.5)


def bench(kind: str, workdir: Path, args: argparse.Namespace) -> None:
    data_dir = workdir / kind
    data_dir.mkdir()
    with fresh_database(kind, data_dir, "cold") as db:
        seed(db, args.tasks * 10, args.tasks)
        empty_class_list(db.url)
        tokens = reviewer_sessions(db, args.reviewers)
        if args.baseline:
            register_baseline(data_dir, db.url)
        with server(db, data_dir) as srv:
            up = time.perf_counter()
            time.sleep(args.delay)
            first, statuses = first_leases(srv.url, tokens)
            first.sort()
            task_after_s = first_task(srv.url, tokens[0]) - up
            later = [ms for _ in range(args.rounds) for ms in first_leases(srv.url, tokens)[0]]
    registry = "baseline in production" if args.baseline else "empty registry, no store yet"
    print(
        f"[{kind}, {registry}] {args.reviewers} reviewers, {args.delay:g} s after /healthz: first "
        f"labeling/next min {first[0]:.0f} ms, median {statistics.median(first):.0f} ms, "
        f"max {first[-1]:.0f} ms (statuses {dict(sorted(statuses.items()))}); afterwards median "
        f"{statistics.median(later):.0f} ms ({args.rounds} rounds); a task with classes "
        f"{task_after_s:.1f} s after /healthz",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--reviewers", type=int, default=20)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3, help="Rounds timed after the first.")
    parser.add_argument(
        "--delay", type=float, default=0.0, help="Seconds between /healthz and the first round."
    )
    parser.add_argument(
        "--baseline",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Register the shipped baseline first (--no-baseline: the MLflow store is created "
        "by the server itself, as on a fresh install before any model).",
    )
    args = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    with tempfile.TemporaryDirectory(prefix="vl-cold-") as tmp:
        for kind in kinds:
            bench(kind, Path(tmp), args)


if __name__ == "__main__":
    main()
