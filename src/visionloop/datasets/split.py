"""The stable split of a frame: a pure function of its id, so a frame never moves between the
train, val and test splits of successive exports, and ``test`` stays a held-out slice.

The first 8 bytes of ``sha256(frame id bytes)`` read as a fraction of 2**64 fall into train
(``< 0.8``), val (``< 0.9``) or test. An importer that must keep a source's own split picks the
frame id so that this function gives that split (``id_in_split``): the split is still read from
the id alone, by every export, with nothing stored beside it.
"""

from __future__ import annotations

import hashlib
import uuid

from visionloop.datasets.labels import SPLITS, Split

TRAIN_FRACTION = 0.8
VAL_FRACTION = 0.1  # test is the rest: 0.1
_MAX_TRIES = 10_000  # (0.9 ** 10_000): never reached


def split_of(frame_id: uuid.UUID) -> Split:
    """``train``, ``val`` or ``test`` for a frame id (80/10/10 over many ids)."""
    u = int.from_bytes(hashlib.sha256(frame_id.bytes).digest()[:8], "big") / 2**64
    if u < TRAIN_FRACTION:
        return "train"
    if u < TRAIN_FRACTION + VAL_FRACTION:
        return "val"
    return "test"


def _candidate(namespace: uuid.UUID, key: str, attempt: int) -> uuid.UUID:
    return uuid.uuid5(namespace, key if attempt == 0 else f"{key}#{attempt}")


def id_in_split(namespace: uuid.UUID, key: str, split: Split | None) -> uuid.UUID:
    """A deterministic frame id for ``key`` (uuid5 in ``namespace``) whose ``split_of`` is
    ``split``: the first of ``key``, ``key#1``, ``key#2``… that lands there. ``None`` takes the
    first, whatever its split. Same arguments, same id."""
    for attempt in range(_MAX_TRIES):
        candidate = _candidate(namespace, key, attempt)
        if split is None or split_of(candidate) == split:
            return candidate
    raise AssertionError("no id in split after 10,000 tries")  # pragma: no cover


def possible_ids(namespace: uuid.UUID, key: str) -> list[uuid.UUID]:
    """Every id ``id_in_split`` can give ``key`` (one per split, fewer when they coincide): an
    importer looks for all of them to find a frame stored earlier with or without a kept split."""
    ids = [id_in_split(namespace, key, split) for split in SPLITS]
    return list(dict.fromkeys(ids))
