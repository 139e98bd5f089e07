"""Rendering speed of the synthetic line: frames/s per scenario on one core.

Frames are rendered in order (as a video source plays them), so part sprites are rendered once
and reused while the part is in view. Run: ``.venv/bin/python benchmarks/synthetic.py``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import cv2

from visionloop.vision.synthetic import SCENARIOS, SyntheticLine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=600, help="frames per scenario")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--intensity", type=float, default=1.0)
    args = parser.parse_args()
    cv2.setNumThreads(1)  # one core, as the edge agent's capture thread has
    size_wh = (args.width, args.height)
    print(f"synthetic line {size_wh[0]}x{size_wh[1]}, {args.frames} frames per scenario, 1 thread")
    print(f"{'scenario':<14}{'frames/s':>10}{'median ms':>11}{'p95 ms':>8}")
    for scenario in SCENARIOS:
        spec = scenario if scenario == "nominal" else f"{scenario}:{args.intensity:g}"
        line = SyntheticLine(seed=0, size_wh=size_wh, schedule=spec)
        line.render(0)
        times = []
        start = time.perf_counter()
        for index in range(1, args.frames + 1):
            t0 = time.perf_counter()
            line.render(index)
            times.append(time.perf_counter() - t0)
        fps = args.frames / (time.perf_counter() - start)
        times.sort()
        p95 = times[int(0.95 * (len(times) - 1))]
        print(f"{spec:<14}{fps:>10.0f}{statistics.median(times) * 1e3:>11.2f}{p95 * 1e3:>8.2f}")


if __name__ == "__main__":
    main()
