"""Drift monitoring in the jobs machinery: the ``drift_check`` job kind and the periodic task
that queues one every ``VISIONLOOP_DRIFT_INTERVAL`` for the devices seen since the last."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session, sessionmaker

from visionloop.config import Settings
from visionloop.jobs.kinds import JobContext, JobKind
from visionloop.jobs.scheduler import Periodic
from visionloop.server.store import drift as drift_store
from visionloop.server.store import jobs as job_store


class DriftCheckParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device_ids: list[int] = Field(
        min_length=1, max_length=10_000, description="The devices to check, one after another."
    )


def run_drift_check(params: DriftCheckParams, ctx: JobContext) -> dict[str, Any]:
    from visionloop.errors import NotFoundError
    from visionloop.monitoring.checks import CheckOutcome, check_device
    from visionloop.monitoring.profile import RegistryProfiles
    from visionloop.server.blobs import LocalBlobStore
    from visionloop.server.db import create_db_engine, write_engine

    settings = ctx.settings
    engine = create_db_engine(settings.database_url, pool_size=1)
    try:
        read = sessionmaker(engine, expire_on_commit=False)
        write = sessionmaker(write_engine(engine), expire_on_commit=False)
        blobs = LocalBlobStore(settings.blobs_path)
        profiles = RegistryProfiles(settings)
        outcomes = []
        for i, device_id in enumerate(params.device_ids):
            ctx.progress(i / len(params.device_ids), f"device {device_id}")
            try:
                outcome = check_device(
                    read_sessions=read,
                    write_sessions=write,
                    blobs=blobs,
                    settings=settings,
                    device_id=device_id,
                    job_id=ctx.job_id,
                    profiles=profiles,
                    lineage=profiles.lineage,
                )
            except NotFoundError as exc:  # deleted since the job was queued
                outcome = CheckOutcome(device_id=device_id, skipped=str(exc))
            outcomes.append(outcome.to_dict())
    finally:
        engine.dispose()
    return {"checks": outcomes}


DRIFT_CHECK = JobKind(
    name="drift_check",
    params=DriftCheckParams,
    run=run_drift_check,
    description="Drift check of devices' latest frames against their reference (Evidently).",
)


def queue_check(
    session: Session, *, settings: Settings, device_ids: list[int], created_by: str
) -> int | None:
    """Queue one ``drift_check`` job for ``device_ids``; its id (None when the list is empty)."""
    if not device_ids:
        return None
    job = job_store.enqueue(
        session,
        kind=DRIFT_CHECK.name,
        params=DRIFT_CHECK.validate({"device_ids": device_ids}),
        created_by=created_by,
        max_attempts=settings.job_max_attempts,
    )
    return job.id


def drift_schedule(settings: Settings) -> list[Periodic]:
    """The periodic drift check: one job per interval for the devices seen in it."""

    def queue_due(session: Session) -> None:
        waiting = job_store.list_jobs(
            session, kind=DRIFT_CHECK.name, status=job_store.JobStatus.QUEUED, limit=1
        )
        if waiting.jobs:  # the workers are behind: one waiting round is enough
            return
        seen_since = job_store.db_now(session) - timedelta(seconds=settings.drift_interval)
        queue_check(
            session,
            settings=settings,
            device_ids=drift_store.active_device_ids(session, seen_since=seen_since),
            created_by="scheduler",
        )

    return [Periodic(name="drift_check", period_seconds=settings.drift_interval, run=queue_due)]
