"""The promotion gate's paired bootstrap on real detections: its cost, and how many images it
needs before its verdicts mean something (``VISIONLOOP_GATE_MIN_RECENT_IMAGES``).

    .venv/bin/python benchmarks/gate_bootstrap.py [--images 400] [--subsets 100]
        [--sizes 5,10,20,30,50] [--resamples 1000] [--json out.json]

The shipped baseline (ONNX Runtime, evaluation thresholds) is evaluated on ``--images`` frames
of the synthetic line (seed 11), rendered once per scenario from the same scenes (same parts,
same true boxes): ``blur:0.5`` is "production on drifted frames". Each other scenario plays a
candidate on those same images: ``nominal`` (a full recovery), ``blur:0.4`` (a small one) and
``blur:0.5`` again through OpenVINO in bf16 when it is installed (a small real difference: bf16
moves the confidences). ``--cases`` runs only the named ones. The
population's difference in mAP50 (all images) is the truth; for each subset size n, ``--subsets``
random subsets of n images each get the gate's interval (``--resamples`` resamples): the table
gives how often the interval covers the population's difference, how often the verdict is
``better`` / ``worse``, and the median width. Then the cost of one gate interval (2,000
resamples, the gate's) at 30, 100 and all images.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from visionloop.shipped import BASELINE_ONNX
from visionloop.training.bootstrap import paired_bootstrap
from visionloop.training.evaluate import evaluate
from visionloop.training.matches import MatchTable, map50
from visionloop.vision.synthetic.dataset import write_dataset

SEED = 11


def _subset(table: MatchTable, rows: np.ndarray) -> MatchTable:
    """The table restricted to images ``rows`` (renumbered in that order)."""
    where = {int(r): i for i, r in enumerate(rows)}
    keep = np.isin(table.image, rows)
    return MatchTable(
        truth=table.truth[rows],
        image=np.asarray([where[int(i)] for i in table.image[keep]], np.int64),
        class_id=table.class_id[keep],
        score=table.score[keep],
        tp=table.tp[keep],
        digest="",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--subsets", type=int, default=100)
    parser.add_argument("--sizes", default="5,10,20,30,50")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--cases", default="", help="Only these candidates (names, commas).")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    candidates: list[tuple[str, str, str, str]] = [
        ("nominal", "nominal", "onnxruntime", "fp32"),
        ("blur:0.4", "blur:0.4", "onnxruntime", "fp32"),
    ]
    if importlib.util.find_spec("openvino") is not None:
        # bf16 moves confidences a little: a real, small difference between two "models"
        # (OpenVINO in f32 gives ONNX Runtime's detections exactly: identical predictions).
        candidates.append(("same model in OpenVINO bf16", "blur:0.5", "openvino", "bf16"))
    if args.cases:
        candidates = [c for c in candidates if c[0] in args.cases.split(",")]
    tables: dict[str, MatchTable] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for scenario in {"blur:0.5", *(c[1] for c in candidates)}:
            write_dataset(
                Path(tmp) / scenario, n=args.images, scenario=scenario, seed=SEED, splits=(0, 0, 1)
            )
        started = time.perf_counter()
        production = evaluate(BASELINE_ONNX, Path(tmp) / "blur:0.5", backend="onnxruntime")
        print(f"evaluated production: {time.perf_counter() - started:.1f} s")
        assert production.matches is not None
        for name, scenario, backend, precision in candidates:
            report = evaluate(
                BASELINE_ONNX,
                Path(tmp) / scenario,
                backend=backend,  # type: ignore[arg-type]
                precision=precision,  # type: ignore[arg-type]
            )
            assert report.matches is not None
            tables[name] = report.matches
    prod = production.matches
    rng = np.random.default_rng(0)
    rows: list[dict[str, Any]] = []
    for name, table in tables.items():
        truth = (map50(table) or 0.0) - (map50(prod) or 0.0)
        print(f"\n{name} vs production on blur:0.5, all {args.images} images: {truth:+.4f} mAP50")
        print("| n | covers | better | worse | median width | s per interval |")
        print("|---|---|---|---|---|---|")
        for n in sizes:
            covers = better = worse = 0
            widths, seconds = [], []
            for _ in range(args.subsets):
                pick = np.sort(rng.choice(args.images, size=n, replace=False))
                c, p = _subset(table, pick), _subset(prod, pick)
                if c.truth.sum() == 0:
                    continue
                iv = paired_bootstrap(
                    c, p, resamples=args.resamples, seed=int(rng.integers(1_000_000_000))
                )
                covers += iv.low <= truth <= iv.high
                better += iv.low > 0
                worse += iv.high < 0
                widths.append(iv.high - iv.low)
                seconds.append(iv.seconds)
            k = len(widths)
            row = {
                "candidate": name,
                "truth": truth,
                "n": n,
                "subsets": k,
                "covers": covers / k,
                "better": better / k,
                "worse": worse / k,
                "median_width": float(np.median(widths)),
                "seconds": float(np.median(seconds)),
            }
            rows.append(row)
            print(
                f"| {n} | {row['covers']:.0%} | {row['better']:.0%} | {row['worse']:.0%} | "
                f"{row['median_width']:.3f} | {row['seconds']:.3f} |"
            )
    cost = []
    for n in (30, 100, args.images):
        pick = np.arange(min(n, args.images))
        table = next(iter(tables.values()))
        c, p = _subset(table, pick), _subset(prod, pick)
        iv = paired_bootstrap(c, p)  # the gate's: 2,000 resamples, seed 0
        cost.append({"images": len(pick), "detections": int(c.image.size), "seconds": iv.seconds})
        print(
            f"gate interval, {len(pick)} images ({c.image.size:,} + {p.image.size:,} detections): "
            f"{iv.seconds:.2f} s for {iv.resamples:,} resamples"
        )
    if args.json:
        args.json.write_text(
            json.dumps({"machine": platform.processor(), "rows": rows, "cost": cost}, indent=2)
        )


if __name__ == "__main__":
    main()
