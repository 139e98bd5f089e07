"""Labeling queue latency: ``POST /labeling/next`` and ``submit`` over HTTP with a large store
(a benchmark, not a test).

Seeds ``--frames`` frames (default 1M) with raw inserts (SQLite executemany, PostgreSQL COPY);
every ``frames / tasks``-th one is a sampled frame with an image, two detections and an open
task of random priority (default 100k tasks). Then uvicorn serves the real app in a subprocess
(one worker) and reviewers lease and submit: first one reviewer alone, then ``--reviewers``
(default 8) at once, each timing every request. Prints median and p95 per route.

    .venv/bin/python benchmarks/labeling.py                  # SQLite and PostgreSQL
    .venv/bin/python benchmarks/labeling.py --db sqlite --frames 100000 --tasks 10000
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from ingest import CLASSES, Database, fresh_database, process_cpu_s, server
from visionloop.server.db import create_db_engine

CHUNK = 50_000
FRAME_COLS = (
    "pk",
    "id",
    "device_id",
    "captured_at",
    "received_at",
    "model_version",
    "width",
    "height",
    "brightness",
    "contrast",
    "sharpness",
    "sample_reason",
    "detection_count",
    "max_confidence",
    "image_sha256",
    "image_content_type",
)
DET_COLS = (
    "frame_pk",
    "device_id",
    "captured_at",
    "class_id",
    "class_name",
    "confidence",
    "x1",
    "y1",
    "x2",
    "y2",
)
TASK_COLS = ("frame_pk", "reason", "status", "priority", "created_at", "device_id", "top_class")


def _ts(t: datetime, sqlite_form: bool) -> Any:
    return t.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite_form else t


def rows(
    start: int, n: int, every: int, *, sqlite_form: bool, rnd: random.Random
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Frames ``start+1 .. start+n`` (pk), their detections and tasks, as DB-API tuples."""
    now = datetime.now(UTC)
    frames, dets, tasks = [], [], []
    for pk in range(start + 1, start + n + 1):
        captured = _ts(now - timedelta(seconds=pk), sqlite_form)
        fid = uuid.UUID(int=rnd.getrandbits(128), version=4)
        sampled = pk % every == 0
        conf = round(rnd.random(), 4)
        frames.append(
            (
                pk,
                fid.hex if sqlite_form else fid,
                1,
                captured,
                _ts(now, sqlite_form),
                "1",
                1280,
                720,
                0.5,
                0.2,
                120.0,
                "uncertain" if sampled else None,
                2 if sampled else 0,
                conf if sampled else None,
                "ab" * 32 if sampled else None,
                "image/jpeg" if sampled else None,
            )
        )
        if sampled:
            for k in range(2):
                x, y = rnd.random() * 0.8, rnd.random() * 0.8
                cls = (pk + k) % len(CLASSES)
                dets.append((pk, 1, captured, cls, CLASSES[cls], conf, x, y, x + 0.1, y + 0.1))
            tasks.append(
                (pk, "uncertain", "open", rnd.random(), _ts(now, sqlite_form), 1, CLASSES[0])
            )
    return frames, dets, tasks


def seed(db: Database, n_frames: int, n_tasks: int) -> None:
    every = max(1, n_frames // n_tasks)
    rnd = random.Random(0)
    t0 = time.perf_counter()
    sqlite_form = db.kind == "sqlite"
    if sqlite_form:
        conn = sqlite3.connect(db.url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")

        def sql(table: str, cols: tuple[str, ...]) -> str:
            return f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"

        for start in range(0, n_frames, CHUNK):
            frames, dets, tasks = rows(
                start, min(CHUNK, n_frames - start), every, sqlite_form=True, rnd=rnd
            )
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(sql("frames", FRAME_COLS), frames)
            conn.executemany(sql("detections", DET_COLS), dets)
            conn.executemany(sql("label_tasks", TASK_COLS), tasks)
            conn.execute("COMMIT")
        conn.execute(
            "INSERT INTO label_classes (id, name, source, created_at) VALUES "
            + ", ".join(
                f"({i}, '{n}', 'model', '2026-01-01 00:00:00.000000')"
                for i, n in enumerate(CLASSES)
            )
        )
        conn.execute("ANALYZE")
        conn.close()
    else:
        import psycopg
        from sqlalchemy.engine import make_url

        u = make_url(db.url)
        with psycopg.connect(
            host=u.host, port=u.port or 5432, user=u.username, dbname=u.database
        ) as pg:
            for start in range(0, n_frames, CHUNK):
                frames, dets, tasks = rows(
                    start, min(CHUNK, n_frames - start), every, sqlite_form=False, rnd=rnd
                )
                with pg.cursor() as cur:
                    for table, cols, data in (
                        ("frames", FRAME_COLS, frames),
                        ("detections", DET_COLS, dets),
                        ("label_tasks", TASK_COLS, tasks),
                    ):
                        with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:
                            for row in data:
                                copy.write_row(row)
                pg.commit()
            with pg.cursor() as cur:
                cur.execute("SELECT setval('frames_pk_seq', (SELECT max(pk) FROM frames))")
                for i, name in enumerate(CLASSES):
                    cur.execute(
                        "INSERT INTO label_classes (id, name, source, created_at) "
                        "VALUES (%s, %s, 'model', now())",
                        (i, name),
                    )
            pg.commit()
            pg.autocommit = True
            pg.execute("VACUUM ANALYZE")
    print(
        f"  seeded {n_frames:,} frames, {n_frames // every:,} open tasks "
        f"in {time.perf_counter() - t0:.1f} s",
        flush=True,
    )


def reviewer_sessions(db: Database, n: int) -> list[str]:
    from sqlalchemy.orm import Session

    from visionloop.server.auth import Role
    from visionloop.server.store import people

    engine = create_db_engine(db.url)
    tokens = []
    with Session(engine) as s, s.begin():
        for i in range(n):
            user = people.add_user(s, name=f"reviewer-{i}", role=Role.REVIEWER, password_hash="x")
            tokens.append(people.open_session(s, user_id=user.id, ttl=timedelta(hours=2)))
    engine.dispose()
    return tokens


def cycles(url: str, token: str, n: int, out: dict[str, list[float]], lock: threading.Lock) -> None:
    """``n`` lease + submit cycles; appends each request's milliseconds to ``out``."""
    mine: dict[str, list[float]] = {"next": [], "submit": []}
    with httpx.Client(
        base_url=url,
        cookies={"visionloop_session": token},
        headers={"X-Visionloop-CSRF": "1"},
        timeout=60,
    ) as c:
        for _ in range(n):
            t0 = time.perf_counter()
            r = c.post("/api/v1/labeling/next")
            mine["next"].append((time.perf_counter() - t0) * 1000)
            if r.status_code != 200:
                raise RuntimeError(f"next: {r.status_code} {r.text[:200]}")
            task = r.json()["task"]
            labels = [{"class_id": p["class_id"], "xyxyn": p["xyxyn"]} for p in task["predictions"]]
            t0 = time.perf_counter()
            r = c.post(f"/api/v1/labeling/tasks/{task['id']}/submit", json={"labels": labels[:1]})
            mine["submit"].append((time.perf_counter() - t0) * 1000)
            if r.status_code != 200:
                raise RuntimeError(f"submit: {r.status_code} {r.text[:200]}")
    with lock:
        for key, values in mine.items():
            out[key].extend(values)


def baseline(url: str, token: str, n: int) -> list[float]:
    """Milliseconds of ``n`` calls to the cheapest signed-in route: the floor of this machine's
    HTTP + session check, to read the labeling figures against under load."""
    times = []
    with httpx.Client(base_url=url, cookies={"visionloop_session": token}, timeout=60) as c:
        for _ in range(n):
            t0 = time.perf_counter()
            c.get("/api/v1/auth/me").raise_for_status()
            times.append((time.perf_counter() - t0) * 1000)
    return times


def report(label: str, times: dict[str, list[float]]) -> None:
    for route, values in times.items():
        values.sort()
        p50 = statistics.median(values)
        p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
        print(
            f"  {label:<20} {route:<20} n={len(values):<5} "
            f"median {p50:6.1f} ms   p95 {p95:6.1f} ms",
            flush=True,
        )


def bench(kind: str, workdir: Path, args: argparse.Namespace) -> None:
    print(f"[{kind}] {args.frames:,} frames, {args.tasks:,} open tasks", flush=True)
    with fresh_database(kind, workdir, "labeling") as db:
        seed(db, args.frames, args.tasks)
        tokens = reviewer_sessions(db, max(1, args.reviewers))
        with server(db, workdir) as srv:
            lock = threading.Lock()
            warm: dict[str, list[float]] = {"next": [], "submit": []}
            cycles(srv.url, tokens[0], args.warmup, warm, lock)
            floor = baseline(srv.url, tokens[0], args.cycles)
            report("1 reviewer", {"GET /auth/me (floor)": floor})
            alone: dict[str, list[float]] = {"next": [], "submit": []}
            cpu0 = process_cpu_s(srv.pid)
            cycles(srv.url, tokens[0], args.cycles, alone, lock)
            cpu_ms = (process_cpu_s(srv.pid) - cpu0) * 1000 / args.cycles
            report("1 reviewer", alone)
            print(f"  server CPU per next + submit: {cpu_ms:.1f} ms", flush=True)
            together: dict[str, list[float]] = {"next": [], "submit": []}
            threads = [
                threading.Thread(target=cycles, args=(srv.url, t, args.cycles // 2, together, lock))
                for t in tokens
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            report(f"{len(tokens)} reviewers at once", together)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--cycles", type=int, default=400, help="Lease+submit cycles timed.")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--reviewers", type=int, default=8)
    args = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    with tempfile.TemporaryDirectory(prefix="vl-bench-") as tmp:
        for kind in kinds:
            bench(kind, Path(tmp), args)


if __name__ == "__main__":
    main()
