"""The FastAPI application factory: ``create_app(settings)`` wires engine, blobs, metrics and
routes; nothing connects before it is called."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from sqlalchemy.orm import sessionmaker

from visionloop import __version__
from visionloop.config import Settings
from visionloop.server.blobs import BlobStore, LocalBlobStore
from visionloop.server.db import create_db_engine, is_sqlite, write_engine
from visionloop.server.docs import install_docs
from visionloop.server.http_errors import install_error_handlers
from visionloop.server.metrics import LatencyMiddleware, Metrics
from visionloop.server.routes import auth, devices, frames, health, ingest, models, stats
from visionloop.server.state import IngestGate, ServerState

API_PREFIX = "/api/v1"


def api_router() -> APIRouter:
    """Every ``/api/v1`` route. A new resource adds its module's router here."""
    router = APIRouter(prefix=API_PREFIX)
    for module in (auth, devices, ingest, frames, stats, models):
        router.include_router(module.router)
    return router


def create_app(settings: Settings, *, blobs: BlobStore | None = None) -> FastAPI:
    """A server app over the database and blob folder that ``settings`` name.

    The database must already be migrated (``visionloop db upgrade``; ``visionloop serve`` does it).
    """
    engine = create_db_engine(settings.database_url)
    metrics = Metrics()
    state = ServerState(
        settings=settings,
        engine=engine,
        write_engine=write_engine(engine),
        read_sessions=sessionmaker(engine, expire_on_commit=False),
        write_sessions=sessionmaker(write_engine(engine), expire_on_commit=False),
        blobs=blobs or LocalBlobStore(settings.blobs_path),
        metrics=metrics,
        serialize_writes=is_sqlite(settings.database_url),
        ingest_gate=IngestGate(serialize=is_sqlite(settings.database_url)),
    )

    # No engine.dispose() at lifespan shutdown: several test clients may share one app, and a
    # pool disposed under a client still holding connections leaks them. The process exit (or
    # whoever built the app, in tests) closes the pool.
    app = FastAPI(
        title="visionloop",
        version=__version__,
        summary="Edge detections in, a labeled and retrained model out.",
        docs_url=None,  # served from packaged assets by install_docs, not from a CDN
        redoc_url=None,
    )
    app.state.server = state
    install_error_handlers(app)
    install_docs(app)
    app.include_router(health.router)
    app.include_router(api_router())
    app.add_middleware(LatencyMiddleware, metrics=metrics)
    return app
