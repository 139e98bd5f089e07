"""One drift check of one device: read its reference and current windows, compare them with
Evidently, store the check and its HTML report, and move the device's alarm.

The reference is the device's pinned window if an admin pinned one; else the reference profile
of the model version that produced the device's latest frame (computed when the version was
registered, see :mod:`visionloop.monitoring.profile`); else, for a version without a profile
(registered before profiles existed, a model file outside the registry, or a profile of under
``MIN_FRAMES`` frames), the automatic one:
the first ``drift_window`` frames the device sent with that version. The current window is the
device's latest ``drift_window`` frames captured after a pinned or automatic reference ends, or,
against a profile, its latest frames of that version. A check with under ``MIN_FRAMES`` frames
in either window, or with the same reference and no frame newer than the previous check's
window, is skipped (nothing stored). Before the tests, each window is thinned by its own
decorrelation lag (:mod:`visionloop.monitoring.thinning`): a camera's consecutive frames are far
from independent, and the check stores the step it kept.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from visionloop.config import Settings
from visionloop.monitoring.evidently_check import compare
from visionloop.monitoring.features import NUMERICAL_FEATURES, quantiles
from visionloop.monitoring.profile import Profile
from visionloop.monitoring.thinning import MIN_FRAMES
from visionloop.server.blobs import BlobStore
from visionloop.server.models import DriftCheck
from visionloop.server.store import drift as drift_store
from visionloop.server.store.drift import ReferenceKind, Window

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """A check's outcome: the stored check (None when skipped, with the reason), and the alarm
    event it caused ("opened", "closed" or None)."""

    device_id: int
    check_id: int | None = None
    share_drifted: float | None = None
    drifted: bool | None = None
    alarm_open: bool | None = None
    alarm_event: str | None = None
    skipped: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "check_id": self.check_id,
            "share_drifted": self.share_drifted,
            "drifted": self.drifted,
            "alarm_open": self.alarm_open,
            "alarm_event": self.alarm_event,
            "skipped": self.skipped,
        }


ProfileSource = Callable[[str], Profile | None]
"""A model version's reference profile, or None (see ``profile.RegistryProfiles``)."""


def _no_profiles(_version: str) -> Profile | None:
    return None


def _windows(
    session: Session, *, device_id: int, settings: Settings, profiles: ProfileSource
) -> tuple[ReferenceKind, str | None, Window | None, Window | None]:
    pinned = drift_store.get_reference(session, device_id=device_id)
    version = drift_store.current_version(session, device_id=device_id)
    profile = profiles(version) if pinned is None and version is not None else None
    if profile is not None and len(profile.features) < MIN_FRAMES:
        # Too small a validation set to test against (a retrained version's can be): the
        # device's own first frames with that version are the reference instead.
        profile = None
    if pinned is not None:
        kind, reference = ReferenceKind.PINNED, drift_store.pinned_window(session, reference=pinned)
    elif profile is not None:
        current = drift_store.latest_window(
            session,
            device_id=device_id,
            frames=settings.drift_window,
            after=None,
            model_version=profile.version,
        )
        reference = Window(
            features=profile.features, start=profile.created_at, end=profile.created_at
        )
        return ReferenceKind.MODEL, profile.version, reference, current
    else:
        kind = ReferenceKind.AUTO
        reference = drift_store.auto_window(
            session, device_id=device_id, frames=settings.drift_window
        )
    if reference is None:
        return kind, None, None, None
    current = drift_store.latest_window(
        session, device_id=device_id, frames=settings.drift_window, after=reference.end
    )
    return kind, None, reference, current


def _quantiles(feature: str, reference: Window, current: Window) -> dict[str, Any]:
    """Both windows' ``QUANTILES`` of a numerical feature (what the dashboard draws)."""
    if feature not in NUMERICAL_FEATURES:
        return {}
    return {
        "reference_quantiles": quantiles(reference.features.columns[feature]),
        "window_quantiles": quantiles(current.features.columns[feature]),
    }


def check_device(
    *,
    read_sessions: sessionmaker[Session],
    write_sessions: sessionmaker[Session],
    blobs: BlobStore,
    settings: Settings,
    device_id: int,
    job_id: int | None = None,
    profiles: ProfileSource = _no_profiles,
) -> CheckOutcome:
    """Run one drift check of ``device_id`` (see the module doc). Evidently runs between the
    read and the write transactions, so no database lock is held while it computes."""
    started = time.perf_counter()
    with read_sessions() as session, session.begin():
        drift_store.get_device(session, device_id=device_id)
        kind, version, reference, current = _windows(
            session, device_id=device_id, settings=settings, profiles=profiles
        )
        previous = drift_store.last_check(session, device_id=device_id)
    if reference is None or reference.frames < MIN_FRAMES:
        found = reference.frames if reference else 0
        return CheckOutcome(
            device_id=device_id,
            skipped=f"the {kind.value} reference holds {found} frames (needs {MIN_FRAMES})",
        )
    if current is None or current.frames < MIN_FRAMES:
        found = current.frames if current else 0
        return CheckOutcome(
            device_id=device_id,
            skipped=f"{found} frames after the reference window (needs {MIN_FRAMES})",
        )
    if (
        previous is not None
        and current.end <= previous.window_end
        and (kind.value, version, reference.start, reference.end)
        == (
            previous.reference_kind,
            previous.reference_version,
            previous.reference_start,
            previous.reference_end,
        )
    ):
        # The same frames against the same reference would count twice towards the alarm.
        return CheckOutcome(device_id=device_id, skipped="no new frames since the last check")
    comparison = compare(
        reference.features, current.features, drift_share=settings.drift_alarm_share
    )
    report_key = blobs.put(comparison.report_html_gz)
    with write_sessions() as session, session.begin():
        check = drift_store.add_check(
            session,
            DriftCheck(
                device_id=device_id,
                job_id=job_id,
                reference_kind=kind.value,
                reference_version=version,
                reference_start=reference.start,
                reference_end=reference.end,
                reference_frames=reference.frames,
                window_start=current.start,
                window_end=current.end,
                window_frames=current.frames,
                reference_stride=comparison.reference_stride,
                window_stride=comparison.window_stride,
                features=[
                    v.to_dict() | _quantiles(v.feature, reference, current)
                    for v in comparison.features
                ],
                drifted_features=comparison.drifted_features,
                share_drifted=comparison.share_drifted,
                drifted=comparison.drifted,
                report_sha256=report_key,
                duration_s=time.perf_counter() - started,
            ),
        )
        change = drift_store.record_verdict(
            session, check=check, consecutive=settings.drift_alarm_consecutive
        )
        if change.event is not None:
            from visionloop.monitoring.alarms import queue_alert

            queue_alert(session, settings=settings, check=check, event=change.event)
        outcome = CheckOutcome(
            device_id=device_id,
            check_id=check.id,
            share_drifted=check.share_drifted,
            drifted=check.drifted,
            alarm_open=change.alarm.is_open,
            alarm_event=change.event,
        )
    log.info(
        "drift check %s of device %d: %d/%d features drifted%s",
        outcome.check_id,
        device_id,
        comparison.drifted_features,
        len(comparison.features),
        f"; alarm {change.event}" if change.event else "",
    )
    return outcome
