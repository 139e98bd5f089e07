"""One drift check of one device: read its reference and current windows, compare them with
Evidently, store the check and its HTML report, and move the device's alarm.

The reference is, first found:

1. the device's pinned window, if an admin pinned one;
2. the reference profile of the model version that produced the device's latest frame
   (computed when the version was registered or trained, see
   :mod:`visionloop.monitoring.profile`), unless it holds under ``MIN_FRAMES`` frames;
3. inherited: the profile of the production version before it (and before that, ...), for a
   version without a usable profile of its own, until it has one: a version promoted during a
   drift must not take the drifted frames as its normal;
4. automatic: the first ``drift_window`` frames the device sent with that version (or, with
   none, with the version before it), leaving out frames captured during any of its drift
   alarms.

The current window is the device's latest ``drift_window`` frames captured after a pinned or
automatic reference ends, or, against a profile, its latest frames of the version it runs. A
check with under ``MIN_FRAMES`` frames in either window, or with the same reference and no frame
newer than the previous check's window, is skipped (nothing stored). Before the tests, each
window is thinned by its own decorrelation lag (:mod:`visionloop.monitoring.thinning`): a
camera's consecutive frames are far from independent, and the check stores the step it kept. A
window holding under ``MIN_EFFECTIVE_FRAMES`` independent frames makes the check
``inconclusive``: stored with its reason and report, never counted by the alarm.
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
from visionloop.monitoring.thinning import MIN_EFFECTIVE_FRAMES, MIN_FRAMES
from visionloop.server.blobs import BlobStore
from visionloop.server.models import DriftCheck
from visionloop.server.store import drift as drift_store
from visionloop.server.store.drift import ReferenceKind, Verdict, Window

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """A check's outcome: the stored check (None when skipped, with the reason), and the alarm
    event it caused ("opened", "closed" or None)."""

    device_id: int
    check_id: int | None = None
    share_drifted: float | None = None
    drifted: bool | None = None
    verdict: str | None = None
    alarm_open: bool | None = None
    alarm_event: str | None = None
    skipped: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "check_id": self.check_id,
            "share_drifted": self.share_drifted,
            "drifted": self.drifted,
            "verdict": self.verdict,
            "alarm_open": self.alarm_open,
            "alarm_event": self.alarm_event,
            "skipped": self.skipped,
        }


ProfileSource = Callable[[str], Profile | None]
"""A model version's reference profile, or None (see ``profile.RegistryProfiles``)."""
Lineage = Callable[[str], list[str]]
"""The versions that were in production before a version, newest first (see
``profile.RegistryProfiles.lineage``)."""


def _no_profiles(_version: str) -> Profile | None:
    return None


def _no_lineage(_version: str) -> list[str]:
    return []


@dataclass(frozen=True, slots=True)
class _Windows:
    kind: ReferenceKind
    version: str | None
    """The version whose profile (or automatic window) the reference is; None for pinned."""
    reference: Window | None
    current: Window | None


def _usable(profile: Profile | None) -> Profile | None:
    # Too small a validation set to test against (a retrained version's can be).
    return profile if profile is not None and len(profile.features) >= MIN_FRAMES else None


def _windows(
    session: Session,
    *,
    device_id: int,
    settings: Settings,
    profiles: ProfileSource,
    lineage: Lineage,
) -> _Windows:
    frames = settings.drift_window
    pinned = drift_store.get_reference(session, device_id=device_id)
    if pinned is not None:
        reference = drift_store.pinned_window(session, reference=pinned)
        return _after(session, device_id, frames, ReferenceKind.PINNED, None, reference)
    version = drift_store.current_version(session, device_id=device_id)
    if version is None:
        return _Windows(ReferenceKind.AUTO, None, None, None)
    earlier = lineage(version)
    for kind, source in [(ReferenceKind.MODEL, version)] + [
        (ReferenceKind.INHERITED, v) for v in earlier
    ]:
        profile = _usable(profiles(source))
        if profile is None:
            continue
        current = drift_store.latest_window(
            session, device_id=device_id, frames=frames, after=None, model_version=version
        )
        reference = Window(
            features=profile.features, start=profile.created_at, end=profile.created_at
        )
        return _Windows(kind, source, reference, current)
    reference = None
    for source in [version, *earlier]:
        reference = drift_store.auto_window(
            session, device_id=device_id, frames=frames, version=source
        )
        if reference is not None and reference.frames >= MIN_FRAMES:
            return _after(session, device_id, frames, ReferenceKind.AUTO, source, reference)
    return _Windows(ReferenceKind.AUTO, version, reference, None)


def _after(
    session: Session,
    device_id: int,
    frames: int,
    kind: ReferenceKind,
    version: str | None,
    reference: Window | None,
) -> _Windows:
    """A pinned or automatic reference with the device's latest frames captured after it."""
    if reference is None:
        return _Windows(kind, version, None, None)
    current = drift_store.latest_window(
        session, device_id=device_id, frames=frames, after=reference.end
    )
    return _Windows(kind, version, reference, current)


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
    lineage: Lineage = _no_lineage,
) -> CheckOutcome:
    """Run one drift check of ``device_id`` (see the module doc). Evidently runs between the
    read and the write transactions, so no database lock is held while it computes."""
    started = time.perf_counter()
    with read_sessions() as session, session.begin():
        drift_store.get_device(session, device_id=device_id)
        windows = _windows(
            session, device_id=device_id, settings=settings, profiles=profiles, lineage=lineage
        )
        kind, version = windows.kind, windows.version
        reference, current = windows.reference, windows.current
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
        reference.features,
        current.features,
        drift_share=settings.drift_alarm_share,
        min_effective=MIN_EFFECTIVE_FRAMES,
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
                drifted=comparison.verdict == Verdict.DRIFTED,
                verdict=comparison.verdict,
                verdict_reason=comparison.inconclusive_reason,
                effective_frames=comparison.effective_frames,
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
            verdict=check.verdict,
            alarm_open=change.alarm.is_open,
            alarm_event=change.event,
        )
    log.info(
        "drift check %s of device %d: %s, %d/%d features drifted, %d independent frames%s",
        outcome.check_id,
        device_id,
        comparison.verdict,
        comparison.drifted_features,
        len(comparison.features),
        comparison.effective_frames,
        f"; alarm {change.event}" if change.event else "",
    )
    return outcome
