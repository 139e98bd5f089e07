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
* 5xx, 408, 429, timeouts, connection errors, and 401/403 (a token can be fixed; data must not be
  dropped for it): retried with exponential backoff and full jitter, forever.
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
from typing import Any

import httpx

from visionloop.edge.outbox import Outbox, PendingRecord
from visionloop.types import Heartbeat, IngestResult

log = logging.getLogger(__name__)

INGEST_PATH = "/api/v1/ingest"
HEARTBEAT_PATH = "/api/v1/devices/heartbeat"


def image_path(record_id: str) -> str:
    return f"/api/v1/frames/{record_id}/image"


@dataclass(frozen=True, slots=True)
class SyncConfig:
    """Batching, retry and heartbeat timing of the uploader (seconds)."""

    batch_frames: int = 200
    batch_bytes: int = 4 * 1024 * 1024
    images_per_round: int = 16
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    heartbeat_s: float = 5.0
    idle_wait_s: float = 1.0


@dataclass
class SyncStats:
    """What the uploader has done since it started."""

    uploaded: int = 0
    duplicates: int = 0
    images_uploaded: int = 0
    retries: int = 0
    dead_letters: int = 0
    heartbeats: int = 0
    last_error: str | None = None

    def as_counters(self) -> dict[str, int]:
        return {
            "uploaded": self.uploaded,
            "duplicates": self.duplicates,
            "images_uploaded": self.images_uploaded,
            "upload_retries": self.retries,
            "dead_letters": self.dead_letters,
        }


class RetryLater(Exception):
    """A failure that is not the data's fault: back off and try the same thing again."""


class Uploader:
    """Runs in its own thread: outbox → server, until stopped.

    ``heartbeat`` builds the agent's :class:`Heartbeat` (metrics, model version); the uploader
    fills in the outbox backlog and its own counters before sending it.
    """

    def __init__(
        self,
        outbox: Outbox,
        client: httpx.Client,
        *,
        heartbeat: Callable[[], Heartbeat] | None = None,
        config: SyncConfig | None = None,
        seed: int | None = None,
    ) -> None:
        self.outbox = outbox
        self.client = client
        self.config = config or SyncConfig()
        self.stats = SyncStats()
        self._heartbeat = heartbeat
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._attempt = 0
        self._next_heartbeat = 0.0

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the uploader thread."""
        self._thread = threading.Thread(target=self._run, name="visionloop-uploader", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread after its current request."""
        self._stop.set()
        self.outbox.has_work.set()
        if self._thread is not None:
            self._thread.join(timeout)

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
            self._maybe_heartbeat()
            try:
                progressed = self.run_once()
            except RetryLater as exc:
                self._back_off(str(exc))
                continue
            except Exception as exc:  # the uploader must outlive any one bug
                log.exception("uploader: unexpected error")
                self._back_off(f"unexpected: {exc!r}")
                continue
            self._attempt = 0
            if not progressed:
                self.outbox.has_work.clear()
                if self.outbox.backlog().empty:
                    wait = min(self.config.idle_wait_s, self._until_heartbeat())
                    self.outbox.has_work.wait(max(wait, 0.01))

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
        """Send one batch of records, then ready images. True when anything was sent."""
        sent = False
        batch = self.outbox.peek(self.config.batch_frames, max_bytes=self.config.batch_bytes)
        if batch:
            self._send_batch(batch)
            sent = True
        images = self.outbox.peek_images(self.config.images_per_round)
        for image in images:
            self._send_image(image.record_id, image.jpeg)
        return sent or bool(images)

    def _send_batch(self, batch: Sequence[PendingRecord]) -> None:
        pending = list(batch)
        while pending:
            resp = self._request(
                "POST",
                INGEST_PATH,
                content=_batch_body(pending),
                headers={"content-type": "application/json"},
            )
            status = resp.status_code
            if 200 <= status < 300:
                result = IngestResult.model_validate_json(resp.content)
                self.outbox.ack([p.id for p in pending])
                self.stats.uploaded += len(pending)
                self.stats.duplicates += result.duplicates
                return
            if status == 413:
                if len(pending) == 1:
                    self._dead_letter(pending, resp)
                    return
                half = len(pending) // 2
                self._send_batch(pending[:half])
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
                        self._send_batch([pending[i]])
                    pending = [p for i, p in enumerate(pending) if i not in bad]
                    continue
                half = len(pending) // 2
                self._send_batch(pending[:half])
                pending = pending[half:]
                continue
            raise RetryLater(f"ingest answered {status}: {_detail(resp)}")

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

    def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            resp = self.client.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            raise RetryLater(f"{type(exc).__name__}: {exc}") from exc
        if resp.status_code >= 500 or resp.status_code in (401, 403, 408, 429):
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
        beat = self._heartbeat()
        counters = {**beat.counters, **self.stats.as_counters()}
        for name, value in self.outbox.counters().items():
            counters[f"outbox_{name}"] = value
        backlog = self.outbox.backlog()
        beat = beat.model_copy(
            update={"outbox_backlog": backlog.records + backlog.images, "counters": counters}
        )
        try:
            resp = self.client.post(
                HEARTBEAT_PATH,
                content=beat.model_dump_json(),
                headers={"content-type": "application/json"},
            )
        except httpx.TransportError as exc:
            log.info("heartbeat failed: %s", exc)
            return False
        if resp.status_code >= 300:
            log.warning("heartbeat answered %s: %s", resp.status_code, _detail(resp))
            return False
        self.stats.heartbeats += 1
        return True


def _batch_body(records: Sequence[PendingRecord]) -> bytes:
    """``{"frames": [...]}`` spliced from stored JSON, without parsing it again."""
    return ('{"frames":[' + ",".join(r.body for r in records) + "]}").encode()


def _detail(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:500]
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])[:2000]
    return str(body)[:2000]


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
