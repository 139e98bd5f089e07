"""Devices, their tokens and their heartbeats.

A device name is stored NFKC-normalised (``device_name``): ``dev1`` in fullwidth letters
(U+FF44…) is ``dev1``, so the unique name is unique as people read it; control, format
(bidirectional overrides, zero-width characters), private-use and unassigned characters are
refused (issue 20, finding 12).
"""

from __future__ import annotations

import unicodedata
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


MAX_NAME_LENGTH = 128
# Unicode categories a name may not hold: controls, format characters (U+202E RIGHT-TO-LEFT
# OVERRIDE, U+200B ZERO WIDTH SPACE…), surrogates, private use, unassigned, line and paragraph
# separators.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def device_name(name: str) -> str:
    """``name`` as stored: NFKC-normalised, without surrounding spaces; InvalidInputError (422)
    when it is empty, too long, or holds an invisible or bidirectional control character."""
    normal = unicodedata.normalize("NFKC", name).strip()
    if not normal or len(normal) > MAX_NAME_LENGTH:
        raise InvalidInputError(f"a device name must be 1 to {MAX_NAME_LENGTH} characters")
    for position, char in enumerate(normal, 1):
        if unicodedata.category(char) in _REFUSED_CATEGORIES:
            what = unicodedata.name(char, "an unnamed character")
            raise InvalidInputError(
                f"a device name may not hold invisible or bidirectional control characters: "
                f"U+{ord(char):04X} {what} at character {position}"
            )
    return normal


def _same_name_taken(session: Session, name: str) -> bool:
    """Whether a device's name reads as ``name`` once normalised (names stored before names
    were normalised are compared by their normal form too)."""
    names = session.scalars(select(Device.name))
    return any(unicodedata.normalize("NFKC", n).strip() == name for n in names)


def create_device(session: Session, *, name: str) -> tuple[Device, str]:
    """Create a device and its first token. Returns the device and the token, which is shown once
    and never stored (only its sha256 is). The name is stored as ``device_name`` gives it; a name
    that reads the same as another device's is a ConflictError."""
    name = device_name(name)
    if _same_name_taken(session, name):
        raise ConflictError(f"a device named {name!r} already exists")
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
    """A device by name (as typed, or normalised), or by id when ``ref`` is all digits and no
    device has that name."""
    device = session.scalars(select(Device).where(Device.name == ref)).first()
    if device is None:
        normal = unicodedata.normalize("NFKC", ref).strip()
        device = session.scalars(select(Device).where(Device.name == normal)).first()
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
