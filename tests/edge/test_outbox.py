"""Outbox: one-transaction commits, exact acks, dead letters, the size cap, crash safety."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from support.edge import fail_next_commit
from visionloop.edge.outbox import Outbox
from visionloop.types import FrameRecord, FrameStats


def record() -> FrameRecord:
    return FrameRecord(
        id=uuid.uuid4(),
        captured_at=datetime(2026, 11, 26, 10, 0, tzinfo=UTC),
        model_version="1",
        width=640,
        height=480,
        stats=FrameStats(brightness=0.5, contrast=0.2, sharpness=100.0),
        detections=[],
        sample_reason=None,
    )


def assert_backlog_matches_the_file(box: Outbox) -> None:
    """The in-memory backlog counts agree with the database."""
    with sqlite3.connect(box.path) as raw:
        records = raw.execute("SELECT COUNT(*) FROM records").fetchone()[0]
        ready = raw.execute("SELECT COUNT(*) FROM images WHERE ready = 1").fetchone()[0]
        images = raw.execute("SELECT COUNT(*) FROM images").fetchone()[0]
        size = raw.execute(
            "SELECT (SELECT COALESCE(SUM(length(body)), 0) FROM records)"
            " + (SELECT COALESCE(SUM(length(jpeg)), 0) FROM images)"
        ).fetchone()[0]
    backlog = box.backlog()
    assert (backlog.records, backlog.images, backlog.bytes) == (records, ready, size)
    assert backlog.images_total == images


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    box = Outbox(tmp_path / "outbox.db")
    yield box  # type: ignore[misc]
    box.close()


def test_put_peek_ack_deletes_only_acknowledged(outbox: Outbox) -> None:
    recs = [record() for _ in range(5)]
    for r in recs:
        outbox.put(r)
    pending = outbox.peek()
    assert [p.id for p in pending] == [str(r.id) for r in recs]
    assert FrameRecord.model_validate_json(pending[0].body) == recs[0]
    # Acknowledge two of them (and one unknown id): exactly those two go.
    assert outbox.ack([str(recs[1].id), str(recs[3].id), str(uuid.uuid4())]) == 2
    assert [p.id for p in outbox.peek()] == [str(recs[i].id) for i in (0, 2, 4)]
    assert outbox.backlog().records == 3
    assert outbox.counters()["acked"] == 2


def test_peek_limits_count_and_bytes(outbox: Outbox) -> None:
    for _ in range(250):
        outbox.put(record())
    assert len(outbox.peek()) == 200
    assert len(outbox.peek(limit=10)) == 10
    one = len(outbox.peek(limit=1)[0].body)
    assert len(outbox.peek(max_bytes=one * 3)) == 3
    # A single record larger than the byte budget still comes out alone.
    assert len(outbox.peek(max_bytes=1)) == 1


def test_image_is_ready_only_after_its_record_is_acknowledged(outbox: Outbox) -> None:
    a, b = record(), record()
    outbox.put(a, b"jpeg-a")
    outbox.put(b)
    assert outbox.peek_images() == []
    assert outbox.backlog().records == 2 and outbox.backlog().images == 0
    outbox.ack([str(a.id), str(b.id)])
    images = outbox.peek_images()
    assert [(i.record_id, i.jpeg) for i in images] == [(str(a.id), b"jpeg-a")]
    assert not outbox.backlog().empty
    assert_backlog_matches_the_file(outbox)
    outbox.ack_image(str(a.id))
    assert outbox.backlog().empty
    assert_backlog_matches_the_file(outbox)
    counters = outbox.counters()
    assert counters["images_committed"] == 1 and counters["images_uploaded"] == 1


def test_backlog_counts_every_image_held_not_only_the_ready_ones(outbox: Outbox) -> None:
    recs = [record() for _ in range(4)]
    for r in recs:
        outbox.put(r, b"jpeg")
    backlog = outbox.backlog()
    # None is ready (no record acknowledged yet), but four images are held: "0 images left"
    # would be wrong.
    assert (backlog.records, backlog.images, backlog.images_total) == (4, 0, 4)
    outbox.ack([str(recs[0].id)])
    assert (outbox.backlog().images, outbox.backlog().images_total) == (1, 4)
    outbox.ack_image(str(recs[0].id))
    outbox.dead_letter([str(recs[1].id)], reason="bad", status=422)
    assert outbox.backlog().images_total == 2
    assert_backlog_matches_the_file(outbox)


def test_peek_leaves_out_excluded_ids_and_find_returns_the_waiting(outbox: Outbox) -> None:
    recs = [record() for _ in range(6)]
    for r in recs:
        outbox.put(r)
    ids = [str(r.id) for r in recs]
    held = {ids[0], ids[2]}
    assert [p.id for p in outbox.peek(limit=3, exclude=held)] == [ids[1], ids[3], ids[4]]
    outbox.ack([ids[2]])
    assert [p.id for p in outbox.find([ids[2], ids[0], str(uuid.uuid4())])] == [ids[0]]


def test_a_failed_commit_rolls_back_and_the_next_write_works(outbox: Outbox) -> None:
    kept = record()
    outbox.put(kept, b"img")
    fail_next_commit(outbox)
    lost = record()
    with pytest.raises(sqlite3.DatabaseError):
        outbox.put(lost, b"img")
    # The failed transaction was rolled back: the next writes and reads work, and neither the
    # file nor the in-memory counts hold the record whose commit failed.
    after = record()
    outbox.put(after)
    assert [p.id for p in outbox.peek()] == [str(kept.id), str(after.id)]
    assert outbox.ack([str(kept.id)]) == 1
    assert outbox.counters()["committed"] == 2
    assert_backlog_matches_the_file(outbox)


def test_dead_letter_moves_record_and_image_aside_and_counts(outbox: Outbox) -> None:
    a, b = record(), record()
    outbox.put(a, b"img")
    outbox.put(b)
    assert outbox.dead_letter([str(a.id)], reason="frames.0.width: bad", status=422) == 1
    assert [p.id for p in outbox.peek()] == [str(b.id)]
    letters = outbox.dead_letters()
    assert [(d.record_id, d.kind, d.status) for d in letters] == [(str(a.id), "record", 422)]
    assert "width" in letters[0].reason
    assert outbox.counters()["dead_letters"] == 1
    # The image went with its record: nothing will ever upload it.
    outbox.ack([str(b.id)])
    assert outbox.peek_images() == []
    # Images can be refused too, once their record is on the server.
    c = record()
    outbox.put(c, b"not-a-jpeg")
    outbox.ack([str(c.id)])
    assert outbox.backlog().images == 1
    outbox.dead_letter_image(str(c.id), reason="not an image", status=415)
    assert outbox.backlog().empty
    assert_backlog_matches_the_file(outbox)
    assert outbox.counters()["dead_letters"] == 2


def test_size_cap_evicts_images_first_then_oldest_records(tmp_path: Path) -> None:
    body_len = len(record().model_dump_json())
    cap = body_len * 10 + 3000
    box = Outbox(tmp_path / "o.db", max_bytes=cap)
    first = [record() for _ in range(3)]
    for r in first:
        box.put(r, b"x" * 1000)
    assert box.counters()["evicted_images"] == 0
    # Fill with records until the images must go, oldest image first.
    rest = [record() for _ in range(9)]
    for r in rest:
        box.put(r)
    counters = box.counters()
    assert counters["evicted_images"] >= 1
    assert counters["evicted_records"] == 0
    assert box.backlog().bytes <= cap
    # Past that, the oldest records go, and every eviction is counted.
    more = [record() for _ in range(20)]
    for r in more:
        box.put(r)
    counters = box.counters()
    assert counters["evicted_images"] == 3
    assert counters["evicted_records"] > 0
    ids = [p.id for p in box.peek(limit=1000)]
    assert ids[-1] == str(more[-1].id)
    assert str(first[0].id) not in ids
    assert len(ids) + counters["evicted_records"] == 32
    assert box.backlog().bytes <= cap
    assert_backlog_matches_the_file(box)
    box.close()


def test_eviction_of_a_ready_image_leaves_the_backlog_right(tmp_path: Path) -> None:
    body_len = len(record().model_dump_json())
    box = Outbox(tmp_path / "o.db", max_bytes=body_len + 1500)
    first = record()
    box.put(first, b"y" * 1000)
    box.ack([str(first.id)])
    assert box.backlog().images == 1
    box.put(record(), b"z" * 600)  # over the cap: the oldest image (ready) goes
    assert box.backlog().images == 0
    assert box.counters()["evicted_images"] == 1
    assert_backlog_matches_the_file(box)
    box.close()


def test_reopen_keeps_records_counters_and_bytes(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    box = Outbox(path)
    recs = [record() for _ in range(4)]
    for r in recs:
        box.put(r, b"abc")
    box.ack([str(recs[0].id)])
    before = (box.backlog(), box.counters())
    box.close()
    again = Outbox(path)
    assert (again.backlog(), again.counters()) == before
    assert again.has_work.is_set()
    assert [i.record_id for i in again.peek_images()] == [str(recs[0].id)]
    again.close()


def test_concurrent_writer_and_uploader_lose_nothing(outbox: Outbox) -> None:
    n = 600
    written: list[str] = []
    acked: list[str] = []
    done = threading.Event()

    def writer() -> None:
        for i in range(n):
            r = record()
            outbox.put(r, b"j" if i % 10 == 0 else None)
            written.append(str(r.id))
        done.set()

    def uploader() -> None:
        while not (done.is_set() and outbox.backlog().empty):
            batch = outbox.peek(limit=37)
            outbox.ack([p.id for p in batch])
            acked.extend(p.id for p in batch)
            for img in outbox.peek_images():
                outbox.ack_image(img.record_id)

    threads = [threading.Thread(target=writer), threading.Thread(target=uploader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(acked) == sorted(written)
    assert_backlog_matches_the_file(outbox)
    assert len(set(acked)) == n
    assert outbox.counters()["images_uploaded"] == n // 10


_CHILD = """
import sys, uuid
from pathlib import Path
from visionloop.edge.outbox import Outbox
box = Outbox(Path(sys.argv[1]))
i = 0
while True:
    rid = str(uuid.uuid4())
    body = '{"id": "%s", "pad": "%s"}' % (rid, "p" * 2000)
    box.put_json(rid, body, b"J" * 50_000 if i % 3 == 0 else None)
    print(rid, flush=True)
    if i % 5 == 0:
        box.ack([rid])
    i += 1
"""


def test_sigkill_mid_write_keeps_every_committed_record(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    committed: list[str] = []
    with subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path)], stdout=subprocess.PIPE, text=True
    ) as child:
        assert child.stdout is not None
        for line in child.stdout:
            committed.append(line.strip())
            if len(committed) >= 300:
                break
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        committed.extend(line.strip() for line in child.stdout if line.strip())
    assert child.returncode == -signal.SIGKILL

    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    # A record and its image were one transaction: never one without the other.
    orphans = raw.execute(
        "SELECT COUNT(*) FROM records r LEFT JOIN images i ON i.record_id = r.id"
        " WHERE r.has_image = 1 AND i.record_id IS NULL"
    ).fetchone()[0]
    assert orphans == 0
    waiting_images = raw.execute(
        "SELECT COUNT(*) FROM images i LEFT JOIN records r ON r.id = i.record_id"
        " WHERE r.id IS NULL AND i.ready = 0"
    ).fetchone()[0]
    assert waiting_images == 0
    raw.close()

    box = Outbox(path)
    stored = {p.id for p in box.peek(limit=10_000, max_bytes=1 << 40)}
    acked_count = box.counters()["acked"]
    # Every id the child saw committed is either still queued or was acknowledged.
    acked_ids = {rid for i, rid in enumerate(committed) if i % 5 == 0}
    assert set(committed) - acked_ids <= stored
    assert len(stored) + acked_count == box.counters()["committed"]
    for p in box.peek(limit=10):
        assert json.loads(p.body)["id"] == p.id
    box.close()
