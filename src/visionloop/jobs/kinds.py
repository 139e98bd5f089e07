"""The registry of job kinds: a kind's name, its parameters (a pydantic model) and the function
a worker runs for it in a subprocess.

A kind is added with one entry: a module-level ``JobKind`` whose ``run`` takes the validated
parameters and a ``JobContext`` and returns the job's result (JSON-ready). ``run`` and
``params`` must be importable by name (module-level), because the job's subprocess imports them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from visionloop.config import Settings
from visionloop.errors import InvalidInputError

P = TypeVar("P", bound=BaseModel)

MAX_LISTED_ERRORS = 10


class JobContext(Protocol):
    """What a running job may use: its identity, the settings, and a progress reporter.

    Anything the job prints or logs (``logging``, INFO and up) becomes its log.
    """

    job_id: int
    attempt: int
    settings: Settings

    def progress(self, fraction: float, message: str = "") -> None:
        """Report progress in 0..1 with a short message (shown by the API and the CLI)."""
        ...


def ref(obj: Any) -> str:
    """``module:qualname`` of a module-level function or class, for the subprocess to import."""
    return f"{obj.__module__}:{obj.__qualname__}"


@dataclass(frozen=True)
class JobKind(Generic[P]):
    """One kind of job. ``run(params, ctx)`` returns the result stored on the job."""

    name: str
    params: type[P]
    run: Callable[[P, JobContext], dict[str, Any]]
    description: str

    def validate(self, raw: object) -> dict[str, Any]:
        """``raw`` checked against the parameters model: the JSON to store. InvalidInputError
        names every bad field as ``params.<field>``."""
        try:
            return self.params.model_validate(raw).model_dump(mode="json")
        except ValidationError as exc:
            errors = exc.errors()
            parts = [
                "params"
                + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e["loc"])
                + f": {e['msg']}"
                for e in errors[:MAX_LISTED_ERRORS]
            ]
            raise InvalidInputError(
                f"invalid params for job kind {self.name!r}: " + "; ".join(parts)
            ) from exc


class JobKinds(Mapping[str, JobKind[Any]]):
    """Kinds by name: what a worker can run and what the API accepts."""

    def __init__(self, kinds: list[JobKind[Any]] | None = None) -> None:
        self._kinds: dict[str, JobKind[Any]] = {}
        for kind in kinds or []:
            self.add(kind)

    def add(self, kind: JobKind[Any]) -> None:
        if kind.name in self._kinds:
            raise ValueError(f"job kind {kind.name!r} registered twice")
        self._kinds[kind.name] = kind

    def __getitem__(self, name: str) -> JobKind[Any]:
        return self._kinds[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._kinds)

    def __len__(self) -> int:
        return len(self._kinds)

    def only(self, names: list[str]) -> JobKinds:
        """The kinds named (InvalidInputError for an unknown one)."""
        unknown = [n for n in names if n not in self._kinds]
        if unknown:
            raise InvalidInputError(
                f"unknown job kind {', '.join(unknown)} (known: {', '.join(self._kinds)})"
            )
        return JobKinds([self._kinds[n] for n in names])

    def kind(self, name: str) -> JobKind[Any]:
        """The kind ``name``, or InvalidInputError naming the known ones."""
        found = self._kinds.get(name)
        if found is None:
            raise InvalidInputError(
                f"unknown job kind {name!r} (known: {', '.join(self._kinds) or 'none'})"
            )
        return found


MONITORING_KINDS: frozenset[str] = frozenset({"drift_check", "alert_webhook"})
"""Short jobs that a worker runs in a lane of their own (see ``lanes``)."""


def lanes(kinds: JobKinds) -> list[JobKinds]:
    """``kinds`` split into the lanes one worker runs side by side: the monitoring kinds (drift
    checks, alarm webhooks: seconds each) and the rest (training, evaluation, quantization:
    minutes). So a train job never holds up a drift check or an alarm, while each lane still
    runs one job at a time. A lane without kinds is left out."""
    monitoring = [name for name in kinds if name in MONITORING_KINDS]
    rest = [name for name in kinds if name not in MONITORING_KINDS]
    return [kinds.only(group) for group in (monitoring, rest) if group]


def default_kinds() -> JobKinds:
    """Every kind visionloop ships."""
    from visionloop.jobs.evaluate import EVALUATE
    from visionloop.jobs.quantize import QUANTIZE
    from visionloop.jobs.train import TRAIN
    from visionloop.monitoring.alarms import ALERT_WEBHOOK
    from visionloop.monitoring.jobs import DRIFT_CHECK

    return JobKinds([EVALUATE, TRAIN, QUANTIZE, DRIFT_CHECK, ALERT_WEBHOOK])
