"""Drift scenarios of the synthetic line and schedules that change them over time.

A schedule spec reads ``NAME[:INTENSITY][@START[+RAMP]]``: ``"nominal"``, ``"lighting:0.8"``
(from the first frame), ``"blur:1.0@300+200"`` (nominal until frame 300, then a linear ramp that
reaches full intensity at frame 500), ``"noise@100"`` (intensity 1.0, a step at frame 100).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from visionloop.errors import InvalidInputError

SCENARIOS: tuple[str, ...] = ("nominal", "lighting", "blur", "noise", "new_texture", "combined")

_SPEC = re.compile(
    r"^(?P<name>[a-z_]+)"
    r"(?::(?P<intensity>[^@]+))?"
    r"(?:@(?P<start>[^+]+)(?:\+(?P<ramp>.+))?)?$"
)


@dataclass(frozen=True, slots=True)
class Drift:
    """The drift applied to one frame: a scenario at an intensity in 0..1 (0 is nominal)."""

    scenario: str
    intensity: float

    @property
    def is_nominal(self) -> bool:
        return self.scenario == "nominal" or self.intensity <= 0.0


NOMINAL = Drift("nominal", 0.0)


@dataclass(frozen=True, slots=True)
class ScenarioSchedule:
    """A scenario that starts at frame ``start`` and ramps linearly to ``intensity`` over ``ramp``
    frames (``ramp == 0`` is a step)."""

    scenario: str = "nominal"
    intensity: float = 1.0
    start: int = 0
    ramp: int = 0

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise InvalidInputError(
                f"unknown scenario {self.scenario!r}; choose one of {', '.join(SCENARIOS)}"
            )
        if not 0.0 <= self.intensity <= 1.0:
            raise InvalidInputError(f"intensity must be within 0..1, got {self.intensity}")
        if self.start < 0 or self.ramp < 0:
            raise InvalidInputError("start and ramp must be non-negative frame counts")

    def at(self, index: int) -> Drift:
        """The drift at frame ``index``."""
        if self.scenario == "nominal" or index < self.start:
            return NOMINAL
        if self.ramp == 0:
            return Drift(self.scenario, self.intensity)
        fraction = min(1.0, (index - self.start) / self.ramp)
        return Drift(self.scenario, self.intensity * fraction)

    def __str__(self) -> str:
        if self.scenario == "nominal":
            return "nominal"
        spec = f"{self.scenario}:{self.intensity:g}"
        if self.start or self.ramp:
            spec += f"@{self.start}"
            if self.ramp:
                spec += f"+{self.ramp}"
        return spec


def parse_schedule(spec: str) -> ScenarioSchedule:
    """Parse ``NAME[:INTENSITY][@START[+RAMP]]``; a bad spec raises ``InvalidInputError``."""
    text = spec.strip()
    match = _SPEC.match(text)
    if match is None:
        raise InvalidInputError(
            f"bad scenario schedule {spec!r}: expected NAME[:INTENSITY][@START[+RAMP]], "
            'for example "blur:1.0@300+200"'
        )
    name = match["name"]
    if name not in SCENARIOS:
        raise InvalidInputError(
            f"unknown scenario {name!r} in {spec!r}; choose one of {', '.join(SCENARIOS)}"
        )
    intensity = _parse_float(match["intensity"], spec) if match["intensity"] else 1.0
    start = _parse_frames(match["start"], "start frame", spec) if match["start"] else 0
    ramp = _parse_frames(match["ramp"], "ramp length", spec) if match["ramp"] else 0
    return ScenarioSchedule(scenario=name, intensity=intensity, start=start, ramp=ramp)


def _parse_float(text: str, spec: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise InvalidInputError(
            f"bad intensity {text!r} in scenario schedule {spec!r}: expected a number in 0..1"
        )
    return value


def _parse_frames(text: str, what: str, spec: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise InvalidInputError(
            f"bad {what} {text!r} in scenario schedule {spec!r}: expected a whole number of frames"
        )
    return int(text)
