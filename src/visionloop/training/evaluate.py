"""Evaluation of a detector on a YOLO-format dataset split with COCO metrics (faster-coco-eval).

The metric code is a kept reference implementation (faster-coco-eval, a pycocotools
re-implementation), not ours: we only turn YOLO labels and our detections into COCO form.
Detections are made the way Ultralytics' ``val`` makes them (confidence 0.001, NMS IoU 0.7,
every class above the threshold of a box kept as its own detection, at most 300 per image), so
our mAP50 and mAP50-95 are comparable with its figures. Per-class
``recall`` is different: it is the share of ground-truth boxes found at IoU 0.5 by detections at
the operating threshold (``recall_conf``, 0.25 by default): what a deployed model misses.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from visionloop.errors import InvalidInputError
from visionloop.training.matches import MatchTable, match_coco
from visionloop.types import BackendChoice, Precision
from visionloop.vision.detector import Detector, load_detector

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
EVAL_CONF = 0.001
"""Score threshold for mAP (Ultralytics' ``val`` default: the whole precision-recall curve)."""
EVAL_IOU = 0.7
"""NMS IoU threshold for mAP (Ultralytics' ``val`` default)."""
MAX_DETS = 300


@dataclass(frozen=True)
class ClassMetrics:
    """One class: AP at IoU 0.5, recall at IoU 0.5 at the operating threshold, its GT boxes."""

    ap50: float
    recall: float
    instances: int


@dataclass(frozen=True)
class EvalReport:
    """COCO metrics of one model on one dataset split."""

    map50: float
    map50_95: float
    per_class: dict[str, ClassMetrics]
    images: int
    instances: int
    split: str
    recall_conf: float
    seconds: float
    model_sha256: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    matches: MatchTable | None = field(default=None, compare=False, repr=False)
    """Per-image matches at IoU 0.5 (what the promotion gate bootstraps over); not in
    ``to_dict``, only their digest (``predictions_sha256``)."""

    def to_dict(self) -> dict[str, Any]:
        """``{"map50", "map50_95", "per_class": {name: {"ap50", "recall", "instances"}},
        "images", …}``: JSON-ready. Classes without ground truth in the split are left out."""
        return {
            "map50": self.map50,
            "map50_95": self.map50_95,
            "per_class": {
                name: {"ap50": m.ap50, "recall": m.recall, "instances": m.instances}
                for name, m in self.per_class.items()
            },
            "images": self.images,
            "instances": self.instances,
            "split": self.split,
            "recall_conf": self.recall_conf,
            "seconds": round(self.seconds, 3),
            "model_sha256": self.model_sha256,
            **({"predictions_sha256": self.matches.digest} if self.matches is not None else {}),
            **({"extra": self.extra} if self.extra else {}),
        }


@dataclass(frozen=True)
class SplitFiles:
    """The images of one split with their label files and the dataset's class names."""

    names: dict[int, str]
    images: list[Path]
    labels: list[Path]


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidInputError(f"{path}: cannot read the dataset description ({exc})") from exc
    if not isinstance(data, dict):
        raise InvalidInputError(f"{path}: not a YOLO data.yaml")
    return data


def _data_yaml(dataset: Path) -> Path:
    if dataset.is_file():
        return dataset
    for name in ("data.yaml", "data.yml"):
        if (dataset / name).is_file():
            return dataset / name
    raise InvalidInputError(f"{dataset}: no data.yaml (pass a YOLO dataset folder or its YAML)")


def split_files(dataset: Path, split: str) -> SplitFiles:
    """Resolve a split of a YOLO dataset (folder or ``data.yaml``) to image and label files."""
    yaml_path = _data_yaml(Path(dataset))
    data = _read_yaml(yaml_path)
    raw_names = data.get("names")
    if isinstance(raw_names, list):
        names = dict(enumerate(str(n) for n in raw_names))
    elif isinstance(raw_names, dict):
        names = {int(k): str(v) for k, v in raw_names.items()}
    else:
        raise InvalidInputError(f"{yaml_path}: no class names")
    if split not in data:
        raise InvalidInputError(f"{yaml_path}: no {split!r} split")
    root = Path(str(data.get("path") or yaml_path.parent))
    if not root.is_absolute():
        root = (yaml_path.parent / root).resolve()
    if not root.is_dir():
        root = yaml_path.parent  # a moved dataset: its own folder
    # One folder, or a list of them (what a retraining round writes: its export and its replay).
    entries = data[split] if isinstance(data[split], list) else [data[split]]
    images: list[Path] = []
    for entry in entries:
        images_dir = root / str(entry)
        if not images_dir.is_dir():
            raise InvalidInputError(
                f"{images_dir}: the {split} split's image folder does not exist"
            )
        images += sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise InvalidInputError(f"{yaml_path}: the {split} split has no images")
    # YOLO convention: .../images/<split>/x.jpg -> .../labels/<split>/x.txt
    labels = []
    for image in images:
        parts = list(image.parts)
        idx = len(parts) - 1 - parts[::-1].index("images") if "images" in parts else None
        if idx is None:
            labels.append(image.with_suffix(".txt"))
        else:
            parts[idx] = "labels"
            labels.append(Path(*parts).with_suffix(".txt"))
    return SplitFiles(names=names, images=images, labels=labels)


def _read_labels(
    path: Path, size_wh: tuple[int, int], nc: int
) -> Iterator[tuple[int, list[float]]]:
    """YOLO label rows ``cls cx cy w h`` (normalised) as ``(cls, [x, y, w, h])`` in pixels."""
    if not path.is_file():
        return
    w, h = size_wh
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        try:
            cls = int(fields[0])
            cx, cy, bw, bh = (float(v) for v in fields[1:5])
        except (ValueError, IndexError) as exc:
            raise InvalidInputError(f"{path}:{lineno}: not a YOLO label row: {line!r}") from exc
        if not 0 <= cls < nc:
            raise InvalidInputError(f"{path}:{lineno}: class {cls} not in 0..{nc - 1}")
        yield cls, [(cx - bw / 2) * w, (cy - bh / 2) * h, bw * w, bh * h]


def _coco_eval(gt: dict[str, Any], dets: list[dict[str, Any]]) -> Any:
    """Run COCO bbox evaluation; returns the evaluator after ``accumulate``."""
    from faster_coco_eval import COCO, COCOeval_faster

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(dets) if dets else COCO()
        if not dets:
            coco_dt.dataset = {"images": gt["images"], "annotations": [], "categories": []}
            coco_dt.createIndex()
        evaluator = COCOeval_faster(coco_gt, coco_dt, "bbox", print_function=log.debug)
        evaluator.params.maxDets = [1, 10, MAX_DETS]
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


@dataclass(frozen=True)
class ScoredImage:
    """One image's ground truth and what a detector found on it: boxes ``xyxy`` in pixels,
    class ids, and the detections' confidences (for ``map50_of``)."""

    size_wh: tuple[int, int]
    truth_xyxy: list[tuple[float, float, float, float]]
    truth_class: list[int]
    found_xyxy: list[tuple[float, float, float, float]]
    found_class: list[int]
    found_confidence: list[float]


def map50_of(images: list[ScoredImage], nc: int) -> float | None:
    """COCO mAP50 of detections already made (an edge agent's, at its own threshold) against
    the ground truth, with the same evaluator as ``evaluate``; None when no image has a true
    box. Class ids outside ``0..nc-1`` are ignored."""
    gt: dict[str, Any] = {
        "images": [],
        "annotations": [],
        "categories": [{"id": k, "name": str(k)} for k in range(nc)],
    }
    dets: list[dict[str, Any]] = []
    for image_id, image in enumerate(images, start=1):
        w, h = image.size_wh
        gt["images"].append({"id": image_id, "width": w, "height": h, "file_name": str(image_id)})
        for (x1, y1, x2, y2), cls in zip(image.truth_xyxy, image.truth_class, strict=True):
            if 0 <= cls < nc:
                gt["annotations"].append(
                    {
                        "id": len(gt["annotations"]) + 1,
                        "image_id": image_id,
                        "category_id": int(cls),
                        "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "area": (x2 - x1) * (y2 - y1),
                        "iscrowd": 0,
                    }
                )
        for (x1, y1, x2, y2), cls, score in zip(
            image.found_xyxy, image.found_class, image.found_confidence, strict=True
        ):
            if 0 <= cls < nc:
                dets.append(
                    {
                        "image_id": image_id,
                        "category_id": int(cls),
                        "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "score": float(score),
                    }
                )
    if not gt["annotations"]:
        return None
    return max(float(np.asarray(_coco_eval(gt, dets).stats)[1]), 0.0)


def _per_class_ap50(evaluator: Any, k: int) -> float:
    # precision: [iou thresholds, recall points, classes, area ranges, max dets]
    p = np.asarray(evaluator.eval["precision"])[0, :, k, 0, -1]
    p = p[p > -1]
    return float(p.mean()) if p.size else 0.0


def _per_class_recall50(evaluator: Any, k: int) -> float:
    r = float(np.asarray(evaluator.eval["recall"])[0, k, 0, -1])
    return max(r, 0.0)


def evaluate(
    model: Path | Detector,
    dataset: Path,
    *,
    split: str = "test",
    backend: BackendChoice = "auto",
    precision: Precision = "fp32",
    recall_conf: float = 0.25,
    progress: Callable[[int, int], None] | None = None,
) -> EvalReport:
    """COCO mAP50, mAP50-95, per-class AP50 and recall of ``model`` on ``dataset``'s ``split``.

    ``model`` is an ONNX path (loaded with ``backend``/``precision``, thresholds as Ultralytics'
    ``val``) or an already loaded ``Detector`` (used with its own thresholds). ``dataset`` is a
    YOLO dataset folder or its ``data.yaml``. ``progress(done, total)`` is called after each
    image.
    """
    started = time.perf_counter()
    files = split_files(Path(dataset), split)
    if isinstance(model, Path | str):
        detector = load_detector(
            Path(model),
            backend=backend,
            precision=precision,
            conf=EVAL_CONF,
            iou=EVAL_IOU,
            multi_label=True,
        )
    else:
        detector = model
    nc = len(files.names)
    model_names = detector.info.names
    # A model may know more classes than the dataset (a newer class list that extends it): its
    # extra classes' detections have no ground truth here and are left out.
    if len(model_names) < nc or any(model_names.get(k) != files.names[k] for k in range(nc)):
        raise InvalidInputError(
            f"the model's classes {list(model_names.values())} do not start with the dataset's "
            f"{list(files.names.values())}"
        )
    gt: dict[str, Any] = {
        "images": [],
        "annotations": [],
        "categories": [{"id": k, "name": files.names[k]} for k in range(nc)],
    }
    dets: list[dict[str, Any]] = []
    for image_id, (image_path, label_path) in enumerate(
        zip(files.images, files.labels, strict=True), start=1
    ):
        frame = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
        if frame is None:
            raise InvalidInputError(f"{image_path}: not a readable image")
        h, w = frame.shape[:2]
        gt["images"].append({"id": image_id, "width": w, "height": h, "file_name": image_path.name})
        for cls, box in _read_labels(label_path, (w, h), nc):
            gt["annotations"].append(
                {
                    "id": len(gt["annotations"]) + 1,
                    "image_id": image_id,
                    "category_id": cls,
                    "bbox": box,
                    "area": box[2] * box[3],
                    "iscrowd": 0,
                }
            )
        found = detector.detect(np.asarray(frame, np.uint8))
        for xyxy, score, cls in zip(
            found.xyxy.tolist(), found.confidence.tolist(), found.class_id.tolist(), strict=True
        ):
            if cls >= nc:
                continue
            x1, y1, x2, y2 = xyxy
            dets.append(
                {
                    "image_id": image_id,
                    "category_id": int(cls),
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": float(score),
                }
            )
        if progress is not None:
            progress(image_id, len(files.images))
    full = _coco_eval(gt, dets)
    operating = _coco_eval(gt, [d for d in dets if d["score"] >= recall_conf])
    counts = np.bincount([a["category_id"] for a in gt["annotations"]], minlength=nc)
    per_class = {
        files.names[k]: ClassMetrics(
            ap50=_per_class_ap50(full, k),
            recall=_per_class_recall50(operating, k),
            instances=int(counts[k]),
        )
        for k in range(nc)
        if counts[k] > 0
    }
    stats = np.asarray(full.stats)
    report = EvalReport(
        map50=max(float(stats[1]), 0.0),
        map50_95=max(float(stats[0]), 0.0),
        per_class=per_class,
        images=len(files.images),
        instances=int(counts.sum()),
        split=split,
        recall_conf=recall_conf,
        seconds=time.perf_counter() - started,
        model_sha256=detector.info.sha256,
        extra={k: v for k, v in detector.info.extra.items() if k in ("backend", "precision")},
        matches=match_coco(gt, dets, nc),
    )
    log.info(
        "evaluated %s on %s/%s: mAP50 %.4f mAP50-95 %.4f (%d images, %.1fs)",
        detector.info.version,
        dataset,
        split,
        report.map50,
        report.map50_95,
        report.images,
        report.seconds,
    )
    return report


def dataset_digest(dataset_dir: Path) -> str:
    """A sha256 that changes when any image, label or class name of a YOLO dataset changes.

    Covers ``images/`` and ``labels/`` (relative path and content of every file, in path order)
    and the class names of ``data.yaml``; not the YAML's absolute ``path``, so a copied dataset
    keeps its digest. The rule is ``datasets.manifest.digest_of``, which ``dataset export``
    writes into its manifest: an exported folder's manifest digest is this digest.
    """
    from visionloop.datasets.manifest import digest_of, is_data_file
    from visionloop.vision.detector import sha256_file

    root = Path(dataset_dir)
    if root.is_file():
        root = root.parent
    if not root.is_dir():
        raise InvalidInputError(f"{root}: not a dataset folder")
    yaml_path = next((root / n for n in ("data.yaml", "data.yml") if (root / n).is_file()), None)
    names = _read_yaml(yaml_path).get("names") if yaml_path is not None else None
    # Ultralytics writes labels/<split>.cache next to the labels: not data, left out.
    files = [
        (rel, sha256_file(p))
        for sub in ("images", "labels")
        if (root / sub).is_dir()
        for p in (root / sub).rglob("*")
        if p.is_file() and is_data_file(rel := p.relative_to(root).as_posix())
    ]
    if not files:
        raise InvalidInputError(f"{root}: no images/ or labels/ files to digest")
    return digest_of(names, files)
