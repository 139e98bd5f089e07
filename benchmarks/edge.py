"""End-to-end FPS of the edge pipeline beside the model alone: per source, size, backend, precision.

Runs the real ``visionloop.edge.pipeline.Pipeline`` (capture thread, letterbox, inference, NMS,
frame statistics, sampler, JPEG for sampled frames, SQLite outbox commit per frame) into an
outbox in a temporary folder. No server is needed: the uploader is not part of the frame path
(it drains the outbox from its own thread), so this measures what the camera side sustains.

Model-only FPS is ``detector.forward`` on a preprocessed tensor in a loop (median), measured on
the same loaded detector right before and right after each pipeline run (their mean; a spread
over 15% is flagged: the machine's load changed), so the ratio is pipeline FPS / model FPS.

    .venv/bin/python benchmarks/edge.py                      # baseline model, everything
    .venv/bin/python benchmarks/edge.py --frames 600 --imgsz 640 --backend openvino:bf16

The shipped baseline ONNX has a fixed 640x640 input; for 320 the benchmark exports the shipped
weights (``models/baseline/best.pt``) at 320 first (needs the train extra). A ``--model`` with a
fixed input size runs at that size only; a dynamic export runs at each ``--imgsz``.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from visionloop.edge.outbox import Outbox
from visionloop.edge.pipeline import Pipeline
from visionloop.edge.sampler import Sampler, SamplerConfig
from visionloop.errors import VisionloopError
from visionloop.vision.detector import Detector, load_detector
from visionloop.vision.sources import open_source

REPO = Path(__file__).resolve().parents[1]
BASELINE = REPO / "models" / "baseline" / "model.onnx"
BASELINE_PT = REPO / "models" / "baseline" / "best.pt"
_EXPORT = (
    "import sys; from pathlib import Path; from visionloop.training.train import export_onnx; "
    "export_onnx(Path(sys.argv[1]), Path(sys.argv[2]), imgsz=int(sys.argv[3]))"
)
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


def input_size(path: Path) -> int | None:
    """The fixed input size of an ONNX model (square), or None when it is dynamic."""
    import onnx

    dims = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    h = dims[2].dim_value if dims[2].HasField("dim_value") else 0
    return int(h) or None


def models_to_run(
    paths: list[Path] | None, sizes: list[int], workdir: Path
) -> list[tuple[Path, int]]:
    """(model file, input size) pairs: each static model at its size, dynamic ones at each size."""
    if paths is None:
        paths = [BASELINE]
        for size in sizes:
            if size != input_size(BASELINE) and BASELINE_PT.is_file():
                out = workdir / f"baseline-{size}.onnx"
                env = {**os.environ, "YOLO_OFFLINE": "1", "DO_NOT_TRACK": "1"}
                subprocess.run(
                    [sys.executable, "-c", _EXPORT, str(BASELINE_PT), str(out), str(size)],
                    check=True,
                    capture_output=True,
                    env=env,
                )
                paths.append(out)
    pairs = []
    for path in paths:
        fixed = input_size(path)
        if fixed is not None:
            if fixed in sizes:
                pairs.append((path, fixed))
        else:
            pairs.extend((path, size) for size in sizes)
    return sorted(pairs, key=lambda p: p[1])


def model_only_fps(detector: Detector, frame: np.ndarray, seconds: float) -> float:
    tensor, _ = detector.preprocess(frame)
    tensor = tensor.copy()
    for _ in range(5):
        detector.forward(tensor)
    times = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        detector.forward(tensor)
        times.append(time.perf_counter() - t0)
    return 1.0 / statistics.median(times)


def pipeline_run(
    detector: Detector, source_spec: str, frames: int, workdir: Path, size_wh: tuple[int, int]
) -> tuple[float, dict[str, float], int, int]:
    path = workdir / f"outbox-{time.monotonic_ns()}.db"
    outbox = Outbox(path)
    try:
        source = open_source(source_spec, seed=0, size_wh=size_wh)
        sampler = Sampler(SamplerConfig(), seed=0)
        pipeline = Pipeline(source, detector, outbox, sampler, max_frames=frames)
        summary = pipeline.run()
        source.close()
        return summary.fps, summary.latency_ms, summary.frames, summary.sampled_total
    finally:
        outbox.close()
        for p in workdir.glob(path.name + "*"):
            p.unlink()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, nargs="+", default=None)
    parser.add_argument("--frames", type=int, default=600, help="frames per pipeline run")
    parser.add_argument("--model-seconds", type=float, default=4.0)
    parser.add_argument("--imgsz", type=int, nargs="+", default=[320, 640])
    parser.add_argument(
        "--backend",
        nargs="+",
        default=["onnxruntime:fp32", "openvino:fp32", "openvino:bf16"],
        help="backend:precision pairs",
    )
    parser.add_argument("--source", nargs="+", default=["synthetic", "video"])
    parser.add_argument("--size", default="640x480", help="source frame size WxH")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for path in args.model or [BASELINE]:
        if not path.exists():
            print(f"no model at {path}: pass --model PATH (an Ultralytics ONNX export)")
            return 2
    w, h = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        pairs = models_to_run(args.model, args.imgsz, workdir)
        print(f"models: {', '.join(f'{p.name}@{s}' for p, s in pairs)} · {os.cpu_count()} CPUs")
        print(f"source frames {w}x{h}; {args.frames} frames per pipeline run into a real SQLite")
        print(f"outbox, no server; load average before: {os.getloadavg()[0]:.2f}\n")
        video = write_video(workdir / "line.avi", args.frames + 10, (w, h))
        sources = {"synthetic": "synthetic", "video": str(video)}
        header = (
            f"{'source':<9} {'size':>4} {'backend':<17} {'model FPS':>9} {'pipe FPS':>8} "
            f"{'ratio':>5}  per-stage median ms: " + " ".join(f"{s}" for s in STAGES)
        )
        print(header)
        probe = next(iter(open_source("synthetic", seed=0, size_wh=(w, h)))).frame_bgr
        for pair in args.backend:
            backend, _, precision = pair.partition(":")
            for model_path, imgsz in pairs:
                try:
                    detector = load_detector(
                        model_path,
                        backend=backend,  # type: ignore[arg-type]
                        precision=(precision or "fp32"),  # type: ignore[arg-type]
                        imgsz=imgsz,
                        threads=args.threads,
                        version="bench",
                    )
                except VisionloopError as exc:
                    print(f"{'-':<9} {imgsz:>4} {pair:<17} skipped: {exc}")
                    continue
                for name in args.source:
                    # The model alone right before and right after the pipeline run, so a load
                    # change on a shared machine shows up as a spread instead of a false ratio.
                    before = model_only_fps(detector, probe, args.model_seconds / 2)
                    fps, stages, n, sampled = pipeline_run(
                        detector, sources[name], args.frames, workdir, (w, h)
                    )
                    after = model_only_fps(detector, probe, args.model_seconds / 2)
                    model_fps = (before + after) / 2
                    spread = abs(before - after) / model_fps
                    breakdown = " ".join(f"{stages.get(s, 0.0):.2f}" for s in STAGES)
                    print(
                        f"{name:<9} {imgsz:>4} {pair:<17} {model_fps:>9.1f} {fps:>8.1f} "
                        f"{fps / model_fps:>5.2f}  {breakdown}  ({n} frames, {sampled} sampled"
                        + (
                            f"; model FPS moved {spread:.0%} during the run)"
                            if spread > 0.15
                            else ")"
                        ),
                        flush=True,
                    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
