"""The edge agent: wires source, detector, pipeline, outbox, uploader and model watcher for a run.

``visionloop edge`` builds an :class:`AgentConfig` from its flags and calls :meth:`Agent.run`;
tests build the same object with an injected ``httpx.Client`` (faults included).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from visionloop.edge.model_watch import ModelWatcher
from visionloop.edge.outbox import DEFAULT_MAX_BYTES, Outbox
from visionloop.edge.pipeline import Pipeline, PipelineSummary
from visionloop.edge.sampler import Sampler, SamplerConfig
from visionloop.edge.sync import SyncConfig, Uploader
from visionloop.errors import ModelError
from visionloop.types import BackendChoice, Precision
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
    precision: Precision = "fp32"
    imgsz: int | None = None
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
    seed: int | None = None
    source_size_wh: tuple[int, int] = (640, 480)

    @property
    def model_cache_dir(self) -> Path:
        return self.model_cache or self.outbox_path.parent / "models"


@dataclass
class AgentSummary:
    """What a run did, for the CLI's closing summary."""

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


class Agent:
    """One camera's agent. :meth:`run` blocks until the source ends, ``max_frames`` or stop."""

    def __init__(self, config: AgentConfig, *, client: httpx.Client | None = None) -> None:
        self.config = config
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

    def _load(self, path: Path, version: str) -> Detector:
        c = self.config
        return load_detector(
            path,
            backend=c.backend,
            precision=c.precision,
            conf=c.conf,
            version=version,
            threads=c.threads,
            imgsz=c.imgsz,
        )

    def _initial_detector(self, watcher: ModelWatcher) -> Detector:
        c = self.config
        if c.model is not None:
            return self._load(c.model, f"local-{sha256_file(c.model)[:12]}")
        try:
            production = watcher.production()
            if production is None:
                raise ModelError(
                    "the server has no production model yet: pass --model PATH to run a local one"
                )
            path = watcher.fetch(production)
            detector = self._load(path, production.version)
            watcher.current = production
            return detector
        except (httpx.HTTPError, ModelError) as exc:
            cached = _newest_cached(c.model_cache_dir)
            if cached is None:
                raise ModelError(f"cannot get the production model: {exc}") from exc
            path, version = cached
            log.warning("server unreachable (%s); starting on cached model %s", exc, version)
            watcher.error = f"{type(exc).__name__}: {exc}"[:2000]
            return self._load(path, version)

    def run(self) -> AgentSummary:
        c = self.config
        outbox = Outbox(c.outbox_path, max_bytes=c.outbox_max_bytes)
        try:
            watcher = ModelWatcher(
                self.client, cache_dir=c.model_cache_dir, load=self._load, poll_s=c.model_poll_s
            )
            self.watcher = watcher
            detector = self._initial_detector(watcher) if c.max_frames != 0 else None
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
                watcher.on_new = pipeline.swap
            uploader = Uploader(
                outbox,
                self.client,
                heartbeat=(
                    (lambda: pipeline.heartbeat(model_error=watcher.error))
                    if pipeline is not None
                    else None
                ),
                config=c.sync,
                seed=c.seed,
            )
            self.uploader = uploader
            uploader.start()
            if pipeline is not None:
                if c.model is None:
                    watcher.start()
                if self._stopping.is_set():
                    pipeline.stop()
                try:
                    pipeline_summary = pipeline.run()
                finally:
                    watcher.stop()
                    pipeline.source.close()
            drained = False
            if not self._abort_drain.is_set():
                drained = uploader.drain(c.drain_timeout_s)
            uploader.stop()
            if pipeline is not None and drained:
                uploader.send_heartbeat()
            backlog = outbox.backlog()
            return AgentSummary(
                pipeline=pipeline_summary,
                uploaded=uploader.stats.uploaded,
                duplicates=uploader.stats.duplicates,
                images_uploaded=uploader.stats.images_uploaded,
                left_records=backlog.records,
                left_images=backlog.images,
                dead_letters=outbox.counters()["dead_letters"],
                drained=drained,
                model_version=pipeline.model_version if pipeline is not None else "",
                model_error=watcher.error,
            )
        finally:
            outbox.close()
            if self._owns_client:
                self.client.close()


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
