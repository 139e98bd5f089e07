"""Settings for every visionloop command, read once from the environment (prefix VISIONLOOP_)."""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "VISIONLOOP_"
SUPPORTED_DATABASE_SCHEMES = ("sqlite", "sqlite+pysqlite", "postgresql+psycopg")


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
    max_batch_frames: int = Field(
        default=1000, gt=0, description="Most frames one ingest request may carry."
    )
    max_batch_bytes: int = Field(
        default=8 * 1024 * 1024, gt=0, description="Largest ingest request body, in bytes."
    )
    max_image_bytes: int = Field(
        default=10 * 1024 * 1024, gt=0, description="Largest frame image upload, in bytes."
    )

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
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'visionloop.db'}"
        if self.blob_dir is None:
            self.blob_dir = self.data_dir / "blobs"
        if not self.mlflow_tracking_uri:
            self.mlflow_tracking_uri = f"sqlite:///{self.data_dir / 'mlflow.db'}"
        return self

    @property
    def blobs_path(self) -> Path:
        """The blob folder, resolved (never None after validation)."""
        assert self.blob_dir is not None
        return self.blob_dir

    @property
    def mlflow_artifacts_path(self) -> Path:
        """Where a local MLflow store keeps artifacts."""
        return self.data_dir / "mlartifacts"
