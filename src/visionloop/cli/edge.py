"""CLI commands: edge (``visionloop edge``, the edge agent for one camera)."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from visionloop.types import BackendChoice, Precision


def _band(value: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value.split(","))
    except ValueError as exc:
        raise typer.BadParameter("expected LOW,HIGH, e.g. 0.4,0.7") from exc
    if not 0.0 <= low <= high <= 1.0:
        raise typer.BadParameter("expected 0 <= LOW <= HIGH <= 1")
    return low, high


def edge(
    server: Annotated[str, typer.Option(help="Server base URL, e.g. http://127.0.0.1:8000.")],
    token: Annotated[str, typer.Option(help="This device's bearer token (`devices add`).")],
    source: Annotated[
        str,
        typer.Option(
            help=(
                "Frames: synthetic[:SCHEDULE] (e.g. synthetic:blur:1.0@300+200), a video file, "
                "webcam:N, rtsp://..., or a folder of images."
            )
        ),
    ],
    model: Annotated[
        Path | None,
        typer.Option(help="A local ONNX model to run (pinned). Default: the server's production."),
    ] = None,
    backend: Annotated[BackendChoice, typer.Option(help="Inference backend.")] = "auto",
    precision: Annotated[Precision, typer.Option(help="bf16 needs OpenVINO.")] = "fp32",
    imgsz: Annotated[
        int | None, typer.Option(help="Input size for a dynamic-input model (multiple of 32).")
    ] = None,
    conf: Annotated[float, typer.Option(help="Detection confidence threshold.")] = 0.25,
    sample_band: Annotated[
        str, typer.Option(help="Confidence band LOW,HIGH that samples a frame as uncertain.")
    ] = "0.4,0.7",
    audit_rate: Annotated[
        float, typer.Option(help="Probability of sampling a frame with no uncertain detection.")
    ] = 0.01,
    max_sampled_per_minute: Annotated[
        int, typer.Option(help="Cap on sampled frames (with image) per minute of capture.")
    ] = 60,
    max_frames: Annotated[
        int | None,
        typer.Option(help="Stop after N frames (0: only send what the outbox holds)."),
    ] = None,
    fps_limit: Annotated[
        float | None, typer.Option(help="Process at most F frames per second.")
    ] = None,
    outbox: Annotated[
        Path | None,
        typer.Option(help="Outbox SQLite file. Default: <VISIONLOOP_DATA_DIR>/edge/outbox.db."),
    ] = None,
    outbox_max_mb: Annotated[
        int, typer.Option(help="Outbox size cap in MiB (images evicted first, then records).")
    ] = 1024,
    drain_timeout: Annotated[
        float,
        typer.Option(help="At stop, wait at most this many seconds for the outbox to empty."),
    ] = 60.0,
    model_poll: Annotated[
        float, typer.Option(help="Seconds between checks for a new production model.")
    ] = 30.0,
    heartbeat: Annotated[float, typer.Option(help="Seconds between heartbeats.")] = 5.0,
    threads: Annotated[
        int | None, typer.Option(help="Inference threads (default: the backend's).")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed for the synthetic source and the audit draw.")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at INFO.")] = False,
) -> None:
    """Run the edge agent: detect on a frame source, keep records in the outbox, sync them.

    Stops on Ctrl-C / SIGTERM or after --max-frames, then drains the outbox (at most
    --drain-timeout; what is left stays for the next start) and prints a summary. A second
    Ctrl-C stops the drain.
    """
    from visionloop.cli.settings import load_settings
    from visionloop.edge.agent import Agent, AgentConfig
    from visionloop.edge.sampler import SamplerConfig
    from visionloop.edge.sync import SyncConfig
    from visionloop.errors import VisionloopError

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    band = _band(sample_band)
    outbox_path = outbox or load_settings().data_dir / "edge" / "outbox.db"
    try:
        sampler = SamplerConfig(
            band=band, audit_rate=audit_rate, max_per_minute=max_sampled_per_minute
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    config = AgentConfig(
        server=server,
        token=token,
        source=source,
        outbox_path=outbox_path,
        model=model,
        backend=backend,
        precision=precision,
        imgsz=imgsz,
        conf=conf,
        sampler=sampler,
        max_frames=max_frames,
        fps_limit=fps_limit,
        drain_timeout_s=drain_timeout,
        outbox_max_bytes=outbox_max_mb * 1024 * 1024,
        model_poll_s=model_poll,
        sync=SyncConfig(heartbeat_s=heartbeat),
        threads=threads,
        seed=seed,
    )
    agent = Agent(config)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        typer.echo(f"\n{signal.Signals(signum).name}: stopping", err=True)
        agent.stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        summary = agent.run()
    except VisionloopError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc

    p = summary.pipeline
    if p is not None:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(p.sampled.items())) or "none"
        typer.echo(
            f"frames: {p.frames} in {p.seconds:.1f} s ({p.fps:.1f} FPS), dropped {p.dropped}"
        )
        typer.echo(f"sampled: {p.sampled_total} ({reasons})")
        versions = ", ".join(f"{v} ({n} frames)" for v, n in p.versions.items())
        typer.echo(f"model: {versions or summary.model_version}")
        stages = " · ".join(f"{k} {v:.2f}" for k, v in p.latency_ms.items())
        typer.echo(f"median ms per frame: {stages}")
        if p.source_error:
            typer.echo(f"source error: {p.source_error}", err=True)
    typer.echo(
        f"uploaded: {summary.uploaded} records ({summary.duplicates} already on the server), "
        f"{summary.images_uploaded} images"
    )
    typer.echo(
        f"left in outbox: {summary.left_records} records, {summary.left_images} images"
        + ("" if summary.drained else f" (kept in {outbox_path} for the next start)")
    )
    if summary.dead_letters:
        typer.echo(f"dead letters (rejected by the server, kept): {summary.dead_letters}")
    if summary.model_error:
        typer.echo(f"model update error: {summary.model_error}", err=True)
    if p is not None and p.source_error:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the top-level app."""
    app.command("edge")(edge)
