"""The edge agent: wires source, detector, pipeline, outbox, uploader and model watcher for a run.

``visionloop edge`` builds an :class:`AgentConfig` from its flags and calls :meth:`Agent.run`;
tests build the same object with an injected ``httpx.Client`` (faults included).

Shutdown order, however the pipeline ends (its source ran out, ``max_frames``, a stop, or an
exception): the model watcher stops, the uploader drains the outbox (at most
``drain_timeout_s``) and stops, and only then are the outbox and the HTTP client closed.

Several cameras in one process (:mod:`visionloop.edge.cameras`) run one ``Agent`` each, every
one with its own token, outbox, sampler and uploader, over one :class:`SharedModel`: one
loaded detector and one model watcher, whose updates reach every camera's pipeline.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from visionloop.edge.identity import OutboxOwner
from visionloop.edge.model_watch import ModelWatcher, cached_path, last_production
from visionloop.edge.outbox import DEFAULT_MAX_BYTES, Outbox
from visionloop.edge.pipeline import Pipeline, PipelineSummary
from visionloop.edge.sampler import Sampler, SamplerConfig
from visionloop.edge.sync import SyncConfig, Uploader
from visionloop.errors import (
    AuthenticationError,
    ModelError,
    NotFoundError,
    UnavailableError,
    VisionloopError,
)
from visionloop.types import BackendChoice, PrecisionChoice, ProductionModel
from visionloop.vision.detector import Detector, load_detector, sha256_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AgentConfig:
    """Everything one run of the agent needs; the CLI flags map onto these fields."""

    server: str
    token: str
    source: str
    outbox_path: Path
    model: Path | None = None
    backend: BackendChoice = "auto"
    precision: PrecisionChoice = "auto"
    imgsz: int | tuple[int, int] | None = None
    conf: float = 0.25
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    max_frames: int | None = None
    fps_limit: float | None = None
    drain_timeout_s: float = 60.0
    outbox_max_bytes: int = DEFAULT_MAX_BYTES
    model_cache: Path | None = None
    model_poll_s: float = 30.0
    sync: SyncConfig = field(default_factory=SyncConfig)
    request_timeout_s: float = 10.0
    threads: int | None = None
    streams: int | None = None
    seed: int | None = None
    source_size_wh: tuple[int, int] = (640, 480)
    model_retry_base_s: float = 1.0
    """First start with no model at hand: the first wait before asking the server again."""
    model_retry_max_s: float = 60.0
    """... and the longest (the waits double up to it, with jitter)."""

    @property
    def model_cache_dir(self) -> Path:
        return self.model_cache or self.outbox_path.parent / "models"


@dataclass
class AgentSummary:
    """What a run did, for the CLI's closing summary.

    ``left_images`` counts every image still held (ready, or waiting for its record);
    ``dead_letters`` is the outbox's lifetime count, ``dead_letters_run`` this run's;
    ``evicted_*`` are this run's evictions under the size cap; ``failure`` says why the
    pipeline stopped early with an exception (its traceback is logged).
    """

    pipeline: PipelineSummary | None
    uploaded: int
    duplicates: int
    images_uploaded: int
    left_records: int
    left_images: int
    dead_letters: int
    drained: bool
    model_version: str
    model_error: str | None
    dead_letters_run: int = 0
    evicted_records: int = 0
    evicted_images: int = 0
    failure: str | None = None
    rejected: str | None = None
    """Why the server refused the device's credentials (401/403): the run ended at once."""


class SharedModel:
    """One loaded detector for several cameras and the one watcher that replaces it.

    The watcher's new detector goes to every subscribed pipeline. The owner of the shared model
    starts and stops the watcher; the agents only read it.
    """

    def __init__(self, watcher: ModelWatcher, detector: Detector) -> None:
        self.watcher = watcher
        self.detector = detector
        self._swaps: list[Callable[[Detector], None]] = []
        self._lock = threading.Lock()
        watcher.on_new = self._swap

    def subscribe(self, swap: Callable[[Detector], None], running: Detector) -> None:
        """Send every new detector to ``swap`` (a pipeline's, now ``running`` that one); one
        that came in since the pipeline was built goes at once."""
        with self._lock:
            self._swaps.append(swap)
            if self.detector is not running:
                swap(self.detector)

    def _swap(self, detector: Detector) -> None:
        with self._lock:
            self.detector = detector
            swaps = list(self._swaps)
        for swap in swaps:
            swap(detector)


class Agent:
    """One camera's agent. :meth:`run` blocks until the source ends, ``max_frames`` or stop."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        client: httpx.Client | None = None,
        announce: Callable[[str], None] | None = None,
        shared: SharedModel | None = None,
    ) -> None:
        """``announce`` receives one line per loaded model: its backend, precision and why.
        ``shared``: run that model (its watcher brings updates) instead of loading one."""
        self.config = config
        self.shared = shared
        self._announce = announce
        self.client = client or httpx.Client(
            base_url=config.server,
            headers={"Authorization": f"Bearer {config.token}"},
            timeout=config.request_timeout_s,
        )
        self._owns_client = client is None
        self._stopping = threading.Event()
        self._abort_drain = threading.Event()
        self.pipeline: Pipeline | None = None
        self.uploader: Uploader | None = None
        self.watcher: ModelWatcher | None = None

    def stop(self) -> None:
        """First call: stop taking frames and drain. Second call: stop draining too."""
        if self._stopping.is_set():
            self._abort_drain.set()
            if self.uploader is not None:
                self.uploader.stop(timeout=0)
        self._stopping.set()
        if self.pipeline is not None:
            self.pipeline.stop()

    def _end_rejected(self) -> None:
        """The server refused this device: stop taking frames and do not wait to drain (no
        retry can deliver them; they stay in the outbox)."""
        self._abort_drain.set()
        self.stop()

    def load(self, path: Path, version: str) -> Detector:
        c = self.config
        detector = load_detector(
            path,
            backend=c.backend,
            precision=c.precision,
            conf=c.conf,
            version=version,
            threads=c.threads,
            streams=c.streams,
            imgsz=c.imgsz,
        )
        info = detector.info
        streams = info.extra.get("streams", "1")
        line = (
            f"model {version} at {info.imgsz_hw[1]}x{info.imgsz_hw[0]} on "
            f"{info.extra.get('choice', '')}"
            + (f"; {streams} frames in flight (--streams)" if streams != "1" else "")
        )
        log.info("%s", line)
        if self._announce is not None:
            self._announce(line)
        return detector

    def probe(self, watcher: ModelWatcher) -> tuple[ProductionModel | None, Exception | None]:
        """Ask the server for its production model once at start, and say plainly what is wrong.

        A URL that is not a visionloop server raises (a person must fix the flag); a refused
        token or an unreachable server is logged and the run goes on, buffering in the outbox.
        """
        try:
            return watcher.production(), None
        except NotFoundError:
            raise
        except AuthenticationError as exc:
            log.error("%s; records are kept in the outbox meanwhile", exc)
            return None, exc
        except (httpx.HTTPError, VisionloopError) as exc:
            log.warning(
                "server %s unreachable (%s: %s); records are kept in the outbox until it answers",
                self.config.server,
                type(exc).__name__,
                exc,
            )
            return None, exc

    def initial_detector(
        self,
        watcher: ModelWatcher,
        production: ProductionModel | None,
        problem: Exception | None,
    ) -> Detector:
        """The model to start on: ``--model``, else the server's production, else the cache."""
        c = self.config
        if c.model is not None:
            return self.load(c.model, f"local-{sha256_file(c.model)[:12]}")
        try:
            if problem is not None:
                raise problem
            return self._production_detector(watcher, production)
        except (httpx.HTTPError, VisionloopError) as exc:
            cached = offline_model(c.model_cache_dir)
            if cached is None:
                _raise_if_permanent(exc)
                return self._wait_for_production(watcher, exc)
            path, version = cached
            log.warning("no model from the server (%s); starting on cached model %s", exc, version)
            watcher.error = f"{type(exc).__name__}: {exc}"[:2000]
            return self.load(path, version)

    def _wait_for_production(self, watcher: ModelWatcher, problem: Exception) -> Detector:
        """First start, no model at hand and the server out of reach: ask again with
        exponential backoff (doubling from ``model_retry_base_s`` up to ``model_retry_max_s``,
        each wait between half and all of that, so a fleet that lost its server together does
        not come back in step), one log line per attempt, until the model is loaded or the
        agent is stopped. A refused token, a URL that is not a visionloop server or a server
        without a production model end it at once: waiting cannot mend those.
        """
        c = self.config
        rng = random.Random(c.seed)
        attempt = 0
        while True:
            cap = min(c.model_retry_max_s, c.model_retry_base_s * 2**attempt)
            wait_s = rng.uniform(cap / 2, cap)
            attempt += 1
            log.warning(
                "no model yet: the production model from %s failed (%s); attempt %d in %.1f s",
                c.server,
                _one_line(problem),
                attempt + 1,
                wait_s,
            )
            if self._stopping.wait(wait_s):
                raise ModelError(
                    f"stopped before the production model could be fetched: {_one_line(problem)}"
                )
            try:
                detector = self._production_detector(watcher, watcher.production())
            except (httpx.HTTPError, VisionloopError) as exc:
                _raise_if_permanent(exc)
                problem = exc
                continue
            watcher.error = None
            return detector

    def _production_detector(
        self, watcher: ModelWatcher, production: ProductionModel | None
    ) -> Detector:
        """The server's production model, fetched (or found in the cache) and loaded."""
        if production is None:
            raise ModelError(
                "the server has no production model yet: pass --model PATH to run a local one"
            )
        path = watcher.fetch(production)
        detector = self.load(path, production.version)
        watcher.current = production
        return detector

    def run(self) -> AgentSummary:
        c = self.config
        outbox = Outbox(
            c.outbox_path, max_bytes=c.outbox_max_bytes, owner=OutboxOwner.of(c.server, c.token)
        )
        uploader: Uploader | None = None
        watcher: ModelWatcher | None = None
        try:
            at_start = outbox.counters()
            detector: Detector | None
            if self.shared is not None:
                watcher = self.shared.watcher
                detector = self.shared.detector if c.max_frames != 0 else None
            else:
                watcher = ModelWatcher(
                    self.client, cache_dir=c.model_cache_dir, load=self.load, poll_s=c.model_poll_s
                )
                production, problem = self.probe(watcher)
                detector = (
                    self.initial_detector(watcher, production, problem)
                    if c.max_frames != 0
                    else None
                )
            self.watcher = watcher
            owns_watcher = self.shared is None
            pipeline_summary: PipelineSummary | None = None
            pipeline: Pipeline | None = None
            if detector is not None:
                from visionloop.vision.sources import open_source

                source = open_source(c.source, seed=c.seed or 0, size_wh=c.source_size_wh)
                pipeline = Pipeline(
                    source,
                    detector,
                    outbox,
                    Sampler(c.sampler, seed=c.seed),
                    max_frames=c.max_frames,
                    fps_limit=c.fps_limit,
                )
                self.pipeline = pipeline
                if self.shared is not None:
                    self.shared.subscribe(pipeline.swap, detector)
                else:
                    watcher.on_new = pipeline.swap
            running = pipeline
            model_watcher = watcher
            uploader = Uploader(
                outbox,
                self.client,
                heartbeat=(
                    (lambda: running.heartbeat(model_error=model_watcher.error))
                    if running is not None
                    else None
                ),
                on_answer=running.sampler.follow if running is not None else None,
                on_rejected=lambda _why: self._end_rejected(),
                config=c.sync,
                seed=c.seed,
            )
            self.uploader = uploader
            uploader.start()
            failure: str | None = None
            if pipeline is not None:
                if c.model is None and owns_watcher:
                    watcher.start()
                if self._stopping.is_set():
                    pipeline.stop()
                started = time.perf_counter()
                try:
                    pipeline_summary = pipeline.run()
                except Exception as exc:  # committed records must still go out: drain, then report
                    failure = f"{type(exc).__name__}: {exc}"
                    log.error("the pipeline stopped: %s", failure, exc_info=exc)
                    pipeline_summary = pipeline.summary(time.perf_counter() - started)
                finally:
                    if owns_watcher:
                        watcher.stop()
                    pipeline.source.close()
            drained = False
            if not self._abort_drain.is_set():
                drained = uploader.drain(c.drain_timeout_s)
            uploader.stop(timeout=c.request_timeout_s + 5.0)
            if pipeline is not None and drained:
                uploader.send_heartbeat()
            backlog = outbox.backlog()
            counters = outbox.counters()
            return AgentSummary(
                pipeline=pipeline_summary,
                uploaded=uploader.stats.uploaded,
                duplicates=uploader.stats.duplicates,
                images_uploaded=uploader.stats.images_uploaded,
                left_records=backlog.records,
                left_images=backlog.images_total,
                dead_letters=counters["dead_letters"],
                drained=drained,
                model_version=pipeline.model_version if pipeline is not None else "",
                model_error=watcher.error,
                dead_letters_run=uploader.stats.dead_letters,
                evicted_records=counters["evicted_records"] - at_start["evicted_records"],
                evicted_images=counters["evicted_images"] - at_start["evicted_images"],
                failure=failure,
                rejected=uploader.rejected,
            )
        finally:
            # The uploader goes first: it must never use a closed outbox or client.
            if uploader is not None and not uploader.stop(timeout=c.request_timeout_s + 5.0):
                log.error("the uploader did not stop in time; closing the outbox under it")
            if watcher is not None and self.shared is None:
                watcher.stop()
            outbox.close()
            if self._owns_client:
                self.client.close()


def _raise_if_permanent(exc: Exception) -> None:
    """Raise for a failure waiting cannot mend: a refused token (``AuthenticationError``, the
    CLI exits 4) or anything but the network (refused, dropped, timed out) and a server that
    said to come back later (5xx, 408, 429)."""
    if isinstance(exc, AuthenticationError):
        raise AuthenticationError(f"cannot get the production model: {exc}") from exc
    if not isinstance(exc, httpx.TransportError | UnavailableError):
        raise ModelError(f"cannot get the production model: {exc}") from exc


def _one_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def offline_model(cache_dir: Path) -> tuple[Path, str] | None:
    """The cached model to start on without the server, and its version.

    The one the server last announced as production (``production.json``), when its file is in
    the cache and intact: after a rollback that is the older version, not the newest download.
    Otherwise the most recently fetched file.
    """
    known = last_production(cache_dir)
    if known is not None:
        version, sha256 = known
        path = cached_path(cache_dir, version, sha256)
        if path.is_file() and sha256_file(path) == sha256:
            return path, version
        log.warning(
            "the last known production model %s is not in the cache (%s); using the newest one",
            version,
            cache_dir,
        )
    return _newest_cached(cache_dir)


def _newest_cached(cache_dir: Path) -> tuple[Path, str] | None:
    """The most recently fetched model in the cache and its version (``<version>-<sha16>.onnx``)."""
    if not cache_dir.is_dir():
        return None
    files = sorted(cache_dir.glob("*.onnx"), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in files:
        if path.name.startswith("."):
            continue
        version, _, _ = path.stem.rpartition("-")
        if version:
            return path, version
    return None
