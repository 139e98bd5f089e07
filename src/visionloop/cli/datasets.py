"""CLI commands ``visionloop dataset export|import``: reviewed labels out as YOLO or COCO, and a
user's YOLO, COCO or VOC dataset in as reviewed frames."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from visionloop.cli.server import _engine, _migrate
from visionloop.cli.settings import load_settings
from visionloop.config import Settings
from visionloop.errors import VisionloopError

dataset_app = typer.Typer(
    help="Labeled datasets: export reviewed labels, import existing datasets.",
    no_args_is_help=True,
)

MAX_PROBLEMS_SHOWN = 50


def register(app: typer.Typer) -> None:
    """Add this module's commands to the top-level app."""
    app.add_typer(dataset_app, name="dataset")


@contextmanager
def _progress(console: Console, what: str) -> Iterator[Callable[[int, int], None]]:
    with Progress(
        TextColumn(f"[cyan]{what}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(what, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update


@dataset_app.command("export")
def export_command(
    out: Annotated[Path, typer.Argument(help="Folder to write (must not exist, or be empty).")],
    dataset_format: Annotated[
        Literal["yolo", "coco"], typer.Option("--format", help="yolo (data.yaml) or coco (JSON).")
    ] = "yolo",
    since: Annotated[
        datetime | None,
        typer.Option(
            help="Only frames whose latest labels were submitted at or after this UTC time.",
            formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"],
        ),
    ] = None,
) -> None:
    """Write the reviewed frames and their latest labels, split train/val/test by frame id."""
    from datetime import UTC

    from sqlalchemy.orm import sessionmaker

    from visionloop.server.blobs import LocalBlobStore
    from visionloop.server.dataset_export import export_dataset

    settings = load_settings()
    _migrate(settings)
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    console = Console()
    engine = _engine(settings)
    try:
        with _progress(console, "export") as progress:
            report = export_dataset(
                out,
                read_sessions=sessionmaker(engine),
                blobs=LocalBlobStore(settings.blobs_path),
                dataset_format=dataset_format,
                since=since,
                progress=progress,
            )
    except VisionloopError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        engine.dispose()
    for line in report.skipped:
        typer.echo(f"skipped {line}", err=True)
    splits = ", ".join(
        f"{s} {report.images[s]} images / {report.boxes[s]} boxes" for s in report.images
    )
    typer.echo(f"exported {sum(report.images.values())} frames to {out} ({splits})")
    if not report.images["train"] or not report.images["val"]:
        typer.echo("note: training needs images in both train and val", err=True)
    typer.echo(f"digest {report.digest}")


def _production_class_names(settings: Settings) -> list[str]:
    """The production model's class names from the registry; [] when there is no registry yet
    (a local store is never created by an import), no production model, or no MLflow."""
    import importlib.util

    from sqlalchemy.engine import make_url

    uri = settings.mlflow_tracking_uri
    if uri.startswith("sqlite:"):
        database = make_url(uri).database
        if not database or not Path(database).is_file():
            return []
    if importlib.util.find_spec("mlflow") is None:
        return []
    from visionloop.training.registry import Registry

    try:
        version = Registry.from_settings(settings).production()
    except VisionloopError as exc:
        typer.echo(f"warning: no production model information ({exc})", err=True)
        return []
    return [] if version is None else [n for n in version.tags.get("classes", "").split(",") if n]


@dataset_app.command("import")
def import_command(
    path: Annotated[Path, typer.Argument(help="The dataset: a folder, data.yaml or COCO JSON.")],
    dataset_format: Annotated[
        Literal["yolo", "coco", "voc"], typer.Option("--format", help="yolo, coco or voc.")
    ],
    device: Annotated[
        str, typer.Option(help="Device the frames belong to (created disabled if missing).")
    ] = "import",
    split_from_source: Annotated[
        bool,
        typer.Option(
            "--split-from-source",
            help="Keep the source's train/val/test split (new frames only; see README).",
        ),
    ] = False,
    add_classes: Annotated[
        bool, typer.Option("--add-classes", help="Add unknown class names without asking.")
    ] = False,
) -> None:
    """Bring a labeled dataset in as reviewed frames (images into blobs, labels as source
    'import'). Idempotent: an image already stored is skipped."""
    from sqlalchemy.orm import sessionmaker

    from visionloop.datasets.coco import read_coco
    from visionloop.datasets.voc import read_voc
    from visionloop.datasets.yolo import read_yolo
    from visionloop.server.blobs import LocalBlobStore
    from visionloop.server.dataset_import import import_dataset, problem_lines
    from visionloop.server.db import write_engine

    readers = {"yolo": read_yolo, "coco": read_coco, "voc": read_voc}
    settings = load_settings()
    console = Console()

    def confirm(names: list[str]) -> bool:
        if add_classes:
            return True
        return typer.confirm(f"add {len(names)} new classes ({', '.join(names)})?", err=True)

    engine = _engine(settings)
    try:
        source = readers[dataset_format](path)
        _migrate(settings)
        with _progress(console, "import") as progress:
            report = import_dataset(
                source,
                read_sessions=sessionmaker(engine),
                write_sessions=sessionmaker(write_engine(engine), expire_on_commit=False),
                blobs=LocalBlobStore(settings.blobs_path),
                device_name=device,
                keep_source_split=split_from_source,
                confirm_new_classes=confirm,
                model_class_names=lambda: _production_class_names(settings),
                progress=progress,
            )
    except VisionloopError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        engine.dispose()
    lines = problem_lines(report.problems)
    for line in lines[:MAX_PROBLEMS_SHOWN]:
        typer.echo(f"error: {line}", err=True)
    if len(lines) > MAX_PROBLEMS_SHOWN:
        typer.echo(f"… and {len(lines) - MAX_PROBLEMS_SHOWN} more files with errors", err=True)
    if report.classes_added:
        typer.echo(f"classes added: {', '.join(report.classes_added)}")
    typer.echo(
        f"imported {report.imported} images ({report.boxes} boxes) as device {device!r}; "
        f"{report.duplicates} already stored; {len(report.problems)} files with errors"
    )
    if report.problems:
        raise typer.Exit(1)
