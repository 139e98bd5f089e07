"""One retraining round, timed (a benchmark, not a test): drifted frames of the synthetic line,
labeled by its ground truth, become a better production model.

In a fresh store (SQLite, local MLflow) the shipped baseline is production and the golden set is
``--golden`` nominal frames (seed 1). ``--labels`` frames of the drift preset ``--scenario``
(seed 2) are imported as reviewed frames (their stable split: ~80/10/10). A ``train`` job is
queued and run by a real worker (subprocess) with the ``VISIONLOOP_RETRAIN_*`` settings given
here. Prints the wall time of each stage and mAP50 of the baseline and of the new version on a
drifted test set (``--test`` frames, seed 3) and on the golden set.

    .venv/bin/python benchmarks/retrain.py                       # blur:0.5, 200 labels, 640
    .venv/bin/python benchmarks/retrain.py --epochs 2 --imgsz 320 --labels 100
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", default="blur:0.5", help="drift preset of the new labels")
    parser.add_argument("--labels", type=int, default=200, help="reviewed frames to train on")
    parser.add_argument("--test", type=int, default=200, help="drifted test frames")
    parser.add_argument("--golden", type=int, default=100, help="golden set frames (nominal)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--freeze", type=int, default=0)
    parser.add_argument("--replay", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--out", type=Path, default=None, help="keep the store here")
    args = parser.parse_args()

    root = args.out or Path(tempfile.mkdtemp(prefix="visionloop-retrain-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    for key in [k for k in os.environ if k.startswith("VISIONLOOP_")]:
        del os.environ[key]
    os.environ |= {
        "VISIONLOOP_DATA_DIR": str(root),
        "VISIONLOOP_GOLDEN_SET": str(root / "golden"),
        "VISIONLOOP_RETRAIN_EPOCHS": str(args.epochs),
        "VISIONLOOP_RETRAIN_IMGSZ": str(args.imgsz),
        "VISIONLOOP_RETRAIN_FREEZE": str(args.freeze),
        "VISIONLOOP_RETRAIN_REPLAY": str(args.replay),
        "VISIONLOOP_RETRAIN_BATCH": str(args.batch),
    }
    os.chdir(REPO)  # the baseline's path is relative to the repository

    from sqlalchemy.orm import sessionmaker

    from visionloop.config import Settings
    from visionloop.datasets.yolo import read_yolo
    from visionloop.jobs.kinds import default_kinds
    from visionloop.jobs.worker import Worker
    from visionloop.server.blobs import LocalBlobStore
    from visionloop.server.dataset_import import import_dataset
    from visionloop.server.db import create_db_engine, write_engine
    from visionloop.server.migrate import upgrade
    from visionloop.server.retraining import queue_train
    from visionloop.server.store import jobs as job_store
    from visionloop.training.evaluate import evaluate
    from visionloop.training.registry import Registry, ensure_baseline
    from visionloop.vision.synthetic.dataset import write_dataset

    settings = Settings()
    stages: dict[str, float] = {}

    def timed(name: str, started: float) -> None:
        stages[name] = time.perf_counter() - started
        print(f"{name:<28} {stages[name]:8.1f} s", flush=True)

    t = time.perf_counter()
    engine = create_db_engine(settings.database_url)
    upgrade(engine)
    registry = Registry.from_settings(settings)
    base = ensure_baseline(registry)
    assert base is not None, "src/visionloop/baseline/model.onnx is missing"
    golden = write_dataset(
        root / "golden", n=args.golden, scenario="nominal", seed=1, splits=(0, 0, 1)
    )
    drifted_test = write_dataset(
        root / "drifted-test", n=args.test, scenario=args.scenario, seed=3, splits=(0, 0, 1)
    )
    labels = write_dataset(root / "labels-src", n=args.labels, scenario=args.scenario, seed=2)
    timed("setup (store, synth sets)", t)

    t = time.perf_counter()
    import_dataset(
        read_yolo(labels.parent),
        read_sessions=sessionmaker(engine),
        write_sessions=sessionmaker(write_engine(engine)),
        blobs=LocalBlobStore(settings.blobs_path),
        confirm_new_classes=lambda _names: True,
    )
    timed("labels in (import)", t)

    def maps(onnx: Path) -> dict[str, float]:
        return {
            "drifted": evaluate(onnx, drifted_test, split="test").map50,
            "golden": evaluate(onnx, golden, split="test").map50,
        }

    t = time.perf_counter()
    before = maps(registry.onnx_path(base.version))
    timed("baseline evaluation", t)

    with sessionmaker(write_engine(engine))() as session, session.begin():
        job = queue_train(
            session, settings=settings, reason="benchmark", created_by="bench", trigger="person"
        )
        job_id = job.id
    worker = Worker(engine=engine, settings=settings, kinds=default_kinds())
    t = time.perf_counter()
    outcome = worker.run_one()
    timed("train job (whole)", t)
    with sessionmaker(engine)() as session:
        done = job_store.get_job(session, job_id=job_id)
        result, error = done.result, done.error
    if result is None:
        raise SystemExit(f"the train job ended {outcome}: {error}")
    for name, seconds in result["seconds"].items():
        print(f"  job stage {name:<17} {seconds:8.1f} s")

    t = time.perf_counter()
    after = maps(registry.onnx_path(result["version"]))
    timed("new version evaluation", t)

    import multiprocessing

    print()
    print(
        json.dumps(
            {
                "scenario": args.scenario,
                "labels": args.labels,
                "images": result["images"],
                "replay_images": result["replay_images"],
                "epochs": result["epochs"],
                "imgsz": result["imgsz"],
                "freeze": args.freeze,
                "train_job_seconds": round(stages["train job (whole)"], 1),
                "job_stages": result["seconds"],
                "map50_before": before,
                "map50_after": after,
                "gate_passed": result["gate_passed"],
                "gate_summary": result["gate_summary"],
                "cpu": platform.processor() or platform.machine(),
                "cores": multiprocessing.cpu_count(),
                "load_before": os.getloadavg(),
            },
            indent=2,
        )
    )
    engine.dispose()


if __name__ == "__main__":
    main()
