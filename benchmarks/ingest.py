"""Ingest and read-API throughput of the visionloop server (a benchmark, not a test).

Ingest: uvicorn serves the real app in a subprocess (one worker process); client threads post
pre-encoded batches of 100 frames x 5 detections over loopback. Printed beside it: a raw DB-API
``executemany`` of the same rows into a fresh database with the same schema (migrated the same
way), one transaction per batch, in the same run; and the ratio server / raw.

Read: seeds ``--read-detections`` detections (default 1M) with raw executemany, then times the
read routes (median and p95 of ``--read-repeats`` calls each) through the same uvicorn server.

    .venv/bin/python benchmarks/ingest.py                      # SQLite and PostgreSQL
    .venv/bin/python benchmarks/ingest.py --db sqlite --no-read
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from visionloop.server.db import create_db_engine
from visionloop.server.migrate import upgrade

CLASSES = ("scratch", "dent", "crack", "stain")
PG_ADMIN_URL = os.environ.get(
    "VISIONLOOP_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


# --- data ----------------------------------------------------------------------------------------


def make_frames(
    n: int, dets: int, *, start: datetime, step: timedelta, seed: int = 0
) -> list[dict[str, Any]]:
    """``n`` frame records (JSON-ready dicts) with ``dets`` detections each."""
    import random

    rnd = random.Random(seed)
    frames = []
    for i in range(n):
        detections = []
        for k in range(dets):
            x1, y1 = rnd.random() * 0.8, rnd.random() * 0.8
            detections.append(
                {
                    "class_id": (i + k) % len(CLASSES),
                    "class_name": CLASSES[(i + k) % len(CLASSES)],
                    "confidence": round(rnd.random(), 4),
                    "xyxyn": [round(x1, 4), round(y1, 4), round(x1 + 0.1, 4), round(y1 + 0.1, 4)],
                }
            )
        frames.append(
            {
                "id": str(uuid.UUID(int=rnd.getrandbits(128), version=4)),
                "captured_at": (start + i * step).isoformat().replace("+00:00", "Z"),
                "model_version": "1",
                "width": 1280,
                "height": 720,
                "stats": {"brightness": 0.5, "contrast": 0.2, "sharpness": 120.5},
                "detections": detections,
                "sample_reason": "uncertain" if i % 50 == 0 else None,
            }
        )
    return frames


def _iso_db(ts: str) -> str:
    # The text form SQLAlchemy stores in SQLite: 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC).
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M:%S.%f")


def raw_rows(
    frames: list[dict[str, Any]], device_id: int, *, sqlite_form: bool, first_pk: int
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The frame and detection rows the server would store, as DB-API tuples. Frame keys are
    assigned here from ``first_pk`` (the server gets them back from INSERT … RETURNING)."""
    now = datetime.now(UTC)
    received: Any = now.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite_form else now
    frame_rows, det_rows = [], []
    for pk, f in enumerate(frames, start=first_pk):
        fid: Any = uuid.UUID(f["id"]).hex if sqlite_form else uuid.UUID(f["id"])
        ts: Any = (
            _iso_db(f["captured_at"])
            if sqlite_form
            else datetime.fromisoformat(f["captured_at"].replace("Z", "+00:00"))
        )
        dets = f["detections"]
        frame_rows.append(
            (
                pk,
                fid,
                device_id,
                ts,
                received,
                f["model_version"],
                f["width"],
                f["height"],
                f["stats"]["brightness"],
                f["stats"]["contrast"],
                f["stats"]["sharpness"],
                f["sample_reason"],
                len(dets),
                max((d["confidence"] for d in dets), default=None),
            )
        )
        for d in dets:
            det_rows.append(
                (pk, device_id, ts, d["class_id"], d["class_name"], d["confidence"], *d["xyxyn"])
            )
    return frame_rows, det_rows


FRAME_COLS = (
    "pk, id, device_id, captured_at, received_at, model_version, width, height, brightness, "
    "contrast, sharpness, sample_reason, detection_count, max_confidence"
)
DET_COLS = "frame_pk, device_id, captured_at, class_id, class_name, confidence, x1, y1, x2, y2"


# --- databases -----------------------------------------------------------------------------------


@dataclass
class Database:
    kind: str  # sqlite | postgresql
    url: str
    drop: Any = None


@contextmanager
def fresh_database(kind: str, workdir: Path, name: str) -> Iterator[Database]:
    """A fresh, migrated database with one device (id 1); dropped afterwards for PostgreSQL."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    if kind == "sqlite":
        url = f"sqlite:///{workdir / name}.db"
    else:
        dbname = f"visionloop_bench_{name}_{uuid.uuid4().hex[:6]}"
        admin = create_db_engine(PG_ADMIN_URL).execution_options(isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{dbname}"'))
        url = make_url(PG_ADMIN_URL).set(database=dbname).render_as_string(hide_password=False)
    engine = create_db_engine(url)
    upgrade(engine)
    with engine.begin() as c:
        c.execute(
            text("INSERT INTO devices (id, name, created_at) VALUES (1, 'bench', :t)"),
            {"t": datetime.now(UTC)},
        )
    engine.dispose()
    try:
        yield Database(kind, url)
    finally:
        if kind == "postgresql":
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))
            admin.dispose()


def add_token(db: Database) -> str:
    from sqlalchemy.orm import Session

    from visionloop.server.auth import token_sha256
    from visionloop.server.models import DeviceToken

    token = "vld_bench_" + uuid.uuid4().hex
    engine = create_db_engine(db.url)
    with Session(engine) as s, s.begin():
        s.add(
            DeviceToken(device_id=1, token_sha256=token_sha256(token), created_at=datetime.now(UTC))
        )
    engine.dispose()
    return token


def add_viewer_session(db: Database) -> str:
    from sqlalchemy.orm import Session

    from visionloop.server.auth import Role
    from visionloop.server.store import people

    engine = create_db_engine(db.url)
    with Session(engine) as s, s.begin():
        user = people.add_user(s, name="bench-viewer", role=Role.VIEWER, password_hash="x")
        token = people.open_session(s, user_id=user.id, ttl=timedelta(hours=2))
    engine.dispose()
    return token


def raw_insert(db: Database, batches: list[list[dict[str, Any]]]) -> tuple[float, float]:
    """Wall and CPU seconds (of this process) to insert ``batches`` with plain DB-API
    executemany, one transaction each."""
    rows = []
    first_pk = 1
    for b in batches:
        rows.append(raw_rows(b, 1, sqlite_form=db.kind == "sqlite", first_pk=first_pk))
        first_pk += len(b)
    if db.kind == "sqlite":
        path = db.url.removeprefix("sqlite:///")
        conn = sqlite3.connect(path, isolation_level=None)
        for pragma in ("journal_mode=WAL", "foreign_keys=ON", "synchronous=NORMAL"):
            conn.execute(f"PRAGMA {pragma}")
        f_sql = f"INSERT INTO frames ({FRAME_COLS}) VALUES ({', '.join('?' * 14)})"
        d_sql = f"INSERT INTO detections ({DET_COLS}) VALUES ({', '.join('?' * 10)})"
        t0, c0 = time.perf_counter(), time.process_time()
        for frame_rows, det_rows in rows:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(f_sql, frame_rows)
            conn.executemany(d_sql, det_rows)
            conn.execute("COMMIT")
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        conn.close()
        return elapsed, cpu
    import psycopg
    from sqlalchemy.engine import make_url

    u = make_url(db.url)
    conn_pg = psycopg.connect(host=u.host, port=u.port or 5432, user=u.username, dbname=u.database)
    f_sql = f"INSERT INTO frames ({FRAME_COLS}) VALUES ({', '.join(['%s'] * 14)})"
    d_sql = f"INSERT INTO detections ({DET_COLS}) VALUES ({', '.join(['%s'] * 10)})"
    t0, c0 = time.perf_counter(), time.process_time()
    for frame_rows, det_rows in rows:
        with conn_pg.transaction(), conn_pg.cursor() as cur:
            cur.executemany(f_sql, frame_rows)
            cur.executemany(d_sql, det_rows)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    conn_pg.close()
    return elapsed, cpu


# --- the server ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    url: str
    pid: int


@contextmanager
def server(db: Database, workdir: Path) -> Iterator[Server]:
    """uvicorn serving the app over ``db`` in a subprocess (one worker)."""
    port = _free_port()
    env = {
        **os.environ,
        "VISIONLOOP_DATA_DIR": str(workdir),
        "VISIONLOOP_DATABASE_URL": db.url,
    }
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "visionloop.cli.server:app_factory",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    proc = subprocess.Popen(cmd, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the server did not start")
            time.sleep(0.1)
        yield Server(url, proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def post_batches(url: str, token: str, bodies: list[bytes], concurrency: int) -> float:
    """Seconds to post every body, ``concurrency`` client threads sharing the queue."""
    lock = threading.Lock()
    queue = list(reversed(bodies))
    errors: list[str] = []

    def worker() -> None:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        with httpx.Client(base_url=url, headers=headers, timeout=60) as c:
            while True:
                with lock:
                    if not queue:
                        return
                    body = queue.pop()
                r = c.post("/api/v1/ingest", content=body)
                if r.status_code != 200:
                    errors.append(f"{r.status_code} {r.text[:200]}")
                    return

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"ingest failed: {errors[0]}")
    return elapsed


def bench_ingest(kind: str, workdir: Path, args: argparse.Namespace) -> dict[str, float]:
    per_batch = args.frames_per_batch
    start = datetime.now(UTC) - timedelta(hours=1)
    step = timedelta(milliseconds=10)  # time-ordered, like a camera's stream
    warm = [
        make_frames(
            per_batch,
            args.detections,
            start=start - timedelta(hours=1) + i * per_batch * step,
            step=step,
            seed=10_000 + i,
        )
        for i in range(args.warmup)
    ]
    batches = [
        make_frames(
            per_batch, args.detections, start=start + i * per_batch * step, step=step, seed=i
        )
        for i in range(args.batches)
    ]
    bodies = [json.dumps({"frames": b}).encode() for b in batches]
    warm_bodies = [json.dumps({"frames": b}).encode() for b in warm]
    n_frames = per_batch * args.batches
    n_dets = n_frames * args.detections

    with fresh_database(kind, workdir, "ingest") as db:
        token = add_token(db)
        with server(db, workdir) as srv:
            post_batches(srv.url, token, warm_bodies, args.concurrency)
            cpu0 = process_cpu_s(srv.pid)
            server_s = post_batches(srv.url, token, bodies, args.concurrency)
            server_cpu = process_cpu_s(srv.pid) - cpu0
    with fresh_database(kind, workdir, "raw") as raw_db:
        raw_s, raw_cpu = raw_insert(raw_db, batches)
    result = {
        "server_frames_per_s": n_frames / server_s,
        "server_detections_per_s": n_dets / server_s,
        "raw_frames_per_s": n_frames / raw_s,
        "raw_detections_per_s": n_dets / raw_s,
        "server_cpu_ms_per_batch": server_cpu / args.batches * 1000,
        "raw_cpu_ms_per_batch": raw_cpu / args.batches * 1000,
    }
    result["ratio"] = result["server_detections_per_s"] / result["raw_detections_per_s"]
    result["cpu_ratio"] = raw_cpu / server_cpu
    print(
        f"[{kind}] ingest {args.batches} batches x {per_batch} frames x {args.detections} "
        f"detections, {args.concurrency} client threads, 1 server process\n"
        f"  server : {result['server_frames_per_s']:>10,.0f} frames/s "
        f"{result['server_detections_per_s']:>11,.0f} detections/s "
        f"(server process CPU {result['server_cpu_ms_per_batch']:.1f} ms/batch: "
        f"{n_dets / server_cpu:,.0f} detections per CPU-second)\n"
        f"  raw    : {result['raw_frames_per_s']:>10,.0f} frames/s "
        f"{result['raw_detections_per_s']:>11,.0f} detections/s (executemany, txn per batch; "
        f"CPU {result['raw_cpu_ms_per_batch']:.1f} ms/batch)\n"
        f"  ratio  : {result['ratio']:.2f} wall-clock, {result['cpu_ratio']:.2f} by CPU time "
        f"(load average {os.getloadavg()[0]:.1f})",
        flush=True,
    )
    return result


# --- read API ------------------------------------------------------------------------------------


def seed(db: Database, n_detections: int, dets_per_frame: int = 5) -> None:
    """``n_detections`` detections over frames spread evenly across the last 30 days."""
    n_frames = n_detections // dets_per_frame
    now = datetime.now(UTC)
    step = timedelta(days=30) / n_frames
    chunk = 20_000
    t0 = time.perf_counter()
    batches = (
        make_frames(
            min(chunk, n_frames - i),
            dets_per_frame,
            start=now - timedelta(days=30) + i * step,
            step=step,
            seed=i,
        )
        for i in range(0, n_frames, chunk)
    )
    raw_insert(db, list(batches))
    # The rows went in behind ingest's back: build the hourly rollups the statistics read.
    from visionloop.server.store.stats import rebuild_rollups

    engine = create_db_engine(db.url)
    with engine.begin() as c:
        rebuild_rollups(c)
    engine.dispose()
    if db.kind == "postgresql":
        from sqlalchemy import text

        engine = create_db_engine(db.url)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(text("VACUUM ANALYZE"))
        engine.dispose()
    else:
        conn = sqlite3.connect(db.url.removeprefix("sqlite:///"))
        conn.execute("ANALYZE")
        conn.close()
    print(
        f"  seeded {n_frames:,} frames / {n_detections:,} detections "
        f"in {time.perf_counter() - t0:.1f} s",
        flush=True,
    )


def bench_read(kind: str, workdir: Path, args: argparse.Namespace) -> dict[str, float]:
    results: dict[str, float] = {}
    print(f"[{kind}] read API with {args.read_detections:,} detections stored", flush=True)
    with fresh_database(kind, workdir, "read") as db:
        seed(db, args.read_detections)
        cookie = add_viewer_session(db)
        with (
            server(db, workdir) as srv,
            httpx.Client(base_url=srv.url, cookies={"visionloop_session": cookie}, timeout=60) as c,
        ):
            first = c.get("/api/v1/frames", params={"limit": 50}).json()
            some_id = first["items"][0]["id"]
            cursor = first["next_cursor"]
            for _ in range(20):  # a cursor 20 pages deep
                cursor = c.get("/api/v1/frames", params={"limit": 50, "cursor": cursor}).json()[
                    "next_cursor"
                ]
            week_ago = (datetime.now(UTC) - timedelta(days=7)).isoformat()
            cases: list[tuple[str, str, dict[str, Any]]] = [
                ("frames newest 50", "/api/v1/frames", {"limit": 50}),
                ("frames page 21 (cursor)", "/api/v1/frames", {"limit": 50, "cursor": cursor}),
                ("frames device=1", "/api/v1/frames", {"device_id": 1, "limit": 50}),
                ("frames class=crack", "/api/v1/frames", {"class_name": "crack", "limit": 50}),
                ("frames conf>=0.95", "/api/v1/frames", {"min_confidence": 0.95, "limit": 50}),
                (
                    "frames class+conf 0.4-0.45",
                    "/api/v1/frames",
                    {
                        "class_name": "dent",
                        "min_confidence": 0.4,
                        "max_confidence": 0.45,
                        "limit": 50,
                    },
                ),
                ("frames sampled", "/api/v1/frames", {"sampled": "true", "limit": 50}),
                ("frames until a week ago", "/api/v1/frames", {"until": week_ago, "limit": 50}),
                ("frame detail", f"/api/v1/frames/{some_id}", {}),
                ("stats window=1h", "/api/v1/stats/summary", {"window": "1h"}),
                ("stats window=24h", "/api/v1/stats/summary", {"window": "24h"}),
                ("stats window=7d", "/api/v1/stats/summary", {"window": "7d"}),
                ("stats window=30d (all)", "/api/v1/stats/summary", {"window": "30d"}),
                ("rate window=1h (minutes)", "/api/v1/stats/rate", {"window": "1h"}),
                ("rate window=7d (hours)", "/api/v1/stats/rate", {"window": "7d"}),
            ]
            for name, path, params in cases:
                times = []
                for _ in range(args.read_repeats):
                    t0 = time.perf_counter()
                    r = c.get(path, params=params)
                    times.append((time.perf_counter() - t0) * 1000)
                    if r.status_code != 200:
                        raise RuntimeError(f"{name}: {r.status_code} {r.text[:200]}")
                times.sort()
                p50 = statistics.median(times)
                p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
                results[name] = p50
                print(f"  {name:<30} median {p50:8.1f} ms   p95 {p95:8.1f} ms", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--frames-per-batch", type=int, default=100)
    parser.add_argument("--detections", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--no-ingest", action="store_true")
    parser.add_argument("--no-read", action="store_true")
    parser.add_argument("--read-detections", type=int, default=1_000_000)
    parser.add_argument("--read-repeats", type=int, default=15)
    args = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    with tempfile.TemporaryDirectory(prefix="vl-bench-") as tmp:
        workdir = Path(tmp)
        for kind in kinds:
            if not args.no_ingest:
                bench_ingest(kind, workdir, args)
            if not args.no_read:
                bench_read(kind, workdir, args)


if __name__ == "__main__":
    main()
