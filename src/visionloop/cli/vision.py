"""CLI commands: vision (the synthetic production line)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from visionloop.errors import VisionloopError

synth = typer.Typer(
    help="The synthetic production line: datasets and videos.", no_args_is_help=True
)


def _parse_splits(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError:
        raise typer.BadParameter(
            f"expected three fractions like 0.8,0.1,0.1, got {text!r}"
        ) from None
    if len(parts) != 3:
        raise typer.BadParameter(f"expected three fractions like 0.8,0.1,0.1, got {text!r}")
    return (parts[0], parts[1], parts[2])


@synth.command("dataset")
def synth_dataset(
    out: Annotated[Path, typer.Argument(help="Folder to create (must not exist or be empty).")],
    n: Annotated[int, typer.Option("--n", min=1, help="Number of images.")] = 2000,
    scenario: Annotated[
        str,
        typer.Option(help="Scenario or schedule: nominal, lighting:0.8, blur:1.0@300+200, ..."),
    ] = "nominal",
    seed: Annotated[int, typer.Option(min=0, help="Random seed; same seed, same dataset.")] = 0,
    splits: Annotated[
        str, typer.Option(help="Train, val and test fractions, comma-separated.")
    ] = "0.8,0.1,0.1",
    image_format: Annotated[
        str, typer.Option("--format", help="Image format: jpg (quality 95) or png.")
    ] = "jpg",
) -> None:
    """Write a YOLO-format dataset of synthetic frames (images/, labels/, data.yaml)."""
    from rich.progress import Progress

    from visionloop.vision.synthetic import write_dataset

    fractions = _parse_splits(splits)
    if image_format not in ("jpg", "png"):
        raise typer.BadParameter(f"--format must be jpg or png, got {image_format!r}")
    with Progress(transient=True) as bar:
        task = bar.add_task(f"rendering {n} images", total=n)
        try:
            data_yaml = write_dataset(
                out,
                n=n,
                scenario=scenario,
                seed=seed,
                splits=fractions,
                image_format="png" if image_format == "png" else "jpg",
                progress=lambda done, _total: bar.update(task, completed=done),
            )
        except VisionloopError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
    typer.echo(f"wrote {n} images; dataset file: {data_yaml}")


@synth.command("video")
def synth_video(
    out: Annotated[Path, typer.Argument(help="Video file to write: .avi (Motion-JPEG) or .mp4.")],
    frames: Annotated[int, typer.Option(min=1, help="Number of frames.")] = 600,
    scenario: Annotated[
        str, typer.Option(help="Scenario or schedule, e.g. blur:1.0@300+200 (frame numbers).")
    ] = "nominal",
    seed: Annotated[int, typer.Option(min=0, help="Random seed.")] = 0,
    fps: Annotated[float, typer.Option(help="Frame rate written into the file.")] = 30.0,
    width: Annotated[int, typer.Option(help="Frame width in pixels.")] = 640,
    height: Annotated[int, typer.Option(help="Frame height in pixels.")] = 480,
) -> None:
    """Write consecutive frames of the synthetic line as a video (e.g. a drift episode)."""
    from rich.progress import Progress

    from visionloop.vision.synthetic import write_video

    with Progress(transient=True) as bar:
        task = bar.add_task(f"rendering {frames} frames", total=frames)
        try:
            path = write_video(
                out,
                frames=frames,
                scenario=scenario,
                seed=seed,
                size_wh=(width, height),
                fps=fps,
                progress=lambda done, _total: bar.update(task, completed=done),
            )
        except VisionloopError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
    typer.echo(f"wrote {frames} frames to {path}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the top-level app."""
    app.add_typer(synth, name="synth")
