"""What one server app holds: settings, database engine, session factories, blobs, metrics."""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import HTTPConnection

from visionloop.config import Settings
from visionloop.server.blobs import BlobStore
from visionloop.server.metrics import Metrics


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
