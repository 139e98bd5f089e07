"""The paired bootstrap over images of a candidate's mAP50 minus production's, on the same set.

Both models were evaluated on the same images; each resample draws ``n`` of the ``n`` images with
replacement (seeded) and recomputes both models' COCO mAP50 on the drawn images
(``matches.map50_weighted``), so the two scores share every draw (paired). The percentile interval
of the differences is the comparison's uncertainty; resamples in which no drawn image has a true
box are dropped (rare: only sets with very few boxed images).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from visionloop.training.matches import MatchTable, class_curves, map50_weighted

RESAMPLES = 2000
SEED = 0
CONFIDENCE = 0.95
_CHUNK = 250  # resamples per vectorised step: bounds memory at 250 x detections floats


@dataclass(frozen=True)
class Interval:
    """Candidate minus production mAP50: the point difference on the set itself and the
    ``confidence`` percentile interval over ``resamples`` resamples of ``images`` images."""

    difference: float
    low: float
    high: float
    confidence: float
    resamples: int
    images: int
    seed: int
    seconds: float

    def to_dict(self) -> dict[str, float | int]:
        return {
            "difference": self.difference,
            "low": self.low,
            "high": self.high,
            "confidence": self.confidence,
            "resamples": self.resamples,
            "images": self.images,
            "seed": self.seed,
            "seconds": round(self.seconds, 3),
        }


def paired_bootstrap(
    candidate: MatchTable,
    production: MatchTable,
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    confidence: float = CONFIDENCE,
) -> Interval:
    """The interval of ``candidate`` minus ``production`` mAP50 (both on the same images, in
    the same order, with the same true boxes). Raises ValueError when the sets differ or no
    image has a true box."""
    if candidate.truth.shape != production.truth.shape or not np.array_equal(
        candidate.truth, production.truth
    ):
        raise ValueError("candidate and production were not evaluated on the same images")
    n = candidate.images
    if n == 0 or candidate.truth.sum() == 0:
        raise ValueError("no true box in the set: nothing to compare")
    started = time.perf_counter()
    ones = np.ones((1, n))
    c_curves, p_curves = class_curves(candidate), class_curves(production)
    point = float(
        map50_weighted(candidate, ones, c_curves)[0] - map50_weighted(production, ones, p_curves)[0]
    )
    rng = np.random.default_rng(seed)
    diffs: list[np.ndarray] = []
    for start in range(0, resamples, _CHUNK):
        b = min(_CHUNK, resamples - start)
        draws = rng.integers(0, n, size=(b, n))
        weights = np.zeros((b, n))
        np.add.at(weights, (np.repeat(np.arange(b), n), draws.ravel()), 1.0)
        diffs.append(
            map50_weighted(candidate, weights, c_curves)
            - map50_weighted(production, weights, p_curves)
        )
    d = np.concatenate(diffs)
    d = d[~np.isnan(d)]
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(d, [tail, 1.0 - tail]) if d.size else (point, point)
    return Interval(
        difference=point,
        low=float(low),
        high=float(high),
        confidence=confidence,
        resamples=int(d.size),
        images=n,
        seed=seed,
        seconds=time.perf_counter() - started,
    )
