"""Train the shipped baseline detector: synthesize the nominal dataset, train YOLO11n, export ONNX.

Needs only ``visionloop.vision.synthetic`` and ``visionloop.training.train`` (no MLflow, no
server packages), so it also runs on a bare GPU machine with ``PYTHONPATH=src``.

CPU (the 2-core dev machine: hours; see src/visionloop/baseline/MODEL_CARD.md)::

    .venv/bin/python scripts/train_baseline.py --out runs/baseline --n 4000 --epochs 60

GPU (what produced the shipped model; scripts/gpu_train_baseline.sh wraps it)::

    python scripts/train_baseline.py --out $OUT --work /tmp/work --device 0 --batch 64 \
        --workers 14 --cache ram --deadline-s 480
"""
# ruff: noqa: T201  (a command-line script: printing is its output)

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from visionloop.training.train import EpochReport, train


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the results")
    parser.add_argument("--work", type=Path, help="folder for data and the run (default OUT)")
    parser.add_argument("--data", type=Path, help="existing data.yaml (default: synthesize one)")
    parser.add_argument("--n", type=int, default=4000, help="images to synthesize (all splits)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="yolo11n.yaml")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--cache", default="", help="'ram' or 'disk' to cache decoded images")
    parser.add_argument(
        "--deadline-s",
        type=float,
        default=0.0,
        help="finish everything within this many seconds of the start (sets Ultralytics' time=)",
    )
    parser.add_argument(
        "--reserve-s", type=float, default=40.0, help="seconds kept for final validation and export"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()

    started = time.monotonic()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    work: Path = (args.work or out).resolve()

    data_yaml = args.data
    if data_yaml is None:
        from visionloop.vision.synthetic import write_dataset

        data_dir = work / "data"
        if (data_dir / "data.yaml").is_file():
            data_yaml = data_dir / "data.yaml"
            print(f"dataset: reusing {data_yaml}", flush=True)
        else:
            t0 = time.monotonic()
            data_yaml = write_dataset(data_dir, n=args.n, scenario="nominal", seed=args.seed)
            seconds = time.monotonic() - t0
            print(f"dataset: {args.n} images in {seconds:.1f}s -> {data_yaml}", flush=True)

    def on_epoch(report: EpochReport) -> None:
        m = report.metrics
        print(
            f"epoch {report.epoch:3d}/{report.epochs:<3d} {report.seconds:6.1f}s "
            f"box {m.get('train_box_loss', float('nan')):.3f} "
            f"cls {m.get('train_cls_loss', float('nan')):.3f} "
            f"P {m.get('precision', 0):.3f} R {m.get('recall', 0):.3f} "
            f"mAP50 {m.get('map50', 0):.3f} mAP50-95 {m.get('map50_95', 0):.3f}",
            flush=True,
        )

    # A second, plainer attempt (fp32, fewer workers, no cache) if the first fails on a GPU,
    # because a lent GPU machine cannot be fixed by hand within its time.
    attempts: list[dict[str, Any]] = [
        {"workers": args.workers, "cache": args.cache or False, "amp": None},
        {"workers": min(args.workers, 4), "cache": False, "amp": False},
    ]
    result = None
    for number, attempt in enumerate(attempts, start=1):
        time_hours = None
        if args.deadline_s > 0:
            budget = args.deadline_s - (time.monotonic() - started) - args.reserve_s
            if budget < 30:
                print(f"error: only {budget:.0f}s left for training", file=sys.stderr)
                return 1
            time_hours = budget / 3600
            print(f"attempt {number}: {attempt}, training budget {budget:.0f}s", flush=True)
        try:
            result = train(
                data_yaml,
                out_dir=work / f"run{number}",
                model=args.model,
                epochs=args.epochs,
                imgsz=args.imgsz,
                batch=args.batch,
                device=args.device,
                seed=args.seed,
                time_hours=time_hours,
                deterministic=args.device == "cpu",
                threads=args.threads,
                on_epoch=on_epoch,
                **attempt,
            )
            break
        except Exception:
            traceback.print_exc()
            if args.device == "cpu" or number == len(attempts):
                raise
    assert result is not None
    for name in ("results.csv", "args.yaml"):
        if (result.run_dir / name).is_file():
            shutil.copyfile(result.run_dir / name, out / name)
    for source, name in ((result.best_pt, "best.pt"), (result.onnx_path, "model.onnx")):
        if source.resolve() != (out / name).resolve():
            shutil.copyfile(source, out / name)
    summary = {
        "seconds_total": time.monotonic() - started,
        "seconds_train_export": result.seconds,
        "epochs_run": len(result.metrics_per_epoch),
        "epoch_seconds": [e["seconds"] for e in result.metrics_per_epoch],
        "final_val": result.final_metrics,
        "params": result.params,
        "device": _device_name(args.device),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "epoch_seconds"}, indent=2))
    return 0


def _device_name(device: str) -> str:
    if device == "cpu":
        import platform

        return f"cpu: {platform.processor() or platform.machine()}"
    import torch

    return str(torch.cuda.get_device_name(int(device.split(",")[0])))


if __name__ == "__main__":
    sys.exit(main())
