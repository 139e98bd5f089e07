"""Shared domain types: detections as arrays, the frame record on the wire, model identity."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field


@dataclass(frozen=True, slots=True)
class Detections:
    """Detections of one frame as parallel arrays.

    ``xyxy`` is float32 ``(N, 4)`` in pixels of the original frame; ``confidence`` float32 ``(N,)``
    in 0..1; ``class_id`` int64 ``(N,)``.
    """

    xyxy: NDArray[np.float32]
    confidence: NDArray[np.float32]
    class_id: NDArray[np.int64]

    def __post_init__(self) -> None:
        n = len(self.confidence)
        if self.xyxy.shape != (n, 4):
            raise ValueError(f"xyxy must be ({n}, 4), got {self.xyxy.shape}")
        if self.class_id.shape != (n,) or self.confidence.shape != (n,):
            raise ValueError("confidence and class_id must be 1-D and of equal length")

    def __len__(self) -> int:
        return len(self.confidence)

    @classmethod
    def empty(cls) -> Detections:
        return cls(
            xyxy=np.zeros((0, 4), np.float32),
            confidence=np.zeros((0,), np.float32),
            class_id=np.zeros((0,), np.int64),
        )

    def xyxyn(self, size_wh: tuple[int, int]) -> NDArray[np.float32]:
        """Boxes normalised to 0..1 by the frame size ``(width, height)``, clipped to the frame."""
        w, h = size_wh
        scale = np.array([w, h, w, h], np.float32)
        out: NDArray[np.float32] = np.clip(self.xyxy / scale, 0.0, 1.0).astype(np.float32)
        return out


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """Identity and interface of a detector model: what a loaded ONNX file says about itself."""

    version: str
    sha256: str
    names: dict[int, str]
    imgsz_hw: tuple[int, int]
    extra: dict[str, str] = field(default_factory=dict)


# --- The frame record (edge -> server). See docs/design.md "Frame record". -----------------------

SampleReason = Literal["uncertain", "audit", "drift"]

# Detector choices, shared by the runtime and the commands that expose them.
BackendChoice = Literal["auto", "onnxruntime", "openvino"]
Precision = Literal["fp32", "bf16", "int8"]
"""A precision a detector runs at (``int8`` is the model version's INT8 OpenVINO artifact)."""
PrecisionChoice = Literal["auto", "fp32", "bf16", "int8"]
"""What a user asks for: a precision, or ``auto`` (the fastest that keeps the accuracy)."""

MAX_FRAME_SIDE = 16384

# Capture times a frame record may carry, compared in UTC: a clock set to year 1 or 9999 is a
# broken clock, and such times cannot be converted to UTC or stored on every database.
# Text the databases can store: PostgreSQL text cannot hold a NUL character.
NO_NUL = r"^[^\x00]*$"
CAPTURED_AT_MIN = datetime(1970, 1, 1, tzinfo=UTC)
CAPTURED_AT_MAX = datetime(2100, 1, 1, tzinfo=UTC)


# Constraints are pydantic-core's own (no Python validator per number): ingest validates
# thousands of numbers per batch. ``allow_inf_nan=False`` refuses NaN and ±inf, which lenient JSON
# encoders write as NaN/Infinity tokens and which an overflowing literal like 1e400 becomes.
Count = Annotated[int, Field(ge=0, strict=True)]
"""A count: a JSON integer (``false`` or ``1.5`` is refused, not read as 0 or cut to 1)."""
_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def _not_a_number(value: object) -> object:
    # pydantic reads a number (or a numeric string, as query parameters are) as Unix seconds:
    # "since=0.5" would be 1970-01-01T00:00:00.5Z. A time is written as a time.
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("expected an ISO 8601 time such as 2026-11-26T10:00:00Z, not a number")
    return value


IsoDatetime = Annotated[datetime, BeforeValidator(_not_a_number)]
"""A time given as ISO 8601 text (never as a number of seconds)."""
Unit = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
FiniteNonNegative = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]


def _check_box(box: list[float]) -> list[float]:
    x1, y1, x2, y2 = box
    if x2 < x1 or y2 < y1:
        raise ValueError("box must have x2 >= x1 and y2 >= y1")
    return box


BoxXyxyn = Annotated[list[Unit], Field(min_length=4, max_length=4), AfterValidator(_check_box)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


class DetectionRecord(_Strict):
    """One detection: normalised ``xyxyn`` box in 0..1 of the original frame."""

    class_id: int = Field(ge=0, le=10_000)
    class_name: str = Field(min_length=1, max_length=64, pattern=NO_NUL)
    confidence: Unit
    xyxyn: BoxXyxyn


class FrameStats(_Strict):
    """Image statistics of a frame: brightness and contrast in 0..1, sharpness as the variance of
    the Laplacian."""

    brightness: Unit
    contrast: Unit
    sharpness: FiniteNonNegative


MAX_SOURCE_INDEX = 2**63 - 1
"""The largest ``source_index`` (a signed 64-bit column)."""


class FrameRecord(_Strict):
    """What an edge agent sends for one frame. ``id`` is the idempotency key."""

    id: uuid.UUID
    # Bounds checked by pydantic-core itself (in UTC), not by a Python validator per frame.
    captured_at: AwareDatetime = Field(
        ge=CAPTURED_AT_MIN,
        lt=CAPTURED_AT_MAX,
        description="When the frame was captured, with a time zone; 1970-01-01 <= UTC < 2100.",
    )
    model_version: str = Field(min_length=1, max_length=64, pattern=NO_NUL)
    width: int = Field(gt=0, le=MAX_FRAME_SIDE)
    height: int = Field(gt=0, le=MAX_FRAME_SIDE)
    stats: FrameStats
    detections: list[DetectionRecord] = Field(max_length=1000)
    sample_reason: SampleReason | None = None
    source_index: int | None = Field(
        default=None,
        ge=0,
        le=MAX_SOURCE_INDEX,
        description=(
            "The frame's number in its source, counted from 0 (a video's frame number, the "
            "synthetic line's frame index): gaps show dropped frames, and a synthetic frame's "
            "ground truth is re-rendered from it. Absent when the source has no numbering."
        ),
    )


class IngestBatch(_Strict):
    """Body of ``POST /api/v1/ingest``."""

    frames: list[FrameRecord] = Field(min_length=1)


class IngestResult(BaseModel):
    """Answer to an ingest: how many frames were new and how many were already stored."""

    accepted: int
    duplicates: int


def utc_iso(ts: datetime) -> str:
    """An aware datetime as ISO 8601 with a ``Z`` suffix, millisecond precision."""
    return ts.astimezone().isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Heartbeat(_Strict):
    """Body of ``POST /api/v1/devices/heartbeat``: an edge agent's health and metrics."""

    model_version: str | None = Field(default=None, max_length=64, pattern=NO_NUL)
    fps: FiniteNonNegative = 0.0
    latency_ms: dict[str, FiniteNonNegative] = Field(
        default_factory=dict, description="Median latency per pipeline stage, in ms."
    )
    queue_depths: dict[str, Count] = Field(default_factory=dict)
    outbox_backlog: Count = Field(default=0, description="Records waiting in the outbox.")
    dropped_frames: Count = Field(default=0, description="Frames a live source dropped.")
    counters: dict[str, Count] = Field(
        default_factory=dict, description="Other monotonic counters (sampled, uploaded, evicted…)."
    )
    model_error: str | None = Field(
        default=None, max_length=2000, description="Last model download or load failure, if any."
    )
    sent_at: Annotated[AwareDatetime, BeforeValidator(_not_a_number)] | None = Field(
        default=None,
        ge=CAPTURED_AT_MIN,
        lt=CAPTURED_AT_MAX,
        description=(
            "The device's own clock when it sent this heartbeat (UTC, ISO 8601; 1970-01-01 <= "
            "UTC < 2100); the server compares it with its clock to show the device's clock offset."
        ),
    )
    dead_letters: Count = Field(
        default=0,
        description="Records the server refused for good (set aside in the outbox's dead letters).",
    )
    backend: str | None = Field(
        default=None,
        max_length=500,
        description=(
            "The inference backend and precision the agent runs and why it chose them, e.g. "
            "'openvino bf16: OpenVINO on this x86 CPU; bf16: the CPU has AMX and bf16 "
            "detections agree with fp32 (24/24)'."
        ),
    )


class Int8Artifact(BaseModel):
    """A model version's INT8 OpenVINO model (a tar of ``model.xml`` + ``model.bin``)."""

    sha256: str
    size_bytes: int
    download_url: str
    accepted: bool = Field(
        description=(
            "Whether its mAP50 on the golden set is within the INT8 budget of the fp32 "
            "model's; precision auto uses it only then."
        )
    )
    map50_fp32: float | None = None
    map50_int8: float | None = None


class ProductionModel(BaseModel):
    """Answer of ``GET /api/v1/models/production``: what an edge agent should run."""

    version: str
    sha256: str
    size_bytes: int
    download_url: str
    int8: Int8Artifact | None = Field(
        default=None, description="The version's INT8 artifact, when it was quantized."
    )


class HeartbeatAnswer(BaseModel):
    """The server's answer to a heartbeat: what it asks of the device now."""

    drift_alarm: bool = Field(default=False, description="The device's drift alarm is open.")
    audit_rate_factor: float = Field(
        default=1.0,
        ge=1.0,
        le=1000.0,
        description=(
            "Multiply the audit sampling rate by this (1: as configured); the per-minute cap "
            "still holds. Frames sampled by the raised rate are marked sample_reason 'drift'."
        ),
    )
