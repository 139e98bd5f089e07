"""The stable split: a pure function of the frame id, 80/10/10, and ids picked into a split."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from visionloop.datasets.split import id_in_split, possible_ids, split_of

NS = uuid.UUID("00000000-0000-4000-8000-000000000001")


def test_split_is_a_function_of_the_id_with_80_10_10_shares() -> None:
    ids = [uuid.UUID(int=k * 7919 + 1) for k in range(20_000)]
    splits = [split_of(i) for i in ids]
    assert splits == [split_of(i) for i in ids]  # same id, same split, every time
    shares = {k: v / len(ids) for k, v in Counter(splits).items()}
    assert shares["train"] == pytest.approx(0.8, abs=0.01)
    assert shares["val"] == pytest.approx(0.1, abs=0.01)
    assert shares["test"] == pytest.approx(0.1, abs=0.01)


def test_known_ids_keep_their_split_forever() -> None:
    # Pinned: changing the function would move frames between splits of later exports.
    pinned = {uuid.UUID(int=k): split_of(uuid.UUID(int=k)) for k in (0, 11, 23, 24, 28)}
    assert list(pinned.values()) == ["train", "test", "test", "val", "val"]


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_an_id_can_be_picked_into_a_split_deterministically(split: str) -> None:
    for k in range(50):
        picked = id_in_split(NS, f"image-{k}", split)  # type: ignore[arg-type]
        assert split_of(picked) == split
        assert picked == id_in_split(NS, f"image-{k}", split)  # type: ignore[arg-type]
        assert picked in possible_ids(NS, f"image-{k}")


def test_no_split_wanted_gives_the_plain_uuid5() -> None:
    assert id_in_split(NS, "k", None) == uuid.uuid5(NS, "k")
    assert uuid.uuid5(NS, "k") in possible_ids(NS, "k")
    assert 1 <= len(possible_ids(NS, "k")) <= 3
