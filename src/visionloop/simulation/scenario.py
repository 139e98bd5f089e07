"""What a simulation runs: the line's drift schedule, how many frames, the labeling budget and
the sizes of everything, as one frozen configuration (``FULL`` or ``FAST``, then overrides)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from visionloop.config import LabelingStrategy
from visionloop.errors import InvalidInputError
from visionloop.vision.synthetic.schedule import ScenarioSchedule, parse_schedule

STRATEGIES: tuple[LabelingStrategy, ...] = ("uncertainty", "random", "hybrid")
_BY_NAME: dict[str, LabelingStrategy] = {s: s for s in STRATEGIES}


@dataclass(frozen=True)
class Scenario:
    """One simulated run's configuration (every strategy of a comparison shares it).

    Frames are counted by the line's frame index (the records' ``source_index``). The oracle
    starts reviewing at frame ``review_at`` and labels at most ``budget`` tasks; the run ends at
    frame ``frames`` at the earliest, and not before ``after_promotion`` frames ran on a promoted
    model (or the round ended without one), or after ``timeout_s`` seconds.

    The gate: a simulation measures selection, not the gate, so by default it judges on any
    number of held-out images (``gate_min_images`` 0; a 200-label round holds out about 20) and
    promotes a candidate that is no worse (``gate_promote_on``); a worse one is still refused.
    """

    schedule: str = "blur:0.5@1500+300"
    frames: int = 4000
    budget: int = 200
    seed: int = 0
    oracle_noise: float = 0.0
    size_wh: tuple[int, int] = (640, 480)
    imgsz: int = 640
    epochs: int = 3
    fps: float = 15.0
    review_at: int = 2400
    after_promotion: int = 900
    live_window: int = 600
    live_stride: int = 3
    drift_window: int = 1500
    drift_interval: float = 30.0
    policy_interval: float = 5.0
    max_golden_drop: float = 0.01
    gate_min_images: int = 0
    gate_promote_on: str = "no_worse"
    golden_images: int = 100
    test_images: int = 200
    timeout_s: float = 60 * 60.0

    def __post_init__(self) -> None:
        schedule = self.drift  # validates the spec
        if schedule.scenario == "nominal":
            raise InvalidInputError("the schedule must drift (e.g. blur:0.5@1500+300)")
        if self.budget < 1 or self.frames < 1:
            raise InvalidInputError("--budget and --frames must be at least 1")
        if not 0.0 <= self.oracle_noise <= 1.0:
            raise InvalidInputError(f"--oracle-noise must be within 0..1, got {self.oracle_noise}")
        if self.seed < 0:
            raise InvalidInputError(f"--seed must be non-negative, got {self.seed}")
        if schedule.start < self.live_window:
            raise InvalidInputError(
                f"the drift must start after frame {self.live_window} (one live window of "
                "nominal frames to measure before it)"
            )

    @property
    def drift(self) -> ScenarioSchedule:
        return parse_schedule(self.schedule)

    @property
    def drifted_spec(self) -> str:
        """The schedule's scenario at full intensity from the first frame (the drifted test
        set's)."""
        d = self.drift
        return f"{d.scenario}:{d.intensity:g}"

    def with_schedule(self, schedule: str) -> Scenario:
        """This scenario on another schedule; the review point moves with the drift (same
        distance after the end of the ramp)."""
        old, new = self.drift, parse_schedule(schedule)
        lag = self.review_at - (old.start + old.ramp)
        shift = (new.start + new.ramp) - (old.start + old.ramp)
        return dataclasses.replace(
            self,
            schedule=schedule,
            review_at=new.start + new.ramp + lag,
            frames=max(self.frames + shift, new.start + new.ramp + lag + 1),
        )


FULL = Scenario()
"""The default: what the numbers in docs/loop.md come from."""

FAST = Scenario(
    schedule="blur:0.5@150+30",
    frames=400,
    budget=40,
    size_wh=(320, 240),
    imgsz=320,
    epochs=1,
    fps=20.0,
    review_at=300,
    after_promotion=300,
    live_window=150,
    live_stride=2,
    drift_window=60,
    drift_interval=10.0,
    policy_interval=2.0,
    max_golden_drop=0.1,
    golden_images=20,
    test_images=30,
    timeout_s=900.0,  # minutes on a quiet machine; a loaded one takes several times that
)
"""A small configuration for tests and CI (small frames, one tiny epoch, a lenient gate)."""


def parse_strategies(text: str) -> list[LabelingStrategy]:
    """``"uncertainty,random"`` -> the strategies, in order, each once."""
    found: list[LabelingStrategy] = []
    for name in (part.strip() for part in text.split(",")):
        if not name:
            continue
        strategy = _BY_NAME.get(name)
        if strategy is None:
            raise InvalidInputError(
                f"unknown strategy {name!r} in --compare; choose from {', '.join(STRATEGIES)}"
            )
        if strategy not in found:
            found.append(strategy)
    if not found:
        raise InvalidInputError("--compare needs at least one strategy")
    return found
