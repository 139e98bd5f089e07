"""Operations: liveness, readiness (database reachable and at the head migration) and Prometheus
metrics."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from visionloop.server.deps import StateDep
from visionloop.server.http_errors import (
    SCHEMA_NOT_MIGRATED,
    UNAVAILABLE_RETRY_AFTER_S,
    database_unavailable,
    first_line,
)
from visionloop.server.migrate import head_revision
from visionloop.server.store import drift as drift_store

logger = logging.getLogger(__name__)

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process answers")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _not_ready(detail: str) -> JSONResponse:
    return JSONResponse(
        {"detail": detail},
        status_code=503,
        headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER_S)},
    )


@router.get(
    "/readyz",
    summary="Readiness: the database answers and its schema is at this server's migration",
    response_model=None,
    responses={503: {"description": "Not ready: the database is unreachable or not migrated"}},
)
def readyz(state: StateDep) -> dict[str, str] | JSONResponse:
    """Ready when one query reads the schema's revision and it is the newest migration this
    server ships: a database recreated empty, or one left behind (or ahead) by a deployment, is
    not ready, so that a load balancer sends no traffic to routes that would fail."""
    try:
        with state.engine.connect() as connection:
            revision = connection.execute(
                text("SELECT version_num FROM alembic_version")
            ).scalar_one_or_none()
    except SQLAlchemyError as exc:
        if database_unavailable(exc) == SCHEMA_NOT_MIGRATED:  # no alembic_version: empty
            logger.warning("not ready: the database has no schema")
            return _not_ready("database schema missing: run `visionloop db upgrade`")
        logger.warning("not ready: database unreachable: %s", first_line(exc))
        return _not_ready("database unreachable")
    head = head_revision()
    if revision != head:
        logger.warning("not ready: database schema at %s, this server needs %s", revision, head)
        return _not_ready(
            f"database schema at revision {revision}, this server needs {head}: "
            "run `visionloop db upgrade`"
        )
    return {"status": "ready"}


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(state: StateDep) -> Response:
    try:
        with state.read_sessions() as session:
            drift = drift_store.statuses(session)
    except SQLAlchemyError as exc:  # the counters still answer
        logger.warning("drift gauges not read: %s", exc)
    else:
        state.metrics.drift_alarm.clear()
        state.metrics.drift_share.clear()
        for d in drift:
            state.metrics.drift_alarm.labels(device=d.device.name).set(
                1 if d.alarm is not None and d.alarm.is_open else 0
            )
            # An inconclusive check's share is no verdict: no gauge, so no alert reads it as one.
            if d.last_check is not None and d.last_check.verdict != "inconclusive":
                state.metrics.drift_share.labels(device=d.device.name).set(
                    d.last_check.share_drifted
                )
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
