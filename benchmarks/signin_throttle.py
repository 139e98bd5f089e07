"""A bystander signs in while one user name is under attack from the same address (issue 20,
finding 7; a benchmark, not a test).

A real server (uvicorn in a subprocess, as ``visionloop serve``) over a fresh database with two
people, ``rita`` (attacked) and ``sam`` (the bystander). ``--attackers`` threads send wrong
passwords for ``rita`` as fast as the server answers, for ``--seconds``; meanwhile ``sam``, from
the same address (127.0.0.1), signs in with the right password once a second. Prints the
attackers' answers (401: checked, 429: refused unchecked), the bystander's answers and the
bystander's sign-in time (median and max, milliseconds), and whether ``rita`` herself can sign in
once the attack stops (and after how long).

    .venv/bin/python benchmarks/signin_throttle.py --seconds 30
    .venv/bin/python benchmarks/signin_throttle.py --db postgresql
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

PASSWORD = "correct-horse-battery"
CSRF = {"X-Visionloop-CSRF": "1"}


def add_people(url: str) -> None:
    from sqlalchemy.orm import Session

    from visionloop.server.auth import Role
    from visionloop.server.db import create_db_engine, write_engine
    from visionloop.server.store import people

    engine = create_db_engine(url)
    with Session(write_engine(engine)) as session, session.begin():
        for name in ("rita", "sam"):
            people.create_user(session, name=name, role=Role.VIEWER, password=PASSWORD)
    engine.dispose()


def login(client: httpx.Client, base: str, name: str, password: str) -> httpx.Response:
    return client.post(
        f"{base}/api/v1/auth/login", json={"username": name, "password": password}, headers=CSRF
    )


def run(kind: str, seconds: float, attackers: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, fresh_database(kind, Path(tmp), "throttle") as db:
        add_people(db.url)
        with server(db, Path(tmp)) as srv:
            stop = threading.Event()
            attack: Counter[int] = Counter()
            lock = threading.Lock()

            def attacker(k: int) -> None:
                with httpx.Client(timeout=30) as client:
                    i = 0
                    while not stop.is_set():
                        status = login(client, srv.url, "rita", f"guess-{k}-{i}").status_code
                        i += 1
                        with lock:
                            attack[status] += 1

            threads = [threading.Thread(target=attacker, args=(k,)) for k in range(attackers)]
            for t in threads:
                t.start()
            bystander: Counter[int] = Counter()
            times_ms: list[float] = []
            deadline = time.monotonic() + seconds
            with httpx.Client(timeout=30) as client:
                while time.monotonic() < deadline:
                    t0 = time.perf_counter()
                    status = login(client, srv.url, "sam", PASSWORD).status_code
                    times_ms.append((time.perf_counter() - t0) * 1000)
                    bystander[status] += 1
                    time.sleep(max(0.0, 1.0 - (time.perf_counter() - t0)))
            stop.set()
            for t in threads:
                t.join()
            # The attacked person, once the attack stops: how long until her password works?
            waited = 0.0
            with httpx.Client(timeout=30) as client:
                while True:
                    r = login(client, srv.url, "rita", PASSWORD)
                    if r.status_code != 429:
                        break
                    wait = float(r.headers.get("retry-after", "1"))
                    time.sleep(wait)
                    waited += wait
            print(
                f"{kind}: {seconds:g} s, {attackers} attacker thread(s) on 'rita' from 127.0.0.1: "
                f"{dict(sorted(attack.items()))} (401 checked, 429 refused unchecked)"
            )
            print(
                f"  bystander 'sam' from the same address: {dict(sorted(bystander.items()))}, "
                f"sign-in {statistics.median(times_ms):.0f} ms median, {max(times_ms):.0f} ms max"
            )
            print(f"  'rita' after the attack: {r.status_code} after waiting {waited:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="sqlite")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--attackers", type=int, default=2)
    args = parser.parse_args()
    for kind in ("sqlite", "postgresql") if args.db == "both" else (args.db,):
        run(kind, args.seconds, args.attackers)


if __name__ == "__main__":
    main()
