"""Per-image matches at IoU 0.5, so that COCO mAP50 can be recomputed on any multiset of images
(the promotion gate's bootstrap resamples images, not detections).

COCO matching is per image and per class: each detection, highest score first, takes the
unmatched true box of its class with the highest IoU of at least 0.5 (a true positive) or none
(a false positive). So a detection's verdict depends only on its own image, and the mAP50 of a
resampled set is the COCO accumulation over the resampled images' detections, each weighted by
how often its image was drawn. ``map50`` is that accumulation (101 recall points, precision made
monotone from the right, classes without true boxes left out) and equals faster-coco-eval's
``stats[1]`` on the same detections (``tests/training/test_matches.py``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

IOU = 0.5
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
"""COCO's recall thresholds (0, 0.01, …, 1)."""
MAX_DETS = 300
"""Detections kept per image and class (COCO's last ``maxDets``, as ``evaluate`` sets it)."""


@dataclass(frozen=True)
class MatchTable:
    """One model's detections on one set of images, matched at IoU 0.5.

    ``truth``: ``[images, classes]`` true boxes per image and class. Detections as parallel
    arrays: ``image`` (row of ``truth``), ``class_id``, ``score``, ``tp`` (matched a true box).
    ``digest``: sha256 of the detections (rounded boxes, classes, scores) per image, so that two
    models' identical predictions are recognised.
    """

    truth: npt.NDArray[np.int64]
    image: npt.NDArray[np.int64]
    class_id: npt.NDArray[np.int64]
    score: npt.NDArray[np.float64]
    tp: npt.NDArray[np.bool_]
    digest: str

    def __post_init__(self) -> None:
        n = self.image.shape[0]
        if self.truth.ndim != 2:
            raise ValueError("truth must be [images, classes]")
        if not (self.class_id.shape[0] == self.score.shape[0] == self.tp.shape[0] == n):
            raise ValueError("detection arrays must have the same length")
        if n and (self.image.min() < 0 or self.image.max() >= self.truth.shape[0]):
            raise ValueError("a detection's image is out of range")

    @property
    def images(self) -> int:
        return int(self.truth.shape[0])

    def boxes_per_class(self) -> npt.NDArray[np.int64]:
        """True boxes per class over all images."""
        return np.asarray(self.truth.sum(axis=0), np.int64)


def _iou_xywh(d: npt.NDArray[np.float64], g: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """IoU of ``[D, 4]`` and ``[G, 4]`` boxes ``x, y, w, h`` (COCO's, no +1): ``[D, G]``."""
    dx2, dy2 = d[:, 0] + d[:, 2], d[:, 1] + d[:, 3]
    gx2, gy2 = g[:, 0] + g[:, 2], g[:, 1] + g[:, 3]
    iw = np.clip(
        np.minimum(dx2[:, None], gx2[None]) - np.maximum(d[:, 0, None], g[None, :, 0]), 0, None
    )
    ih = np.clip(
        np.minimum(dy2[:, None], gy2[None]) - np.maximum(d[:, 1, None], g[None, :, 1]), 0, None
    )
    inter = iw * ih
    union = (d[:, 2] * d[:, 3])[:, None] + (g[:, 2] * g[:, 3])[None] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def match_detections(
    truth: Sequence[Sequence[tuple[int, Sequence[float]]]],
    found: Sequence[Sequence[tuple[int, Sequence[float], float]]],
    nc: int,
) -> MatchTable:
    """Match each image's detections to its true boxes as COCO does at IoU 0.5.

    ``truth[i]``: image ``i``'s true boxes ``(class_id, [x, y, w, h])`` in pixels; ``found[i]``:
    its detections ``(class_id, [x, y, w, h], score)``. Classes outside ``0..nc-1`` are ignored.
    """
    if len(truth) != len(found):
        raise ValueError("truth and found must have one entry per image")
    counts = np.zeros((len(truth), nc), np.int64)
    image_ids: list[int] = []
    class_ids: list[int] = []
    scores: list[float] = []
    tps: list[bool] = []
    digest = hashlib.sha256()
    for i, (gts, dts) in enumerate(zip(truth, found, strict=True)):
        digest.update(f"|{i}".encode())
        for cls, box, score in sorted(dts, key=lambda d: (d[0], -d[2], *d[1])):
            digest.update(f";{cls},{score:.4f},{','.join(f'{v:.1f}' for v in box)}".encode())
        for k in range(nc):
            g = np.asarray([b for c, b in gts if c == k], np.float64).reshape(-1, 4)
            counts[i, k] = len(g)
            mine = [(b, s) for c, b, s in dts if c == k]
            if not mine:
                continue
            # COCO: highest score first (stable), at most MAX_DETS per image and class.
            order = np.argsort(-np.asarray([s for _, s in mine]), kind="mergesort")[:MAX_DETS]
            d = np.asarray([mine[j][0] for j in order], np.float64).reshape(-1, 4)
            ious = _iou_xywh(d, g) if len(g) else np.zeros((len(d), 0))
            taken = np.zeros(len(g), bool)
            for row, j in enumerate(order):
                best, best_iou = -1, IOU
                for col in range(len(g)):
                    if taken[col] or ious[row, col] < best_iou:
                        continue
                    best, best_iou = col, ious[row, col]
                if best >= 0:
                    taken[best] = True
                image_ids.append(i)
                class_ids.append(k)
                scores.append(float(mine[j][1]))
                tps.append(best >= 0)
    return MatchTable(
        truth=counts,
        image=np.asarray(image_ids, np.int64),
        class_id=np.asarray(class_ids, np.int64),
        score=np.asarray(scores, np.float64),
        tp=np.asarray(tps, bool),
        digest=digest.hexdigest(),
    )


def match_coco(gt: Mapping[str, Any], dets: Sequence[Mapping[str, Any]], nc: int) -> MatchTable:
    """``match_detections`` of a COCO ground-truth dict (``images``, ``annotations``) and COCO
    result rows (``image_id``, ``category_id``, ``bbox`` xywh, ``score``): images in ``gt``'s
    order."""
    row = {int(image["id"]): i for i, image in enumerate(gt["images"])}
    truth: list[list[tuple[int, Sequence[float]]]] = [[] for _ in row]
    found: list[list[tuple[int, Sequence[float], float]]] = [[] for _ in row]
    for a in gt["annotations"]:
        truth[row[int(a["image_id"])]].append((int(a["category_id"]), a["bbox"]))
    for d in dets:
        found[row[int(d["image_id"])]].append((int(d["category_id"]), d["bbox"], float(d["score"])))
    return match_detections(truth, found, nc)


@dataclass(frozen=True)
class ClassCurve:
    """One class's precision-recall curve in a form any image weighting can evaluate quickly.

    COCO accumulates a class's detections by score (descending, stable over image order). Only
    the points at true positives matter: a run of false positives lowers precision without
    raising recall, so after the curve is made monotone from the right (and read at the first
    point reaching each recall threshold) its points never decide a value; they only add to the
    false positives of the true positives after them. So with ``T`` true positives in that
    order, ``tp[i, j]`` counts image ``i``'s true positives up to and including the ``j``-th,
    ``fp[i, j]`` its false positives ranked before it: weights ``w`` give the curve's counts at
    each true positive as ``w @ tp`` and ``w @ fp``.
    """

    tp: npt.NDArray[np.float64]
    fp: npt.NDArray[np.float64]


def class_curves(table: MatchTable) -> list[ClassCurve]:
    """Per class, its ``ClassCurve`` (``[images, T]`` count matrices)."""
    curves = []
    n = table.images
    for k in range(table.truth.shape[1]):
        sel = np.flatnonzero(table.class_id == k)  # already in image order
        sel = sel[np.argsort(-table.score[sel], kind="mergesort")]
        tp_flag, image = table.tp[sel], table.image[sel]
        rank = np.arange(sel.size)
        tp_rank = rank[tp_flag]
        tp_counts = np.zeros((n, tp_rank.size))
        fp_counts = np.zeros((n, tp_rank.size))
        for i in np.unique(image):
            mine = image == i
            tp_counts[i] = np.searchsorted(rank[mine & tp_flag], tp_rank, side="right")
            fp_counts[i] = np.searchsorted(rank[mine & ~tp_flag], tp_rank, side="left")
        curves.append(ClassCurve(tp=tp_counts, fp=fp_counts))
    return curves


def map50_weighted(
    table: MatchTable,
    weights: npt.NDArray[np.float64],
    curves: list[ClassCurve] | None = None,
) -> npt.NDArray[np.float64]:
    """COCO mAP50 of ``table`` with images weighted: ``weights`` ``[B, images]`` (how often each
    image is drawn in each of B resamples; all ones is the set itself). Returns ``[B]``; NaN
    where no drawn image has a true box. ``curves``: ``class_curves(table)``, computed once."""
    curves = curves if curves is not None else class_curves(table)
    w = np.atleast_2d(np.asarray(weights, np.float64))
    b = w.shape[0]
    npos = w @ table.truth.astype(np.float64)  # [B, classes]
    total = np.zeros(b)
    judged = np.zeros(b)
    for k, curve in enumerate(curves):
        has = npos[:, k] > 0
        if not has.any():
            continue
        judged += has
        t = curve.tp.shape[1]
        if t == 0:
            continue  # true boxes and no true positive: AP 0
        tp = w @ curve.tp  # [B, T]
        fp = w @ curve.fp
        rc = tp / np.where(has, npos[:, k], 1.0)[:, None]
        pr = tp / (tp + fp + np.spacing(1))
        pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]  # monotone from the right
        # Precision at the first point whose recall reaches each threshold, 0 past the last: one
        # searchsorted over all rows, each offset by 2 (recall is within 0..1).
        offset = 2.0 * np.arange(b)[:, None]
        idx = np.searchsorted((rc + offset).ravel(), (RECALL_POINTS[None] + offset).ravel())
        idx = idx.reshape(b, -1) - t * np.arange(b)[:, None]
        q = np.where(idx < t, np.take_along_axis(pr, np.minimum(idx, t - 1), axis=1), 0.0)
        total += np.where(has, q.mean(axis=1), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(judged > 0, total / np.where(judged > 0, judged, 1.0), np.nan)


def map50(table: MatchTable) -> float | None:
    """COCO mAP50 of the whole set (None when it has no true box)."""
    value = float(map50_weighted(table, np.ones((1, table.images)))[0])
    return None if np.isnan(value) else value
