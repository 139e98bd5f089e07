"""The periodic drift task queues one drift_check job per round for the devices seen in it."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from support.db import add_device, app_state
from visionloop.monitoring.jobs import drift_schedule
from visionloop.server.models import Job
from visionloop.server.store import devices as device_store
from visionloop.server.store import jobs as job_store


def _drift_jobs(app: FastAPI) -> list[Job]:
    with app_state(app).read_sessions() as session:
        return list(session.scalars(select(Job).where(Job.kind == "drift_check").order_by(Job.id)))


def test_one_job_per_round_for_the_devices_seen(app: FastAPI) -> None:
    state = app_state(app)
    (periodic,) = drift_schedule(state.settings)
    assert periodic.period_seconds == state.settings.drift_interval == 300
    seen = add_device(app, "seen")
    add_device(app, "silent")
    off = add_device(app, "off")
    for device in (seen, off):
        with TestClient(app, headers=device.headers) as c:
            assert c.post("/api/v1/devices/heartbeat", json={}).status_code == 200
    with state.write_sessions() as session, session.begin():
        device_store.disable_device(session, device_id=off.id)
    with state.write_sessions() as session, session.begin():
        periodic.run(session)
    with state.write_sessions() as session, session.begin():
        periodic.run(session)  # the first round is still queued: no second one
    jobs = _drift_jobs(app)
    assert [(j.params, j.created_by) for j in jobs] == [({"device_ids": [seen.id]}, "scheduler")]
    with state.write_sessions() as session, session.begin():
        job_store.request_cancel(session, job_id=jobs[0].id)
        periodic.run(session)
    assert len(_drift_jobs(app)) == 2
