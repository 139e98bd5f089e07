"""The FastAPI application factory: ``create_app(settings)`` wires engine, blobs, metrics and
routes; nothing connects before it is called."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from pydantic import BaseModel
from sqlalchemy.orm import sessionmaker
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from visionloop import __version__
from visionloop.config import Settings, parse_trusted_proxies
from visionloop.jobs.kinds import JobKinds, default_kinds
from visionloop.server.blobs import BlobStore, LocalBlobStore
from visionloop.server.bodies import BodyLimitMiddleware, BodyLimits
from visionloop.server.csrf import CsrfMiddleware
from visionloop.server.dashboard import install_dashboard
from visionloop.server.db import create_db_engine, is_sqlite, write_engine
from visionloop.server.docs import install_docs
from visionloop.server.http_errors import install_error_handlers
from visionloop.server.metrics import LatencyMiddleware, Metrics
from visionloop.server.openapi_errors import document_error_responses
from visionloop.server.routes import (
    auth,
    devices,
    drift,
    frames,
    health,
    ingest,
    jobs,
    labeling,
    models,
    retraining,
    stats,
    users,
)
from visionloop.server.security_headers import SecurityHeadersMiddleware
from visionloop.server.state import IngestGate, ServerState
from visionloop.types import IngestBatch

API_PREFIX = "/api/v1"
REF_TEMPLATE = "#/components/schemas/{model}"
# Request bodies that routes read raw and document by $ref (their openapi_extra).
RAW_BODY_MODELS: tuple[type[BaseModel], ...] = (IngestBatch,)


API_MODULES = (
    auth,
    users,
    devices,
    ingest,
    frames,
    stats,
    models,
    labeling,
    jobs,
    retraining,
    drift,
)
"""The modules of the ``/api/v1`` routes. A new resource adds its module here."""


def api_router() -> APIRouter:
    """Every ``/api/v1`` route: the routers of ``API_MODULES``."""
    router = APIRouter(prefix=API_PREFIX)
    for module in API_MODULES:
        router.include_router(module.router)
    return router


def create_app(
    settings: Settings, *, blobs: BlobStore | None = None, job_kinds: JobKinds | None = None
) -> FastAPI:
    """A server app over the database and blob folder that ``settings`` name. ``job_kinds`` are
    the kinds of job it accepts (default: every kind visionloop ships).

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
        job_kinds=job_kinds if job_kinds is not None else default_kinds(),
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
    install_openapi(app)
    document_error_responses(
        app, [("", health.router), *((API_PREFIX, m.router) for m in API_MODULES)]
    )
    install_dashboard(app)  # last: it answers only what no route matched
    # The last added runs first: time everything, add security headers to every response (its
    # refusals included), refuse cross-site requests, then bound bodies.
    app.add_middleware(BodyLimitMiddleware, limits=BodyLimits(settings))
    app.add_middleware(CsrfMiddleware)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(LatencyMiddleware, metrics=metrics)
    proxies = parse_trusted_proxies(settings.trusted_proxies)
    if proxies:
        # Outermost: every layer sees the client's address and scheme as the proxy passed them.
        # Only from a trusted proxy, and the right-most untrusted X-Forwarded-For entry: a
        # client cannot pick its own address to dodge the sign-in throttle.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=proxies)
    return app


def install_openapi(app: FastAPI) -> None:
    """Generate the OpenAPI schema with the models of raw-body routes in its components.

    Ingest reads its body raw (see routes/ingest.py) and names ``IngestBatch`` with a ``$ref``
    in ``openapi_extra``; FastAPI only collects models it sees as parameters, so they are added
    here.
    """

    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()  # FastAPI's own, which caches it in app.openapi_schema
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in RAW_BODY_MODELS:
            found = model.model_json_schema(ref_template=REF_TEMPLATE)
            for name, definition in found.pop("$defs", {}).items():
                schemas.setdefault(name, definition)
            schemas[model.__name__] = found
        return schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
