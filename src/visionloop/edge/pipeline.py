"""The real-time pipeline: capture + letterbox → bounded queue → inference → sink → outbox.

One capture thread reads the source, letterboxes each frame for the model (into a ring of
reused buffers, one per frame in flight) and puts it into a bounded queue. A live source
(camera, RTSP) must never wait for us, so when the queue is full the oldest frame is dropped
and counted; a file or synthetic source blocks instead and never drops. The calling thread only
starts inferences and collects their results, keeping as many frames in flight as the detector
runs side by side (``Detector.depth``: OpenVINO's streams, 2 by default on 2 cores), so the
model never waits for the calling thread either. A sink thread takes each inferred frame, in
order, through decode + NMS, frame statistics, the sampler and record building, and commits the
record (and a sampled frame's JPEG) to the outbox in one transaction. Overlapping letterbox and
bookkeeping with inference is what keeps the pipeline near the model's own speed on two cores.
A frame counts as processed only once committed; at a stop, every inferred frame is committed
before :meth:`Pipeline.run` returns. A detector handed over with :meth:`Pipeline.swap` takes
effect between two frames, and each frame travels with the detector that ran it, so its record
carries that model's version.
"""

from __future__ import annotations

import logging
import os
import queue
import statistics
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

import cv2
import numpy as np
import pydantic
from numpy.typing import NDArray

from visionloop.edge.outbox import Outbox
from visionloop.edge.records import build_record
from visionloop.edge.sampler import Sampler
from visionloop.types import Heartbeat
from visionloop.vision.backends import Pending
from visionloop.vision.detector import Detector
from visionloop.vision.preprocess import Letterbox, LetterboxBuffer, frame_stats

if TYPE_CHECKING:
    from visionloop.vision.sources import Frame, FrameSource

log = logging.getLogger(__name__)

STAGES = (
    "capture",
    "preprocess",
    "infer",
    "postprocess",
    "stats",
    "record",
    "encode",
    "outbox",
    "total",
)
"""Per-frame stages timed by the pipeline (``encode`` only for sampled frames)."""

_END = object()


@dataclass
class PipelineSummary:
    """What a run did."""

    frames: int
    seconds: float
    dropped: int
    sampled: dict[str, int]
    invalid: int
    detections: int
    versions: dict[str, int]
    latency_ms: dict[str, float]
    source_error: str | None = None

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def sampled_total(self) -> int:
        return sum(self.sampled.values())


@dataclass
class _Metrics:
    """Per-stage timings and completion times, written by three threads and read by the
    uploader's heartbeat: every access holds ``lock``, and readers work on a copy."""

    window: int = 300
    timings: dict[str, deque[float]] = field(default_factory=dict)
    done_at: deque[float] = field(default_factory=lambda: deque(maxlen=300))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, stage: str, seconds: float) -> None:
        with self.lock:
            buf = self.timings.get(stage)
            if buf is None:
                buf = self.timings[stage] = deque(maxlen=self.window)
            buf.append(seconds)

    def done(self, at: float) -> None:
        with self.lock:
            self.done_at.append(at)

    def snapshot(self) -> tuple[dict[str, list[float]], list[float]]:
        """Copies of the timings and completion times, taken under the lock."""
        with self.lock:
            stages = list(self.timings.items())
            return {stage: list(buf) for stage, buf in stages}, list(self.done_at)

    def medians_ms(self) -> dict[str, float]:
        timings, _ = self.snapshot()
        return {stage: statistics.median(v) * 1000.0 for stage, v in timings.items() if v}

    def recent_fps(self) -> float:
        _, stamps = self.snapshot()
        if len(stamps) < 2 or stamps[-1] <= stamps[0]:
            return 0.0
        return (len(stamps) - 1) / (stamps[-1] - stamps[0])


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A captured frame already letterboxed for a model of input size ``imgsz_hw``."""

    frame: Frame
    tensor: NDArray[np.float32]
    letterbox: Letterbox
    imgsz_hw: tuple[int, int]


@dataclass(frozen=True, slots=True)
class _InFlight:
    """A frame whose inference was started and may still be running."""

    frame: Frame
    detector: Detector
    pending: Pending
    letterbox: Letterbox
    started: float
    submitted: float


@dataclass(frozen=True, slots=True)
class _Inferred:
    """A frame between inference and the sink, with the detector that ran it."""

    frame: Frame
    detector: Detector
    outputs: list[NDArray[np.floating]]
    letterbox: Letterbox
    started: float


class Pipeline:
    """Runs a source through a detector into an outbox. Build once, :meth:`run` once.

    ``max_frames`` stops after that many frames were committed (None: until the source ends or
    ``stop`` is set). ``fps_limit`` paces a file source by sleeping and thins a live source by
    skipping frames (skips are not drops). ``queue_size`` bounds the capture queue.
    ``side_thread_nice`` raises the capture and sink threads' nice value (None: +10 for a
    detector that runs one inference at a time, 0 for one with several streams).
    """

    def __init__(
        self,
        source: FrameSource,
        detector: Detector,
        outbox: Outbox,
        sampler: Sampler,
        *,
        max_frames: int | None = None,
        fps_limit: float | None = None,
        queue_size: int = 4,
        jpeg_quality: int = 90,
        on_frame: Callable[[int], None] | None = None,
        side_thread_nice: int | None = None,
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be >= 1")
        if fps_limit is not None and fps_limit <= 0:
            raise ValueError("fps_limit must be positive")
        self.source = source
        self.detector = detector
        self.outbox = outbox
        self.sampler = sampler
        self.max_frames = max_frames
        self.fps_limit = fps_limit
        self.jpeg_quality = jpeg_quality
        self.on_frame = on_frame
        # Capture and sink run at a lower priority (nice +10) so a 2-thread inference is not
        # stalled by one of its threads being pre-empted. With several streams each runs on its
        # own thread and nothing stalls, while a niced capture thread starves against two busy
        # streams (capture 2 -> 16-18 ms, 15-19% fewer FPS at 320, docs/performance.md).
        if side_thread_nice is None:
            side_thread_nice = 10 if detector.depth == 1 else 0
        self.side_thread_nice = side_thread_nice
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self._sink_queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self._sink_error: BaseException | None = None
        self._sink_thread: threading.Thread | None = None
        # Letterbox buffers: one per frame that can be in flight between capture and the end
        # of its inference (the queue, the frame in capture's hand, those inferring: at most
        # the detector's depth, which a swap may change).
        self._ring: list[LetterboxBuffer] = []
        self._ring_size = queue_size + 2 + max(detector.depth, 4)
        self._ring_next = 0
        self._next_detector: Detector | None = None
        self._metrics = _Metrics()
        # Guards the counters the sink thread updates and the heartbeat reads (a Counter
        # gaining a key while another thread iterates it raises RuntimeError).
        self._counts_lock = threading.Lock()
        self._stop = threading.Event()
        self.frames = 0
        self.dropped = 0
        self.skipped = 0
        self.invalid = 0
        self.detections = 0
        self.sampled: Counter[str] = Counter()
        self.versions: Counter[str] = Counter()
        self.source_error: str | None = None

    # --- control ----------------------------------------------------------------------------

    def swap(self, detector: Detector) -> None:
        """Use ``detector`` from the next frame on (called from the model watcher's thread)."""
        self._next_detector = detector

    def stop(self) -> None:
        """Ask the run to end after the frame in hand (safe from a signal handler)."""
        self._stop.set()

    @property
    def model_version(self) -> str:
        return (self._next_detector or self.detector).info.version

    def heartbeat(self, *, model_error: str | None = None) -> Heartbeat:
        """The pipeline's metrics as a heartbeat body (the uploader adds the outbox backlog).

        Built from snapshots taken under the locks the other threads write under, so it is safe
        to call from any thread while the pipeline runs.
        """
        with self._counts_lock:
            counters = {
                "frames": self.frames,
                "sampled": sum(self.sampled.values()),
                "sample_capped": self.sampler.capped,
                "skipped_frames": self.skipped,
                "invalid_records": self.invalid,
            }
        return Heartbeat(
            model_version=self.model_version[:64],
            fps=self._metrics.recent_fps(),
            latency_ms=self._metrics.medians_ms(),
            queue_depths={"capture": self._queue.qsize(), "sink": self._sink_queue.qsize()},
            dropped_frames=self.dropped,
            counters=counters,
            model_error=model_error,
            backend=(self._next_detector or self.detector).info.extra.get("choice", "")[:500]
            or None,
        )

    # --- running ----------------------------------------------------------------------------

    def run(self) -> PipelineSummary:
        """Process frames until the source ends, ``max_frames`` is reached or :meth:`stop`.

        Three threads: capture (source → letterbox → queue), this one (inference, up to the
        detector's depth of frames in flight, so the model never waits on bookkeeping) and the
        sink (decode + NMS, statistics, sampler, record, JPEG, outbox commit), which keeps
        capture order. At the end every frame that was inferred, or was inferring, is committed
        before ``run`` returns.
        """
        capture = threading.Thread(target=self._capture, name="visionloop-capture", daemon=True)
        sink = self._sink_thread = threading.Thread(
            target=self._sink, name="visionloop-sink", daemon=True
        )
        started = time.perf_counter()
        capture.start()
        sink.start()
        started_frames = 0
        inflight: deque[_InFlight] = deque()
        try:
            while not self._stop.is_set():
                if self.max_frames is not None and started_frames >= self.max_frames:
                    break
                try:
                    item = self._queue.get_nowait() if inflight else self._queue.get(timeout=0.1)
                except queue.Empty:
                    if inflight:  # nothing new yet: hand the oldest result on meanwhile
                        self._complete(inflight.popleft())
                    continue
                if item is _END:
                    break
                inflight.append(self._start(cast("_Prepared", item)))
                started_frames += 1
                while len(inflight) >= self.detector.depth:
                    self._complete(inflight.popleft())
        finally:
            self._stop.set()
            self._complete_all(inflight)
            self._drain_queue()
            self._put_sink(_END)
            sink.join()
            elapsed = time.perf_counter() - started
            capture.join(timeout=5.0)
            if capture.is_alive():
                # A camera read can block for long; closing the source unblocks most backends.
                self.source.close()
                capture.join(timeout=5.0)
        if self._sink_error is not None:
            raise self._sink_error
        return self.summary(elapsed)

    def summary(self, seconds: float) -> PipelineSummary:
        """What the run has done so far, over ``seconds`` of running."""
        with self._counts_lock:
            return PipelineSummary(
                frames=self.frames,
                seconds=seconds,
                dropped=self.dropped,
                sampled=dict(self.sampled),
                invalid=self.invalid,
                detections=self.detections,
                versions=dict(self.versions),
                latency_ms=self._metrics.medians_ms(),
                source_error=self.source_error,
            )

    def _start(self, item: _Prepared) -> _InFlight:
        """Start inference on a prepared frame (it runs while earlier ones are collected)."""
        if self._next_detector is not None:
            self.detector, self._next_detector = self._next_detector, None
            log.info("now running model %s", self.detector.info.version)
        det = self.detector
        frame = item.frame
        t0 = time.perf_counter()
        tensor, lb = item.tensor, item.letterbox
        if item.imgsz_hw != det.info.imgsz_hw:  # prepared for the model before a swap
            tensor, lb = LetterboxBuffer(det.info.imgsz_hw)(frame.frame_bgr)
        t1 = time.perf_counter()  # before start: a backend without async runs inside it
        return _InFlight(frame, det, det.start(tensor), lb, t0, t1)

    def _complete(self, item: _InFlight) -> None:
        """Wait for a started inference and hand it to the sink."""
        outputs = item.pending.result()
        self._metrics.add("infer", time.perf_counter() - item.submitted)
        self._put_sink(_Inferred(item.frame, item.detector, outputs, item.letterbox, item.started))

    def _complete_all(self, inflight: deque[_InFlight]) -> None:
        """At the end: every frame already inferring goes to the sink, unless inference failed."""
        while inflight:
            try:
                self._complete(inflight.popleft())
            except Exception as exc:  # the run is ending on an error already
                log.error("an inference in flight failed at stop: %s", exc)
                inflight.clear()

    def _sink_alive(self) -> bool:
        return self._sink_thread is not None and self._sink_thread.is_alive()

    def _put_sink(self, item: object) -> None:
        while self._sink_error is None and self._sink_alive():
            try:
                self._sink_queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _sink(self) -> None:
        _lower_priority(self.side_thread_nice)
        while True:
            item = self._sink_queue.get()
            if item is _END:
                return
            try:
                self._finish(cast("_Inferred", item))
            except BaseException as exc:  # ends the run; re-raised by run()
                self._sink_error = exc
                self._stop.set()
                return

    def _finish(self, item: _Inferred) -> None:
        frame, det = item.frame, item.detector
        image = frame.frame_bgr
        h, w = image.shape[:2]
        m = self._metrics
        t2 = time.perf_counter()
        detections = det.postprocess(item.outputs, item.letterbox, (w, h))
        t3 = time.perf_counter()
        stats = frame_stats(image)
        reason = self.sampler.decide(detections.confidence, frame.captured_at)
        t4 = time.perf_counter()
        version = det.info.version
        try:
            record = build_record(
                detections=detections,
                size_wh=(w, h),
                stats=stats,
                names=det.info.names,
                model_version=version,
                captured_at=frame.captured_at,
                sample_reason=reason,
                source_index=frame.index,
            )
        except pydantic.ValidationError as exc:
            # Counted and logged, never sent: the server would reject it anyway.
            with self._counts_lock:
                self.invalid += 1
            log.error("frame %d: invalid record, not kept: %s", frame.index, exc)
            return
        jpeg: bytes | None = None
        t5 = time.perf_counter()
        if reason is not None:
            ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
            if not ok:
                raise RuntimeError("JPEG encoding failed")
            jpeg = buf.tobytes()
            m.add("encode", time.perf_counter() - t5)
        t6 = time.perf_counter()
        self.outbox.put(record, jpeg)
        t7 = time.perf_counter()
        m.add("postprocess", t3 - t2)
        m.add("stats", t4 - t3)
        m.add("record", t5 - t4)
        m.add("outbox", t7 - t6)
        m.add("total", t7 - item.started)
        m.done(t7)
        with self._counts_lock:
            if reason is not None:
                self.sampled[reason] += 1
            self.frames += 1
            self.versions[version] += 1
            self.detections += len(detections)
        if self.on_frame is not None:
            self.on_frame(self.frames)

    def _capture(self) -> None:
        _lower_priority(self.side_thread_nice)
        live = self.source.live
        interval = 1.0 / self.fps_limit if self.fps_limit else 0.0
        next_due = time.perf_counter()
        captured = 0
        try:
            it = iter(self.source)
            while not self._stop.is_set():
                t0 = time.perf_counter()
                frame = next(it, None)
                if frame is None:
                    break
                self._metrics.add("capture", time.perf_counter() - t0)
                if interval:
                    now = time.perf_counter()
                    if now < next_due:
                        if live:
                            self.skipped += 1
                            continue
                        self._stop.wait(next_due - now)
                    next_due = max(next_due + interval, now)
                prepared = self._prepare(frame)
                if live:
                    self._offer_dropping_oldest(prepared)
                elif not self._put_blocking(prepared):
                    break
                captured += 1
                if not live and self.max_frames is not None and captured >= self.max_frames:
                    break
        except Exception as exc:  # a source failing mid-stream ends the run, with the reason
            self.source_error = f"{type(exc).__name__}: {exc}"
            log.error("frame source failed: %s", self.source_error)
        finally:
            self._put_blocking(_END)

    def _prepare(self, frame: Frame) -> _Prepared:
        """Letterbox in the capture thread, into a ring of buffers (one per frame in flight)."""
        imgsz_hw = (self._next_detector or self.detector).info.imgsz_hw
        if not self._ring or self._ring[0].imgsz_hw != imgsz_hw:
            self._ring = [LetterboxBuffer(imgsz_hw) for _ in range(self._ring_size)]
        buffer = self._ring[self._ring_next % len(self._ring)]
        self._ring_next += 1
        t0 = time.perf_counter()
        tensor, lb = buffer(frame.frame_bgr)
        self._metrics.add("preprocess", time.perf_counter() - t0)
        return _Prepared(frame, tensor, lb, imgsz_hw)

    def _offer_dropping_oldest(self, frame: _Prepared) -> None:
        while True:
            try:
                self._queue.put_nowait(frame)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass

    def _put_blocking(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _drain_queue(self) -> None:
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return


def _lower_priority(increment: int) -> None:
    """Raise the calling thread's nice value by ``increment`` (Linux only: there a thread is a
    task with its own nice value; elsewhere a thread id is not a process id, so do nothing)."""
    if increment <= 0 or not sys.platform.startswith("linux"):
        return
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + increment)
    except OSError as exc:  # not permitted in some sandboxes: run at normal priority
        log.debug("could not lower thread priority: %s", exc)
