"""CLI command ``visionloop train``: train, export, evaluate, log to MLflow, register a version."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from visionloop.cli.settings import load_settings
from visionloop.errors import VisionloopError

if TYPE_CHECKING:
    from visionloop.training.registry import Registry
    from visionloop.training.train import TrainResult


def register(app: typer.Typer) -> None:
    """Add this module's commands to the top-level app."""
    app.command("train")(train_command)


def train_command(
    data: Annotated[
        Path,
        typer.Argument(help="YOLO-format data.yaml with train, val and (optionally) test splits."),
    ],
    out: Annotated[
        Path | None,
        typer.Option(help="Run folder. Default <data_dir>/runs/train-<UTC time>."),
    ] = None,
    model: Annotated[
        str, typer.Option(help="Architecture YAML (from scratch) or .pt weights (fine-tune).")
    ] = "yolo11n.yaml",
    epochs: Annotated[int, typer.Option(min=1, help="Epochs (an upper bound with --time).")] = 50,
    imgsz: Annotated[int, typer.Option(help="Square training and export size, pixels.")] = 640,
    batch: Annotated[int, typer.Option(min=1, help="Images per batch.")] = 16,
    device: Annotated[str, typer.Option(help="'cpu' or a CUDA device index such as 0.")] = "cpu",
    seed: Annotated[int, typer.Option(help="Seed for Ultralytics' training.")] = 0,
    workers: Annotated[int, typer.Option(min=0, help="Data-loader processes (GPU only).")] = 0,
    time_hours: Annotated[
        float | None, typer.Option("--time", help="Training-time budget in hours (stops in time).")
    ] = None,
    split: Annotated[
        str, typer.Option(help="Split the export is evaluated on (val when there is no test).")
    ] = "test",
    register_model: Annotated[
        bool,
        typer.Option(
            "--register/--no-register",
            help="Log the run to MLflow and register a version with alias 'staging'.",
        ),
    ] = True,
    verbose: Annotated[bool, typer.Option(help="Show Ultralytics' own output.")] = False,
) -> None:
    """Train a YOLO detector offline, export ONNX, evaluate it and register it in MLflow."""
    settings = load_settings()
    if not verbose:
        # Read by Ultralytics at import: silences its logger and progress bars; ours replace them.
        os.environ.setdefault("YOLO_VERBOSE", "false")
    if importlib.util.find_spec("ultralytics") is None:
        typer.echo(
            "error: training needs the 'train' extra (pip install 'visionloop[train]')", err=True
        )
        raise typer.Exit(2)
    _check_device(device)
    from visionloop.training.train import BatchReport, EpochReport, train

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    run_dir = (out or settings.data_dir / "runs" / f"train-{stamp}").resolve()
    console = Console()
    console.print(f"training [bold]{model}[/] on {data} ({device}, imgsz {imgsz}) -> {run_dir}")
    header = "epoch      time   box    cls    dfl    P      R      mAP50  mAP50-95"
    console.print(f"[dim]{header}[/]")
    with Progress(
        TextColumn("[cyan]epoch {task.fields[epoch]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("train", total=None, epoch="1")

        def on_batch(report: BatchReport) -> None:
            progress.update(
                task,
                completed=report.batch,
                total=report.batches,
                epoch=f"{report.epoch}/{report.epochs}",
            )

        def on_epoch(report: EpochReport) -> None:
            m = report.metrics
            console.print(
                f"{report.epoch:>4}/{report.epochs:<4} {report.seconds:6.1f}s "
                f"{m.get('train_box_loss', 0.0):.3f}  {m.get('train_cls_loss', 0.0):.3f}  "
                f"{m.get('train_dfl_loss', 0.0):.3f}  {m.get('precision', 0.0):.3f}  "
                f"{m.get('recall', 0.0):.3f}  [bold]{m.get('map50', 0.0):.3f}[/]  "
                f"{m.get('map50_95', 0.0):.3f}"
            )

        try:
            result = train(
                data,
                out_dir=run_dir,
                model=model,
                epochs=epochs,
                imgsz=imgsz,
                batch=batch,
                device=device,
                seed=seed,
                workers=workers,
                time_hours=time_hours,
                config_dir=settings.data_dir / "ultralytics",
                on_epoch=on_epoch,
                on_batch=on_batch,
                verbose=verbose,
            )
        except VisionloopError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc
    console.print(
        f"trained {len(result.metrics_per_epoch)} epochs in {result.seconds:.0f}s; "
        f"best {result.best_pt}; ONNX {result.onnx_path} "
        f"({result.onnx_path.stat().st_size / 1e6:.1f} MB)"
    )
    _evaluate_and_register(
        result, data=data, split=split, register_model=register_model, console=console
    )


def _check_device(device: str) -> None:
    """Refuse a device this machine lacks before anything starts (Ultralytics would raise deep
    inside training)."""
    if device.strip().lower() in ("cpu", "mps"):
        return
    indexes = [d.strip() for d in device.split(",")]
    if not all(d.isdigit() for d in indexes):
        raise typer.BadParameter(
            f"expected cpu or CUDA device indexes such as 0 or 0,1, got {device!r}",
            param_hint="'--device'",
        )
    import torch

    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    missing = [d for d in indexes if int(d) >= available]
    if missing:
        where = (
            f"this machine has {available} CUDA device(s)"
            if available
            else "CUDA is not available here"
        )
        raise typer.BadParameter(f"{device}: {where}; use --device cpu", param_hint="'--device'")


def _drift_profile(registry: Registry, version: str, data: Path, console: Console) -> None:
    """The version's drift reference profile from the dataset's val split (a warning when that
    fails: drift checks then fall back to the devices' first frames)."""
    import tempfile

    from visionloop.monitoring.profile import dataset_frames, profile_version

    try:
        total, frames = dataset_frames(data, split="val")
        with tempfile.TemporaryDirectory() as tmp:
            done = profile_version(
                registry,
                version,
                frames,
                source=f"val split of {data}",
                work_dir=Path(tmp),
                total=total,
            )
    except VisionloopError as exc:
        console.print(f"[yellow]no drift reference profile: {exc}[/]")
        return
    console.print(f"drift reference profile of {done} val frames")


def _evaluate_and_register(
    result: TrainResult, *, data: Path, split: str, register_model: bool, console: Console
) -> None:
    """Evaluate the exported model, then log the run and register it (when MLflow is there)."""
    from visionloop.training.evaluate import dataset_digest, evaluate, split_files
    from visionloop.training.tracking import summarize_eval
    from visionloop.vision.detector import sha256_file

    dataset_dir = data.resolve().parent
    if split == "test":
        try:
            split_files(data, "test")
        except VisionloopError:
            console.print("[yellow]the dataset has no test split (or it is empty): using val[/]")
            split = "val"
    try:
        report = evaluate(result.onnx_path, data, split=split).to_dict()
    except VisionloopError as exc:
        typer.echo(f"error: evaluation failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    eval_json = result.onnx_path.parent / "eval.json"
    eval_json.write_text(json.dumps(report, indent=2))
    evaluation = summarize_eval(report, eval_json)
    console.print(
        f"{split}: mAP50 [bold]{report['map50']:.3f}[/]  mAP50-95 {report['map50_95']:.3f} "
        f"({report['images']} images) -> {eval_json}"
    )
    if not register_model:
        return
    if importlib.util.find_spec("mlflow") is None:
        console.print("[yellow]MLflow is not installed: run not logged, nothing registered[/]")
        return
    from visionloop.training.registry import Registry
    from visionloop.training.tracking import log_training_run, register_trained_model

    settings = load_settings()
    digest = dataset_digest(dataset_dir)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    run_id = log_training_run(
        result,
        tracking_uri=settings.mlflow_tracking_uri,
        dataset_digest=digest,
        evaluation=evaluation,
        artifact_root=settings.mlflow_artifacts_path,
        run_name=result.onnx_path.parent.name,
    )
    registry = Registry.from_settings(settings)
    version = register_trained_model(
        registry,
        result,
        run_id=run_id,
        sha256=sha256_file(result.onnx_path),
        dataset_digest=digest,
        evaluation=evaluation,
    )
    _drift_profile(registry, version.version, data, console)
    console.print(
        f"MLflow run {run_id}; registered {settings.registered_model_name} "
        f"version [bold]{version.version}[/] with alias 'staging'"
    )
