"""Operations: liveness, readiness (database reachable) and Prometheus metrics."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from visionloop.server.deps import StateDep
from visionloop.server.store import drift as drift_store

logger = logging.getLogger(__name__)

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process answers")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: the database answers", response_model=None)
def readyz(state: StateDep) -> dict[str, str] | JSONResponse:
    try:
        with state.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        logger.warning("readiness check failed: %s", exc)
        return JSONResponse({"detail": "database unreachable"}, status_code=503)
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
            if d.last_check is not None:
                state.metrics.drift_share.labels(device=d.device.name).set(
                    d.last_check.share_drifted
                )
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
