"""Devices, their tokens and their heartbeats."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from visionloop.errors import ConflictError, InvalidInputError, NotFoundError
from visionloop.server.auth import new_device_token, token_sha256
from visionloop.server.models import Device, DeviceToken
from visionloop.types import Heartbeat


@dataclass(frozen=True, slots=True)
class AuthenticatedDevice:
    """The device a request's bearer token belongs to."""

    id: int
    name: str
    disabled: bool


def _now() -> datetime:
    return datetime.now(UTC)


def create_device(session: Session, *, name: str) -> tuple[Device, str]:
    """Create a device and its first token. Returns the device and the token, which is shown once
    and never stored (only its sha256 is)."""
    name = name.strip()
    if not name or len(name) > 128:
        raise InvalidInputError("a device name must be 1 to 128 characters")
    device = Device(name=name, created_at=_now())
    session.add(device)
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise ConflictError(f"a device named {name!r} already exists") from exc
    token = new_device_token()
    session.add(
        DeviceToken(device_id=device.id, token_sha256=token_sha256(token), created_at=_now())
    )
    session.flush()
    return device, token


def find_device(session: Session, *, ref: str) -> Device:
    """A device by name, or by id when ``ref`` is all digits and no device has that name."""
    device = session.scalars(select(Device).where(Device.name == ref)).first()
    if device is None and ref.isdigit():
        device = session.get(Device, int(ref))
    if device is None:
        raise NotFoundError(f"no device {ref!r}")
    return device


def get_device(session: Session, *, device_id: int) -> Device:
    device = session.get(Device, device_id)
    if device is None:
        raise NotFoundError(f"no device with id {device_id}")
    return device


def list_devices(session: Session) -> list[Device]:
    """Every device, by name."""
    return list(session.scalars(select(Device).order_by(Device.name)))


def disable_device(session: Session, *, device_id: int) -> Device:
    """Disable a device: its tokens then get 403 on every route. Disabling twice is a no-op."""
    device = get_device(session, device_id=device_id)
    if device.disabled_at is None:
        device.disabled_at = _now()
    session.flush()
    return device


def enable_device(session: Session, *, device_id: int) -> Device:
    """Enable a disabled device again: its live tokens work from now on. Enabling twice is a
    no-op."""
    device = get_device(session, device_id=device_id)
    device.disabled_at = None
    session.flush()
    return device


def rotate_token(session: Session, *, device_id: int) -> tuple[Device, str]:
    """Revoke every live token of a device and give it a new one. Returns the device and the new
    token (shown once; only its sha256 is stored). A disabled device stays disabled."""
    device = get_device(session, device_id=device_id)
    now = _now()
    session.execute(
        update(DeviceToken)
        .where(DeviceToken.device_id == device.id, DeviceToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    token = new_device_token()
    session.add(DeviceToken(device_id=device.id, token_sha256=token_sha256(token), created_at=now))
    session.flush()
    return device, token


def device_for_token(db: Session | Connection, *, token: str) -> AuthenticatedDevice | None:
    """The device owning a live bearer token, or None for an unknown or revoked token. Takes a
    plain connection too: this runs on every device request."""
    row = db.execute(
        select(Device.id, Device.name, Device.disabled_at)
        .join(DeviceToken, DeviceToken.device_id == Device.id)
        .where(DeviceToken.token_sha256 == token_sha256(token), DeviceToken.revoked_at.is_(None))
    ).first()
    if row is None:
        return None
    return AuthenticatedDevice(id=row.id, name=row.name, disabled=row.disabled_at is not None)


def record_heartbeat(session: Session, *, device_id: int, heartbeat: Heartbeat) -> None:
    """Keep a device's latest heartbeat and mark it seen now. The device's clock offset is the
    server's receive time minus the heartbeat's ``sent_at`` (None when the agent sent none)."""
    now = _now()
    sent_at = heartbeat.sent_at
    values: dict[str, Any] = {
        "heartbeat": heartbeat.model_dump(mode="json"),
        "last_seen_at": now,
        "clock_offset_s": (now - sent_at).total_seconds() if sent_at is not None else None,
    }
    if heartbeat.model_version is not None:
        values["model_version"] = heartbeat.model_version
    session.execute(update(Device).where(Device.id == device_id).values(**values))
