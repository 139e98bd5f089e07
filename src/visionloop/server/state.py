"""What one server app holds: settings, database engine, session factories, blobs, metrics."""

from __future__ import annotations

import threading
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import HTTPConnection

from visionloop.config import Settings
from visionloop.jobs.kinds import JobKinds, default_kinds
from visionloop.server.blobs import BlobStore
from visionloop.server.metrics import Metrics
from visionloop.server.store.devices import AuthenticatedDevice

DEVICE_CACHE_TTL_S = 2.0
DEVICE_CACHE_MAX = 10_000


class DeviceTokenCache:
    """Devices recently found by their token, kept ``ttl_s`` seconds so that a device posting
    many batches a second is not looked up for each one.

    Disabling a device through this process clears the cache at once; a device disabled through
    another process (the CLI, another replica) is refused within ``ttl_s``. Unknown tokens are
    never cached.
    """

    def __init__(self, ttl_s: float = DEVICE_CACHE_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, AuthenticatedDevice]] = {}

    def get(self, token: str) -> AuthenticatedDevice | None:
        with self._lock:
            entry = self._entries.get(token)
        if entry is None or time.monotonic() - entry[0] > self.ttl_s:
            return None
        return entry[1]

    def put(self, token: str, device: AuthenticatedDevice) -> None:
        with self._lock:
            if len(self._entries) >= DEVICE_CACHE_MAX:
                self._entries.clear()
            self._entries[token] = (time.monotonic(), device)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class IngestGate:
    """How many ingest batches one process validates and stores at once.

    On SQLite one: the writes serialize on the database lock anyway, and batches parsed side by
    side in several threads only trade the GIL (measured: fewer frames/s). On PostgreSQL no
    limit, so that batches overlap their round trips to the database. A thread lock rather than
    an anyio limiter, which would be bound to one event loop (tests run several per app).
    """

    def __init__(self, *, serialize: bool) -> None:
        self._serialize = serialize
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        if self._serialize:
            self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        if self._serialize:
            self._lock.release()


@dataclass(frozen=True, slots=True)
class ServerState:
    """Typed application state, kept on ``app.state.server``.

    ``read_sessions`` open ordinary transactions; ``write_sessions`` open ones that take the write
    lock at once on SQLite (``BEGIN IMMEDIATE``), so that a transaction that reads and then writes
    waits for other writers (busy timeout) instead of failing with "database is locked".
    """

    settings: Settings
    engine: Engine
    write_engine: Engine
    read_sessions: sessionmaker[Session]
    write_sessions: sessionmaker[Session]
    blobs: BlobStore
    metrics: Metrics
    serialize_writes: bool = False
    device_cache: DeviceTokenCache = field(default_factory=DeviceTokenCache)
    ingest_gate: IngestGate = field(default_factory=lambda: IngestGate(serialize=False))
    # Set once the label class list is known to be non-empty (it never empties again).
    label_classes_ready: threading.Event = field(default_factory=threading.Event)
    job_kinds: JobKinds = field(default_factory=default_kinds)
    _write_lock: threading.Lock = field(default_factory=threading.Lock)

    def write_lock(self) -> AbstractContextManager[object]:
        """Held around each write transaction on SQLite.

        SQLite admits one writer at a time; a second one waits in SQLite's busy handler, which
        polls with sleeps of up to 100 ms. Queuing this process's writers on a lock instead hands
        the database over at once (ingest throughput doubled under concurrent batches). Other
        processes still wait through the busy timeout. A no-op on PostgreSQL.
        """
        return self._write_lock if self.serialize_writes else nullcontext()


def server_state(conn: HTTPConnection) -> ServerState:
    """The state of the app serving ``conn``."""
    state: ServerState = conn.app.state.server
    return state
