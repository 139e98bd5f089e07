"""What one server app holds: settings, database engine, session factories, blobs, metrics."""

from __future__ import annotations

from dataclasses import dataclass

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


def server_state(conn: HTTPConnection) -> ServerState:
    """The state of the app serving ``conn``."""
    state: ServerState = conn.app.state.server
    return state
