"""CLI commands for models: ``visionloop models list|register|promote|rollback``, ``evaluate``,
``mlflow-ui``.

MLflow and the evaluation code are imported inside the commands (seconds of import time).
"""

from __future__ import annotations

import contextlib
import getpass
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from visionloop.cli.settings import load_settings
from visionloop.errors import VisionloopError
from visionloop.types import BackendChoice, Precision

if TYPE_CHECKING:
    from collections.abc import Iterator

    import numpy as np
    from numpy.typing import NDArray

    from visionloop.training.registry import Registry

models_app = typer.Typer(
    name="models",
    help="The model registry (MLflow): list, register, promote and roll back detector versions.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the top-level app."""
    app.add_typer(models_app)
    app.command("evaluate")(evaluate_command)
    app.command("mlflow-ui")(mlflow_ui_command)


def _registry() -> Registry:
    from visionloop.training.registry import Registry

    return Registry.from_settings(load_settings())


def _fail(exc: VisionloopError) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(1)


def _who(by: str | None) -> str:
    if by:
        return by
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@models_app.command("baseline")
def baseline_command() -> None:
    """Print the folder of the shipped baseline inside the installed package (model.onnx, its
    weights best.pt, drift_profile.json, eval.json and MODEL_CARD.md)."""
    from visionloop.shipped import BASELINE_DIR

    typer.echo(str(BASELINE_DIR))


@models_app.command("list")
def list_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List registered versions with their aliases, sha256 and key metrics."""
    try:
        versions = _registry().versions()
    except VisionloopError as exc:
        raise _fail(exc) from exc
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "version": v.version,
                        "aliases": v.aliases,
                        "sha256": v.sha256,
                        "size_bytes": v.size_bytes,
                        "metrics": v.metrics,
                        "created_at": v.created_at.isoformat(),
                        "description": v.description,
                        "gate_passed": _gate_passed(v.tags),
                        "gate": _gate(v.tags),
                    }
                    for v in versions
                ],
                indent=2,
            )
        )
        return
    if not versions:
        typer.echo("no registered versions (visionloop models register FILE.onnx adds one)")
        return
    table = Table(title="visionloop-detector versions", expand=False)
    # aliases and times never wrap: narrow terminals squeeze the hash columns instead
    for column in ("version", "aliases", "sha256", "mAP50", "mAP50-95", "gate", "dataset"):
        table.add_column(column, no_wrap=column == "aliases")
    table.add_column("created", no_wrap=True)
    for v in reversed(versions):
        m = v.metrics
        table.add_row(
            v.version,
            ", ".join(v.aliases) or "-",
            v.sha256[:8],
            f"{m['map50']:.3f}" if "map50" in m else "-",
            f"{m['map50_95']:.3f}" if "map50_95" in m else "-",
            _gate_word(v.tags),
            v.tags.get("dataset_digest", "-")[:8],
            v.created_at.strftime("%m-%d %H:%M"),
        )
    console = Console()
    console.print(table)
    for v in reversed(versions):
        if "gate_summary" in v.tags:
            console.print(f"version {v.version} gate {v.tags['gate_summary']}", soft_wrap=True)


def _gate_word(tags: dict[str, str]) -> str:
    """passed, staged (nothing failed, not promotable: too little evidence, no better, the same
    model), FAILED, or - (not gated)."""
    passed = _gate_passed(tags)
    if passed is None:
        return "-"
    if not passed:
        return "FAILED"
    report = _gate(tags)
    staged = isinstance(report, dict) and report.get("decision") == "stage"
    return "staged" if staged else "passed"


def _gate_passed(tags: dict[str, str]) -> bool | None:
    value = tags.get("gate_passed")
    return None if value is None else value == "true"


def _gate(tags: dict[str, str]) -> object:
    try:
        return json.loads(tags["gate"])
    except (KeyError, ValueError):
        return None


@models_app.command("register")
def register_command(
    onnx: Annotated[Path, typer.Argument(help="An Ultralytics ONNX export (.onnx).")],
    description: Annotated[str, typer.Option(help="Free text shown with the version.")] = "",
    tag: Annotated[
        list[str] | None, typer.Option(help="Extra tag KEY=VALUE (repeatable), e.g. map50=0.91.")
    ] = None,
    alias: Annotated[
        str | None, typer.Option(help="Also point this alias (production or staging) at it.")
    ] = None,
    by: Annotated[str | None, typer.Option(help="Who registers (default: your user name).")] = None,
    weights: Annotated[
        Path | None,
        typer.Option(
            help=(
                "The Ultralytics weights (.pt) the ONNX file was exported from, kept with the "
                "version so that retraining can fine-tune it. Without them a train job cannot "
                "start from this version."
            )
        ),
    ] = None,
    reference_data: Annotated[
        str | None,
        typer.Option(
            help=(
                "Drift reference profile from this YOLO dataset's val split (data.yaml or its "
                "folder), or 'synthetic' for nominal frames of the synthetic line (the "
                "baseline's training data). Without it, drift checks of devices running this "
                "version compare with their first frames."
            )
        ),
    ] = None,
) -> None:
    """Register an ONNX detector as a new version (it must load as one first), with its
    fine-tuning weights (--weights) and the drift reference profile of its validation frames
    (--reference-data)."""
    tags: dict[str, str] = {}
    for item in tag or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            typer.echo(f"error: --tag must be KEY=VALUE, got {item!r}", err=True)
            raise typer.Exit(2)
        tags[key] = value
    from visionloop.training.registry import ALIASES

    if alias is not None and alias not in ALIASES:  # checked before anything is registered
        raise typer.BadParameter(
            f"must be one of {', '.join(ALIASES)}, got {alias!r}", param_hint="'--alias'"
        )
    if weights is not None and (weights.suffix != ".pt" or not weights.is_file()):
        raise typer.BadParameter(
            f"{weights} is not a .pt file (Ultralytics weights, e.g. runs/detect/train/weights/"
            "best.pt)",
            param_hint="'--weights'",
        )
    try:
        registry = _registry()
        # A missing or empty val split is refused before anything is registered.
        reference = None if reference_data is None else _reference_frames(reference_data)
        version = registry.register(onnx, tags=tags, description=description, weights=weights)
        if reference is not None:
            frames = _profile(registry, version.version, reference)
            typer.echo(f"drift reference profile of {frames} frames ({reference_data})")
        if alias:
            registry.promote(version.version, alias=alias, by=_who(by), reason="registered")
    except VisionloopError as exc:
        raise _fail(exc) from exc
    typer.echo(f"registered {onnx} as version {version.version} (sha256 {version.sha256[:12]})")
    if weights is None:
        typer.echo(
            "note: no --weights: retraining cannot fine-tune this version (register it again "
            "with --weights best.pt to allow it)"
        )
    if reference is None:
        typer.echo(
            "note: no --reference-data: drift checks of this version compare with the previous "
            "production version's profile, else with each device's first frames"
        )
    if alias:
        typer.echo(f"{alias} -> version {version.version}")


def _reference_frames(reference_data: str) -> tuple[int, Iterator[NDArray[np.uint8]], str]:
    """The frames of ``--reference-data``: their count, the frames (lazily) and a source line."""
    from visionloop.monitoring.profile import PROFILE_FRAMES, dataset_frames, synthetic_frames

    if reference_data == "synthetic":
        return PROFILE_FRAMES, synthetic_frames(), "synthetic line, seed 0, nominal"
    total, frames = dataset_frames(Path(reference_data), split="val")
    return total, frames, f"val split of {reference_data}"


def _profile(
    registry: Registry, version: str, reference: tuple[int, Iterator[NDArray[np.uint8]], str]
) -> int:
    """Compute and store ``version``'s drift reference profile (see ``register``)."""
    import tempfile

    from visionloop.monitoring.profile import profile_version

    total, frames, source = reference
    from rich.progress import Progress

    with Progress(transient=True) as bar, tempfile.TemporaryDirectory() as tmp:
        task = bar.add_task("drift reference profile", total=1.0)
        return profile_version(
            registry,
            version,
            frames,
            source=source,
            work_dir=Path(tmp),
            total=total,
            progress=lambda fraction, _message: bar.update(task, completed=fraction),
        )


@models_app.command("promote")
def promote_command(
    version: Annotated[str, typer.Argument(help="Version number to promote.")],
    alias: Annotated[str, typer.Option(help="production or staging.")] = "production",
    reason: Annotated[str, typer.Option(help="Why (recorded on the version).")] = "",
    by: Annotated[str | None, typer.Option(help="Who promotes (default: your user name).")] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Promote a version whose promotion gate failed.")
    ] = False,
) -> None:
    """Point an alias (default production) at a version; records who and why. A version whose
    promotion gate failed needs --force (recorded on the version)."""
    try:
        _registry().promote(version, alias=alias, by=_who(by), reason=reason or "-", force=force)
    except VisionloopError as exc:
        raise _fail(exc) from exc
    typer.echo(f"{alias} -> version {version}")


@models_app.command("rollback")
def rollback_command(
    reason: Annotated[str, typer.Option(help="Why (recorded on the version).")] = "",
    alias: Annotated[str, typer.Option(help="production or staging.")] = "production",
    by: Annotated[
        str | None, typer.Option(help="Who rolls back (default: your user name).")
    ] = None,
) -> None:
    """Move the alias (default production) back to the version it held before."""
    try:
        version = _registry().rollback(by=_who(by), reason=reason or "-", alias=alias)
    except VisionloopError as exc:
        raise _fail(exc) from exc
    typer.echo(f"{alias} rolled back to version {version.version}")


@models_app.command("quantize")
def quantize_command(
    version: Annotated[str, typer.Argument(help="Version number to quantize.")],
    calibration: Annotated[
        int, typer.Option(help="Calibration frames (the version's training distribution).")
    ] = 300,
    data: Annotated[
        Path | None,
        typer.Option(
            help="Calibrate on this YOLO dataset's train images instead of the synthetic line."
        ),
    ] = None,
    golden: Annotated[
        Path | None,
        typer.Option(
            help=(
                "Golden set (YOLO dataset, split test) for fp32 vs INT8 mAP50. Default: 300 "
                "fresh nominal frames of the synthetic line, seed 1 (the model card's set)."
            )
        ),
    ] = None,
    drift: Annotated[
        str, typer.Option(help="Also measure on this drift scenario ('none' to skip).")
    ] = "lighting:1.0",
    eval_images: Annotated[int, typer.Option(help="Images per synthesized test set.")] = 300,
) -> None:
    """Quantize a version to an OpenVINO INT8 model (NNCF) and store it with the version.

    The INT8 model is evaluated against the fp32 one on the golden set: within 0.01 mAP50 it is
    accepted, and edge agents with --precision auto (the default) run it.
    """
    from visionloop.training.quantize import quantize_version

    if calibration < 1 or eval_images < 1:
        typer.echo("error: --calibration and --eval-images must be at least 1", err=True)
        raise typer.Exit(2)
    try:
        check = quantize_version(
            _registry(),
            version,
            calibration=calibration,
            data=data,
            golden=golden,
            drift=None if drift == "none" else drift,
            eval_images=eval_images,
            progress=lambda _fraction, message: typer.echo(f"{message}…"),
        )
    except VisionloopError as exc:
        raise _fail(exc) from exc
    verdict = "accepted" if check.accepted else f"NOT accepted (budget {check.budget:.2f})"
    typer.echo(
        f"version {version}: INT8 mAP50 {check.map50_int8:.4f} vs fp32 {check.map50_fp32:.4f} "
        f"on the golden set: {verdict}"
    )
    if check.drift is not None and check.drift_map50_int8 is not None:
        typer.echo(
            f"{check.drift}: INT8 mAP50 {check.drift_map50_int8:.4f} vs fp32 "
            f"{check.drift_map50_fp32:.4f}"
        )


def evaluate_command(
    model: Annotated[Path, typer.Argument(help="ONNX model (Ultralytics export).")],
    dataset: Annotated[Path, typer.Argument(help="YOLO dataset folder or its data.yaml.")],
    split: Annotated[str, typer.Option(help="Split to evaluate on.")] = "test",
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the report as JSON here.")
    ] = None,
    backend: Annotated[BackendChoice, typer.Option(help="Inference backend.")] = "auto",
    precision: Annotated[Precision, typer.Option(help="bf16 needs OpenVINO.")] = "fp32",
) -> None:
    """COCO mAP50, mAP50-95, per-class AP50 and recall of a model on a dataset split."""
    if importlib.util.find_spec("faster_coco_eval") is None:
        typer.echo(
            "error: evaluate needs the train extra: pip install 'visionloop[train]'", err=True
        )
        raise typer.Exit(1)
    from visionloop.training.evaluate import evaluate

    try:
        report = evaluate(model, dataset, split=split, backend=backend, precision=precision)
    except VisionloopError as exc:
        raise _fail(exc) from exc
    table = Table(title=f"{model.name} on {dataset} [{split}], {report.images} images")
    for column in ("class", "instances", "AP50", f"recall@{report.recall_conf:g}"):
        table.add_column(column, justify="right" if column != "class" else "left")
    for name, m in report.per_class.items():
        table.add_row(name, str(m.instances), f"{m.ap50:.3f}", f"{m.recall:.3f}")
    table.add_section()
    table.add_row("all", str(report.instances), f"{report.map50:.3f}", "")
    console = Console()
    console.print(table)
    console.print(
        f"mAP50 [bold]{report.map50:.4f}[/]  mAP50-95 [bold]{report.map50_95:.4f}[/]  "
        f"({report.seconds:.1f}s)"
    )
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report.to_dict(), indent=2))
        console.print(f"wrote {json_path}")


def mlflow_ui_command(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 5000,
) -> None:
    """Open MLflow's own UI on visionloop's store (one worker, no job execution)."""
    settings = load_settings()
    uri = settings.mlflow_tracking_uri
    mlflow = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or shutil.which("mlflow")
    if mlflow is None:
        typer.echo("error: MLflow is not installed (pip install 'visionloop[server]')", err=True)
        raise typer.Exit(1)
    command = [mlflow, "server", "--backend-store-uri", uri, "--host", host, "--port", str(port)]
    command += ["--workers", "1"]
    if uri.startswith("sqlite:"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        command += ["--default-artifact-root", settings.mlflow_artifacts_path.resolve().as_uri()]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    typer.echo(f"MLflow UI on http://{host}:{port} (store {uri}); Ctrl-C stops it")
    # Its own process group, so that stopping reaches every process MLflow starts (its web
    # workers), and we decide when: on SIGTERM, SIGINT or SIGHUP to this process.
    proc = subprocess.Popen(command, env=env, start_new_session=True)
    code = 0

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        raise _Stop(signum)

    handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    previous = {s: signal.signal(s, on_signal) for s in handled}
    try:
        code = proc.wait()
    except _Stop:
        code = 0
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _stop_group(proc)
    raise typer.Exit(code)


class _Stop(Exception):
    """A stop signal arrived while waiting for the MLflow server."""


def _stop_group(proc: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    """SIGTERM to the server's whole process group; SIGKILL to what is left after ``timeout_s``."""
    group = proc.pid  # start_new_session: the group id is the leader's pid
    try:
        os.killpg(group, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        proc.poll()  # reap the leader so that it does not linger as a zombie
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)
    proc.wait()
