"""Edge test support: frame sources with controlled timing, fault injection, server read-back."""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from numpy.typing import NDArray


@dataclass
class TestFrame:
    """Duck-typed ``visionloop.vision.sources.Frame``."""

    index: int
    captured_at: datetime
    frame_bgr: NDArray[np.uint8]


class ArraySource:
    """A ``FrameSource`` over generated frames; ``live`` sources drop, file sources block."""

    def __init__(self, n: int, *, live: bool = False, size_wh: tuple[int, int] = (640, 480)):
        self.n = n
        self.live = live
        rng = np.random.default_rng(0)
        w, h = size_wh
        self._frames = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(4)]
        self.produced = 0
        self.closed = False

    def __iter__(self) -> Iterator[TestFrame]:
        t0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
        for i in range(self.n):
            if self.closed:
                return
            self.produced += 1
            yield TestFrame(i, t0 + timedelta(milliseconds=33 * i), self._frames[i % 4])

    def close(self) -> None:
        self.closed = True


# --- fault injection between the agent and a real server ----------------------------------------


class FaultTransport(httpx.BaseTransport):
    """Wraps a real transport and breaks it on purpose.

    ``down()`` True: every request fails to connect. Otherwise each request draws once:
    ``fail_rate`` answers 500 without reaching the server; ``stall_rate`` hangs ``stall_s`` then
    times out without reaching the server; ``lost_rate`` reaches the server (which stores the
    batch) and then loses the answer, so the agent must resend what the server already has.
    ``corrupt_downloads`` zeroes bytes in model downloads (``/onnx``). ``poison_one_frame``
    picks one frame of the first ingest and gives it an impossible width every time it is sent,
    as a corrupted record would be: the server must reject it by name. ``crash_ids`` makes the
    server's ingest answer 500 for any batch holding one of those frame ids (a record that
    trips a server bug), and ``crash_first_middle`` adds the middle frame of the first ingest
    to them; ``/readyz`` still answers. ``raise_on_heartbeat`` makes heartbeats raise an
    exception that is not an ``httpx`` error, as a bug in the HTTP stack would.
    """

    def __init__(
        self,
        inner: httpx.BaseTransport,
        *,
        down: Callable[[], bool] = lambda: False,
        fail_rate: float = 0.0,
        stall_rate: float = 0.0,
        lost_rate: float = 0.0,
        stall_s: float = 0.2,
        corrupt_downloads: bool = False,
        poison_one_frame: bool = False,
        crash_ids: set[str] | None = None,
        crash_first_middle: bool = False,
        raise_on_heartbeat: bool = False,
        seed: int = 0,
    ) -> None:
        self.inner = inner
        self.down = down
        self.fail_rate = fail_rate
        self.stall_rate = stall_rate
        self.lost_rate = lost_rate
        self.stall_s = stall_s
        self.corrupt_downloads = corrupt_downloads
        self.poison_one_frame = poison_one_frame
        self.poisoned_id: str | None = None
        self.crash_ids: set[str] = crash_ids if crash_ids is not None else set()
        self.crash_first_middle = crash_first_middle
        self.raise_on_heartbeat = raise_on_heartbeat
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.ingest_sizes: list[int] = []

    def close(self) -> None:
        self.inner.close()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        with self._lock:
            draw = self._rng.random()
            self.calls["total"] += 1
        if self.down():
            self.calls["down"] += 1
            raise httpx.ConnectError("injected: server down", request=request)
        if draw < self.fail_rate:
            self.calls["500"] += 1
            return httpx.Response(500, json={"detail": "injected failure"}, request=request)
        draw -= self.fail_rate
        if draw < self.stall_rate:
            self.calls["stall"] += 1
            time.sleep(self.stall_s)
            raise httpx.ReadTimeout("injected stall", request=request)
        draw -= self.stall_rate
        if self.raise_on_heartbeat and path.endswith("/heartbeat"):
            self.calls["heartbeat_raised"] += 1
            raise RuntimeError("injected: heartbeat bug")
        if path.endswith("/ingest"):
            self.ingest_sizes.append(request.content.count(b'"captured_at"'))
            if self.poison_one_frame:
                request = self._poison(request)
            if self._crashes(request):
                self.calls["crash"] += 1
                return httpx.Response(
                    500, json={"detail": "injected: this record breaks the server"}, request=request
                )
        response = self.inner.handle_request(request)
        if draw < self.lost_rate:
            self.calls["lost"] += 1
            response.read()
            response.close()
            raise httpx.ReadTimeout("injected: answer lost after the server acted", request=request)
        if self.corrupt_downloads and path.endswith("/onnx") and response.status_code == 200:
            body = bytearray(response.read())
            response.close()
            body[len(body) // 2 : len(body) // 2 + 64] = b"\x00" * 64
            self.calls["corrupted"] += 1
            return httpx.Response(
                200, content=bytes(body), headers={"content-type": "application/octet-stream"}
            )
        return response

    def _crashes(self, request: httpx.Request) -> bool:
        if not (self.crash_ids or self.crash_first_middle):
            return False
        ids = [frame["id"] for frame in json.loads(request.content)["frames"]]
        with self._lock:
            if self.crash_first_middle:
                self.crash_ids.add(ids[len(ids) // 2])
                self.crash_first_middle = False
            return any(i in self.crash_ids for i in ids)

    def _poison(self, request: httpx.Request) -> httpx.Request:
        body = json.loads(request.content)
        frames = body["frames"]
        if self.poisoned_id is None:
            self.poisoned_id = frames[len(frames) // 2]["id"]
        for frame in frames:
            if frame["id"] == self.poisoned_id:
                frame["width"] = -5
        headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
        return httpx.Request(
            request.method, request.url, headers=headers, json=body, extensions=request.extensions
        )


def device_http(
    url: str, token: str, *, transport: httpx.BaseTransport | None = None, timeout: float = 5.0
) -> httpx.Client:
    """The client an agent would build: base URL and bearer token, over ``transport``."""
    return httpx.Client(
        base_url=url,
        headers={"Authorization": f"Bearer {token}"},
        transport=transport or httpx.HTTPTransport(),
        timeout=timeout,
    )


@dataclass(frozen=True)
class ServerFrame:
    id: str
    model_version: str
    captured_at: datetime
    sample_reason: str | None
    has_image: bool
    detection_count: int


def server_frames(app: Any) -> list[ServerFrame]:
    """Every frame the server stored, in capture order."""
    from sqlalchemy import select

    from support.db import app_state
    from visionloop.server.models import Frame

    with app_state(app).engine.connect() as conn:
        rows = conn.execute(
            select(
                Frame.id,
                Frame.model_version,
                Frame.captured_at,
                Frame.sample_reason,
                Frame.image_sha256,
                Frame.detection_count,
            ).order_by(Frame.captured_at, Frame.id)
        ).all()
    return [ServerFrame(str(r[0]), r[1], r[2], r[3], r[4] is not None, int(r[5])) for r in rows]


def outbox_committed(path: Path) -> int:
    """Frames an agent's outbox file says it committed (0 while it does not exist or is locked)."""
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as conn:
            row = conn.execute("SELECT value FROM counters WHERE name = 'committed'").fetchone()
    except sqlite3.Error:
        return 0
    return int(row[0]) if row else 0


# --- fault injection inside the agent ------------------------------------------------------------


def fail_next_commit(outbox: Any) -> None:
    """Make the next COMMIT of ``outbox``'s connection fail ("not authorized"), once.

    SQLite leaves the transaction open when a COMMIT fails, as a full disk or an I/O error
    would; the outbox must roll it back so that its next write works.
    """
    armed = [True]

    def authorize(action: int, arg1: str | None, *_: object) -> int:
        if action == sqlite3.SQLITE_TRANSACTION and arg1 == "COMMIT" and armed[0]:
            armed[0] = False
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    outbox._conn.set_authorizer(authorize)


def fail_records_after(path: Path, n: int) -> None:
    """Make the outbox file at ``path`` refuse every record after the first ``n`` (a trigger),
    as a full disk would: the pipeline's sink fails mid-run and ``Pipeline.run`` raises."""
    from visionloop.edge.outbox import Outbox

    Outbox(path).close()  # create the schema
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TRIGGER injected_disk_full BEFORE INSERT ON records WHEN "
            f"(SELECT value FROM counters WHERE name = 'committed') >= {int(n)} "
            "BEGIN SELECT RAISE(ABORT, 'injected: disk full'); END"
        )


class RacingDeque(deque[float]):
    """A timings buffer that makes another thread add a new pipeline stage while it is read.

    Put into ``pipeline._metrics.timings``: each time the heartbeat copies it, a real second
    thread (as the sink thread does when the first sampled frame adds ``encode``) adds a new
    stage through ``pipeline._metrics.add``, and the read waits up to ``wait_s`` for that thread.
    Unlocked reads see the dictionary change size mid-iteration; locked ones make the writer
    wait until the snapshot is taken.
    """

    def __init__(self, metrics: Any, *, wait_s: float = 0.05) -> None:
        super().__init__(maxlen=300)
        self.metrics = metrics
        self.wait_s = wait_s
        self.races = 0

    def __iter__(self) -> Iterator[float]:
        self.races += 1
        writer = threading.Thread(
            target=self.metrics.add, args=(f"racing-{self.races}", 0.001), daemon=True
        )
        writer.start()
        writer.join(self.wait_s)
        return super().__iter__()


def race_timings(pipeline: Any, *, wait_s: float = 0.05) -> RacingDeque:
    """Install a :class:`RacingDeque` as one of ``pipeline``'s stage timings; returns it."""
    racing = RacingDeque(pipeline._metrics, wait_s=wait_s)
    racing.append(0.001)
    pipeline._metrics.timings["capture"] = racing
    return racing
