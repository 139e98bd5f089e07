"""Recording a finished training run in MLflow and registering its ONNX model as a new version.

:func:`log_training_run` writes one MLflow run (params, per-epoch metrics, the evaluation
metrics, the dataset digest, and the artifacts ``best.pt``, ``model.onnx`` and ``eval.json``);
:func:`register_trained_model` registers the ONNX file through the model registry, tags it and
points the ``staging`` alias at it. MLflow is imported inside the functions (it is slow to import
and absent from edge installs).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from visionloop.training.train import TrainResult

log = logging.getLogger(__name__)

DEFAULT_EXPERIMENT = "visionloop-training"
STAGING_ALIAS = "staging"


class RegisteredVersion(Protocol):
    """What registering returns: at least the new version's number."""

    @property
    def version(self) -> str: ...


class ModelRegistry(Protocol):
    """The part of :class:`visionloop.training.registry.Registry` that training uses."""

    def register(
        self,
        onnx_path: Path,
        *,
        run_id: str | None = None,
        tags: dict[str, str] | None = None,
        description: str = "",
    ) -> RegisteredVersion: ...

    def promote(self, version: str, *, alias: str = "production", by: str, reason: str) -> None: ...


@dataclass(frozen=True)
class EvalSummary:
    """The evaluation of the exported model that training records.

    ``metrics``: ``map50``, ``map50_95`` and ``<class>_ap50`` / ``<class>_recall`` (test split);
    ``report``: the evaluation JSON as :func:`visionloop.training.evaluate.evaluate` wrote it;
    ``json_path``: that file, logged as an artifact.
    """

    metrics: dict[str, float]
    report: Mapping[str, Any]
    json_path: Path | None


def summarize_eval(report: Mapping[str, Any], json_path: Path | None = None) -> EvalSummary:
    """Flatten an evaluation report (``EvalReport.to_dict()``) into MLflow metrics."""
    metrics = {"map50": float(report["map50"]), "map50_95": float(report["map50_95"])}
    for name, per_class in dict(report.get("per_class", {})).items():
        for key in ("ap50", "recall"):
            if key in per_class:
                metrics[f"{name}_{key}"] = float(per_class[key])
    return EvalSummary(metrics=metrics, report=report, json_path=json_path)


def log_training_run(
    result: TrainResult,
    *,
    tracking_uri: str,
    dataset_digest: str,
    evaluation: EvalSummary | None = None,
    artifact_root: Path | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    run_name: str | None = None,
) -> str:
    """Write one finished MLflow run for ``result`` and return its run id.

    ``artifact_root`` is where a new experiment keeps its artifacts (a local folder for a
    ``sqlite:`` store; ignored for an existing experiment or an MLflow server, which decide).
    Per-epoch metrics are logged with ``step`` = epoch; evaluation metrics as ``test_<name>``.
    """
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is not None:
        experiment_id = found.experiment_id
    else:
        location = artifact_root.resolve().as_uri() if artifact_root is not None else None
        experiment_id = client.create_experiment(experiment, artifact_location=location)
    run = client.create_run(
        experiment_id,
        run_name=run_name,
        tags={"visionloop.kind": "train", "dataset_digest": dataset_digest},
    )
    run_id: str = run.info.run_id
    try:
        now = int(time.time() * 1000)
        params = [Param(k, v[:6000]) for k, v in sorted(result.params.items())]
        params.append(Param("dataset_digest", dataset_digest))
        metrics = [
            Metric(key, value, now, int(epoch["epoch"]))
            for epoch in result.metrics_per_epoch
            for key, value in epoch.items()
            if key != "epoch"
        ]
        metrics.append(Metric("train_seconds", result.seconds, now, 0))
        if evaluation is not None:
            metrics += [Metric(f"test_{k}", v, now, 0) for k, v in evaluation.metrics.items()]
        # log_batch takes at most 1000 metrics per call.
        client.log_batch(run_id, params=params)
        for start in range(0, len(metrics), 900):
            client.log_batch(run_id, metrics=metrics[start : start + 900])
        client.log_artifact(run_id, str(result.best_pt), artifact_path="weights")
        client.log_artifact(run_id, str(result.onnx_path), artifact_path="model")
        if evaluation is not None and evaluation.json_path is not None:
            client.log_artifact(run_id, str(evaluation.json_path), artifact_path="evaluation")
        for name in ("results.csv", "args.yaml"):
            if (result.run_dir / name).is_file():
                client.log_artifact(run_id, str(result.run_dir / name), artifact_path="ultralytics")
    except Exception:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id, status="FINISHED")
    log.info("logged training run %s in experiment %s", run_id, experiment)
    return run_id


def register_trained_model(
    registry: ModelRegistry,
    result: TrainResult,
    *,
    run_id: str | None,
    sha256: str,
    dataset_digest: str,
    evaluation: EvalSummary | None = None,
    by: str = "visionloop train",
) -> RegisteredVersion:
    """Register ``result.onnx_path`` as a new version, tagged, and move ``staging`` to it.

    Tags: ``sha256`` (of the ONNX file), ``dataset_digest``, ``train_run_id`` and the evaluation
    metrics (``map50``, ``map50_95``, ``<class>_ap50``, ``<class>_recall``) as strings, which
    the registry reads back as the version's metrics.
    """
    tags = {"sha256": sha256, "dataset_digest": dataset_digest}
    if run_id is not None:
        tags["train_run_id"] = run_id
    if evaluation is not None:
        tags |= {k: f"{v:.6f}" for k, v in evaluation.metrics.items()}
    model = result.params.get("model", "")
    description = f"{model} trained {result.params.get('epochs_run', '?')} epochs"
    version = registry.register(result.onnx_path, run_id=run_id, tags=tags, description=description)
    registry.promote(
        version.version,
        alias=STAGING_ALIAS,
        by=by,
        reason=f"new training run {run_id or '-'} on dataset {dataset_digest[:12]}",
    )
    return version
