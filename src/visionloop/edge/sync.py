"""The uploader: sends outbox batches and images to the server, retries, acks, sends heartbeats.

The HTTP seam is an injected :class:`httpx.Client` that already carries the server's base URL
and the device's bearer token, so tests run the uploader against the real ASGI app (or a real
uvicorn on loopback) through any transport they like, faults included.

What each answer means for a batch of frames:

* 2xx: the server stored them (or already had them: ids are idempotency keys); ack exactly those.
* 413: too large; split the batch in halves (a single frame too large goes to the dead letters).
* 400/422: the batch was rejected whole because of one frame; the detail names it (by index in
  ``loc`` or text, or by id). That frame is moved aside and the rest resent. When no frame can
  be identified, the batch is bisected until the bad frame is alone.
* 5xx: retried with exponential backoff and full jitter. When the batch at the head of the
  outbox keeps failing (``bisect_after`` times in a row) while the server is up (``/readyz``
  answers: the process and its database; stricter than ``/healthz``, see :meth:`_server_up`),
  one record may be what breaks the server (a poison record): the batch is bisected, the
  records that go through are acked, and a record that fails alone is *held*: retried on its
  own schedule, out of the way of the records behind it. A held record that fails alone
  ``dead_letter_after`` times goes to the dead letters with the server's answer, but only while
  the server is up and has accepted other records since it was isolated: a server
  that fails every record is down, and nothing is set aside for that.
* 408, 429, timeouts and connection errors: retried with backoff, forever.
* 401/403 (a wrong or rotated token, a disabled device): permanent. No retry can fix it, so the
  uploader stops, says what to do in one line (:attr:`Uploader.rejected`) and tells its owner
  (``on_rejected``), which ends the run; the records stay in this device's outbox.

The thread never dies: any exception in a round (a bug, a heartbeat that fails, the outbox) is
logged with its traceback, counted (``uploader_errors``) and the round retried after a backoff.
"""

from __future__ import annotations

import itertools
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from visionloop.edge.answers import credential_problem
from visionloop.edge.answers import detail as _detail
from visionloop.edge.outbox import Outbox, PendingRecord
from visionloop.types import Heartbeat, HeartbeatAnswer, IngestResult

log = logging.getLogger(__name__)

INGEST_PATH = "/api/v1/ingest"
HEARTBEAT_PATH = "/api/v1/devices/heartbeat"
READY_PATH = "/readyz"


def image_path(record_id: str) -> str:
    return f"/api/v1/frames/{record_id}/image"


@dataclass(frozen=True, slots=True)
class SyncConfig:
    """Batching, retry and heartbeat timing of the uploader (seconds), and its poison limits.

    ``bisect_after``: 5xx answers in a row for the batch at the head of the outbox before it is
    bisected to find a poison record. ``dead_letter_after``: 5xx answers a record gets alone
    before it is set aside. ``max_held``: records held for solo retries at once; while that
    many are held no new bisection starts.
    """

    batch_frames: int = 200
    batch_bytes: int = 4 * 1024 * 1024
    images_per_round: int = 16
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    heartbeat_s: float = 5.0
    idle_wait_s: float = 1.0
    bisect_after: int = 3
    dead_letter_after: int = 5
    max_held: int = 16

    def __post_init__(self) -> None:
        for name in ("batch_frames", "bisect_after", "dead_letter_after", "max_held"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


@dataclass
class SyncStats:
    """What the uploader has done since it started."""

    uploaded: int = 0
    duplicates: int = 0
    images_uploaded: int = 0
    retries: int = 0
    dead_letters: int = 0
    heartbeats: int = 0
    errors: int = 0
    last_error: str | None = None

    def as_counters(self) -> dict[str, int]:
        return {
            "uploaded": self.uploaded,
            "duplicates": self.duplicates,
            "images_uploaded": self.images_uploaded,
            "upload_retries": self.retries,
            "uploader_errors": self.errors,
        }


class RetryLater(Exception):
    """A failure that is not the data's fault: back off and try the same thing again."""


class CredentialsRejected(Exception):
    """The server refused this device's token (401) or the device (403): permanent."""


@dataclass
class _Held:
    """A record that failed alone with a 5xx: retried on its own schedule.

    ``mark`` is the uploader's count of accepted batches when its isolation began: a later count
    shows that the server takes other records, so the failures are this record's own.
    """

    mark: int
    strikes: int = 0
    next_at: float = 0.0


class Uploader:
    """Runs in its own thread: outbox → server, until stopped.

    ``heartbeat`` builds the agent's :class:`Heartbeat` (metrics, model version); the uploader
    fills in the outbox backlog, the dead-letter count, the send time and its own counters.
    ``on_answer`` gets the server's :class:`HeartbeatAnswer` to each heartbeat (e.g. a drift
    alarm's raised sampling).
    """

    def __init__(
        self,
        outbox: Outbox,
        client: httpx.Client,
        *,
        heartbeat: Callable[[], Heartbeat] | None = None,
        on_answer: Callable[[HeartbeatAnswer], None] | None = None,
        on_rejected: Callable[[str], None] | None = None,
        config: SyncConfig | None = None,
        seed: int | None = None,
    ) -> None:
        self.outbox = outbox
        self.client = client
        self.config = config or SyncConfig()
        self.stats = SyncStats()
        self._heartbeat = heartbeat
        self._on_answer = on_answer
        self._on_rejected = on_rejected
        self.rejected: str | None = None
        """Why the server refused this device's credentials (the uploader then stopped)."""
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._attempt = 0
        self._next_heartbeat = 0.0
        self._head_failures: tuple[str, int] | None = None
        self._held: dict[str, _Held] = {}
        self._accepted = 0
        self._isolation_mark = 0
        self._isolation_ok = True

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the uploader thread."""
        self._thread = threading.Thread(target=self._run, name="visionloop-uploader", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the thread after its current request; True once it has ended."""
        self._stop.set()
        self.outbox.has_work.set()
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    @property
    def alive(self) -> bool:
        """True while the uploader thread runs."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def held(self) -> int:
        """Records now held for solo retries (suspected poison records)."""
        return len(self._held)

    def drain(self, timeout: float) -> bool:
        """Wait until the outbox is empty (True) or ``timeout`` seconds pass (False)."""
        deadline = time.monotonic() + timeout
        while not self.outbox.backlog().empty:
            if time.monotonic() >= deadline or self._stop.is_set():
                return False
            self.outbox.has_work.set()
            time.sleep(0.05)
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._maybe_heartbeat()
                progressed = self.run_once()
                self._attempt = 0
                if not progressed:
                    self.outbox.has_work.clear()
                    wait = min(
                        self.config.idle_wait_s, self._until_heartbeat(), self._until_held_due()
                    )
                    self.outbox.has_work.wait(max(wait, 0.01))
            except RetryLater as exc:
                self._back_off(str(exc))
            except CredentialsRejected as exc:
                self._reject(str(exc))
            except Exception as exc:  # the uploader must outlive any one bug
                self.stats.errors += 1
                log.exception("uploader: unexpected error (%d so far); retrying", self.stats.errors)
                self._back_off(f"unexpected: {exc!r}")

    def _reject(self, why: str) -> None:
        """Stop for good: the records stay in the outbox for a run with a valid token."""
        if self.rejected is None:
            self.rejected = why
            self.stats.last_error = why
            log.error("uploader: %s; stopping (records are kept in the outbox)", why)
            if self._on_rejected is not None:
                self._on_rejected(why)
        self._stop.set()

    def _back_off(self, why: str) -> None:
        self.stats.retries += 1
        self.stats.last_error = why
        cap = min(self.config.backoff_max_s, self.config.backoff_base_s * 2**self._attempt)
        self._attempt = min(self._attempt + 1, 30)
        delay = self._rng.uniform(0.0, cap)
        log.warning("uploader: %s; retrying in %.2f s", why, delay)
        self._stop.wait(delay)

    # --- one round ------------------------------------------------------------------------

    def run_once(self) -> bool:
        """Send one batch of records, held records that are due, then ready images.

        True when anything was sent.
        """
        sent = False
        batch = self.outbox.peek(
            self.config.batch_frames, max_bytes=self.config.batch_bytes, exclude=self._held.keys()
        )
        if batch:
            self._send_batch(batch)
            sent = True
        sent = self._retry_held() or sent
        images = self.outbox.peek_images(self.config.images_per_round)
        for image in images:
            self._send_image(image.record_id, image.jpeg)
        return sent or bool(images)

    def _send_batch(self, batch: Sequence[PendingRecord], *, isolating: bool = False) -> None:
        pending = list(batch)
        while pending:
            resp = self._request(
                "POST",
                INGEST_PATH,
                retry_5xx=False,
                content=_batch_body(pending),
                headers={"content-type": "application/json"},
            )
            status = resp.status_code
            if 200 <= status < 300:
                result = IngestResult.model_validate_json(resp.content)
                self.outbox.ack([p.id for p in pending])
                self.stats.uploaded += len(pending)
                self.stats.duplicates += result.duplicates
                self._accepted += 1
                self._isolation_ok = True
                for p in pending:
                    self._held.pop(p.id, None)
                if not isolating:
                    self._head_failures = None
                return
            if status == 413:
                if len(pending) == 1:
                    self._dead_letter(pending, resp)
                    return
                half = len(pending) // 2
                self._send_batch(pending[:half], isolating=isolating)
                pending = pending[half:]
                continue
            if status in (400, 422):
                if len(pending) == 1:
                    self._dead_letter(pending, resp)
                    return
                bad = named_frames(resp, pending)
                if bad:
                    # Resend each named frame alone: only a frame refused on its own is moved
                    # aside, so a misread detail can never dead-letter a good frame.
                    for i in bad:
                        self._send_batch([pending[i]], isolating=isolating)
                    pending = [p for i, p in enumerate(pending) if i not in bad]
                    continue
                half = len(pending) // 2
                self._send_batch(pending[:half], isolating=isolating)
                pending = pending[half:]
                continue
            if status >= 500:
                self._server_error(pending, resp, isolating=isolating)
                return
            raise RetryLater(f"ingest answered {status}: {_detail(resp)}")

    # --- poison records -----------------------------------------------------------------------

    def _server_error(
        self, pending: list[PendingRecord], resp: httpx.Response, *, isolating: bool
    ) -> None:
        """A 5xx for ``pending``: back off, or bisect it, or count a strike against one record."""
        if isolating:
            self._isolate(pending, resp)
            return
        why = f"ingest answered {resp.status_code}: {_detail(resp)}"
        head = pending[0].id
        if self._head_failures is not None and self._head_failures[0] == head:
            failures = self._head_failures[1] + 1
        else:
            failures = 1
        self._head_failures = (head, failures)
        if (
            failures < self.config.bisect_after
            or len(self._held) >= self.config.max_held
            or not self._server_up()
        ):
            raise RetryLater(why)
        log.warning(
            "uploader: a batch of %d records failed %d times in a row (%s) while the server "
            "answers %s: looking for a record that breaks the server",
            len(pending),
            failures,
            why,
            READY_PATH,
        )
        self._head_failures = None
        self._isolation_mark = self._accepted
        self._isolation_ok = False
        self._isolate(pending, resp)

    def _isolate(self, pending: list[PendingRecord], resp: httpx.Response) -> None:
        """``pending`` failed with a 5xx during a bisection: split it, or strike its record."""
        if len(pending) == 1:
            self._strike(pending[0], resp, first_round=True)
            return
        half = len(pending) // 2
        self._send_batch(pending[:half], isolating=True)
        self._send_batch(pending[half:], isolating=True)

    def _strike(self, record: PendingRecord, resp: httpx.Response, *, first_round: bool) -> None:
        """``record`` failed alone with a 5xx: hold it, or set it aside after enough strikes."""
        held = self._held.get(record.id)
        if held is None:
            held = self._held[record.id] = _Held(mark=self._isolation_mark)
        held.strikes += 1
        limit = self.config.dead_letter_after
        if held.strikes >= limit and self._accepted > held.mark and self._server_up():
            del self._held[record.id]
            self._dead_letter([record], resp)
            return
        cap = min(self.config.backoff_max_s, self.config.backoff_base_s * 2**held.strikes)
        held.next_at = time.monotonic() + self._rng.uniform(cap / 2, cap)
        log.warning(
            "uploader: frame %s failed alone (%s: %s), %d of %d before it is set aside; the "
            "records behind it go on",
            record.id,
            resp.status_code,
            _detail(resp),
            held.strikes,
            limit,
        )
        if first_round and not self._isolation_ok:
            # Nothing of this batch went through yet: the server may fail everything. Back off;
            # the next round sends the records behind this one and tells.
            raise RetryLater(f"ingest answered {resp.status_code} for frame {record.id} alone")

    def _retry_held(self) -> bool:
        """Send each held record whose time has come, alone. True when any was sent."""
        now = time.monotonic()
        due = [rid for rid, h in self._held.items() if h.next_at <= now]
        if not due:
            return False
        waiting = self.outbox.find(due)
        present = {p.id for p in waiting}
        for rid in due:
            if rid not in present:  # acknowledged, evicted or set aside meanwhile
                self._held.pop(rid, None)
        for record in waiting:
            self._send_held(record)
        return bool(waiting)

    def _send_held(self, record: PendingRecord) -> None:
        resp = self._request(
            "POST",
            INGEST_PATH,
            retry_5xx=False,
            content=_batch_body([record]),
            headers={"content-type": "application/json"},
        )
        status = resp.status_code
        if status >= 500:
            self._strike(record, resp, first_round=False)
            return
        self._held.pop(record.id, None)
        if 200 <= status < 300:
            result = IngestResult.model_validate_json(resp.content)
            self.outbox.ack([record.id])
            self.stats.uploaded += 1
            self.stats.duplicates += result.duplicates
            self._accepted += 1
        elif status in (400, 413, 422):
            self._dead_letter([record], resp)
        else:
            raise RetryLater(f"ingest answered {status}: {_detail(resp)}")

    def _until_held_due(self) -> float:
        if not self._held:
            return self.config.idle_wait_s
        return min(h.next_at for h in self._held.values()) - time.monotonic()

    def _server_up(self) -> bool:
        """True when the server and its database answer (``/readyz``), so that a 5xx is about
        the request. ``/healthz`` alone would also answer during a database outage, when every
        record fails and none is to blame."""
        try:
            resp = self.client.get(READY_PATH)
        except httpx.HTTPError:
            return False
        return resp.status_code == 200

    # --- images and dead letters ----------------------------------------------------------------

    def _send_image(self, record_id: str, jpeg: bytes) -> None:
        resp = self._request(
            "PUT", image_path(record_id), content=jpeg, headers={"content-type": "image/jpeg"}
        )
        status = resp.status_code
        if 200 <= status < 300 or status == 409:
            self.outbox.ack_image(record_id)
            self.stats.images_uploaded += 1
        elif status in (404, 413, 415, 422):
            reason = f"{status}: {_detail(resp)}"
            log.error("server refused the image of frame %s (%s); moved aside", record_id, reason)
            self.outbox.dead_letter_image(record_id, reason=reason, status=status)
            self.stats.dead_letters += 1
        else:
            raise RetryLater(f"image upload answered {status}: {_detail(resp)}")

    def _dead_letter(self, records: Sequence[PendingRecord], resp: httpx.Response) -> None:
        reason = f"{resp.status_code}: {_detail(resp)}"
        for r in records:
            log.error("server rejected frame %s (%s); moved to dead letters", r.id, reason)
        self.stats.dead_letters += self.outbox.dead_letter(
            [r.id for r in records], reason=reason, status=resp.status_code
        )

    def _request(
        self, method: str, url: str, *, retry_5xx: bool = True, **kwargs: Any
    ) -> httpx.Response:
        try:
            resp = self.client.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            raise RetryLater(f"{type(exc).__name__}: {exc}") from exc
        problem = credential_problem(resp)
        if problem is not None:
            raise CredentialsRejected(problem)
        if (retry_5xx and resp.status_code >= 500) or resp.status_code in (408, 429):
            raise RetryLater(f"{method} {url} answered {resp.status_code}: {_detail(resp)}")
        return resp

    # --- heartbeats ---------------------------------------------------------------------------

    def _until_heartbeat(self) -> float:
        if self._heartbeat is None:
            return self.config.idle_wait_s
        return self._next_heartbeat - time.monotonic()

    def _maybe_heartbeat(self) -> None:
        if self._heartbeat is None or time.monotonic() < self._next_heartbeat:
            return
        self._next_heartbeat = time.monotonic() + self.config.heartbeat_s
        self.send_heartbeat()

    def send_heartbeat(self) -> bool:
        """Send one heartbeat now; a failure is logged, never raised (it is only telemetry)."""
        if self._heartbeat is None:
            return False
        try:
            beat = self._beat(self._heartbeat())
            resp = self.client.post(
                HEARTBEAT_PATH,
                content=beat.model_dump_json(),
                headers={"content-type": "application/json"},
            )
        except httpx.TransportError as exc:
            log.info("heartbeat failed: %s", exc)
            return False
        except Exception:  # a bug in building the heartbeat must not stop the uploads
            self.stats.errors += 1
            log.exception("heartbeat failed (%d uploader errors so far)", self.stats.errors)
            return False
        if resp.status_code >= 300:
            problem = credential_problem(resp)
            if problem is not None:
                self._reject(problem)
                return False
            log.warning("heartbeat answered %s: %s", resp.status_code, _detail(resp))
            return False
        self.stats.heartbeats += 1
        if self._on_answer is not None and resp.status_code == 200:
            try:
                answer = HeartbeatAnswer.model_validate_json(resp.content)
            except ValueError as exc:
                log.warning("unreadable heartbeat answer: %s", exc)
            else:
                self._on_answer(answer)
        return True

    def _beat(self, beat: Heartbeat) -> Heartbeat:
        """``beat`` with the outbox backlog, dead letters, counters and the send time."""
        outbox_counters = self.outbox.counters()
        counters = {**beat.counters, **self.stats.as_counters(), "held_records": len(self._held)}
        for name, value in outbox_counters.items():
            counters[f"outbox_{name}"] = value
        backlog = self.outbox.backlog()
        return beat.model_copy(
            update={
                "outbox_backlog": backlog.records + backlog.images_total,
                "counters": counters,
                "dead_letters": outbox_counters["dead_letters"],
                "sent_at": datetime.now(UTC),
            }
        )


def _batch_body(records: Sequence[PendingRecord]) -> bytes:
    """``{"frames": [...]}`` spliced from stored JSON, without parsing it again."""
    return ('{"frames":[' + ",".join(r.body for r in records) + "]}").encode()


_INDEX_IN_TEXT = re.compile(r"frames(?:\[|\.)(\d+)")


def named_frames(resp: httpx.Response, batch: Sequence[PendingRecord]) -> set[int]:
    """Indices in ``batch`` of the frames a 4xx names (empty when it names none).

    Understands the server's ``bad_frames: [{"index": i, "id": ...}]``, FastAPI/pydantic error
    lists (``loc`` = ``["body", "frames", 3, ...]``), text such as ``"frames.3.stats: ..."`` or
    ``"frames[3]"``, and frame ids quoted anywhere in the answer.
    """
    try:
        body = resp.json()
    except ValueError:
        return set()
    found: set[int] = set()
    _collect_indices(body, found, len(batch))
    text = str(body)
    for m in _INDEX_IN_TEXT.finditer(text):
        i = int(m.group(1))
        if i < len(batch):
            found.add(i)
    for i, rec in enumerate(batch):
        if rec.id in text:
            found.add(i)
    return found


def _collect_indices(node: object, found: set[int], n: int) -> None:
    if isinstance(node, dict):
        loc = node.get("loc")
        if isinstance(loc, list | tuple):
            parts = list(loc)
            for a, b in itertools.pairwise(parts):
                if a == "frames" and isinstance(b, int) and 0 <= b < n:
                    found.add(b)
        for key in ("index", "frame_index"):
            value = node.get(key)
            if isinstance(value, int) and 0 <= value < n:
                found.add(value)
        for value in node.values():
            if isinstance(value, dict | list):
                _collect_indices(value, found, n)
    elif isinstance(node, list):
        for item in node:
            _collect_indices(item, found, n)
