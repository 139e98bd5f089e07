"""Which frames keep their image: uncertain detections, a small random audit, under a rate cap.

The decision functions are pure; :class:`Sampler` only adds the two pieces of state they need
(a seedable random generator for the audit draw, a token bucket for the per-minute cap).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from visionloop.types import HeartbeatAnswer, SampleReason


@dataclass(frozen=True, slots=True)
class SamplerConfig:
    """How frames are chosen for upload with their image.

    ``band`` is the closed confidence interval ``(low, high)`` that counts as uncertain;
    ``audit_rate`` the probability (0..1) of sampling a frame with no uncertain detection;
    ``max_per_minute`` the most sampled frames per minute of capture time (also the burst size).
    """

    band: tuple[float, float] = (0.4, 0.7)
    audit_rate: float = 0.01
    max_per_minute: int = 60

    def __post_init__(self) -> None:
        low, high = self.band
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"sample band must satisfy 0 <= low <= high <= 1, got {self.band}")
        if not 0.0 <= self.audit_rate <= 1.0:
            raise ValueError(f"audit rate must be in 0..1, got {self.audit_rate}")
        if self.max_per_minute < 0:
            raise ValueError(f"max per minute must be >= 0, got {self.max_per_minute}")


def is_uncertain(confidence: NDArray[np.float32], band: tuple[float, float]) -> bool:
    """True when any confidence lies in the closed ``band`` (the detector was unsure)."""
    low, high = band
    return bool(np.any((confidence >= low) & (confidence <= high)))


def sample_reason(
    confidence: NDArray[np.float32],
    *,
    band: tuple[float, float],
    audit_rate: float,
    draw: float,
    drift_factor: float = 1.0,
) -> SampleReason | None:
    """The reason to sample a frame, before the rate cap.

    ``draw`` is a uniform number in [0, 1) supplied by the caller, so this stays pure: a frame
    with no uncertain detection is audited when ``draw < audit_rate``. While the server reports
    a drift alarm (``drift_factor`` > 1) the frames with ``audit_rate <= draw < audit_rate *
    drift_factor`` are sampled too, as ``drift``: the audit sample stays the unbiased random
    one the miss-rate estimate needs.
    """
    if is_uncertain(confidence, band):
        return "uncertain"
    if draw < audit_rate:
        return "audit"
    if draw < audit_rate * drift_factor:
        return "drift"
    return None


class TokenBucket:
    """A rate cap over capture timestamps: ``rate_per_minute`` tokens a minute, burst = that rate.

    Time comes from the frames (``captured_at``), not the wall clock, so a replayed video or a
    fast synthetic run is capped by the time it covers, and tests are deterministic. A timestamp
    earlier than the last one refills nothing.
    """

    def __init__(self, rate_per_minute: int) -> None:
        self._capacity = float(rate_per_minute)
        self._per_second = rate_per_minute / 60.0
        self._tokens = self._capacity
        self._last: datetime | None = None

    def take(self, at: datetime) -> bool:
        """Spend one token at time ``at``; False when the bucket is empty."""
        if self._last is not None:
            elapsed = max((at - self._last).total_seconds(), 0.0)
            self._tokens = min(self._capacity, self._tokens + elapsed * self._per_second)
        if self._last is None or at > self._last:
            self._last = at
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class Sampler:
    """Decides per frame whether it is sampled, and why; counts what the cap suppressed."""

    def __init__(self, config: SamplerConfig | None = None, *, seed: int | None = None) -> None:
        self.config = config or SamplerConfig()
        self._rng = np.random.default_rng(seed)
        self._bucket = TokenBucket(self.config.max_per_minute)
        self.capped = 0
        self.drift_factor = 1.0
        """Set from the server's heartbeat answer (another thread; a float store is atomic)."""

    def follow(self, answer: HeartbeatAnswer) -> None:
        """Take the server's heartbeat answer: its audit-rate factor (a drift alarm's)."""
        self.drift_factor = answer.audit_rate_factor

    def decide(self, confidence: NDArray[np.float32], captured_at: datetime) -> SampleReason | None:
        """The sample reason for a frame with these detection confidences, or None."""
        reason = sample_reason(
            confidence,
            band=self.config.band,
            audit_rate=self.config.audit_rate,
            draw=float(self._rng.random()),
            drift_factor=self.drift_factor,
        )
        if reason is None:
            return None
        if not self._bucket.take(captured_at):
            self.capped += 1
            return None
        return reason
