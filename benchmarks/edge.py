"""End-to-end FPS of the edge pipeline beside the model alone: per source, size, backend, precision.

Runs the real ``visionloop.edge.pipeline.Pipeline`` (capture thread, letterbox, inference, NMS,
frame statistics, sampler, JPEG for sampled frames, SQLite outbox commit per frame) into an
outbox in a temporary folder. No server is needed: the uploader is not part of the frame path
(it drains the outbox from its own thread), so this measures what the camera side sustains.

Model-only FPS is the detector's throughput on one preprocessed tensor, with as many inferences
in flight as the pipeline keeps (``--streams``: OpenVINO runs that many side by side; 1 is
latency mode), measured on the same loaded detector right before and right after each pipeline
run (their mean; a spread over 15% is flagged: the machine's load changed), so the ratio is
pipeline FPS / model FPS of the same configuration.

The camera rows (``--cameras N``, at the first ``--imgsz``, with the first ``--backend`` and
the agent's default streams) run N synthetic streams as N pipelines in this process over one
shared detector (what ``visionloop edge --source … --source …`` does), then the same N streams
as N separate processes, each loading its own model (N single-camera agents): per-stream FPS
and the total. ``--cameras-only`` skips the other rows.

    .venv/bin/python benchmarks/edge.py                      # baseline model, everything
    .venv/bin/python benchmarks/edge.py --frames 600 --imgsz 640 --backend openvino:bf16
    .venv/bin/python benchmarks/edge.py --imgsz 640 320 --backend openvino:bf16 --streams 1 2

The shipped baseline is a dynamic export: it runs at each ``--imgsz`` (``320``, ``640``,
``384x640``…); a ``--model`` with a fixed input size runs at that size only. ``openvino:int8``
needs an INT8 model: ``--int8 FOLDER`` (what ``visionloop models quantize`` stores, unpacked:
``model.xml``, ``model.bin``), or the model's own ``<stem>.int8/`` companion. ``auto:auto`` is
what ``visionloop edge`` runs with no flags (its choice is printed).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path

import cv2
import numpy as np

from machine import cpu_name, load_average
from visionloop.edge.outbox import Outbox
from visionloop.edge.pipeline import Pipeline, PipelineSummary
from visionloop.edge.sampler import Sampler, SamplerConfig
from visionloop.errors import VisionloopError
from visionloop.shipped import BASELINE_ONNX
from visionloop.vision.backends import cpu_info
from visionloop.vision.detector import Detector, load_detector
from visionloop.vision.precision import int8_dir
from visionloop.vision.sources import open_source

BASELINE = BASELINE_ONNX
STAGES = ("capture", "preprocess", "infer", "postprocess", "stats", "record", "outbox", "encode")


def write_video(path: Path, n: int, size_wh: tuple[int, int]) -> Path:
    """A video file of the synthetic line (MJPG in AVI: decodes anywhere OpenCV does)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 30.0, size_wh)
    if not writer.isOpened():
        raise SystemExit("OpenCV cannot write MJPG video here")
    source = open_source("synthetic", seed=1, size_wh=size_wh)
    for i, frame in enumerate(source):
        if i >= n:
            break
        writer.write(frame.frame_bgr)
    source.close()
    writer.release()
    return path


def parse_size(text: str) -> tuple[int, int]:
    """``640`` or ``384x640`` (height x width) as ``(h, w)``."""
    sides = [int(v) for v in text.lower().split("x")]
    return (sides[0], sides[-1])


def size_label(hw: tuple[int, int]) -> str:
    return str(hw[0]) if hw[0] == hw[1] else f"{hw[0]}x{hw[1]}"


def fixed_size(path: Path) -> tuple[int, int] | None:
    """The fixed input size ``(h, w)`` of an ONNX model, or None when it is dynamic."""
    import onnx

    dims = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    h = dims[2].dim_value if dims[2].HasField("dim_value") else 0
    w = dims[3].dim_value if dims[3].HasField("dim_value") else 0
    return (int(h), int(w)) if h and w else None


def with_int8(model: Path, int8: Path | None, workdir: Path) -> Path:
    """The model as load_detector sees it with ``int8`` (an INT8 folder) as its companion."""
    if int8 is None:
        return model
    folder = workdir / "with-int8"
    folder.mkdir(exist_ok=True)
    link = folder / model.name
    if not link.exists():
        os.symlink(model.resolve(), link)
        shutil.copytree(int8, int8_dir(link))
    return link


def model_only_fps(detector: Detector, frame: np.ndarray, seconds: float) -> float:
    """Inferences per second with ``detector.depth`` of them in flight (one tensor each)."""
    tensor, _ = detector.preprocess(frame)
    tensors = [tensor.copy() for _ in range(detector.depth)]
    for _ in range(3):
        detector.forward(tensors[0])
    inflight = deque(detector.start(t) for t in tensors)
    done, i = 0, 0
    t0 = time.perf_counter()
    deadline = t0 + seconds
    while time.perf_counter() < deadline:
        inflight.popleft().result()
        done += 1
        inflight.append(detector.start(tensors[i % len(tensors)]))
        i += 1
    for pending in inflight:
        pending.result()
        done += 1
    return done / (time.perf_counter() - t0)


def pipeline_run(
    detector: Detector,
    source_spec: str,
    frames: int,
    workdir: Path,
    size_wh: tuple[int, int],
    seed: int = 0,
) -> PipelineSummary:
    path = workdir / f"outbox-{seed}-{time.monotonic_ns()}.db"
    outbox = Outbox(path)
    try:
        source = open_source(source_spec, seed=seed, size_wh=size_wh)
        sampler = Sampler(SamplerConfig(), seed=seed)
        pipeline = Pipeline(source, detector, outbox, sampler, max_frames=frames)
        summary = pipeline.run()
        source.close()
        return summary
    finally:
        outbox.close()
        for p in workdir.glob(path.name + "*"):
            p.unlink()


def cameras_in_process(
    detector: Detector, n: int, frames: int, workdir: Path, size_wh: tuple[int, int]
) -> list[float]:
    """FPS of each of ``n`` synthetic streams run at once over one shared detector."""
    fps = [0.0] * n

    def one(i: int) -> None:
        fps[i] = pipeline_run(detector, "synthetic", frames, workdir, size_wh, seed=i).fps

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return fps


def cameras_as_processes(args: argparse.Namespace, n: int, imgsz: str, pair: str) -> list[float]:
    """FPS of each of ``n`` synthetic streams run as ``n`` processes, each with its own model."""
    command = [
        sys.executable, __file__, "--one-camera", "--model", str(args.model),
        "--frames", str(args.cameras_frames), "--imgsz", imgsz, "--backend", pair,
        "--size", args.size,
    ]  # fmt: skip
    procs = [
        subprocess.Popen([*command, "--seed", str(i)], stdout=subprocess.PIPE, text=True)
        for i in range(n)
    ]
    fps = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"a camera process failed (status {proc.returncode})")
        fps.append(float(json.loads(out.strip().splitlines()[-1])["fps"]))
    return fps


def one_camera(args: argparse.Namespace, size_wh: tuple[int, int]) -> int:
    """``--one-camera``: what one agent process of the camera rows runs; prints its FPS."""
    backend, _, precision = args.backend[0].partition(":")
    detector = load_detector(
        args.model,
        backend=backend,
        precision=precision or "fp32",
        imgsz=parse_size(args.imgsz[0]),
        threads=args.threads,
        streams=None,
        version="bench",
    )
    with tempfile.TemporaryDirectory() as tmp:
        summary = pipeline_run(
            detector, "synthetic", args.frames, Path(tmp), size_wh, seed=args.seed
        )
    print(json.dumps({"fps": summary.fps}))
    return 0


def streams_of(text: str) -> int | None:
    return None if text == "auto" else int(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=BASELINE)
    parser.add_argument("--int8", type=Path, default=None, help="INT8 folder for the model")
    parser.add_argument("--frames", type=int, default=600, help="frames per pipeline run")
    parser.add_argument("--model-seconds", type=float, default=4.0)
    parser.add_argument("--imgsz", nargs="+", default=["640", "384x640", "320"])
    parser.add_argument(
        "--backend",
        nargs="+",
        default=[
            "auto:auto",
            "onnxruntime:fp32",
            "openvino:fp32",
            "openvino:bf16",
            "openvino:int8",
        ],
        help="backend:precision pairs",
    )
    parser.add_argument("--source", nargs="+", default=["synthetic"], help="synthetic, video")
    parser.add_argument("--size", default="640x480", help="source frame size WxH")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--streams", nargs="+", default=["auto"], help="OpenVINO streams (auto: the default)"
    )
    parser.add_argument("--cameras", type=int, default=4, help="camera rows: N streams (0: none)")
    parser.add_argument("--cameras-frames", type=int, default=300, help="frames per camera")
    parser.add_argument("--cameras-only", action="store_true", help="only the camera rows")
    parser.add_argument("--one-camera", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if not args.model.exists():
        print(f"no model at {args.model}: pass --model PATH (an Ultralytics ONNX export)")
        return 2
    w, h = (int(v) for v in args.size.split("x"))
    if args.one_camera:
        return one_camera(args, (w, h))
    sizes = [parse_size(s) for s in args.imgsz]
    fixed = fixed_size(args.model)
    if fixed is not None:
        sizes = [s for s in sizes if s == fixed] or [fixed]
    cpu = cpu_info()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        model = with_int8(args.model, args.int8, workdir)
        print(f"model {args.model.name} at {', '.join(map(size_label, sizes))}")
        print(f"CPU: {cpu_name()} ({cpu.vendor}), {os.cpu_count()} CPUs, bf16: {cpu.bf16}")
        print(f"source frames {w}x{h}; {args.frames} frames per pipeline run into a real SQLite")
        print(f"outbox, no server; load average before: {load_average()}\n")
        sources = {"synthetic": "synthetic"}
        if "video" in args.source:
            sources["video"] = str(write_video(workdir / "line.avi", args.frames + 10, (w, h)))
        header = (
            f"{'source':<9} {'size':>7} {'backend':<21} {'model FPS':>9} {'pipe FPS':>8} "
            f"{'ratio':>5}  per-stage median ms: " + " ".join(f"{s}" for s in STAGES)
        )
        print(header)
        probe = next(iter(open_source("synthetic", seed=0, size_wh=(w, h)))).frame_bgr
        for pair in [] if args.cameras_only else args.backend:
            backend, _, precision = pair.partition(":")
            for imgsz in sizes:
                label = size_label(imgsz)
                for streams in args.streams:
                    try:
                        detector = load_detector(
                            model,
                            backend=backend,  # type: ignore[arg-type]
                            precision=(precision or "fp32"),  # type: ignore[arg-type]
                            imgsz=imgsz,
                            threads=args.threads,
                            streams=streams_of(streams),
                            version="bench",
                        )
                    except VisionloopError as exc:
                        print(f"{'-':<9} {label:>7} {pair:<21} skipped: {exc}")
                        continue
                    row = f"{pair} s{detector.depth}"
                    if backend == "auto":
                        print(f"{'':<9} {label:>7} {row:<21} chose {detector.info.extra['choice']}")
                    for name in args.source:
                        # The model alone right before and right after the pipeline run, so a
                        # load change on a shared machine shows up as a spread, not a false ratio.
                        before = model_only_fps(detector, probe, args.model_seconds / 2)
                        summary = pipeline_run(
                            detector, sources[name], args.frames, workdir, (w, h)
                        )
                        after = model_only_fps(detector, probe, args.model_seconds / 2)
                        model_fps = (before + after) / 2
                        spread = abs(before - after) / model_fps
                        fps, stages = summary.fps, summary.latency_ms
                        breakdown = " ".join(f"{stages.get(s, 0.0):.2f}" for s in STAGES)
                        print(
                            f"{name:<9} {label:>7} {row:<21} {model_fps:>9.1f} {fps:>8.1f} "
                            f"{fps / model_fps:>5.2f}  {breakdown}  ({summary.frames} frames, "
                            f"{summary.sampled_total} sampled"
                            + (
                                f"; model FPS moved {spread:.0%} during the run)"
                                if spread > 0.15
                                else ")"
                            ),
                            flush=True,
                        )
        if args.cameras > 0:
            camera_rows(args, model, sizes[0], workdir, (w, h))
    print(f"\nload average after: {load_average()}")
    return 0


def camera_rows(
    args: argparse.Namespace,
    model: Path,
    imgsz: tuple[int, int],
    workdir: Path,
    size_wh: tuple[int, int],
) -> None:
    """N synthetic streams: in one process over one shared model, then as N processes."""
    n, pair = args.cameras, args.backend[0]
    backend, _, precision = pair.partition(":")
    label = size_label(imgsz)
    detector = load_detector(
        model,
        backend=backend,  # type: ignore[arg-type]
        precision=(precision or "fp32"),  # type: ignore[arg-type]
        imgsz=imgsz,
        threads=args.threads,
        streams=None,
        version="bench",
    )
    print(f"\n{n} cameras at {label}, {pair} ({detector.info.extra['choice']}), "
          f"{args.cameras_frames} frames each; load average {load_average()}")  # fmt: skip
    shared = cameras_in_process(detector, n, args.cameras_frames, workdir, size_wh)
    print(
        f"  one process, one model (s{detector.depth}): per stream "
        + " ".join(f"{f:.1f}" for f in shared)
        + f"  total {sum(shared):.1f} FPS",
        flush=True,
    )
    del detector
    separate = cameras_as_processes(args, n, "x".join(map(str, imgsz)), pair)
    print(
        f"  {n} processes, {n} models:       per stream "
        + " ".join(f"{f:.1f}" for f in separate)
        + f"  total {sum(separate):.1f} FPS",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
