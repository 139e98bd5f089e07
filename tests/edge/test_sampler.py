"""Sampler: the uncertainty band, the audit draw and the per-minute cap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from visionloop.edge.sampler import Sampler, SamplerConfig, TokenBucket, is_uncertain, sample_reason
from visionloop.types import HeartbeatAnswer

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def conf(*values: float) -> np.ndarray:
    return np.array(values, np.float32)


@pytest.mark.parametrize(
    ("confidence", "expected"),
    [
        (conf(), False),
        (conf(0.39), False),
        (conf(0.4), True),
        (conf(0.55), True),
        (conf(0.7), True),
        (conf(0.71), False),
        (conf(0.9, 0.1, 0.5), True),
        (conf(0.95, 0.2), False),
    ],
    ids=["none", "below", "low-edge", "inside", "high-edge", "above", "one-of-many", "all-outside"],
)
def test_is_uncertain_uses_closed_band(confidence: np.ndarray, expected: bool) -> None:
    assert is_uncertain(confidence, (0.4, 0.7)) is expected


@pytest.mark.parametrize(
    ("confidence", "draw", "expected"),
    [
        (conf(0.5), 0.99, "uncertain"),
        (conf(0.5), 0.0, "uncertain"),
        (conf(0.9), 0.005, "audit"),
        (conf(), 0.005, "audit"),
        (conf(0.9), 0.01, None),
        (conf(), 0.5, None),
    ],
    ids=["uncertain-high-draw", "uncertain-wins-over-audit", "audit", "audit-empty", "edge", "no"],
)
def test_sample_reason(confidence: np.ndarray, draw: float, expected: str | None) -> None:
    assert sample_reason(confidence, band=(0.4, 0.7), audit_rate=0.01, draw=draw) == expected


def test_audit_rate_is_about_right_and_seedable() -> None:
    config = SamplerConfig(audit_rate=0.05, max_per_minute=1_000_000)
    picks = []
    for seed in (1, 1, 2):
        sampler = Sampler(config, seed=seed)
        picks.append(
            [sampler.decide(conf(0.95), T0 + timedelta(seconds=i)) == "audit" for i in range(4000)]
        )
    assert picks[0] == picks[1]
    assert picks[0] != picks[2]
    rate = sum(picks[0]) / 4000
    assert 0.035 < rate < 0.065


def test_cap_limits_a_burst_then_refills_with_capture_time() -> None:
    sampler = Sampler(SamplerConfig(max_per_minute=10), seed=0)
    # A drift episode: 100 uncertain frames within one second -> only the burst of 10 passes.
    decisions = [sampler.decide(conf(0.5), T0 + timedelta(milliseconds=10 * i)) for i in range(100)]
    assert decisions.count("uncertain") == 10
    assert sampler.capped == 90
    # One minute of capture time later the bucket is full again (but never above its size).
    later = T0 + timedelta(minutes=5)
    decisions = [sampler.decide(conf(0.5), later) for _ in range(20)]
    assert decisions.count("uncertain") == 10


def test_cap_over_a_long_run_is_the_rate() -> None:
    sampler = Sampler(SamplerConfig(max_per_minute=30), seed=0)
    # 30 FPS for 10 minutes, every frame uncertain.
    n = 30 * 600
    sampled = sum(
        sampler.decide(conf(0.5), T0 + timedelta(seconds=i / 30)) is not None for i in range(n)
    )
    assert 30 * 10 <= sampled <= 30 * 10 + 30 + 1


def test_bucket_ignores_time_going_backwards() -> None:
    bucket = TokenBucket(60)
    for _ in range(60):
        assert bucket.take(T0)
    assert not bucket.take(T0 - timedelta(hours=1))
    assert bucket.take(T0 + timedelta(seconds=1))


def test_zero_cap_samples_nothing() -> None:
    sampler = Sampler(SamplerConfig(max_per_minute=0), seed=0)
    assert sampler.decide(conf(0.5), T0) is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"band": (0.7, 0.4)},
        {"band": (-0.1, 0.5)},
        {"audit_rate": 1.5},
        {"max_per_minute": -1},
    ],
    ids=["band-reversed", "band-negative", "audit-over-1", "negative-cap"],
)
def test_config_rejects_bad_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SamplerConfig(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("draw", "factor", "expected"),
    [
        pytest.param(0.005, 10.0, "audit", id="audit-stays-audit"),
        pytest.param(0.05, 10.0, "drift", id="raised-rate-is-drift"),
        pytest.param(0.05, 1.0, None, id="no-alarm-no-drift"),
        pytest.param(0.2, 10.0, None, id="above-the-raised-rate"),
    ],
)
def test_a_drift_alarm_raises_sampling_as_drift(
    draw: float, factor: float, expected: str | None
) -> None:
    confidence = np.array([0.95], np.float32)
    got = sample_reason(
        confidence, band=(0.4, 0.7), audit_rate=0.01, draw=draw, drift_factor=factor
    )
    assert got == expected


def test_the_sampler_follows_the_heartbeat_answer() -> None:
    sampler = Sampler(SamplerConfig(audit_rate=0.05, max_per_minute=10_000), seed=3)
    sure = np.array([0.95], np.float32)
    now = datetime(2026, 11, 1, tzinfo=UTC)
    before = [sampler.decide(sure, now) for _ in range(2000)]
    assert "drift" not in before
    sampler.follow(HeartbeatAnswer(drift_alarm=True, audit_rate_factor=10.0))
    after = [sampler.decide(sure, now) for _ in range(2000)]
    assert 0.3 < after.count("drift") / len(after) < 0.6
    assert 0.02 < after.count("audit") / len(after) < 0.08
