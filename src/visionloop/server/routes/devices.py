"""Devices: list with their latest heartbeat, create and rotate (token shown once), disable and
enable, heartbeat."""

from __future__ import annotations

from fastapi import APIRouter, status

from visionloop.monitoring import alarms as drift_alarms
from visionloop.server.deps import (
    AdminUser,
    CurrentUser,
    DeviceDep,
    DeviceIdPath,
    SessionDep,
    StateDep,
    WriteSessionDep,
)
from visionloop.server.models import Device
from visionloop.server.schemas import DeviceCreate, DeviceCreated, DeviceOut
from visionloop.server.store import devices as device_store
from visionloop.types import Heartbeat, HeartbeatAnswer

router = APIRouter(tags=["devices"])


def device_out(device: Device) -> DeviceOut:
    return DeviceOut(
        id=device.id,
        name=device.name,
        created_at=device.created_at,
        disabled=device.disabled_at is not None,
        disabled_at=device.disabled_at,
        last_seen_at=device.last_seen_at,
        model_version=device.model_version,
        heartbeat=Heartbeat.model_validate(device.heartbeat) if device.heartbeat else None,
        clock_offset_s=device.clock_offset_s,
    )


@router.get("/devices", response_model=list[DeviceOut], summary="All devices and their health")
def list_devices(session: SessionDep, _user: CurrentUser) -> list[DeviceOut]:
    return [device_out(d) for d in device_store.list_devices(session)]


@router.post(
    "/devices",
    response_model=DeviceCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Register a device (admin); the answer holds its token, shown once",
)
def create_device(body: DeviceCreate, session: WriteSessionDep, _admin: AdminUser) -> DeviceCreated:
    device, token = device_store.create_device(session, name=body.name)
    return DeviceCreated(device=device_out(device), token=token)


@router.post(
    "/devices/heartbeat",
    response_model=HeartbeatAnswer,
    summary="An edge agent's health and metrics (device token); answers what to change",
)
def heartbeat(
    body: Heartbeat, session: WriteSessionDep, state: StateDep, device: DeviceDep
) -> HeartbeatAnswer:
    """While the device's drift alarm is open the answer asks it to raise its audit sampling
    (``audit_rate_factor``, VISIONLOOP_DRIFT_SAMPLING_FACTOR) and mark those frames ``drift``."""
    device_store.record_heartbeat(session, device_id=device.id, heartbeat=body)
    alarm = drift_alarms.device_open(session, device_id=device.id)
    return HeartbeatAnswer(
        drift_alarm=alarm,
        audit_rate_factor=state.settings.drift_sampling_factor if alarm else 1.0,
    )


@router.post(
    "/devices/{device_id}/disable",
    response_model=DeviceOut,
    summary="Disable a device (admin): its tokens get 403 from then on",
)
def disable_device(
    device_id: DeviceIdPath, session: WriteSessionDep, state: StateDep, _admin: AdminUser
) -> DeviceOut:
    device = device_store.disable_device(session, device_id=device_id)
    session.commit()
    state.device_cache.clear()
    return device_out(device)


@router.post(
    "/devices/{device_id}/enable",
    response_model=DeviceOut,
    summary="Enable a disabled device (admin): its live token works again",
)
def enable_device(
    device_id: DeviceIdPath, session: WriteSessionDep, state: StateDep, _admin: AdminUser
) -> DeviceOut:
    device = device_store.enable_device(session, device_id=device_id)
    session.commit()
    state.device_cache.clear()
    return device_out(device)


@router.post(
    "/devices/{device_id}/rotate",
    response_model=DeviceCreated,
    summary="Give a device a new token (admin); the old one is refused (401) at once",
)
def rotate_device_token(
    device_id: DeviceIdPath, session: WriteSessionDep, state: StateDep, _admin: AdminUser
) -> DeviceCreated:
    """The answer holds the new token, shown once. Servers other than this one may accept the old
    token for up to two seconds (their token cache)."""
    device, token = device_store.rotate_token(session, device_id=device_id)
    session.commit()
    state.device_cache.clear()
    return DeviceCreated(device=device_out(device), token=token)
