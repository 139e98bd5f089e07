"""Labeling strategies: the priority a new review task gets (higher is reviewed first).

Set per server with ``VISIONLOOP_LABELING_STRATEGY``; the priority is computed once, when the task
is created, so that ``POST /labeling/next`` stays one index lookup. Changing the strategy affects
tasks created afterwards.

- ``uncertainty`` (default): ``P = U``, the frame's uncertainty. A detection of confidence ``c``
  has uncertainty ``u(c) = 1 - |2c - 1|`` (1 at c = 0.5, 0 at c = 0 or 1); ``U`` is the largest
  ``u`` over the frame's detections, 0 for a frame without any.
- ``random``: ``P`` uniform in [0, 1).
- ``hybrid``: ``P = U - 0.5·D + 0.25·B``.
  ``D`` (near-duplicate penalty) = ``max(0, 1 - d / 12)``, where ``d`` is the smallest Hamming
  distance between the image's 64-bit dHash and those of the same device's 256 most recent tasks
  (queued or already labeled): an identical image gives 1, one 12 or more bits away 0.
  ``B`` (class balance) = ``1 - n_c / n_max``, where ``c`` is the class of the most uncertain
  detection, ``n_c`` the tasks of that class among the 1,000 most recent tasks and ``n_max`` the
  count of the most common class there: the rarest classes get up to +0.25. 0 for a frame
  without detections or when there is no history yet.

Whatever the strategy, ``manual`` tasks go first (``P = 1000 - t/10¹⁰``, ``t`` the creation time
in Unix seconds, so older manual tasks first), and ``audit`` tasks keep a fixed share of the
leases: each lease takes, with probability ``VISIONLOOP_LABELING_AUDIT_SHARE`` (default 0.1), the
oldest open audit task instead of the top of the queue (see ``store.labeling.lease_next``).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime

from visionloop.config import LabelingStrategy
from visionloop.vision.dhash import hamming

MANUAL_PRIORITY = 1000.0
DUPLICATE_WEIGHT = 0.5
DUPLICATE_BITS = 12
BALANCE_WEIGHT = 0.25
DUPLICATE_WINDOW = 256
BALANCE_WINDOW = 1000


def detection_uncertainty(confidence: float) -> float:
    """``1 - |2c - 1|``: 1 for a coin-flip confidence of 0.5, 0 for a sure 0 or 1."""
    return 1.0 - abs(2.0 * confidence - 1.0)


def frame_uncertainty(detections: Sequence[tuple[str, float]]) -> tuple[float, str | None]:
    """``U`` of a frame from its ``(class_name, confidence)`` detections, and the class of the most
    uncertain one (None without detections)."""
    best, top = 0.0, None
    for name, confidence in detections:
        u = detection_uncertainty(confidence)
        if top is None or u > best:
            best, top = u, name
    return best, top


def duplicate_penalty(dhash: int | None, recent: Iterable[int]) -> float:
    """``D``: 1 for an image identical to a recent one, falling to 0 at ``DUPLICATE_BITS``."""
    if dhash is None:
        return 0.0
    nearest = min((hamming(dhash, other) for other in recent), default=None)
    if nearest is None:
        return 0.0
    return max(0.0, 1.0 - nearest / DUPLICATE_BITS)


def class_balance(top_class: str | None, recent_classes: Iterable[str]) -> float:
    """``B``: how rare ``top_class`` is among recent tasks' classes (0 = the most common)."""
    if top_class is None:
        return 0.0
    counts = Counter(recent_classes)
    if not counts:
        return 0.0
    return 1.0 - counts.get(top_class, 0) / max(counts.values())


def manual_priority(created_at: datetime) -> float:
    """Above every automatic priority; older manual tasks first."""
    return MANUAL_PRIORITY - created_at.timestamp() / 1e10


def automatic_priority(
    strategy: LabelingStrategy,
    *,
    uncertainty: float,
    duplicate: float = 0.0,
    balance: float = 0.0,
    rng: random.Random | None = None,
) -> float:
    """The priority of an automatic (uncertain, audit, drift) task under ``strategy``."""
    if strategy == "random":
        return (rng or random).random()
    if strategy == "hybrid":
        return uncertainty - DUPLICATE_WEIGHT * duplicate + BALANCE_WEIGHT * balance
    return uncertainty
