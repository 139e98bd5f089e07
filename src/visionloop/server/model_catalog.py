"""The server's cached view of the model registry, so edge agents polling every few seconds do
not each hit MLflow.

The production answer is kept for ``ttl_s`` seconds (a promotion reaches the edge within that);
a version's ONNX path is kept for good (a registered version never changes, and the file is
checked against its sha256 when downloaded). The registry, and so MLflow, is imported on first
use, never at import or in ``create_app``.

MLflow's import and a new store's creation take seconds (13.6 s measured on a loaded 2-core
machine), so ``visionloop serve`` opens the registry in a background thread as the server starts
(:meth:`ModelCatalog.start_warming`). Meanwhile the callers that can do without the answer (the
reviewer's next task, the labeling stats, the edge's poll, which retries on a 503) do not wait
for it: they pass ``wait=False`` and get :class:`UnavailableError` at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from starlette.applications import Starlette
from starlette.requests import HTTPConnection

from visionloop.config import Settings
from visionloop.errors import UnavailableError, VisionloopError

if TYPE_CHECKING:
    from visionloop.training.registry import ModelVersion, Registry

log = logging.getLogger(__name__)

DEFAULT_TTL_S = 5.0
_T = TypeVar("_T")


def _registry_for(settings: Settings) -> Registry:
    from visionloop.training.registry import Registry

    return Registry.from_settings(settings)


class ModelCatalog:
    """Production version and version files, read through a small cache."""

    def __init__(
        self,
        settings: Settings,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        registry_factory: Callable[[Settings], Registry] = _registry_for,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._ttl_s = ttl_s
        self._factory = registry_factory
        self._clock = clock
        self._lock = threading.Lock()
        self._registry: Registry | None = None
        self._production: tuple[float, ModelVersion | None] | None = None
        self._files: dict[str, tuple[ModelVersion, Path]] = {}
        self._warming = threading.Event()
        self.registry_reads = 0
        """How many times the registry itself was asked (for tests and metrics)."""

    def _reg(self) -> Registry:
        if self._registry is None:
            self._registry = self._factory(self._settings)
        return self._registry

    def start_warming(self) -> threading.Thread:
        """Open the registry and read the production version in a background thread now, so
        that no request pays MLflow's import and start. Returns the (daemon) thread."""
        self._warming.set()  # before the thread runs: a request arriving now must not wait
        thread = threading.Thread(target=self._warm, name="visionloop-registry-warmup", daemon=True)
        thread.start()
        return thread

    def _warm(self) -> None:
        started = time.perf_counter()
        try:
            self.production()
        except Exception as exc:  # a thread of its own: say why, never die silently
            log.warning("model registry not opened at start (%s); opened on first use", exc)
        else:
            log.info("model registry opened in %.1f s", time.perf_counter() - started)
        finally:
            self._warming.clear()

    @property
    def warming(self) -> bool:
        """True while :meth:`start_warming`'s thread is still opening the registry."""
        return self._warming.is_set()

    def production(self, *, wait: bool = True) -> ModelVersion | None:
        """The production version, at most ``ttl_s`` seconds old. With ``wait=False`` a caller
        that arrives while the registry is still being opened in the background gets
        :class:`UnavailableError` at once instead of waiting for it."""
        if not wait and self._warming.is_set():
            raise UnavailableError("the model registry is still starting; retry in a few seconds")
        with self._lock:
            now = self._clock()
            if self._production is not None and now - self._production[0] < self._ttl_s:
                return self._production[1]
            version = self._guard(lambda: self._reg().production())
            self.registry_reads += 1
            self._production = (now, version)
            return version

    def version_file(self, version: str) -> tuple[ModelVersion, Path]:
        """A version and its local ONNX file (``NotFoundError`` for an unknown version)."""
        with self._lock:
            cached = self._files.get(version)
            if cached is not None and cached[1].is_file():
                return cached
            registry = self._reg()
            found = self._guard(lambda: (registry.get(version), registry.onnx_path(version)))
            self.registry_reads += 1
            self._files[version] = found
            return found

    def int8_file(self, version: str) -> tuple[ModelVersion, Path]:
        """A version and its local INT8 tar (``NotFoundError`` when it has none)."""
        with self._lock:
            key = f"int8:{version}"
            cached = self._files.get(key)
            if cached is not None and cached[1].is_file():
                return cached
            registry = self._reg()
            found = self._guard(lambda: (registry.get(version), registry.int8_path(version)))
            self.registry_reads += 1
            self._files[key] = found
            return found

    def versions(self) -> list[ModelVersion]:
        """Every registered version, oldest first (read through, not cached)."""
        return self._guard(lambda: self._reg().versions())

    def promote(
        self, version: str, *, alias: str, by: str, reason: str, force: bool
    ) -> ModelVersion:
        """``Registry.promote`` (a failed gate needs ``force``), then the cache is dropped."""
        registry = self._reg()
        self._guard(
            lambda: registry.promote(version, alias=alias, by=by, reason=reason, force=force)
        )
        self.invalidate()
        return self._guard(lambda: registry.get(version))

    def rollback(self, *, alias: str, by: str, reason: str) -> ModelVersion:
        """``Registry.rollback``, then the cache is dropped."""
        registry = self._reg()
        found = self._guard(lambda: registry.rollback(by=by, reason=reason, alias=alias))
        self.invalidate()
        return found

    def invalidate(self) -> None:
        """Forget the cached production answer (after a promotion made through this server)."""
        with self._lock:
            self._production = None

    def _guard(self, read: Callable[[], _T]) -> _T:
        """Run a registry read; a store that cannot be reached is a 503, not a 500."""
        from mlflow.exceptions import MlflowException

        try:
            return read()
        except VisionloopError:
            raise
        except (MlflowException, OSError) as exc:  # requests' errors are OSErrors
            log.warning("model registry unavailable: %s", exc)
            raise UnavailableError(f"the model registry cannot be reached: {exc}") from exc


_CREATE_LOCK = threading.Lock()


def model_catalog(conn: HTTPConnection) -> ModelCatalog:
    """The catalog of the app serving ``conn``, created on first use."""
    return catalog_of(conn.app)


def catalog_of(app: Starlette) -> ModelCatalog:
    """The catalog of ``app``, created on first use."""
    state = app.state
    catalog: ModelCatalog | None = getattr(state, "model_catalog", None)
    if catalog is None:
        with _CREATE_LOCK:
            catalog = getattr(state, "model_catalog", None)
            if catalog is None:
                catalog = ModelCatalog(state.server.settings)
                state.model_catalog = catalog
    return catalog
