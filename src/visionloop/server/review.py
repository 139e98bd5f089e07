"""What a review says about the model: predictions matched to a reviewer's labels, and the
Wilson score interval for a rate estimated from a sample.

Matching: a prediction and a label match when they have the same class and IoU >= 0.5. Greedy by
confidence: predictions are taken from the most confident down, each matching the unmatched label
of its class with the highest IoU. Matched pairs are true positives; unmatched predictions false
positives; unmatched labels false negatives (misses).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

IOU_MATCH = 0.5
Z_95 = 1.959963984540054  # the 97.5th percentile of the standard normal

Box = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class Prediction:
    class_id: int
    confidence: float
    xyxyn: Box


@dataclass(frozen=True, slots=True)
class Label:
    class_id: int
    xyxyn: Box


@dataclass(frozen=True, slots=True)
class MatchCounts:
    tp: int
    fp: int
    fn: int


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two ``xyxy`` boxes (0 when either is empty)."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match(
    predictions: Sequence[Prediction], labels: Sequence[Label], *, threshold: float = IOU_MATCH
) -> MatchCounts:
    """True positives, false positives and misses of ``predictions`` against ``labels``."""
    unmatched = list(range(len(labels)))
    tp = 0
    for pred in sorted(predictions, key=lambda p: -p.confidence):
        best, best_iou = -1, threshold
        for j in unmatched:
            label = labels[j]
            if label.class_id != pred.class_id:
                continue
            overlap = iou(pred.xyxyn, label.xyxyn)
            if overlap >= best_iou:
                best, best_iou = j, overlap
        if best >= 0:
            unmatched.remove(best)
            tp += 1
    return MatchCounts(tp=tp, fp=len(predictions) - tp, fn=len(unmatched))


def wilson_interval(successes: int, trials: int, *, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``successes / trials`` (95% for the default z).

    With p = k/n: centre = (p + z²/2n) / (1 + z²/n), half-width =
    z / (1 + z²/n) · sqrt(p(1-p)/n + z²/4n²); the interval is centre ± half-width, clipped to
    [0, 1]. Unlike p ± z·sqrt(p(1-p)/n) it stays sensible when k is 0 or n is small. ``trials``
    0 gives (0, 1): nothing is known.
    """
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes}/{trials}")
    if trials == 0:
        return 0.0, 1.0
    n = float(trials)
    p = successes / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high
