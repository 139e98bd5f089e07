"""Settings for every visionloop command, read once from the environment (prefix VISIONLOOP_)."""

from __future__ import annotations

import difflib
import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "VISIONLOOP_"
SUPPORTED_DATABASE_SCHEMES = ("sqlite", "sqlite+pysqlite", "postgresql+psycopg")

# How the server orders review tasks (visionloop.server.labeling_strategy documents each).
LabelingStrategy = Literal["uncertainty", "random", "hybrid"]


def parse_recall_floors(text: str) -> dict[str, float]:
    """``"crack=0.9, dent=0.8"`` -> ``{"crack": 0.9, "dent": 0.8}``; ValueError names a bad
    entry (a floor is in 0..1)."""
    floors: dict[str, float] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, sep, raw = item.partition("=")
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if not sep or not name.strip() or not 0.0 <= value <= 1.0:
            raise ValueError(f"{item!r} is not NAME=VALUE with VALUE in 0..1 (crack=0.9)")
        floors[name.strip()] = value
    return floors


def absolute(path: Path) -> Path:
    """``path`` with ``~`` expanded, made absolute against the working directory now (symlinks
    are kept: a data dir that is a link stays one)."""
    return Path(os.path.abspath(path.expanduser()))


def absolute_sqlite_url(url: str) -> str:
    """A ``sqlite:///relative/path`` URL made absolute (``sqlite:////abs``); other URLs as they
    are (``sqlite://`` and ``:memory:`` stay in memory)."""
    scheme, sep, rest = url.partition(":///")
    if not sep or not scheme.lower().startswith("sqlite") or rest.startswith("/"):
        return url
    if not rest or rest.startswith(":memory:") or rest.startswith("file:"):
        return url
    path, query_sep, query = rest.partition("?")
    return f"{scheme}:///{absolute(Path(path))}{query_sep}{query}"


def parse_trusted_proxies(text: str) -> list[str]:
    """``"127.0.0.1, 10.0.0.0/8"`` -> ``["127.0.0.1", "10.0.0.0/8"]``; ValueError names an entry
    that is neither an address nor a network."""
    entries = [item.strip() for item in text.split(",") if item.strip()]
    for item in entries:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f"{item!r} is not an address or a CIDR network") from None
    return entries


class Settings(BaseSettings):
    """The one settings tree. Every field can be set as ``VISIONLOOP_<FIELD>`` in the environment.

    Paths left unset are derived from ``data_dir`` so that one variable moves the whole store.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")

    data_dir: Path = Field(
        default=Path("./var"),
        description="Folder for the default SQLite database, blobs and the local MLflow store.",
    )
    database_url: str = Field(
        default="",
        description=(
            "SQLAlchemy URL of the server database. Empty means "
            "sqlite:///<data_dir>/visionloop.db; postgresql+psycopg://user@host/db switches to "
            "PostgreSQL."
        ),
    )
    blob_dir: Path | None = Field(
        default=None,
        description="Folder for stored frame images (content-addressed). Default <data_dir>/blobs.",
    )
    mlflow_tracking_uri: str = Field(
        default="",
        description=(
            "MLflow tracking and registry URI. Empty means a local store: "
            "sqlite:///<data_dir>/mlflow.db with artifacts under <data_dir>/mlartifacts; "
            "http://host:port points at an MLflow server."
        ),
    )
    registered_model_name: str = Field(
        default="visionloop-detector",
        description="Name of the registered model in the MLflow registry.",
    )
    session_ttl_hours: float = Field(
        default=12.0, gt=0, description="Lifetime of a signed-in person's session cookie, in hours."
    )
    cookie_secure: bool = Field(
        default=False,
        description="Mark the session cookie Secure (set true when the server is behind HTTPS).",
    )
    session_idle_minutes: float = Field(
        default=60.0,
        gt=0,
        description=(
            "A session unused for this many minutes ends (beside the absolute lifetime, "
            "session_ttl_hours)."
        ),
    )
    login_name_free_failures: int = Field(
        default=5,
        gt=0,
        description=(
            "Failed sign-ins for one user name (from any address) before each further attempt "
            "on that name waits: 1 s, then twice as long after each failure, up to "
            "login_name_max_delay_s. Other names are not affected."
        ),
    )
    login_name_max_delay_s: int = Field(
        default=300,
        gt=0,
        description="The longest wait between attempts on one user name under attack, in s.",
    )
    login_address_failures_per_hour: int = Field(
        default=100,
        gt=0,
        description=(
            "Failed sign-ins allowed from one client address within an hour (any names); more "
            "are refused (429, Retry-After) until the oldest leaves the hour."
        ),
    )
    trusted_proxies: str = Field(
        default="",
        max_length=2000,
        description=(
            "Addresses or CIDR networks of reverse proxies whose X-Forwarded-For and "
            "X-Forwarded-Proto are believed, comma-separated (127.0.0.1,10.0.0.0/8). Empty: "
            "the headers are ignored and the client is the connecting address."
        ),
    )
    max_batch_frames: int = Field(
        default=1000, gt=0, description="Most frames one ingest request may carry."
    )
    max_batch_bytes: int = Field(
        default=8 * 1024 * 1024, gt=0, description="Largest ingest request body, in bytes."
    )
    max_image_bytes: int = Field(
        default=10 * 1024 * 1024, gt=0, description="Largest frame image upload, in bytes."
    )
    edge_token: SecretStr | None = Field(
        default=None,
        description=(
            "The device token `visionloop edge` uses when neither --token nor --token-file is "
            "given (so the token need not appear in the process list)."
        ),
    )
    labeling_lease_seconds: int = Field(
        default=600,
        gt=0,
        description=(
            "How long a reviewer holds a leased labeling task, in seconds; afterwards the task is "
            "open to others again."
        ),
    )
    labeling_strategy: LabelingStrategy = Field(
        default="uncertainty",
        description=(
            "Which review tasks come first: uncertainty (most uncertain predictions), random, or "
            "hybrid (uncertainty minus a near-duplicate penalty plus a rare-class bonus)."
        ),
    )
    labeling_duplicate_bits: int = Field(
        default=5,
        ge=-1,
        le=64,
        description=(
            "A sampled frame whose image's dHash is at most this many bits from an open, leased "
            "or recently done task of the same device is not queued (counted per device as a "
            "duplicate instead). -1: off. Measured on the synthetic line: the same frame "
            "re-encoded differs by 0-8 bits (median 1), the next frame by 4-12 (median 8), "
            "frames 10 or more apart by 14 or more."
        ),
    )
    labeling_duplicate_window_s: float = Field(
        default=3600.0,
        ge=0,
        description=(
            "How long, in seconds, a done task still suppresses its near-duplicates (open and "
            "leased tasks always do)."
        ),
    )
    labeling_max_open_per_device: int = Field(
        default=500,
        ge=0,
        description=(
            "Most open automatic tasks per device: past it the lowest-priority ones expire "
            "(status expired, counted; their frames are kept). 0: no cap. Manual tasks are "
            "never expired."
        ),
    )
    labeling_age_hours: float = Field(
        default=6.0,
        ge=0,
        description=(
            "The age term: a task created this many hours later gets 1 more priority (the "
            "whole uncertainty range), so recent frames outrank the backlog. 0: off."
        ),
    )
    labeling_drift_age_hours: float = Field(
        default=0.5,
        ge=0,
        description=(
            "The same, stronger, while any drift alarm is open: frames from after the drift "
            "come first. 0: the same as labeling_age_hours."
        ),
    )
    labeling_audit_share: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description=(
            "Share of labeling leases that take the oldest open audit task first, so that the "
            "miss-rate estimate keeps getting random frames."
        ),
    )

    job_lease_seconds: float = Field(
        default=60.0,
        gt=0,
        description=(
            "A running job whose worker has not heartbeaten for this many seconds is taken over "
            "by another worker (attempts + 1; failed once max_attempts is used up)."
        ),
    )
    job_heartbeat_seconds: float = Field(
        default=2.0,
        gt=0,
        le=5,
        description=(
            "How often a worker records a running job's heartbeat, progress and log, and looks for "
            "a cancel request (a cancelled job stops within this plus 3 s). Under a third of "
            "job_lease_seconds."
        ),
    )
    job_poll_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How often an idle worker looks for a queued job and for due periodic work.",
    )
    job_max_attempts: int = Field(
        default=3,
        ge=1,
        description=(
            "Default number of times a job is started before it is failed, counting takeovers "
            "after a worker died."
        ),
    )

    drift_interval: float = Field(
        default=300.0,
        gt=0,
        description=(
            "Seconds between drift checks: every interval a worker queues one drift_check job "
            "for the devices that sent frames since the last interval."
        ),
    )
    drift_window: int = Field(
        default=5000,
        ge=30,
        le=100_000,
        description=(
            "Frames in a drift check's current window (the device's latest frames); also the "
            "size of the automatic reference window. The check thins each window by its "
            "decorrelation lag before the tests, so the window must span many times that lag "
            "(the synthetic line's is ~100 frames: 5,000 give ~50 independent frames; see the "
            "README's Drift monitoring)."
        ),
    )
    drift_alarm_share: float = Field(
        default=0.4,
        gt=0,
        le=1,
        description=(
            "A check is drifted when at least this share of the features drifted (Evidently's "
            "per-feature tests decide each one). 0.4 = 4 of the 9 features: blur and noise "
            "drift 4 (benchmarks/drift.py)."
        ),
    )
    drift_alarm_consecutive: int = Field(
        default=2,
        ge=1,
        le=100,
        description=(
            "A device's drift alarm opens after this many drifted checks in a row and closes "
            "after this many clean ones."
        ),
    )
    drift_sampling_factor: float = Field(
        default=10.0,
        ge=1,
        le=1000,
        description=(
            "While a device's drift alarm is open its heartbeat answer asks it to multiply its "
            "audit sampling rate by this factor (its per-minute cap still holds)."
        ),
    )
    alert_webhook_url: str | None = Field(
        default=None,
        max_length=2000,
        description=(
            "If set, drift alarm open and close events are POSTed here as JSON (by a job, "
            "retried, never blocking the check)."
        ),
    )

    retrain_min_labels: int = Field(
        default=200,
        ge=1,
        description=(
            "The retraining policy queues a train job once this many frames were reviewed since "
            "the last training's data was cut (the production model's, or the last train job's)."
        ),
    )
    retrain_drift_min_labels: int = Field(
        default=50,
        ge=1,
        description="The same threshold while a drift alarm is on (fewer labels suffice).",
    )
    retrain_policy_interval: float = Field(
        default=60.0,
        gt=0,
        le=86400,
        description="Seconds between two checks of the retraining policy by the workers.",
    )
    retrain_cooldown: float = Field(
        default=3600.0,
        ge=0,
        description=(
            "Least time in seconds between two automatic train jobs (after the last one was "
            "queued); a person's trigger ignores it."
        ),
    )
    retrain_auto_promote: bool = Field(
        default=True,
        description="A candidate that passes the promotion gate becomes production at once.",
    )
    retrain_epochs: int = Field(default=3, ge=1, le=1000, description="Fine-tuning epochs.")
    retrain_imgsz: int = Field(
        default=640,
        ge=32,
        le=4096,
        multiple_of=32,
        description="Fine-tuning and export image size (pixels, square, a multiple of 32).",
    )
    retrain_freeze: int = Field(
        default=0,
        ge=0,
        le=50,
        description=(
            "Layers frozen while fine-tuning (0: none, the default; 10: the whole YOLO11 "
            "backbone). Measured on 200 blurred labels at 640, 3 epochs: 0 reached drifted-test "
            "mAP50 0.908 against 0.821 for 10, the golden set unchanged (docs/loop.md)."
        ),
    )
    retrain_replay: float = Field(
        default=1.0,
        ge=0,
        le=20,
        description=(
            "Replay images of the production model's earlier training data added per new "
            "training image, so that the model does not forget nominal parts."
        ),
    )
    retrain_batch: int = Field(default=16, ge=1, le=1024, description="Fine-tuning batch size.")
    retrain_device: str = Field(
        default="cpu",
        max_length=32,
        description="Where train jobs train: cpu, or a CUDA device index such as 0.",
    )
    retrain_quantize: bool = Field(
        default=True,
        description=(
            "Quantize each candidate a train job registers to INT8 (OpenVINO + NNCF, when "
            "installed), checked against fp32 on the golden set before any promotion; off "
            "saves its seconds (the job result's seconds.quantize) in every round."
        ),
    )
    golden_set: Path | None = Field(
        default=None,
        description=(
            "A fixed labeled YOLO dataset folder every candidate and the production model are "
            "evaluated on (its test split). Default <data_dir>/golden, which visionloop demo "
            "writes from the synthetic line (nominal, seed 1) when it is missing."
        ),
    )
    gate_max_golden_drop: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="Most mAP50 a candidate may lose against production on the golden set.",
    )
    gate_max_recent_drop: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description=(
            "Most mAP50 a candidate may lose against production on the recent held-out slice "
            "(0: at least production's)."
        ),
    )
    gate_min_recent_images: int = Field(
        default=30,
        ge=0,
        le=100_000,
        description=(
            "Least images a gate rule judges on (the recent held-out slice, the golden set): "
            "below it the rule is not judged and the candidate is only staged, never promoted "
            "automatically. 0: no minimum (the demo's fast configuration). Chosen from the "
            "bootstrap's measured coverage and width (README, Promotion gate)."
        ),
    )
    gate_promote_on: Literal["better", "no_worse"] = Field(
        default="better",
        description=(
            "The recent-set verdict automatic promotion needs: better (the bootstrap interval "
            "of candidate minus production mAP50 is above 0) or no_worse (it includes 0; the "
            "demo's fast configuration, whose one-epoch model need not be better)."
        ),
    )
    gate_recall_floors: str = Field(
        default="",
        max_length=2000,
        description=(
            "Per-class recall floors on both gate sets, comma-separated NAME=VALUE (crack=0.9)."
        ),
    )

    @field_validator("gate_recall_floors")
    @classmethod
    def _floors(cls, value: str) -> str:
        parse_recall_floors(value)
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: str) -> str:
        parse_trusted_proxies(value)
        return value

    @field_validator("job_heartbeat_seconds")
    @classmethod
    def _heartbeat_within_lease(cls, value: float, info: ValidationInfo) -> float:
        lease = info.data.get("job_lease_seconds")
        if lease is not None and value * 3 > lease:
            raise ValueError(
                f"must be under a third of VISIONLOOP_JOB_LEASE_SECONDS ({lease:g}), so that a "
                "live worker never loses its job to a takeover"
            )
        return value

    @classmethod
    def env_names(cls) -> set[str]:
        """Every environment variable that sets a field (upper case), derived from the fields."""
        names: set[str] = set()
        for name, field in cls.model_fields.items():
            alias = field.validation_alias
            if isinstance(alias, str):
                names.add(alias.upper())
            elif isinstance(alias, AliasChoices):
                names.update(c.upper() for c in alias.choices if isinstance(c, str))
            else:
                names.add(f"{ENV_PREFIX}{name}".upper())
        return names

    @classmethod
    def unknown_env_names(cls, environ: Mapping[str, str]) -> list[str]:
        """The ``VISIONLOOP_*`` variables of ``environ`` that set nothing (typos, old names)."""
        known = cls.env_names()
        return sorted(
            k for k in environ if k.upper().startswith(ENV_PREFIX) and k.upper() not in known
        )

    @model_validator(mode="before")
    @classmethod
    def _no_unknown_env(cls, data: Any) -> Any:
        # pydantic-settings ignores prefixed variables that match no field; a typo such as
        # VISIONLOOP_DATABASE_UR would silently leave the default in place.
        unknown = cls.unknown_env_names(os.environ)
        if unknown:
            # Compared without the shared prefix, which would make every name look close.
            known = {n.removeprefix(ENV_PREFIX): n for n in cls.env_names()}
            problems = []
            for name in unknown:
                bare = name.upper().removeprefix(ENV_PREFIX)
                close = difflib.get_close_matches(bare, sorted(known), n=1)
                hint = f" (did you mean {known[close[0]]}?)" if close else ""
                problems.append(f"unknown setting {name}{hint}")
            raise ValueError("; ".join(problems))
        return data

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        if not value:
            return value
        scheme, sep, rest = value.partition("://")
        if sep and scheme.lower() in ("postgres", "postgresql"):
            # The driver we ship; SQLAlchemy's default for a bare postgresql:// is psycopg2.
            return f"postgresql+psycopg://{rest}"
        if not sep or scheme.lower() not in SUPPORTED_DATABASE_SCHEMES:
            raise ValueError(
                f"{scheme if sep else value!r} is not a supported database URL: use "
                "sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
            )
        return value

    @model_validator(mode="after")
    def _derive_paths(self) -> Settings:
        # Every path is made absolute here, once: nothing downstream depends on the working
        # directory (a relative data dir doubled itself inside a train job's data.yaml, which
        # Ultralytics resolves against the yaml's own folder).
        self.data_dir = absolute(self.data_dir)
        self.blob_dir = absolute(self.blob_dir or self.data_dir / "blobs")
        if self.golden_set is not None:
            self.golden_set = absolute(self.golden_set)
        self.database_url = absolute_sqlite_url(
            self.database_url or f"sqlite:///{self.data_dir / 'visionloop.db'}"
        )
        self.mlflow_tracking_uri = absolute_sqlite_url(
            self.mlflow_tracking_uri or f"sqlite:///{self.data_dir / 'mlflow.db'}"
        )
        return self

    @property
    def blobs_path(self) -> Path:
        """The blob folder, resolved (never None after validation)."""
        assert self.blob_dir is not None
        return self.blob_dir

    @property
    def golden_set_path(self) -> Path:
        """The golden set folder (``golden_set``, default ``<data_dir>/golden``)."""
        return self.golden_set if self.golden_set is not None else self.data_dir / "golden"

    @property
    def recall_floors(self) -> dict[str, float]:
        """``gate_recall_floors`` as class name -> floor."""
        return parse_recall_floors(self.gate_recall_floors)

    @property
    def mlflow_artifacts_path(self) -> Path:
        """Where a local MLflow store keeps artifacts."""
        return self.data_dir / "mlartifacts"
