"""The model registry: ONNX detector versions in MLflow 3, with ``production``/``staging`` aliases.

One registered model (``visionloop-detector`` by default) holds every version. A version is an
ONNX file logged as an artifact of an MLflow run (the training run, or a small "register" run for
a user's own export) and registered from that artifact folder. Each version carries tags:
``sha256`` and ``size_bytes`` of the ONNX file, ``file_name``, and whatever the caller adds
(``dataset_digest``, evaluation metrics such as ``map50``). Aliases, not the deprecated stages,
say which version runs where; ``promote`` records who and why on the version
(``<alias>.promoted_by`` / ``.promoted_at`` / ``.reason``) and appends to a history kept on the
registered model (tag ``<alias>.history``, a JSON list), which ``rollback`` walks back.

MLflow is imported inside the methods: it takes seconds to import and the edge agent and the
server's start-up never need it.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from visionloop.errors import ConflictError, InvalidInputError, ModelError, NotFoundError
from visionloop.shipped import BASELINE_ONNX, BASELINE_PROFILE
from visionloop.vision.detector import load_detector, sha256_file

if TYPE_CHECKING:
    from visionloop.config import Settings

log = logging.getLogger(__name__)

PRODUCTION = "production"
STAGING = "staging"
ALIASES = (PRODUCTION, STAGING)
REGISTER_EXPERIMENT = "visionloop-registry"
HISTORY_LIMIT = 50
GATE_PASSED_TAG = "gate_passed"
GATE_SUMMARY_TAG = "gate_summary"
GATE_TAG = "gate"
MAX_VERSION = 2**63 - 1
METRIC_TAGS = ("map50", "map50_95", "precision", "recall")
"""Tags read back as float metrics (plus any ``<class>_ap50`` / ``<class>_recall``)."""


@dataclass(frozen=True)
class ModelVersion:
    """One registered version: its number, aliases, file identity, metrics and tags."""

    version: str
    aliases: list[str]
    sha256: str
    size_bytes: int
    metrics: dict[str, float]
    tags: dict[str, str]
    created_at: datetime
    description: str = ""
    source: str = field(default="", repr=False)
    run_id: str = ""


def _metrics(tags: dict[str, str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in tags.items():
        if key in METRIC_TAGS or key.endswith(("_ap50", "_recall")):
            try:
                out[key] = float(value)
            except ValueError:
                continue
    return out


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Registry:
    """The MLflow model registry for visionloop detectors.

    ``tracking_uri`` is an MLflow URI (``sqlite:///…`` for a local store, ``http://…`` for a
    server). ``artifact_root`` is where new runs of a local store keep their artifacts.
    ``cache_dir`` keeps downloaded ONNX files (default: a ``visionloop-models`` temp folder).
    """

    def __init__(
        self,
        tracking_uri: str,
        name: str = "visionloop-detector",
        *,
        artifact_root: Path | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.name = name
        self.artifact_root = artifact_root
        self.cache_dir = cache_dir or Path(tempfile.gettempdir()) / "visionloop-models"
        self._client_obj: Any = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Registry:
        """The registry the settings name; a local sqlite store gets its folders created."""
        uri = settings.mlflow_tracking_uri
        artifact_root = None
        if uri.startswith("sqlite:"):
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            artifact_root = settings.mlflow_artifacts_path
        return cls(
            uri,
            settings.registered_model_name,
            artifact_root=artifact_root,
            cache_dir=settings.data_dir / "model-cache",
        )

    # --- MLflow plumbing -------------------------------------------------------------------

    @property
    def _client(self) -> Any:
        if self._client_obj is None:
            os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
            # MLflow's HTTP defaults (7 retries with backoff, 120 s timeout) would hold a server
            # request for minutes when the tracking server is down; fail within seconds instead.
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
            from mlflow.tracking import MlflowClient

            # "Creating initial MLflow database tables..." on every new local store is noise on
            # a command's stderr (where a failing command prints its one-line error).
            logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
            self._client_obj = MlflowClient(
                tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri
            )
        return self._client_obj

    def _registered(self) -> Any | None:
        from mlflow.exceptions import MlflowException

        try:
            return self._client.get_registered_model(self.name)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise

    def _alias_map(self) -> dict[str, list[str]]:
        """Version -> its aliases, from the registered model."""
        model = self._registered()
        by_version: dict[str, list[str]] = {}
        if model is not None:
            for alias, version in dict(model.aliases).items():
                by_version.setdefault(str(version), []).append(str(alias))
        return by_version

    def _to_version(self, mv: Any, aliases: list[str]) -> ModelVersion:
        tags = {str(k): str(v) for k, v in dict(mv.tags).items()}
        return ModelVersion(
            version=str(mv.version),
            aliases=sorted(aliases),
            sha256=tags.get("sha256", ""),
            size_bytes=int(tags.get("size_bytes", "0") or 0),
            metrics=_metrics(tags),
            tags=tags,
            created_at=datetime.fromtimestamp(int(mv.creation_timestamp) / 1000, UTC),
            description=str(mv.description or ""),
            source=str(mv.source),
            run_id=str(mv.run_id or ""),
        )

    def _experiment_id(self) -> str:
        found = self._client.get_experiment_by_name(REGISTER_EXPERIMENT)
        if found is not None:
            return str(found.experiment_id)
        location = self.artifact_root.resolve().as_uri() if self.artifact_root else None
        return str(self._client.create_experiment(REGISTER_EXPERIMENT, artifact_location=location))

    def _history(self, alias: str) -> list[str]:
        model = self._registered()
        raw = dict(model.tags).get(f"{alias}.history", "[]") if model is not None else "[]"
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            return []
        return [str(v) for v in value] if isinstance(value, list) else []

    def _set_history(self, alias: str, history: list[str]) -> None:
        self._client.set_registered_model_tag(
            self.name, f"{alias}.history", json.dumps(history[-HISTORY_LIMIT:])
        )

    # --- public API ------------------------------------------------------------------------

    def register(
        self,
        onnx_path: Path,
        *,
        run_id: str | None = None,
        tags: dict[str, str] | None = None,
        description: str = "",
        weights: Path | None = None,
    ) -> ModelVersion:
        """Register an ONNX detector as a new version (it must load as one: ``ModelError``).

        With ``run_id`` the file is logged into that run (reusing its ``model/<file>`` artifact
        when the run already holds the same file); without, into a new run of the
        ``visionloop-registry`` experiment. ``weights`` (the Ultralytics ``.pt`` the ONNX was
        exported from) is logged beside it under ``weights/``, so that the version can be
        fine-tuned later (a training run logs its ``best.pt`` there itself).
        """
        onnx_path = Path(onnx_path)
        detector = load_detector(onnx_path, backend="onnxruntime")
        sha = sha256_file(onnx_path)
        all_tags = {
            **(tags or {}),
            "sha256": sha,
            "size_bytes": str(onnx_path.stat().st_size),
            "file_name": onnx_path.name,
            "classes": ",".join(detector.info.names.values())[:5000],
            "imgsz": "x".join(str(v) for v in detector.info.imgsz_hw),
        }
        client = self._client
        if run_id is None:
            run = client.create_run(
                self._experiment_id(),
                run_name=f"register {onnx_path.name}",
                tags={"visionloop.kind": "register", "sha256": sha},
            )
            run_id = str(run.info.run_id)
            client.log_artifact(run_id, str(onnx_path), artifact_path="model")
            if weights is not None:
                client.log_artifact(run_id, str(weights), artifact_path="weights")
            client.set_terminated(run_id, status="FINISHED")
            folder = "model"
        else:
            folder = self._folder_with(run_id, onnx_path)
            if weights is not None:
                client.log_artifact(run_id, str(weights), artifact_path="weights")
        if weights is not None:
            all_tags["weights_file"] = Path(weights).name
        artifact_uri = str(client.get_run(run_id).info.artifact_uri).rstrip("/")
        if self._registered() is None:
            from mlflow.exceptions import MlflowException

            try:
                client.create_registered_model(
                    self.name, description="visionloop defect detector (Ultralytics ONNX)"
                )
            except MlflowException as exc:  # created meanwhile by another process
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
        mv = client.create_model_version(
            self.name,
            source=f"{artifact_uri}/{folder}",
            run_id=run_id,
            tags=all_tags,
            description=description,
        )
        log.info("registered %s as %s version %s", onnx_path, self.name, mv.version)
        return self._to_version(mv, [])

    def _folder_with(self, run_id: str, onnx_path: Path) -> str:
        """The run's artifact folder holding this file, logging it there when absent."""
        client = self._client
        size = onnx_path.stat().st_size
        for info in client.list_artifacts(run_id, "model"):
            if Path(info.path).name == onnx_path.name and info.file_size == size:
                return "model"
        client.log_artifact(run_id, str(onnx_path), artifact_path="registered_model")
        return "registered_model"

    def versions(self) -> list[ModelVersion]:
        """Every version, oldest first, with its aliases."""
        if self._registered() is None:
            return []
        aliases = self._alias_map()
        found = self._client.search_model_versions(f"name='{self.name}'")
        versions = [self._to_version(mv, aliases.get(str(mv.version), [])) for mv in found]
        return sorted(versions, key=lambda v: int(v.version))

    def get(self, version: str) -> ModelVersion:
        """One version; ``NotFoundError`` when it does not exist."""
        from mlflow.exceptions import MlflowException

        version = str(version).strip()
        # ASCII digits only ("²" is a digit to str.isdigit), and within the 64-bit integer MLflow
        # stores: anything else cannot name a version (it reached the store as a 503 before).
        if not (version.isascii() and version.isdigit()) or int(version) > MAX_VERSION:
            raise NotFoundError(f"model version {version!r} does not exist (versions are numbers)")
        try:
            mv = self._client.get_model_version(self.name, version)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                raise NotFoundError(f"model version {version} does not exist") from exc
            raise
        return self._to_version(mv, self._alias_map().get(str(mv.version), []))

    def by_alias(self, alias: str) -> ModelVersion | None:
        """The version an alias points at, or None."""
        model = self._registered()
        if model is None:
            return None
        version = dict(model.aliases).get(alias)
        return None if version is None else self.get(str(version))

    def production(self) -> ModelVersion | None:
        """The version the edge should run, or None when nothing is promoted."""
        return self.by_alias(PRODUCTION)

    def promote(
        self,
        version: str,
        *,
        alias: str = PRODUCTION,
        by: str,
        reason: str,
        force: bool = False,
    ) -> None:
        """Point ``alias`` at ``version``; record who, when and why on the version.

        A version whose promotion gate failed (tag ``gate_passed`` = ``false``) is promoted only
        with ``force`` (ConflictError otherwise); a forced promotion is recorded on the version
        (``<alias>.forced``)."""
        if alias not in ALIASES:
            raise InvalidInputError(f"alias must be one of {', '.join(ALIASES)}, got {alias!r}")
        if not by.strip():
            raise InvalidInputError("promote needs who is promoting (by)")
        target = self.get(version)
        if target.tags.get(GATE_PASSED_TAG) == "false" and not force:
            raise ConflictError(
                f"version {target.version} failed its promotion gate "
                f"({target.tags.get(GATE_SUMMARY_TAG, 'see its gate report')}): promote it "
                "with force to override"
            )
        current = self.by_alias(alias)
        history = self._history(alias)
        if current is not None and (not history or history[-1] != current.version):
            history.append(current.version)  # the alias was moved outside visionloop
        self._client.set_registered_model_alias(self.name, alias, target.version)
        if not history or history[-1] != target.version:
            history.append(target.version)
        self._set_history(alias, history)
        self._stamp(target.version, alias, action="promoted", by=by, reason=reason)
        if target.tags.get(GATE_PASSED_TAG) == "false":
            self._client.set_model_version_tag(
                self.name, target.version, f"{alias}.forced", f"{_now()} by {by}"[:5000]
            )
        log.info("%s: %s -> version %s by %s (%s)", self.name, alias, target.version, by, reason)

    def set_gate(self, version: str, report: dict[str, Any], *, run_id: str | None) -> None:
        """Store a promotion gate report on ``version``: ``gate.json`` in its run's artifacts
        (``gate/``), and the tags ``gate_passed`` (``true``/``false``), ``gate_summary`` and
        ``gate`` (the report's JSON, without the sets' per-class figures when it would not fit a
        tag otherwise; none when it still does not)."""
        text = json.dumps(report, indent=2, sort_keys=True)
        if run_id is not None:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "gate.json"
                path.write_text(text)
                self._client.log_artifact(run_id, str(path), artifact_path="gate")
        compact = json.dumps(report, separators=(",", ":"), sort_keys=True)
        if len(compact) > 5000:  # the per-class figures of both sets stay in gate.json only
            sets = {
                name: {
                    who: {k: v for k, v in brief.items() if k != "per_class"}
                    if isinstance(brief, dict)
                    else brief
                    for who, brief in entry.items()
                }
                for name, entry in dict(report.get("sets", {})).items()
            }
            compact = json.dumps({**report, "sets": sets}, separators=(",", ":"), sort_keys=True)
        tags = {
            GATE_PASSED_TAG: "true" if report.get("passed") else "false",
            GATE_SUMMARY_TAG: str(report.get("summary", ""))[:5000],
        }
        if len(compact) <= 5000:
            tags[GATE_TAG] = compact
        for key, value in tags.items():
            self._client.set_model_version_tag(self.name, version, key, value)

    def weights_path(self, version: str) -> Path | None:
        """A local path of the version's Ultralytics ``.pt`` (``weights/`` in its run's
        artifacts), downloaded into the cache; None when the version has none."""
        mv = self.get(version)
        run_id = mv.run_id
        if not run_id:
            return None
        name = mv.tags.get("weights_file", "best.pt")
        target = self.cache_dir / mv.version / name
        if target.is_file():
            return target
        import mlflow.artifacts
        from mlflow.exceptions import MlflowException

        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
                local = Path(
                    mlflow.artifacts.download_artifacts(
                        run_id=run_id,
                        artifact_path=f"weights/{name}",
                        dst_path=tmp,
                        tracking_uri=self.tracking_uri,
                    )
                )
                os.replace(local, target)
        except (MlflowException, OSError) as exc:
            log.info("version %s has no weights artifact: %s", mv.version, exc)
            return None
        return target

    def rollback(self, *, by: str, reason: str, alias: str = PRODUCTION) -> ModelVersion:
        """Move ``alias`` back to the version it pointed at before the current one."""
        current = self.by_alias(alias)
        if current is None:
            raise ConflictError(f"nothing is {alias}: there is nothing to roll back")
        history = self._history(alias)
        if not history or history[-1] != current.version:
            history.append(current.version)
        history.pop()  # the current version
        existing = {v.version for v in self.versions()}
        while history and history[-1] not in existing:
            history.pop()  # a deleted version cannot come back
        if not history:
            raise ConflictError(
                f"version {current.version} is the first {alias} version: no earlier one to "
                "roll back to"
            )
        previous = history[-1]
        self._client.set_registered_model_alias(self.name, alias, previous)
        self._set_history(alias, history)
        self._stamp(previous, alias, action="rolled_back", by=by, reason=reason)
        self._client.set_model_version_tag(
            self.name, current.version, f"{alias}.rolled_back_at", _now()
        )
        log.info(
            "%s: %s rolled back %s -> %s by %s", self.name, alias, current.version, previous, by
        )
        return self.get(previous)

    def _stamp(self, version: str, alias: str, *, action: str, by: str, reason: str) -> None:
        for key, value in (
            (f"{alias}.{action}_by", by),
            (f"{alias}.{action}_at", _now()),
            (f"{alias}.{action}_reason", reason or "-"),
        ):
            self._client.set_model_version_tag(self.name, version, key, value[:5000])

    def onnx_path(self, version: str) -> Path:
        """A local path of the version's ONNX file, downloaded into the cache when needed.

        The file is checked against the version's ``sha256`` tag; a mismatch is a
        ``ModelError`` (a corrupted or replaced artifact).
        """
        mv = self.get(version)
        if not mv.sha256:
            raise ModelError(f"version {mv.version} has no sha256 tag: not registered by us")
        target = self.cache_dir / mv.version / f"{mv.sha256}.onnx"
        if target.is_file():
            return target
        import mlflow.artifacts

        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            local = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=mv.source, dst_path=tmp, tracking_uri=self.tracking_uri
                )
            )
            candidates = [local] if local.is_file() else sorted(local.rglob("*.onnx"))
            for candidate in candidates:
                if sha256_file(candidate) == mv.sha256:
                    os.replace(candidate, target)  # atomic: concurrent readers see whole files
                    return target
        raise ModelError(f"version {mv.version}: no artifact matches its sha256 {mv.sha256[:12]}")

    def add_int8(self, version: str, tar_path: Path, tags: dict[str, str]) -> ModelVersion:
        """Store an INT8 model (:func:`visionloop.vision.precision.pack_int8`'s tar) as an
        artifact of ``version``'s run (``int8/``), with its sha256, size and evaluation as tags
        on the version. A second quantization replaces the tags (and adds the new file)."""
        mv = self.get(version)
        run_id = self._run_id(mv.version)
        sha = sha256_file(tar_path)
        client = self._client
        client.log_artifact(run_id, str(tar_path), artifact_path=f"int8/{sha[:16]}")
        all_tags = {
            **tags,
            "int8_sha256": sha,
            "int8_size_bytes": str(tar_path.stat().st_size),
            "int8_artifact": f"int8/{sha[:16]}/{tar_path.name}",
        }
        for key, value in all_tags.items():
            client.set_model_version_tag(self.name, mv.version, key, value[:5000])
        log.info("version %s: INT8 model %s stored", mv.version, sha[:12])
        return self.get(mv.version)

    def add_drift_profile(
        self, version: str, profile_path: Path, *, frames: int, source: str
    ) -> ModelVersion:
        """Store a drift reference profile (:mod:`visionloop.monitoring.profile`'s JSON) as an
        artifact of ``version``'s run (``drift/``), named by tags on the version; a second
        profile replaces the tags."""
        mv = self.get(version)
        run_id = self._run_id(mv.version)
        sha = sha256_file(profile_path)
        self._client.log_artifact(run_id, str(profile_path), artifact_path=f"drift/{sha[:16]}")
        for key, value in {
            "drift_profile_sha256": sha,
            "drift_profile_artifact": f"drift/{sha[:16]}/{profile_path.name}",
            "drift_profile_frames": str(frames),
            "drift_profile_source": source,
        }.items():
            self._client.set_model_version_tag(self.name, mv.version, key, value[:5000])
        return self.get(mv.version)

    def drift_profile_path(self, version: str) -> Path | None:
        """A local path of the version's drift profile (None when it has none), downloaded into
        the cache and checked against its ``drift_profile_sha256`` tag."""
        return self._cached_artifact(version, tag="drift_profile", suffix="drift_profile.json")

    def int8_path(self, version: str) -> Path:
        """A local path of the version's INT8 tar (``NotFoundError`` when it has none),
        downloaded into the cache and checked against its ``int8_sha256`` tag."""
        path = self._cached_artifact(version, tag="int8", suffix="int8.tar")
        if path is None:
            raise NotFoundError(
                f"version {version} has no INT8 model (visionloop models quantize {version})"
            )
        return path

    def _cached_artifact(self, version: str, *, tag: str, suffix: str) -> Path | None:
        """The artifact named by the version's ``{tag}_artifact`` tag, downloaded once into the
        cache as ``{sha}.{suffix}`` and checked against its ``{tag}_sha256`` tag; None when the
        version has no such artifact."""
        mv = self.get(version)
        sha, artifact = mv.tags.get(f"{tag}_sha256", ""), mv.tags.get(f"{tag}_artifact", "")
        if not sha or not artifact:
            return None
        target = self.cache_dir / mv.version / f"{sha}.{suffix}"
        if target.is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            local = Path(self._client.download_artifacts(self._run_id(mv.version), artifact, tmp))
            if sha256_file(local) != sha:
                raise ModelError(
                    f"version {mv.version}: the {tag.replace('_', ' ')} artifact does not match"
                    " its sha256"
                )
            os.replace(local, target)
        return target

    def _run_id(self, version: str) -> str:
        run_id = self._client.get_model_version(self.name, version).run_id
        if not run_id:
            raise ModelError(f"version {version} has no MLflow run to keep artifacts in")
        return str(run_id)


def ensure_baseline(registry: Registry, onnx_path: Path = BASELINE_ONNX) -> ModelVersion | None:
    """On an empty registry, register ``onnx_path`` and make it ``production``; and give the
    baseline version the drift reference profile shipped beside it (``drift_profile.json``)
    when it has none yet (a store from before profiles gets one too).

    Returns the new version, or None when the registry already had versions or the file is
    missing. What ``visionloop demo`` and ``visionloop simulate`` call so that a fresh store
    serves a model at once and its drift checks compare with the baseline's training data.
    """
    versions = registry.versions()
    registered = None
    if onnx_path.is_file() and not versions:
        tags = {"origin": "baseline"}
        # The model card's evaluation (eval.json beside the file): nominal-set metrics as tags.
        try:
            nominal = json.loads((onnx_path.parent / "eval.json").read_text())["nominal"]
            tags |= {k: f"{float(nominal[k]):.6f}" for k in ("map50", "map50_95") if k in nominal}
        except (OSError, ValueError, KeyError, TypeError):
            pass
        weights = onnx_path.parent / "best.pt"
        version = registry.register(
            onnx_path,
            tags=tags,
            description="the shipped baseline (its MODEL_CARD.md: `visionloop models baseline`)",
            weights=weights if weights.is_file() else None,
        )
        registry.promote(
            version.version, by="visionloop demo", reason="baseline on an empty registry"
        )
        registered = version.version
    baseline = registered or next(
        (v.version for v in versions if v.tags.get("origin") == "baseline"), None
    )
    if baseline is not None:
        _baseline_profile(registry, baseline, onnx_path.parent / BASELINE_PROFILE.name)
    return registry.get(registered) if registered else None


def _baseline_profile(registry: Registry, version: str, shipped: Path) -> None:
    """Store ``shipped`` as ``version``'s drift profile, unless it has one or is missing."""
    from visionloop.monitoring.profile import read_profile

    if not shipped.is_file() or "drift_profile_sha256" in registry.get(version).tags:
        return
    registry.add_drift_profile(
        version,
        shipped,
        frames=len(read_profile(shipped)),
        source=f"{shipped.parent} (synthetic line)",
    )
