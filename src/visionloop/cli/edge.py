"""CLI commands: edge (``visionloop edge``, the edge agent: one camera or several per process)."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from visionloop.types import BackendChoice, PrecisionChoice

if TYPE_CHECKING:
    from visionloop.edge.agent import AgentSummary


def parse_imgsz(value: str) -> int | tuple[int, int]:
    """``--imgsz``: ``N`` (square) or ``HxW`` (e.g. ``384x640``, a letterbox for 16:9 frames);
    each side a positive multiple of 32."""
    parts = value.lower().replace("*", "x").split("x")
    try:
        sides = [int(p) for p in parts]
    except ValueError:
        sides = []
    if len(sides) not in (1, 2) or any(v < 32 or v % 32 for v in sides):
        _fail(f"--imgsz must be N or HxW, multiples of 32 (e.g. 640, 384x640), got {value}")
    return sides[0] if len(sides) == 1 else (sides[0], sides[1])


def _band(value: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value.split(","))
    except ValueError as exc:
        raise typer.BadParameter("expected LOW,HIGH, e.g. 0.4,0.7") from exc
    if not 0.0 <= low <= high <= 1.0:
        raise typer.BadParameter("expected 0 <= LOW <= HIGH <= 1")
    return low, high


def parse_size_wh(value: str) -> tuple[int, int]:
    """``--synthetic-size``: ``WxH`` in pixels (e.g. ``320x240``)."""
    parts = value.lower().split("x")
    try:
        w, h = (int(p) for p in parts)
    except ValueError:
        _fail(f"--synthetic-size must be WxH, e.g. 640x480, got {value}")
    if not (160 <= w <= 4096 and 120 <= h <= 4096):
        _fail(f"--synthetic-size must be within 160x120..4096x4096, got {value}")
    return w, h


EXIT_UNDELIVERED = 3
"""Exit status of a ``--max-frames`` run that ends with records or images still in the outbox."""
EXIT_REJECTED = 4
"""Exit status when the server refused the device token (401) or the device (403): permanent,
so a supervisor should not restart the agent until a person fixes the token."""


def _fail(message: str) -> NoReturn:
    """A bad value on the command line: one line on stderr, exit status 2."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _token(token: str | None, token_file: Path | None, from_env: str | None) -> str:
    """The device token from --token, else --token-file, else VISIONLOOP_EDGE_TOKEN."""
    if token is not None and token_file is not None:
        _fail("pass --token or --token-file, not both")
    return _one_token(token, token_file, from_env)


def _tokens(
    sources: int, tokens: list[str], token_files: list[Path], from_env: str | None
) -> list[str]:
    """One device token per source, in --source order (several cameras: no environment token,
    which names one device only)."""
    if tokens and token_files:
        _fail("pass --token or --token-file, not both")
    if sources == 1 and len(tokens) + len(token_files) <= 1:
        return [
            _token(tokens[0] if tokens else None, token_files[0] if token_files else None, from_env)
        ]
    given = len(tokens) or len(token_files)
    if given != sources:
        _fail(
            f"{_count(sources, 'source')} need {_count(sources, 'device token')}, one per camera "
            f"(--token or --token-file once per --source, in the same order); got {given}"
        )
    if tokens:
        return [_one_token(t, None, None) for t in tokens]
    return [_one_token(None, f, None) for f in token_files]


def _one_token(token: str | None, token_file: Path | None, from_env: str | None) -> str:
    if token is None and token_file is not None:
        try:
            token = token_file.read_text().strip()
        except OSError as exc:
            _fail(f"--token-file {token_file}: {exc.strerror or exc}")
        if not token:
            _fail(f"--token-file {token_file} is empty")
    if token is None:
        token = from_env
    if not token:
        _fail(
            "no device token: pass --token TOKEN, --token-file PATH or set "
            "VISIONLOOP_EDGE_TOKEN (`visionloop devices add NAME` prints one)"
        )
    return token


def _mention_legacy_outboxes(edge_dir: Path) -> None:
    """Outboxes of the shared default path from before per-device outboxes are never opened by
    default (their records' device is unknown): say where they are and how to send them."""
    legacy = [edge_dir / "outbox.db", *sorted(edge_dir.glob("camera-*/outbox.db"))]
    for path in (p for p in legacy if p.is_file()):
        typer.echo(
            f"note: {path} is an outbox from an earlier version (shared by every token); to send "
            "what it holds, run once with --outbox PATH and the token of the device that wrote it",
            err=True,
        )


def _check_ranges(
    *,
    max_frames: int | None,
    fps_limit: float | None,
    outbox_max_mb: int,
    drain_timeout: float,
    model_poll: float,
    heartbeat: float,
    dead_letter_after: int,
    threads: int | None,
    streams: int | None,
    conf: float,
    max_sampled_per_minute: int,
) -> None:
    if max_frames is not None and max_frames < 0:
        _fail(
            f"--max-frames must be 0 or more (0 only sends what the outbox holds), got {max_frames}"
        )
    if fps_limit is not None and not fps_limit > 0:
        _fail(f"--fps-limit must be more than 0 frames per second, got {fps_limit:g}")
    if outbox_max_mb < 1:
        _fail(f"--outbox-max-mb must be at least 1 (MiB), got {outbox_max_mb}")
    if drain_timeout < 0:
        _fail(f"--drain-timeout must be 0 or more seconds, got {drain_timeout:g}")
    if not model_poll > 0:
        _fail(f"--model-poll must be more than 0 seconds, got {model_poll:g}")
    if not heartbeat > 0:
        _fail(f"--heartbeat must be more than 0 seconds, got {heartbeat:g}")
    if dead_letter_after < 1:
        _fail(f"--dead-letter-after must be at least 1, got {dead_letter_after}")
    if threads is not None and threads < 1:
        _fail(f"--threads must be at least 1, got {threads}")
    if streams is not None and streams < 1:
        _fail(f"--streams must be at least 1, got {streams}")
    if not 0.0 <= conf <= 1.0:
        _fail(f"--conf must be in 0..1, got {conf:g}")
    if max_sampled_per_minute < 0:
        _fail(f"--max-sampled-per-minute must be 0 or more, got {max_sampled_per_minute}")


def edge(
    server: Annotated[str, typer.Option(help="Server base URL, e.g. http://127.0.0.1:8000.")],
    source: Annotated[
        list[str],
        typer.Option(
            help=(
                "Frames: synthetic[:SCHEDULE] (e.g. synthetic:blur:1.0@300+200), a video file, "
                "webcam:N, rtsp://..., or a folder of images. Repeat for several cameras in "
                "one process (one device token and outbox each, one shared model)."
            )
        ),
    ],
    token: Annotated[
        list[str] | None,
        typer.Option(
            help=(
                "This device's bearer token (`devices add`); once per --source. Visible in the "
                "process list: prefer --token-file or VISIONLOOP_EDGE_TOKEN."
            )
        ),
    ] = None,
    token_file: Annotated[
        list[Path] | None,
        typer.Option(
            help="Read the device token from this file (its first line); once per --source."
        ),
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(help="A local ONNX model to run (pinned). Default: the server's production."),
    ] = None,
    backend: Annotated[
        BackendChoice,
        typer.Option(help="Inference backend; auto: OpenVINO when installed on x86, else ORT."),
    ] = "auto",
    precision: Annotated[
        PrecisionChoice,
        typer.Option(
            help=(
                "auto: int8 when the model version has an accepted INT8 artifact, else bf16 "
                "when the CPU has AVX512_BF16 or AMX and bf16 agrees with fp32, else fp32. "
                "bf16 and int8 need OpenVINO."
            )
        ),
    ] = "auto",
    imgsz: Annotated[
        str | None,
        typer.Option(
            help=(
                "Model input size, N or HxW (multiples of 32), e.g. 320 or 384x640 for 16:9 "
                "frames. Default: the size the model was exported at."
            )
        ),
    ] = None,
    conf: Annotated[float, typer.Option(help="Detection confidence threshold.")] = 0.25,
    sample_band: Annotated[
        str, typer.Option(help="Confidence band LOW,HIGH that samples a frame as uncertain.")
    ] = "0.4,0.7",
    audit_rate: Annotated[
        float, typer.Option(help="Probability of sampling a frame with no uncertain detection.")
    ] = 0.01,
    max_sampled_per_minute: Annotated[
        int,
        typer.Option(
            help=(
                "Cap on sampled frames (with image), a token bucket over capture time: it "
                "refills at N a minute and holds at most N, so a burst of N can pass at once, "
                "then N a minute."
            )
        ),
    ] = 60,
    max_frames: Annotated[
        int | None,
        typer.Option(
            help=(
                "Stop after N frames (0: only send what the outbox holds). Exits with status 3 "
                "if records or images are still undelivered at the end."
            )
        ),
    ] = None,
    fps_limit: Annotated[
        float | None, typer.Option(help="Process at most F frames per second (F > 0).")
    ] = None,
    outbox: Annotated[
        list[Path] | None,
        typer.Option(
            help=(
                "Outbox SQLite file (once per --source). Default, one per device: "
                "<VISIONLOOP_DATA_DIR>/edge/<server>/<token fingerprint>/outbox.db. An outbox "
                "keeps the records of the token that created it and refuses any other."
            )
        ),
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
    dead_letter_after: Annotated[
        int,
        typer.Option(
            help=(
                "Set a record aside (dead letters) after it alone got this many 5xx answers "
                "while the server was up and took other records."
            )
        ),
    ] = 5,
    threads: Annotated[
        int | None, typer.Option(help="Inference threads (default: the backend's).")
    ] = None,
    streams: Annotated[
        int | None,
        typer.Option(
            help=(
                "Inferences OpenVINO runs side by side. Default: 2 on 2 or more cores "
                "(throughput: one frame's bookkeeping overlaps the next one's inference); "
                "1 gives each frame the lowest latency."
            )
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed for the synthetic source and the audit draw.")
    ] = None,
    synthetic_size: Annotated[
        str, typer.Option(help="Frame size WxH of the synthetic source (pixels).")
    ] = "640x480",
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at INFO.")] = False,
) -> None:
    """Run the edge agent: detect on a frame source, keep records in the outbox, sync them.

    Several --source flags run several cameras in one process over one loaded model, each
    with its own device token (--token or --token-file per source, in order) and outbox.
    Stops on Ctrl-C / SIGTERM or after --max-frames, then drains the outbox (at most
    --drain-timeout; what is left stays for the next start) and prints a summary. A second
    Ctrl-C stops the drain. Exit status: 0 done; 1 an error (the source or the pipeline
    failed, no model to run); 2 a bad flag; 3 a --max-frames run that ended with records
    still undelivered (they stay in the outbox for the next start).
    """
    from visionloop.cli.settings import load_settings
    from visionloop.edge.agent import Agent, AgentConfig
    from visionloop.edge.cameras import Cameras
    from visionloop.edge.identity import OutboxOwner, server_slug
    from visionloop.edge.sampler import SamplerConfig
    from visionloop.edge.sync import SyncConfig
    from visionloop.errors import AuthenticationError, VisionloopError

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    _check_ranges(
        max_frames=max_frames,
        fps_limit=fps_limit,
        outbox_max_mb=outbox_max_mb,
        drain_timeout=drain_timeout,
        model_poll=model_poll,
        heartbeat=heartbeat,
        dead_letter_after=dead_letter_after,
        threads=threads,
        streams=streams,
        conf=conf,
        max_sampled_per_minute=max_sampled_per_minute,
    )
    size = parse_imgsz(imgsz) if imgsz is not None else None
    source_size = parse_size_wh(synthetic_size)
    band = _band(sample_band)
    settings = load_settings()
    env_token = settings.edge_token.get_secret_value() if settings.edge_token else None
    device_tokens = _tokens(len(source), token or [], token_file or [], env_token)
    edge_dir = settings.data_dir / "edge"
    if outbox and len(outbox) != len(source):
        _fail(
            f"{_count(len(source), 'source')} need {len(source)} outboxes "
            f"(--outbox once per --source, in the same order); got {len(outbox)}"
        )
    if outbox:
        outbox_paths = list(outbox)
    else:
        # One outbox per device: the folder names the server and the token's fingerprint.
        outbox_paths = [
            OutboxOwner.of(server, t).folder(edge_dir) / "outbox.db" for t in device_tokens
        ]
        _mention_legacy_outboxes(edge_dir)
    try:
        sampler = SamplerConfig(
            band=band, audit_rate=audit_rate, max_per_minute=max_sampled_per_minute
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    configs = [
        AgentConfig(
            server=server,
            token=device_token,
            source=camera_source,
            outbox_path=outbox_path,
            model_cache=None
            if outbox or len(source) == 1
            else edge_dir / server_slug(server) / "models",
            model=model,
            backend=backend,
            precision=precision,
            imgsz=size,
            conf=conf,
            sampler=sampler,
            max_frames=max_frames,
            fps_limit=fps_limit,
            drain_timeout_s=drain_timeout,
            outbox_max_bytes=outbox_max_mb * 1024 * 1024,
            model_poll_s=model_poll,
            sync=SyncConfig(heartbeat_s=heartbeat, dead_letter_after=dead_letter_after),
            threads=threads,
            streams=streams,
            seed=seed + i if seed is not None else None,
            source_size_wh=source_size,
        )
        for i, (camera_source, device_token, outbox_path) in enumerate(
            zip(source, device_tokens, outbox_paths, strict=True)
        )
    ]
    runner: Agent | Cameras
    try:
        runner = (
            Agent(configs[0], announce=typer.echo)
            if len(configs) == 1
            else Cameras(configs, announce=typer.echo)
        )
    except VisionloopError as exc:
        _fail(str(exc))

    def on_signal(signum: int, frame: FrameType | None) -> None:
        typer.echo(f"\n{signal.Signals(signum).name}: stopping", err=True)
        runner.stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        summaries = [runner.run()] if isinstance(runner, Agent) else runner.run()
    except AuthenticationError as exc:  # refused before any model was at hand: permanent
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_REJECTED) from exc
    except VisionloopError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc

    statuses = set()
    for i, (config, summary) in enumerate(zip(configs, summaries, strict=True), start=1):
        if len(configs) > 1:
            typer.echo(f"camera {i} ({config.source}):")
        statuses.add(_camera_status(summary, config.outbox_path, max_frames))
    # An error on any camera (1) outranks records left undelivered (3).
    status = 1 if 1 in statuses else max(statuses)
    if status:
        raise typer.Exit(status)


def _camera_status(summary: AgentSummary, outbox_path: Path, max_frames: int | None) -> int:
    """Print one camera's summary; its exit status (the CLI exits with the cameras' highest)."""
    status = _print_summary(summary, outbox_path)
    if summary.rejected is not None:
        typer.echo(
            f"error: {summary.rejected}; {_count(summary.left_records, 'record')} and "
            f"{_count(summary.left_images, 'image')} kept in {outbox_path}",
            err=True,
        )
        status = EXIT_REJECTED
    elif summary.failure is not None:
        typer.echo(f"error: the pipeline stopped: {summary.failure}", err=True)
        status = 1
    elif summary.pipeline is not None and summary.pipeline.source_error:
        status = 1
    elif max_frames is not None and (summary.left_records or summary.left_images):
        typer.echo(
            f"not delivered: {_count(summary.left_records, 'record')} and "
            f"{_count(summary.left_images, 'image')} remain in {outbox_path} "
            "(sent at the next start); exit status 3",
            err=True,
        )
        status = EXIT_UNDELIVERED
    return status


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _print_summary(summary: AgentSummary, outbox_path: Path) -> int:
    """The closing summary on stdout (problems on stderr); 0, or 1 when the source failed."""
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
        f"left in outbox: {_count(summary.left_records, 'record')}, "
        f"{_count(summary.left_images, 'image')}"
        + ("" if summary.drained else f" (kept in {outbox_path} for the next start)")
    )
    if summary.evicted_records or summary.evicted_images:
        typer.echo(
            f"evicted (outbox over --outbox-max-mb): {_count(summary.evicted_images, 'image')}, "
            f"{_count(summary.evicted_records, 'record')}: lost, never sent",
            err=True,
        )
    if summary.uploaded == 0 and (summary.left_records or (p is not None and p.frames)):
        typer.echo("nothing was uploaded: the server did not take any record", err=True)
    if summary.dead_letters:
        typer.echo(
            f"dead letters: {summary.dead_letters_run} this run, {summary.dead_letters} in all "
            f"(refused by the server; kept in the dead_letters table of {outbox_path})"
        )
    if summary.model_error:
        typer.echo(f"model update error: {summary.model_error}", err=True)
    return 1 if p is not None and p.source_error else 0


def register(app: typer.Typer) -> None:
    """Add this module's commands to the top-level app."""
    app.command("edge")(edge)
