"""Evaluate a detector on freshly synthesized test sets: nominal and every drift scenario.

For each scenario (nominal, then each drift preset at ``--intensity``), renders ``--n`` test
images with ``--seed`` (different from the training seed) and runs ``visionloop.training.
evaluate``; prints a table and writes ``--json``. What src/visionloop/baseline/MODEL_CARD.md reports::

    .venv/bin/python scripts/evaluate_baseline.py src/visionloop/baseline/model.onnx \
        --work /tmp/baseline-eval --n 300 --seed 1 --json /tmp/baseline-eval/results.json
"""
# ruff: noqa: T201  (a command-line script: printing is its output)

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from visionloop.training.evaluate import evaluate
from visionloop.vision.synthetic import SCENARIOS, write_dataset


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--work", type=Path, required=True, help="folder for the test sets")
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--intensity", type=float, default=1.0)
    parser.add_argument("--backend", default="auto", choices=("auto", "onnxruntime", "openvino"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    results: dict[str, dict[str, object]] = {}
    for scenario in SCENARIOS:
        spec = scenario if scenario == "nominal" else f"{scenario}:{args.intensity:g}"
        folder = args.work / scenario
        data = folder / "data.yaml"
        if not data.is_file():
            data = write_dataset(folder, n=args.n, scenario=spec, seed=args.seed, splits=(0, 0, 1))
        report = evaluate(args.model, data, split="test", backend=args.backend, precision="fp32")
        results[scenario] = {"scenario": spec, **report.to_dict()}
        print(f"{spec:<16} mAP50 {report.map50:.3f}  mAP50-95 {report.map50_95:.3f}", flush=True)
    nominal = float(results["nominal"]["map50"])  # type: ignore[arg-type]
    print(
        "\n| scenario | mAP50 | mAP50-95 | drop in mAP50 | " + " | ".join(_classes(results)) + " |"
    )
    for name, r in results.items():
        per_class = r["per_class"]
        assert isinstance(per_class, dict)
        cells = [
            f"{per_class[c]['ap50']:.3f}" if c in per_class else "-" for c in _classes(results)
        ]
        drop = nominal - float(r["map50"])  # type: ignore[arg-type]
        print(
            f"| {r['scenario']} | {r['map50']:.3f} | {r['map50_95']:.3f} | "
            f"{'-' if name == 'nominal' else f'{drop:.3f}'} | " + " | ".join(cells) + " |"
        )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def _classes(results: dict[str, dict[str, object]]) -> list[str]:
    per_class = results["nominal"]["per_class"]
    assert isinstance(per_class, dict)
    return [f"{c}" for c in per_class]


if __name__ == "__main__":
    sys.exit(main())
