"""Ultralytics training of a detector on a YOLO-format dataset, offline, and its ONNX export.

:func:`train` trains from an architecture YAML (``yolo11n.yaml``: from scratch) or from ``.pt``
weights (fine-tuning), reports each epoch through an optional callback and exports the best
weights to ONNX. It knows nothing of MLflow (see :mod:`visionloop.training.tracking`), so it
runs wherever Ultralytics does. Ultralytics is imported inside the functions: it is the optional
``train`` extra and slow to import.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from visionloop.errors import InvalidInputError, ModelError
from visionloop.training.ultralytics_env import prepare_ultralytics

log = logging.getLogger(__name__)

# Ultralytics' metric names -> ours (plain identifiers, stable across its releases).
_METRIC_NAMES = {
    "metrics/precision(B)": "precision",
    "metrics/recall(B)": "recall",
    "metrics/mAP50(B)": "map50",
    "metrics/mAP50-95(B)": "map50_95",
}


@dataclass(frozen=True)
class EpochReport:
    """What one finished epoch produced.

    ``epoch`` counts from 1; ``epochs`` is the planned total, which Ultralytics re-plans after
    each epoch when a time budget is set. ``metrics`` holds ``train_<loss>`` and ``val_<loss>``
    (box, cls, dfl), ``precision``, ``recall``, ``map50``, ``map50_95`` (validation split) and
    ``lr_pg<N>``.
    """

    epoch: int
    epochs: int
    seconds: float
    metrics: dict[str, float]


@dataclass(frozen=True)
class BatchReport:
    """Progress inside an epoch: ``batch`` of ``batches`` of ``epoch`` (all counting from 1)."""

    epoch: int
    epochs: int
    batch: int
    batches: int


@dataclass
class TrainResult:
    """A finished training run.

    ``best_pt``: the best checkpoint (by Ultralytics' fitness on the validation split);
    ``onnx_path``: its ONNX export; ``metrics_per_epoch``: one dict per epoch (``epoch`` from 1
    plus the :class:`EpochReport` metrics); ``seconds``: wall time of the training loop and the
    export; ``run_dir``: Ultralytics' run folder (``results.csv``, ``args.yaml``, ``weights/``);
    ``params``: the arguments that define the run, for tracking; ``final_metrics``:
    Ultralytics' validation of ``best_pt`` on the validation split (``map50``, ``map50_95``, ...).
    """

    best_pt: Path
    onnx_path: Path
    metrics_per_epoch: list[dict[str, float]]
    seconds: float
    run_dir: Path = Path()
    params: dict[str, str] = field(default_factory=dict)
    final_metrics: dict[str, float] = field(default_factory=dict)


def onnxslim_available() -> bool:
    """Whether ONNX graphs can be simplified here (Ultralytics would otherwise pip-install it)."""
    return importlib.util.find_spec("onnxslim") is not None


def train(
    data_yaml: Path,
    *,
    out_dir: Path,
    model: str = "yolo11n.yaml",
    epochs: int,
    imgsz: int = 640,
    batch: int = 16,
    device: str = "cpu",
    seed: int = 0,
    workers: int = 0,
    cache: bool | str = False,
    time_hours: float | None = None,
    patience: int = 100,
    deterministic: bool = True,
    amp: bool | str | None = None,
    threads: int | None = None,
    freeze: int | None = None,
    config_dir: Path | None = None,
    on_epoch: Callable[[EpochReport], None] | None = None,
    on_batch: Callable[[BatchReport], None] | None = None,
    verbose: bool = False,
) -> TrainResult:
    """Train a YOLO detector on ``data_yaml`` and export the best weights to ONNX.

    ``model`` is an Ultralytics architecture YAML (``yolo11n.yaml``, trained from scratch) or a
    path to ``.pt`` weights to fine-tune; nothing is ever downloaded. ``device`` is ``cpu`` or a
    CUDA index (``0``). ``time_hours``, when set, is Ultralytics' training-time budget: it
    overrides ``epochs`` and stops training in time. ``threads`` is the torch thread count for
    CPU training; ``freeze`` the number of leading layers kept fixed (10: YOLO11's backbone,
    for a quick fine-tune); ``config_dir`` is Ultralytics' settings folder (default
    ``out_dir/ultralytics``).
    ``deterministic=False`` lets cuDNN pick the fastest kernels (GPU runs). ``amp`` defaults to
    bf16 on CUDA cards that have it and fp32 elsewhere (Ultralytics' fp16 AMP check downloads).
    The run lands in ``out_dir/train``; the ONNX export (input ``imgsz``) in
    ``out_dir/model.onnx``.
    """
    data_yaml = Path(data_yaml).resolve()
    if not data_yaml.is_file():
        raise InvalidInputError(f"dataset file not found: {data_yaml}")
    if epochs < 1:
        raise InvalidInputError(f"epochs must be at least 1, got {epochs}")
    if imgsz < 32 or imgsz % 32:
        raise InvalidInputError(f"imgsz must be a positive multiple of 32, got {imgsz}")
    weights = Path(model)
    if model.endswith(".pt") and not weights.is_file():
        raise InvalidInputError(f"weights file not found: {model} (weights are never downloaded)")
    if not model.endswith((".pt", ".yaml", ".yml")):
        raise InvalidInputError(f"model must be an architecture .yaml or .pt weights, got {model}")

    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    prepare_ultralytics(config_dir or out_dir / "ultralytics", threads=threads)
    from ultralytics.models import YOLO

    amp = _amp_mode(device) if amp is None else amp
    try:
        yolo = YOLO(str(weights.resolve()) if model.endswith(".pt") else model)
    except (FileNotFoundError, ConnectionError) as exc:
        raise ModelError(f"cannot build model {model!r} offline: {exc}") from exc
    per_epoch: list[dict[str, float]] = []
    final: dict[str, float] = {}
    _add_callbacks(yolo, per_epoch, final, on_epoch=on_epoch, on_batch=on_batch)
    args: dict[str, Any] = {
        "data": str(data_yaml),
        "epochs": epochs,
        "imgsz": imgsz,
        "batch": batch,
        "device": device,
        "seed": seed,
        "deterministic": deterministic,
        "workers": workers,
        "cache": cache,
        "patience": patience,
        "amp": amp,
        "plots": False,
        "project": str(out_dir),
        "name": "train",
        "exist_ok": True,
        "verbose": verbose,
    }
    if time_hours is not None:
        args["time"] = time_hours
    if freeze:
        args["freeze"] = freeze
    started = time.perf_counter()
    yolo.train(**args)
    trainer: Any = yolo.trainer
    run_dir = Path(trainer.save_dir)
    best_pt = Path(trainer.best)
    if not best_pt.is_file():
        best_pt = Path(trainer.last)
    if not best_pt.is_file():
        raise ModelError(f"training wrote no checkpoint under {run_dir}")
    onnx_path = export_onnx(best_pt, out_dir / "model.onnx", imgsz=imgsz)
    seconds = time.perf_counter() - started
    params = {k: str(v) for k, v in args.items() if k not in {"project", "name", "exist_ok"}}
    params["model"] = model
    params["epochs_run"] = str(len(per_epoch))
    return TrainResult(
        best_pt=best_pt,
        onnx_path=onnx_path,
        metrics_per_epoch=per_epoch,
        seconds=seconds,
        run_dir=run_dir,
        params=params,
        final_metrics=final,
    )


def export_onnx(weights: Path, out: Path, *, imgsz: int, config_dir: Path | None = None) -> Path:
    """Export Ultralytics ``.pt`` weights to an ONNX file at ``out`` and return its path.

    Input ``images`` float32 ``[1,3,imgsz,imgsz]``; the file carries Ultralytics' metadata
    (``names``, ``imgsz``, ``stride``, ``task``). Static shape, opset chosen by Ultralytics,
    simplified only where onnxslim is installed. The export runs in a scratch folder so nothing
    is written beside ``weights``. ``config_dir``: see :func:`prepare_ultralytics`.
    """
    weights = Path(weights).resolve()
    if not weights.is_file():
        raise InvalidInputError(f"weights file not found: {weights}")
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    prepare_ultralytics(config_dir)
    from ultralytics.models import YOLO

    with tempfile.TemporaryDirectory(prefix="visionloop-export-") as tmp:
        scratch = Path(tmp) / "model.pt"
        shutil.copyfile(weights, scratch)
        with warnings.catch_warnings():
            # Ultralytics calls torch's TorchScript-based exporter on purpose (its graphs are
            # what every runtime reads): torch >= 2.9 flags that path as deprecated and the
            # tracer warns about Python control flow it records as constants. Neither is ours
            # to fix; a real export problem raises. Ignored here so that an export never fails
            # under -W error (pytest), where a warning inside torch's C code turns into a
            # SystemError.
            warnings.simplefilter("ignore")
            exported = YOLO(str(scratch)).export(
                format="onnx",
                imgsz=imgsz,
                simplify=onnxslim_available(),
                dynamic=False,
                nms=False,
                device="cpu",
                verbose=False,
            )
        shutil.move(str(exported), out)
    return out


@dataclass
class _EpochClock:
    started: float
    batch: int
    in_epoch: bool


def _amp_mode(device: str) -> bool | str:
    """Mixed precision without Ultralytics' AMP check (which downloads weights to run).

    CUDA with native bfloat16 trains in bf16 (Ultralytics skips the check for it); anything
    else trains in fp32.
    """
    if device.strip().lower() in {"cpu", "mps", ""}:
        return False
    import torch

    if torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False):
        return "bf16"
    return False


def _add_callbacks(
    yolo: Any,
    per_epoch: list[dict[str, float]],
    final: dict[str, float],
    *,
    on_epoch: Callable[[EpochReport], None] | None,
    on_batch: Callable[[BatchReport], None] | None,
) -> None:
    """Collect per-epoch metrics from Ultralytics' callbacks and forward progress."""
    state = _EpochClock(started=time.perf_counter(), batch=0, in_epoch=False)

    def epoch_start(trainer: Any) -> None:
        state.started = time.perf_counter()
        state.batch = 0
        state.in_epoch = True

    def batch_end(trainer: Any) -> None:
        # Ultralytics keeps no batch index on the trainer; count the calls within the epoch.
        state.batch += 1
        if on_batch is not None:
            batches = len(trainer.train_loader)
            on_batch(BatchReport(trainer.epoch + 1, trainer.epochs, state.batch, batches))

    def fit_epoch_end(trainer: Any) -> None:
        metrics: dict[str, float] = {}
        if not state.in_epoch:
            # Ultralytics' final validation of best.pt fires this callback too, outside an epoch.
            for key, value in trainer.metrics.items():
                final[_METRIC_NAMES.get(key, key.replace("/", "_"))] = float(value)
            return
        state.in_epoch = False
        losses = trainer.label_loss_items(trainer.tloss, prefix="train") if trainer.tloss else {}
        for key, value in {**losses, **trainer.metrics, **(trainer.lr or {})}.items():
            name = _METRIC_NAMES.get(key, key.replace("/", "_"))
            number = float(value)
            if math.isfinite(number):
                metrics[name] = number
        seconds = time.perf_counter() - state.started
        report = EpochReport(trainer.epoch + 1, trainer.epochs, seconds, metrics)
        per_epoch.append({"epoch": float(report.epoch), "seconds": seconds, **metrics})
        log.info("epoch %d/%d %.1fs %s", report.epoch, report.epochs, seconds, metrics)
        if on_epoch is not None:
            on_epoch(report)

    yolo.add_callback("on_train_epoch_start", epoch_start)
    yolo.add_callback("on_train_batch_end", batch_end)
    yolo.add_callback("on_fit_epoch_end", fit_epoch_end)
