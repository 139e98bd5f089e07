"""The ``quantize`` job: ``visionloop models quantize`` of a registered version (NNCF INT8,
checked against fp32 on the golden set, stored with the version); its result is the check."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from visionloop.jobs.kinds import JobContext, JobKind


class QuantizeParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_version: str = Field(
        pattern=r"^[0-9]{1,9}$", description="The registered version number to quantize."
    )
    calibration: int = Field(default=300, ge=1, le=5000, description="Calibration frames.")
    eval_images: int = Field(default=300, ge=1, le=5000, description="Images per test set.")
    drift: str | None = Field(
        default="lighting:1.0",
        max_length=200,
        description="A drift scenario to measure too (the synthetic line's spec), or null.",
    )


def run_quantize(params: QuantizeParams, ctx: JobContext) -> dict[str, Any]:
    from visionloop.training.quantize import quantize_version
    from visionloop.training.registry import Registry

    check = quantize_version(
        Registry.from_settings(ctx.settings),
        params.model_version,
        calibration=params.calibration,
        drift=params.drift,
        eval_images=params.eval_images,
        progress=ctx.progress,
    )
    return {"model_version": params.model_version, **asdict(check)}


QUANTIZE = JobKind(
    name="quantize",
    params=QuantizeParams,
    run=run_quantize,
    description="Quantize a registered model version to INT8 (OpenVINO, NNCF) and store it.",
)
