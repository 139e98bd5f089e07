"""The ``evaluate`` job: ``visionloop evaluate`` of a registered model version on a dataset
folder; the job's result is the evaluation report (mAP50, mAP50-95, per-class AP50 and recall).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from visionloop.jobs.kinds import JobContext, JobKind
from visionloop.types import BackendChoice, Precision


class EvaluateParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_version: str = Field(
        pattern=r"^([0-9]{1,9}|production|staging)$",
        description="A registered version number, or the alias production or staging.",
    )
    dataset: str = Field(
        min_length=1,
        max_length=1000,
        description="Absolute path of a YOLO dataset folder (or its data.yaml) on the worker.",
    )
    split: str = Field(default="test", pattern=r"^[A-Za-z0-9_-]{1,32}$")
    backend: BackendChoice = "auto"
    precision: Precision = "fp32"

    @field_validator("dataset")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not Path(value).is_absolute():
            raise ValueError("must be an absolute path (it is read on the worker's machine)")
        return value


def run_evaluate(params: EvaluateParams, ctx: JobContext) -> dict[str, Any]:
    import importlib.util

    from visionloop.errors import NotFoundError, VisionloopError

    if importlib.util.find_spec("faster_coco_eval") is None:
        raise VisionloopError("evaluate jobs need the train extra: pip install 'visionloop[train]'")
    from visionloop.training.evaluate import evaluate
    from visionloop.training.registry import Registry

    registry = Registry.from_settings(ctx.settings)
    if params.model_version.isdigit():
        version = registry.get(params.model_version)
    else:
        found = registry.by_alias(params.model_version)
        if found is None:
            raise NotFoundError(f"no model version has the alias {params.model_version!r}")
        version = found
    ctx.progress(0.0, f"fetching model version {version.version}")
    onnx = registry.onnx_path(version.version)

    def on_image(done: int, total: int) -> None:
        ctx.progress(0.02 + 0.98 * done / total, f"{done}/{total} images")

    report = evaluate(
        onnx,
        Path(params.dataset),
        split=params.split,
        backend=params.backend,
        precision=params.precision,
        progress=on_image,
    )
    return {"model_version": version.version, **report.to_dict()}


EVALUATE = JobKind(
    name="evaluate",
    params=EvaluateParams,
    run=run_evaluate,
    description="Evaluate a registered model version on a YOLO dataset split (COCO mAP).",
)
