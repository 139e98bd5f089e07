"""The edge agent's durable outbox: frame records and sampled images in SQLite until acknowledged.

Durability: the database runs in WAL mode with ``synchronous=NORMAL`` by default. A transaction
that returned from commit survives a crash of the process (SIGKILL, OOM kill, a segfault in a
native library): its pages are in the WAL file, which the OS keeps. What NORMAL does not survive
is a power loss or a kernel panic, which can lose the last transactions (never corrupt the file).
``synchronous="FULL"`` closes that gap with an fsync per commit, at a cost per frame that matters
at 150 FPS on a slow disk; choose it where the camera's power is not protected.

Life of a frame: :meth:`Outbox.put` commits the record and (for sampled frames) its JPEG in one
transaction. The uploader sends :meth:`Outbox.peek` batches to the server and :meth:`Outbox.ack`
deletes exactly the acknowledged records, which makes their images ready; the uploader then sends
the ready images (:meth:`Outbox.peek_images`) and :meth:`Outbox.ack_image` deletes each. A record
or image the server rejects by name goes to the dead-letter table (:meth:`Outbox.dead_letter`),
kept and counted, never retried. A size cap evicts images first, then the oldest records.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from visionloop.edge.identity import OutboxOwner
from visionloop.errors import VisionloopError
from visionloop.types import FrameRecord

DEFAULT_MAX_BYTES = 1 << 30

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,
    has_image INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
    record_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    jpeg BLOB NOT NULL,
    ready INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS images_ready_seq ON images (ready, seq);
CREATE INDEX IF NOT EXISTS images_seq ON images (seq);
CREATE TABLE IF NOT EXISTS dead_letters (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('record', 'image')),
    body TEXT,
    jpeg BLOB,
    status INTEGER,
    reason TEXT NOT NULL,
    moved_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS owner (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    server TEXT NOT NULL,
    fingerprint TEXT NOT NULL
);
"""

COUNTER_NAMES = (
    "committed",
    "acked",
    "images_committed",
    "images_uploaded",
    "dead_letters",
    "evicted_records",
    "evicted_images",
)


@dataclass(frozen=True, slots=True)
class PendingRecord:
    """A frame record waiting for upload: ``body`` is its JSON, ready to splice into a batch."""

    seq: int
    id: str
    body: str


@dataclass(frozen=True, slots=True)
class PendingImage:
    """A sampled frame's JPEG whose record the server has acknowledged."""

    record_id: str
    jpeg: bytes


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Something the server rejected by name: kept for a person to look at, never resent."""

    record_id: str
    kind: Literal["record", "image"]
    status: int | None
    reason: str
    moved_at: float


@dataclass(frozen=True, slots=True)
class Backlog:
    """What is left to send: records not yet acknowledged, images ready to upload (their record
    is on the server), every image held (ready or waiting for its record), and bytes held."""

    records: int
    images: int
    bytes: int
    images_total: int = 0

    @property
    def empty(self) -> bool:
        return self.records == 0 and self.images == 0


class OutboxOwnerError(VisionloopError):
    """The outbox holds another device's records (another token or server)."""


class Outbox:
    """A thread-safe SQLite outbox (one connection behind a lock; each call is one transaction).

    ``max_bytes`` caps the stored payload (record JSON plus JPEG bytes, not counting SQLite's
    own overhead or dead letters): a put that goes over evicts images oldest first, then the
    oldest records, and counts each eviction in :meth:`counters`.

    ``owner``: the device the records belong to. An outbox remembers its first owner and
    refuses another (:class:`OutboxOwnerError`), so that records are never uploaded under
    another device's token. An outbox from before owners were kept is claimed by its first
    owned open.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        owner: OutboxOwner | None = None,
    ) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.path = path
        self.max_bytes = max_bytes
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False, timeout=30.0
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(f"PRAGMA synchronous={synchronous}")
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._conn.executescript(_SCHEMA)
        if owner is not None:
            self._claim(owner)
        self._conn.executemany(
            "INSERT OR IGNORE INTO counters (name, value) VALUES (?, 0)",
            [(n,) for n in COUNTER_NAMES],
        )
        self._bytes = self._stored_bytes()
        # Kept in memory so a heartbeat or a drain check never scans a large outbox.
        self._records = int(self._conn.execute("SELECT COUNT(*) FROM records").fetchone()[0])
        self._ready = int(
            self._conn.execute("SELECT COUNT(*) FROM images WHERE ready = 1").fetchone()[0]
        )
        self._images = int(self._conn.execute("SELECT COUNT(*) FROM images").fetchone()[0])
        self.has_work = threading.Event()
        """Set when something was committed; the uploader waits on it instead of polling."""
        if not self._backlog_unlocked().empty:
            self.has_work.set()

    def _claim(self, owner: OutboxOwner) -> None:
        self._conn.execute(
            "INSERT OR IGNORE INTO owner (id, server, fingerprint) VALUES (1, ?, ?)",
            (owner.server, owner.fingerprint),
        )
        server, fingerprint = self._conn.execute(
            "SELECT server, fingerprint FROM owner WHERE id = 1"
        ).fetchone()
        if (server, fingerprint) != (owner.server, owner.fingerprint):
            self._conn.close()
            raise OutboxOwnerError(
                f"{self.path} holds the records of another device (server {server}, token "
                f"fingerprint {fingerprint}), not this token's ({owner.server}, "
                f"{owner.fingerprint}): run that device's token on it, or leave --outbox out "
                "to use this token's own outbox"
            )

    # --- writing ---------------------------------------------------------------------------

    def put(self, record: FrameRecord, jpeg: bytes | None = None) -> None:
        """Commit a record (and its JPEG) in one transaction; returns once it is durable."""
        self.put_json(str(record.id), record.model_dump_json(), jpeg)

    def put_json(self, record_id: str, body: str, jpeg: bytes | None = None) -> None:
        """:meth:`put` for a record already serialised to JSON."""
        now = time.time()
        added = len(body) + (len(jpeg) if jpeg is not None else 0)
        with self._lock:
            with self._transaction() as cur:
                cur.execute(
                    "INSERT INTO records (id, body, has_image, created_at) VALUES (?, ?, ?, ?)",
                    (record_id, body, jpeg is not None, now),
                )
                seq = cur.lastrowid
                if jpeg is not None:
                    cur.execute(
                        "INSERT INTO images (record_id, seq, jpeg) VALUES (?, ?, ?)",
                        (record_id, seq, jpeg),
                    )
                self._bump(cur, committed=1, images_committed=int(jpeg is not None))
                freed = records = ready = images = 0
                if self._bytes + added > self.max_bytes:
                    freed, records, ready, images = self._evict(
                        cur, self._bytes + added - self.max_bytes
                    )
            self._bytes += added - freed
            self._records += 1 - records
            self._ready -= ready
            self._images += int(jpeg is not None) - images
        self.has_work.set()

    def _evict(self, cur: sqlite3.Cursor, excess: int) -> tuple[int, int, int, int]:
        """Free at least ``excess`` bytes: images oldest first, then the oldest records.

        Returns bytes freed, records evicted, ready images evicted and images evicted.
        """
        freed = 0
        images = records = ready = 0
        while freed < excess:
            row = cur.execute(
                "SELECT record_id, length(jpeg), ready FROM images ORDER BY seq LIMIT 1"
            ).fetchone()
            if row is None:
                break
            cur.execute("DELETE FROM images WHERE record_id = ?", (row[0],))
            cur.execute("UPDATE records SET has_image = 0 WHERE id = ?", (row[0],))
            freed += row[1]
            images += 1
            ready += int(row[2])
        while freed < excess:
            row = cur.execute(
                "SELECT seq, length(body) FROM records ORDER BY seq LIMIT 1"
            ).fetchone()
            if row is None:
                break
            cur.execute("DELETE FROM records WHERE seq = ?", (row[0],))
            freed += row[1]
            records += 1
        self._bump(cur, evicted_images=images, evicted_records=records)
        return freed, records, ready, images

    # --- reading and acknowledging ----------------------------------------------------------

    def peek(
        self,
        limit: int = 200,
        *,
        max_bytes: int = 4 * 1024 * 1024,
        exclude: Collection[str] = (),
    ) -> list[PendingRecord]:
        """The oldest unacknowledged records, at most ``limit`` and about ``max_bytes`` of JSON,
        leaving out the ids in ``exclude`` (records the uploader is retrying on their own).

        At least one record is returned when any is waiting, however large.
        """
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, id, body FROM records ORDER BY seq LIMIT ?", (limit + len(exclude),)
            ).fetchall()
        out: list[PendingRecord] = []
        total = 0
        for seq, rid, body in rows:
            if rid in exclude:
                continue
            if len(out) >= limit:
                break
            total += len(body)
            if out and total > max_bytes:
                break
            out.append(PendingRecord(seq=seq, id=rid, body=body))
        return out

    def ack(self, ids: Sequence[str]) -> int:
        """Delete exactly these acknowledged records; their images become ready. Returns count."""
        if not ids:
            return 0
        with self._lock:
            with self._transaction() as cur:
                freed = 0
                deleted = 0
                readied = 0
                for chunk in _chunks(ids, 500):
                    marks = ",".join("?" * len(chunk))
                    freed += cur.execute(
                        f"SELECT COALESCE(SUM(length(body)), 0) FROM records WHERE id IN ({marks})",
                        chunk,
                    ).fetchone()[0]
                    deleted += cur.execute(
                        f"DELETE FROM records WHERE id IN ({marks})", chunk
                    ).rowcount
                    readied += cur.execute(
                        f"UPDATE images SET ready = 1 WHERE ready = 0 AND record_id IN ({marks})",
                        chunk,
                    ).rowcount
                self._bump(cur, acked=deleted)
            self._bytes -= freed
            self._records -= deleted
            self._ready += readied
        return deleted

    def find(self, ids: Sequence[str]) -> list[PendingRecord]:
        """Those of ``ids`` still waiting (not acknowledged, evicted or set aside), oldest first."""
        out: list[PendingRecord] = []
        with self._lock:
            for chunk in _chunks(ids, 500):
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(
                    f"SELECT seq, id, body FROM records WHERE id IN ({marks})", chunk
                ).fetchall()
                out.extend(PendingRecord(seq=seq, id=rid, body=body) for seq, rid, body in rows)
        return sorted(out, key=lambda p: p.seq)

    def peek_images(self, limit: int = 16) -> list[PendingImage]:
        """The oldest images whose record the server has acknowledged."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT record_id, jpeg FROM images WHERE ready = 1 ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
        return [PendingImage(record_id=r, jpeg=bytes(j)) for r, j in rows]

    def ack_image(self, record_id: str) -> None:
        """Delete an uploaded image."""
        with self._lock:
            with self._transaction() as cur:
                row = cur.execute(
                    "SELECT length(jpeg), ready FROM images WHERE record_id = ?", (record_id,)
                ).fetchone()
                if row is None:
                    return
                cur.execute("DELETE FROM images WHERE record_id = ?", (record_id,))
                self._bump(cur, images_uploaded=1)
            self._bytes -= row[0]
            self._ready -= int(row[1])
            self._images -= 1

    # --- dead letters ------------------------------------------------------------------------

    def dead_letter(self, ids: Sequence[str], *, reason: str, status: int | None = None) -> int:
        """Move these records (and their images) aside for good; returns how many moved."""
        moved = 0
        freed = 0
        images = 0
        now = time.time()
        with self._lock:
            with self._transaction() as cur:
                for rid in ids:
                    row = cur.execute("SELECT body FROM records WHERE id = ?", (rid,)).fetchone()
                    if row is None:
                        continue
                    img = cur.execute(
                        "SELECT jpeg FROM images WHERE record_id = ?", (rid,)
                    ).fetchone()
                    jpeg = img[0] if img is not None else None
                    cur.execute(
                        "INSERT INTO dead_letters (record_id, kind, body, jpeg, status, reason,"
                        " moved_at) VALUES (?, 'record', ?, ?, ?, ?, ?)",
                        (rid, row[0], jpeg, status, reason[:2000], now),
                    )
                    cur.execute("DELETE FROM records WHERE id = ?", (rid,))
                    cur.execute("DELETE FROM images WHERE record_id = ?", (rid,))
                    freed += len(row[0]) + (len(jpeg) if jpeg is not None else 0)
                    images += int(jpeg is not None)
                    moved += 1
                self._bump(cur, dead_letters=moved)
            self._bytes -= freed
            self._records -= moved
            self._images -= images
        return moved

    def dead_letter_image(self, record_id: str, *, reason: str, status: int | None = None) -> None:
        """Move an image the server refused aside (its record is already on the server)."""
        with self._lock:
            with self._transaction() as cur:
                img = cur.execute(
                    "SELECT jpeg, ready FROM images WHERE record_id = ?", (record_id,)
                ).fetchone()
                if img is None:
                    return
                cur.execute(
                    "INSERT INTO dead_letters (record_id, kind, body, jpeg, status, reason,"
                    " moved_at) VALUES (?, 'image', NULL, ?, ?, ?, ?)",
                    (record_id, img[0], status, reason[:2000], time.time()),
                )
                cur.execute("DELETE FROM images WHERE record_id = ?", (record_id,))
                self._bump(cur, dead_letters=1)
            self._bytes -= len(img[0])
            self._ready -= int(img[1])
            self._images -= 1

    def dead_letters(self) -> list[DeadLetter]:
        """Everything moved aside, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT record_id, kind, status, reason, moved_at FROM dead_letters ORDER BY seq"
            ).fetchall()
        return [
            DeadLetter(record_id=r[0], kind=r[1], status=r[2], reason=r[3], moved_at=r[4])
            for r in rows
        ]

    # --- state ------------------------------------------------------------------------------

    def backlog(self) -> Backlog:
        """Records and images still to send."""
        with self._lock:
            return self._backlog_unlocked()

    def counters(self) -> dict[str, int]:
        """Lifetime counters of this outbox file (they survive restarts)."""
        with self._lock:
            rows = self._conn.execute("SELECT name, value FROM counters").fetchall()
        return {name: int(value) for name, value in rows}

    def close(self) -> None:
        """Checkpoint the WAL and close the connection."""
        with self._lock:
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                self._conn.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals --------------------------------------------------------------------------

    def _backlog_unlocked(self) -> Backlog:
        return Backlog(
            records=self._records,
            images=self._ready,
            bytes=self._bytes,
            images_total=self._images,
        )

    def _stored_bytes(self) -> int:
        row = self._conn.execute(
            "SELECT (SELECT COALESCE(SUM(length(body)), 0) FROM records)"
            " + (SELECT COALESCE(SUM(length(jpeg)), 0) FROM images)"
        ).fetchone()
        return int(row[0])

    def _transaction(self) -> _Transaction:
        return _Transaction(self._conn)

    @staticmethod
    def _bump(cur: sqlite3.Cursor, **deltas: int) -> None:
        for name, delta in deltas.items():
            if delta:
                cur.execute("UPDATE counters SET value = value + ? WHERE name = ?", (delta, name))


class _Transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on any exception, a failed COMMIT included
    (SQLite leaves the transaction open when COMMIT fails, and every later BEGIN would fail)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._cur = conn.cursor()

    def __enter__(self) -> sqlite3.Cursor:
        self._cur.execute("BEGIN IMMEDIATE")
        return self._cur

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is None:
            try:
                self._cur.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
        else:
            self._rollback()

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            self._cur.execute("ROLLBACK")


def _chunks(items: Sequence[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])
