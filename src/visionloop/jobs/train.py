"""The ``train`` job and the retraining policy's periodic check.

One round (``run_train``), each stage timed into the result and reported as progress:

1. **export**: the reviewed labels as a YOLO snapshot (``server.dataset_export``: stable split
   per frame id, so the held-out ``test`` slice is never trained on; ``manifest.json`` with the
   digest). The time of the cut is ``data_cut_at``.
2. **replay**: ``retrain_replay`` images per new training image, sampled from the production
   version's own training data, so that it does not forget what it knew: a version trained by
   this job records its training folder (tag ``train_data``: the export and the replay it used,
   on the worker's disk); for any other version (the shipped baseline) or when that folder is
   not on this worker, the synthetic line's nominal frames with the baseline's training seed
   (0). A tenth of the replay goes to the validation split.
3. **train**: Ultralytics fine-tunes from the production version's ``.pt`` (logged beside its
   ONNX in MLflow; the baseline's ``best.pt``), ``retrain_freeze`` layers frozen, for
   ``retrain_epochs`` at ``retrain_imgsz``, then exports ONNX (static input of that size). A
   class list that grew gives a model with the new classes (Ultralytics rebuilds the head).
4. **evaluate**: candidate and production on the golden set (its ``test`` split) and on the
   snapshot's held-out ``test`` slice; **gate** (``training.gate``).
5. **register**: an MLflow run (params, per-epoch metrics, the digest, ``dataset/manifest.json``,
   ``weights/best.pt``, ``gate/gate.json``) and a registered version tagged with the gate's
   verdict.
6. **quantize** (``retrain_quantize``, with OpenVINO and NNCF installed): the version's INT8
   model, as ``visionloop models quantize`` makes it, checked against fp32 on the golden set
   (``--precision auto`` runs it only within the INT8 budget). Then a version no rule failed
   gets ``staging``, and ``production`` when ``retrain_auto_promote`` and the gate's decision is
   ``promote`` (better on recent evidence, within the golden budget, not production again);
   otherwise it stays in ``staging`` with the reason. A failing one stays registered, never
   promoted.
"""

from __future__ import annotations

import logging
import random
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from visionloop.config import Settings
from visionloop.errors import ConflictError, InvalidInputError, VisionloopError
from visionloop.jobs.kinds import JobContext, JobKind
from visionloop.jobs.scheduler import Periodic

if TYPE_CHECKING:
    from visionloop.datasets.labels import LabeledImage
    from visionloop.training.evaluate import EvalReport
    from visionloop.training.registry import ModelVersion, Registry

log = logging.getLogger(__name__)

BASELINE_REPLAY_SEED = 0
"""The seed of the synthetic data the shipped baseline was trained on (its model card)."""
REPLAY_VAL_SHARE = 0.1
TRAIN_DATA_TAG = "train_data"
SYNTHETIC_REPLAY = "synthetic nominal (seed 0)"
QUANTIZE_EVAL_IMAGES = 100
"""Golden-set frames the INT8 check synthesizes when no golden set is configured."""


class TrainParams(BaseModel):
    """A train job's parameters: why, who or what asked, and optional overrides of the
    ``VISIONLOOP_RETRAIN_*`` settings (None: the setting)."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=500)
    trigger: Literal["person", "policy"] = "person"
    epochs: int | None = Field(default=None, ge=1, le=1000)
    imgsz: int | None = Field(default=None, ge=32, le=4096, multiple_of=32)
    freeze: int | None = Field(default=None, ge=0, le=50)
    replay: float | None = Field(default=None, ge=0, le=20)


def _now() -> datetime:
    return datetime.now(UTC)


@contextmanager
def _stage(name: str, seconds: dict[str, float]) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        seconds[name] = round(time.perf_counter() - started, 3)
        log.info("stage %s: %.1f s", name, seconds[name])


def _export(settings: Settings, out: Path, ctx: JobContext) -> Any:
    from sqlalchemy.orm import sessionmaker

    from visionloop.server.blobs import LocalBlobStore
    from visionloop.server.dataset_export import export_dataset
    from visionloop.server.db import create_db_engine

    engine = create_db_engine(settings.database_url, pool_size=1)
    try:
        return export_dataset(
            out,
            read_sessions=sessionmaker(engine),
            blobs=LocalBlobStore(settings.blobs_path),
            progress=lambda done, total: ctx.progress(0.1 * done / total, "exporting labels"),
        )
    finally:
        engine.dispose()


def _replay_pool(production: ModelVersion, n: int, work: Path) -> tuple[list[LabeledImage], str]:
    """Labeled training images of the production version's own data, and where they came from."""
    from visionloop.datasets.yolo import read_yolo
    from visionloop.vision.synthetic.dataset import write_dataset

    recorded = production.tags.get(TRAIN_DATA_TAG)
    if recorded:
        folders = [Path(recorded) / "export", Path(recorded) / "replay"]
        if all((f / "data.yaml").is_file() for f in folders):
            items = [
                item
                for folder in folders
                for item in read_yolo(folder).items
                if getattr(item, "split", None) == "train"
            ]
            if items:
                return items, recorded  # type: ignore[return-value]  # LabeledImage only
        log.warning(
            "version %s's training data %s is not on this worker: replaying %s",
            production.version,
            recorded,
            SYNTHETIC_REPLAY,
        )
    source = work / "replay-source"
    write_dataset(
        source, n=max(n, 1), scenario="nominal", seed=BASELINE_REPLAY_SEED, splits=(1, 0, 0)
    )
    items = [i for i in read_yolo(source).items if getattr(i, "split", None) == "train"]
    return items, SYNTHETIC_REPLAY  # type: ignore[return-value]  # LabeledImage only


def _write_replay(
    items: list[LabeledImage], *, n: int, names: dict[int, str], out: Path, seed: int
) -> dict[str, int]:
    """``n`` of ``items`` (sampled with ``seed``) as a YOLO folder with ``names``' class ids;
    boxes of classes not in ``names`` are dropped. Returns images per split."""
    from visionloop.datasets.yolo import YoloWriter

    chosen = random.Random(seed).sample(items, min(n, len(items)))
    n_val = round(len(chosen) * REPLAY_VAL_SHARE) if len(chosen) >= 10 else 0
    known = set(names.values())
    writer = YoloWriter(out, names)
    counts = {"train": 0, "val": 0}
    for k, item in enumerate(chosen):
        split: Literal["train", "val"] = "val" if k < n_val else "train"
        writer.add(
            stem=f"replay{k:05d}",
            split=split,
            image=item.image.read_bytes(),
            suffix=item.image.suffix.lower(),
            boxes=[b for b in item.boxes if b.class_name in known],
        )
        counts[split] += 1
    writer.finish()
    return counts


def _has_images(folder: Path) -> bool:
    return folder.is_dir() and any(p.is_file() for p in folder.iterdir())


def _data_yaml(work: Path, names: dict[int, str]) -> Path:
    """A data.yaml over the export and the replay (train and val of each, test: the export's)."""
    import json

    export, replay = work / "export", work / "replay"
    train = [str(f / "images/train") for f in (export, replay) if _has_images(f / "images/train")]
    val = [str(f / "images/val") for f in (export, replay) if _has_images(f / "images/val")]
    if not train:
        raise InvalidInputError("no training images: the export has no train split and no replay")
    val = val or train
    lines = [
        f"train: {json.dumps(train)}",
        f"val: {json.dumps(val)}",
        f"test: {json.dumps(str(export / 'images/test'))}",
        f"nc: {len(names)}",
        "names:",
        *(f"  {k}: {json.dumps(v)}" for k, v in sorted(names.items())),
    ]
    path = work / "data.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _base_weights(registry: Registry, production: ModelVersion) -> Path:
    """The production version's ``.pt``: from MLflow, else the shipped baseline's when the
    version is the baseline (same ONNX sha256)."""
    from visionloop.shipped import BASELINE_ONNX, BASELINE_WEIGHTS
    from visionloop.vision.detector import sha256_file

    found = registry.weights_path(production.version)
    if found is not None:
        return found
    baseline_pt = BASELINE_WEIGHTS
    if (
        baseline_pt.is_file()
        and BASELINE_ONNX.is_file()
        and sha256_file(BASELINE_ONNX) == production.sha256
    ):
        return baseline_pt
    raise VisionloopError(
        f"production version {production.version} was registered without its fine-tuning "
        "weights, so it cannot be retrained: register the model again with them, `visionloop "
        "models register MODEL.onnx --weights best.pt --alias production` (the .pt the ONNX "
        "file was exported from), or train one with `visionloop train`"
    )


def _evaluate_or_none(
    onnx: Path, dataset: Path, split: str, notes: dict[str, str], key: str, who: str
) -> EvalReport | None:
    from visionloop.training.evaluate import evaluate, split_files

    try:
        if not split_files(dataset, split).images:
            notes[key] = f"{dataset} has no {split} images"
            return None
        return evaluate(onnx, dataset, split=split)
    except InvalidInputError as exc:
        notes[key] = f"{who} not evaluated on {key}: {exc}"
        return None


def run_train(params: TrainParams, ctx: JobContext) -> dict[str, Any]:
    """One retraining round (see the module doc); the result names the new version and the
    gate's verdict."""
    import importlib.util

    if importlib.util.find_spec("ultralytics") is None:
        raise VisionloopError("train jobs need the train extra: pip install 'visionloop[train]'")
    import json
    import os

    # Read by Ultralytics at import: no progress bars in the job's log (our epoch lines stay).
    os.environ.setdefault("YOLO_VERBOSE", "false")

    from visionloop.training.evaluate import dataset_digest
    from visionloop.training.gate import gate_report
    from visionloop.training.registry import PRODUCTION, STAGING, Registry
    from visionloop.training.tracking import log_training_run, summarize_eval
    from visionloop.training.train import EpochReport, train

    settings = ctx.settings
    epochs = params.epochs or settings.retrain_epochs
    imgsz = params.imgsz or settings.retrain_imgsz
    freeze = settings.retrain_freeze if params.freeze is None else params.freeze
    replay = settings.retrain_replay if params.replay is None else params.replay
    seconds: dict[str, float] = {}
    registry = Registry.from_settings(settings)
    production = registry.production()
    if production is None:
        raise VisionloopError("no production model to fine-tune: promote a version first")
    work = settings.data_dir / "retrain" / f"job-{ctx.job_id}"
    if work.exists():
        shutil.rmtree(work)  # an earlier attempt's leftovers
    work.mkdir(parents=True)
    log.info("train job %d: fine-tuning version %s in %s", ctx.job_id, production.version, work)

    ctx.progress(0.0, "exporting labels")
    data_cut_at = _now()
    with _stage("export", seconds):
        export = _export(settings, work / "export", ctx)
    names = _names_of(work / "export" / "data.yaml")
    n_replay = round(replay * export.images["train"])
    ctx.progress(0.1, f"replay: {n_replay} images")
    with _stage("replay", seconds):
        replay_counts = {"train": 0, "val": 0}
        replay_source = "none"
        if n_replay > 0:
            pool, replay_source = _replay_pool(production, n_replay, work)
            replay_counts = _write_replay(
                pool, n=n_replay, names=names, out=work / "replay", seed=ctx.job_id
            )
        else:
            _write_replay([], n=0, names=names, out=work / "replay", seed=0)
        data = _data_yaml(work, names)
    weights = _base_weights(registry, production)

    def on_epoch(report: EpochReport) -> None:
        ctx.progress(
            0.15 + 0.65 * report.epoch / max(report.epochs, 1),
            f"epoch {report.epoch}/{report.epochs}: val mAP50 "
            f"{report.metrics.get('map50', 0.0):.3f}",
        )

    ctx.progress(0.15, f"training {epochs} epochs at {imgsz} from version {production.version}")
    with _stage("train", seconds):
        result = train(
            data,
            out_dir=work / "run",
            model=str(weights),
            epochs=epochs,
            imgsz=imgsz,
            batch=settings.retrain_batch,
            device=settings.retrain_device,
            freeze=freeze,
            config_dir=settings.data_dir / "ultralytics",
            on_epoch=on_epoch,
        )

    ctx.progress(0.8, "evaluating candidate and production")
    notes: dict[str, str] = {}
    golden = settings.golden_set_path
    with _stage("evaluate", seconds):
        prod_onnx = registry.onnx_path(production.version)
        candidate: dict[str, EvalReport | None] = {}
        prod: dict[str, EvalReport | None] = {}
        if (golden / "data.yaml").is_file():
            candidate["golden"] = _evaluate_or_none(
                result.onnx_path, golden, "test", notes, "golden", "candidate"
            )
            prod["golden"] = _evaluate_or_none(
                prod_onnx, golden, "test", notes, "golden", "production"
            )
        else:
            notes["golden"] = f"no golden set at {golden} (VISIONLOOP_GOLDEN_SET)"
        candidate["recent"] = _evaluate_or_none(
            result.onnx_path, work / "export", "test", notes, "recent", "candidate"
        )
        prod["recent"] = (
            _evaluate_or_none(prod_onnx, work / "export", "test", notes, "recent", "production")
            if candidate["recent"] is not None
            else None
        )
    with _stage("gate", seconds):
        report = gate_report(
            candidate={k: v.to_dict() if v is not None else None for k, v in candidate.items()},
            production={k: v.to_dict() if v is not None else None for k, v in prod.items()},
            max_golden_drop=settings.gate_max_golden_drop,
            max_recent_drop=settings.gate_max_recent_drop,
            recall_floors=settings.recall_floors,
            notes=notes,
            matches={
                k: (c.matches, p.matches)
                for k, c in candidate.items()
                if c is not None
                and (p := prod.get(k)) is not None
                and c.matches is not None
                and p.matches is not None
            },
            min_images=settings.gate_min_recent_images,
            promote_on="better" if settings.gate_promote_on == "better" else "no worse",
        )
    log.info("gate: %s", report["summary"])

    ctx.progress(0.9, "registering")
    with _stage("register", seconds):
        digest = dataset_digest(work / "export")
        primary = candidate.get("golden") or candidate.get("recent")
        evaluation = None
        if primary is not None:
            eval_json = work / "eval.json"
            both = {
                s: e.to_dict() if (e := candidate.get(s)) else None for s in ("golden", "recent")
            }
            eval_json.write_text(json.dumps(both, indent=2))
            evaluation = summarize_eval(primary.to_dict(), eval_json)
        result.params |= {
            "base_version": production.version,
            "freeze": str(freeze),
            "replay": str(replay),
            "replay_images": str(replay_counts["train"] + replay_counts["val"]),
            "replay_source": replay_source[:500],
            "new_images": str(sum(export.images.values())),
            "job_id": str(ctx.job_id),
            "trigger": params.trigger,
        }
        run_id = log_training_run(
            result,
            tracking_uri=settings.mlflow_tracking_uri,
            dataset_digest=digest,
            evaluation=evaluation,
            artifact_root=settings.mlflow_artifacts_path,
            run_name=f"retrain job {ctx.job_id}",
        )
        _log_dataset(settings, run_id, work)
        tags = {
            "origin": "retrain",
            "dataset_digest": digest,
            "train_run_id": run_id,
            "train_job_id": str(ctx.job_id),
            "base_version": production.version,
            "data_cut_at": data_cut_at.isoformat(),
            TRAIN_DATA_TAG: str(work),
            "weights_file": result.best_pt.name,
            **(
                {k: f"{v:.6f}" for k, v in evaluation.metrics.items()}
                if evaluation is not None
                else {}
            ),
        }
        version = registry.register(
            result.onnx_path,
            run_id=run_id,
            tags=tags,
            description=f"retrained from version {production.version} by job {ctx.job_id}"
            + (f": {params.reason}" if params.reason else ""),
        )
        registry.set_gate(version.version, report, run_id=run_id)
    ctx.progress(0.9, f"drift reference profile of version {version.version}")
    _drift_profile(registry, version.version, data, work, job_id=ctx.job_id, golden=golden)
    # Before any promotion, so an edge that swaps to the version finds its INT8 model with it.
    int8 = _quantize(registry, version.version, settings=settings, work=work, ctx=ctx)
    if "seconds" in int8:
        seconds["quantize"] = int8.pop("seconds")
    promoted: list[str] = []
    if report["passed"]:
        why = f"passed the promotion gate (train job {ctx.job_id})"
        staged = why if report["promote"] else f"{why}; not promoted: {report['reason']}"
        registry.promote(version.version, alias=STAGING, by="retraining", reason=staged[:500])
        promoted.append(STAGING)
        if settings.retrain_auto_promote and report["promote"]:
            registry.promote(version.version, alias=PRODUCTION, by="retraining", reason=why)
            promoted.append(PRODUCTION)
    log.info(
        "version %s registered (%s); aliases: %s",
        version.version,
        "gate passed" if report["passed"] else "gate FAILED",
        ", ".join(promoted) or "none",
    )
    return {
        "version": version.version,
        "base_version": production.version,
        "gate_passed": bool(report["passed"]),
        "gate_decision": report["decision"],
        "gate_summary": report["summary"],
        "aliases": promoted,
        "data_cut_at": data_cut_at.isoformat(),
        "dataset_digest": digest,
        "images": {**export.images},
        "replay_images": replay_counts,
        "replay_source": replay_source,
        "epochs": len(result.metrics_per_epoch),
        "imgsz": imgsz,
        "int8": int8,
        "seconds": seconds,
    }


def _drift_profile(
    registry: Registry, version: str, data: Path, work: Path, *, job_id: int, golden: Path
) -> None:
    """The new version's drift reference profile, from the training and validation images it
    was trained with and the golden set's (before any promotion, so that a production version
    has one): a version trained on drifted labels takes the conditions it learned as normal,
    and the nominal ones too. A failure is logged, not raised: the version is good, and its
    checks inherit the previous production version's reference."""
    from visionloop.monitoring.profile import profile_frames, profile_version

    try:
        total, frames = profile_frames([(data, "train"), (data, "val"), (golden, "test")])
        profile_version(
            registry,
            version,
            frames,
            source=f"training and validation images of train job {job_id} and the golden set",
            work_dir=work / "drift",
            total=total,
        )
    except VisionloopError as exc:
        log.warning("version %s has no drift profile: %s", version, exc)


def _quantize(
    registry: Registry, version: str, *, settings: Settings, work: Path, ctx: JobContext
) -> dict[str, Any]:
    """``visionloop models quantize`` of the new version, when ``retrain_quantize`` is on and
    OpenVINO and NNCF are installed: calibrated on the round's new training images (else the
    synthetic line), checked against fp32 on the golden set (so ``--precision auto`` uses it
    only within the INT8 budget). Never fails the round: the fp32 model always works.

    Returns the check's numbers and ``seconds`` spent, or ``skipped`` / ``error`` with why.
    """
    import importlib.util

    from visionloop.training.quantize import quantize_version

    if not settings.retrain_quantize:
        return {"skipped": "VISIONLOOP_RETRAIN_QUANTIZE is off"}
    if importlib.util.find_spec("openvino") is None or importlib.util.find_spec("nncf") is None:
        log.info("no INT8 model: OpenVINO and NNCF are not installed (the openvino extra)")
        return {"skipped": "OpenVINO and NNCF are not installed (the openvino extra)"}
    export = work / "export"
    golden = settings.golden_set_path
    started = time.perf_counter()
    ctx.progress(0.92, f"quantizing version {version} to INT8")
    try:
        check = quantize_version(
            registry,
            version,
            data=export if _has_images(export / "images" / "train") else None,
            golden=golden if (golden / "data.yaml").is_file() else None,
            drift=None,
            eval_images=QUANTIZE_EVAL_IMAGES,
            progress=lambda fraction, message: ctx.progress(0.92 + 0.06 * fraction, message),
        )
    except Exception as exc:  # NNCF and OpenVINO raise many kinds; the round must not fail
        log.warning("version %s: quantization failed, no INT8 model (%s)", version, exc)
        return {"error": f"{type(exc).__name__}: {exc}"[:500]}
    took = round(time.perf_counter() - started, 3)
    log.info(
        "version %s: INT8 mAP50 %.4f vs fp32 %.4f on the golden set, %s (%.1f s)",
        version,
        check.map50_int8,
        check.map50_fp32,
        "accepted" if check.accepted else "NOT accepted: the edge keeps fp32/bf16",
        took,
    )
    return {
        "accepted": check.accepted,
        "map50_fp32": check.map50_fp32,
        "map50_int8": check.map50_int8,
        "seconds": took,
    }


def _names_of(data_yaml: Path) -> dict[int, str]:
    from visionloop.datasets.yolo import read_yolo

    return dict(enumerate(read_yolo(data_yaml).class_names))


def _log_dataset(settings: Settings, run_id: str, work: Path) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    manifest = work / "export" / "manifest.json"
    if manifest.is_file():
        client.log_artifact(run_id, str(manifest), artifact_path="dataset")
    client.log_artifact(run_id, str(work / "data.yaml"), artifact_path="dataset")


TRAIN = JobKind(
    name="train",
    params=TrainParams,
    run=run_train,
    description=(
        "Fine-tune the production model on the reviewed labels plus replay, evaluate it against "
        "production, register it and promote it when it passes the gate."
    ),
)


# --- the policy ------------------------------------------------------------------------------


def policy_check(
    settings: Settings, registry_factory: Callable[[Settings], Registry] | None = None
) -> Callable[[Session], None]:
    """The scheduler's task: queue a train job when the retraining policy holds."""

    def check(session: Session) -> None:
        from visionloop.server.retraining import queue_train, retraining_status
        from visionloop.training.registry import Registry

        registry = (registry_factory or Registry.from_settings)(settings)
        status = retraining_status(session, settings=settings, production=registry.production())
        if not status.eligible:
            log.debug("retraining policy: %s", status.reason)
            return
        try:
            job = queue_train(
                session,
                settings=settings,
                reason=status.reason,
                created_by="scheduler",
                trigger="policy",
            )
        except ConflictError:
            return  # another worker or a person queued one meanwhile
        log.info("retraining policy: queued train job %d (%s)", job.id, status.reason)

    return check


def retrain_schedule(settings: Settings) -> list[Periodic]:
    """The retraining policy's entry in the workers' schedule."""
    return [Periodic("retrain-policy", settings.retrain_policy_interval, policy_check(settings))]
