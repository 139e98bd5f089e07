"""Model updates: poll the server's production model, download, verify, load, hand over for a swap.

The server is the edge's only door to models (``GET /api/v1/models/production``). A new version is
downloaded to a temporary file beside the cache, its sha256 checked against what the server
announced, then loaded beside the running detector; only a detector that loaded is handed to the
pipeline, which swaps between two frames. Any failure keeps the old model and is kept in
:attr:`ModelWatcher.error` for the heartbeat.

Whatever the server last said production is (version and sha256) is written to
``production.json`` in the cache as soon as the agent hears it, so an agent that starts without
the network runs that version (after a rollback, the older one), not the newest file it holds.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import httpx

from visionloop.edge.answers import credential_problem, detail, not_a_server, route_missing
from visionloop.errors import AuthenticationError, ModelError, NotFoundError, UnavailableError
from visionloop.types import Int8Artifact, ProductionModel
from visionloop.vision.detector import Detector, sha256_file
from visionloop.vision.precision import int8_dir, unpack_int8

log = logging.getLogger(__name__)

PRODUCTION_PATH = "/api/v1/models/production"
PRODUCTION_FILE = "production.json"
"""In the model cache: the last production model the server announced (version, sha256)."""

DetectorLoader = Callable[[Path, str], Detector]
"""Loads the ONNX file at a path as the given model version (backend and precision bound in)."""


class ModelWatcher:
    """Keeps the agent on the server's production model.

    ``client`` carries the server base URL and the device token. ``load`` turns a verified file
    into a detector. ``on_new`` receives each newly loaded detector (the pipeline's swap).
    """

    def __init__(
        self,
        client: httpx.Client,
        *,
        cache_dir: Path,
        load: DetectorLoader,
        on_new: Callable[[Detector], None] | None = None,
        current: ProductionModel | None = None,
        poll_s: float = 30.0,
        keep: int = 3,
    ) -> None:
        self.client = client
        self.cache_dir = cache_dir
        self.load = load
        self.on_new = on_new
        self.current = current
        self.poll_s = poll_s
        self.keep = keep
        self.error: str | None = None
        self.swaps = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def production(self) -> ProductionModel | None:
        """What the server says production is; None when it has no production model (404).

        Remembered in the cache (:func:`last_production`). Raises :class:`NotFoundError` when
        the URL is not a visionloop server's, :class:`AuthenticationError` when the server
        refuses this device, :class:`UnavailableError` when it says to come back later (a 5xx,
        408 or 429), :class:`ModelError` for any other answer.
        """
        resp = self.client.get(PRODUCTION_PATH)
        if route_missing(resp):
            raise NotFoundError(not_a_server(PRODUCTION_PATH))
        if resp.status_code == 404:
            return None
        problem = credential_problem(resp)
        if problem is not None:
            raise AuthenticationError(problem)
        if resp.status_code != 200:
            raise _answer_error(f"GET {PRODUCTION_PATH}", resp)
        model = ProductionModel.model_validate_json(resp.content)
        self._remember(model)
        return model

    def _remember(self, model: ProductionModel) -> None:
        """Write ``production.json`` (atomically) when the announced model changed."""
        known = last_production(self.cache_dir)
        if known == (model.version, model.sha256):
            return
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_dir / f".{PRODUCTION_FILE}.tmp"
        tmp.write_text(json.dumps({"version": model.version, "sha256": model.sha256}))
        os.replace(tmp, self.cache_dir / PRODUCTION_FILE)

    def fetch(self, model: ProductionModel) -> Path:
        """Download ``model`` into the cache (or reuse a cached copy) and verify its sha256.

        When the server announces an INT8 artifact it is fetched too and unpacked beside the
        ONNX file (:func:`visionloop.vision.precision.int8_dir`), where the loader finds it; a
        failing INT8 download is logged and the fp32 model still runs.
        """
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        final = cached_path(self.cache_dir, model.version, model.sha256)
        if not (final.exists() and sha256_file(final) == model.sha256):
            self._download_verified(model.download_url, final, model.sha256, model.version)
            self._prune(keep=final)
        if model.int8 is not None:
            try:
                self._fetch_int8(model.int8, final, model.version)
            except (httpx.HTTPError, ModelError, OSError) as exc:
                log.warning("model %s: no INT8 model (%s); running without", model.version, exc)
        return final

    def _fetch_int8(self, int8: Int8Artifact, onnx_path: Path, version: str) -> None:
        folder = int8_dir(onnx_path)
        marker = folder / ".sha256"
        if marker.is_file() and marker.read_text().strip() == int8.sha256:
            return
        tar = onnx_path.with_name(onnx_path.stem + ".int8.tar")
        self._download_verified(int8.download_url, tar, int8.sha256, f"{version} (INT8)")
        try:
            shutil.rmtree(folder, ignore_errors=True)
            unpack_int8(tar, folder)
            marker.write_text(int8.sha256)
        finally:
            tar.unlink(missing_ok=True)

    def _download_verified(self, url: str, final: Path, sha256: str, label: str) -> None:
        """Stream ``url`` into a temporary file beside ``final``, check its sha256, move it."""
        fd, tmp_name = tempfile.mkstemp(dir=self.cache_dir, prefix=".download-", suffix=".part")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out, self._download(url) as resp:
                if resp.status_code != 200:
                    resp.read()
                    raise _answer_error(f"download of model {label}", resp)
                for chunk in resp.iter_bytes(1 << 20):
                    out.write(chunk)
            digest = sha256_file(tmp)
            if digest != sha256:
                raise ModelError(
                    f"model {label}: sha256 {digest[:12]}… does not match the announced "
                    f"{sha256[:12]}… (corrupt or partial download)"
                )
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _download(self, url: str) -> AbstractContextManager[httpx.Response]:
        """Stream ``url``: relative or on the server, with the device token; on another host
        (a presigned object-store URL, say) without it, so the token never leaves the server."""
        target = httpx.URL(url)
        if target.is_relative_url or (
            target.host == self.client.base_url.host and target.port == self.client.base_url.port
        ):
            return self.client.stream("GET", url)
        return httpx.stream("GET", url, timeout=self.client.timeout, follow_redirects=True)

    def check_once(self) -> Detector | None:
        """Poll once; return (and hand over) a newly loaded detector, or None if nothing changed.

        Failures never raise: the old model stays and :attr:`error` says why.
        """
        try:
            model = self.production()
            if model is None or (
                self.current is not None
                and model.version == self.current.version
                and model.sha256 == self.current.sha256
                and _int8_sha(model) == _int8_sha(self.current)  # quantized since: reload
            ):
                self.error = None
                return None
            path = self.fetch(model)
            detector = self.load(path, model.version)
        except Exception as exc:  # any failure (network, checksum, a model that won't load)
            self.error = f"{type(exc).__name__}: {exc}"[:2000]
            log.warning("model update failed, keeping the current model: %s", self.error)
            return None
        log.info("model %s loaded (sha256 %s…)", model.version, model.sha256[:12])
        self.current = model
        self.error = None
        self.swaps += 1
        if self.on_new is not None:
            self.on_new(detector)
        return detector

    def start(self) -> None:
        """Poll every ``poll_s`` seconds in a background thread."""
        self._thread = threading.Thread(target=self._run, name="visionloop-models", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.check_once()

    def _prune(self, *, keep: Path) -> None:
        """Keep the newest ``keep`` cached models (the one just fetched and the last announced
        production always among them)."""
        known = last_production(self.cache_dir)
        production = cached_path(self.cache_dir, *known) if known is not None else None
        files = sorted(
            (p for p in self.cache_dir.glob("*.onnx") if p not in (keep, production)),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
        for old in files[max(self.keep - 1, 0) :]:
            old.unlink(missing_ok=True)
            shutil.rmtree(int8_dir(old), ignore_errors=True)


RETRY_LATER = frozenset({408, 429})


def _answer_error(what: str, resp: httpx.Response) -> ModelError | UnavailableError:
    """The error of an unexpected answer: one to retry later (a 5xx, 408, 429) or not."""
    message = f"{what} answered {resp.status_code}: {detail(resp)}"
    if resp.status_code >= 500 or resp.status_code in RETRY_LATER:
        return UnavailableError(message)
    return ModelError(message)


def _int8_sha(model: ProductionModel) -> str | None:
    return model.int8.sha256 if model.int8 is not None else None


def cached_path(cache_dir: Path, version: str, sha256: str) -> Path:
    """Where the cache keeps a model version: ``<version>-<sha256 prefix>.onnx``."""
    return cache_dir / f"{_safe(version)}-{sha256[:16]}.onnx"


def last_production(cache_dir: Path) -> tuple[str, str] | None:
    """The (version, sha256) the server last announced as production, if the cache knows one."""
    try:
        data = json.loads((cache_dir / PRODUCTION_FILE).read_text())
        return str(data["version"]), str(data["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _safe(version: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in version)
