"""Settings: read from a clean environment in tests, unknown ``VISIONLOOP_*`` names refused, the
job timing settings checked against each other with the variable named."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from visionloop.cli import app
from visionloop.config import Settings

OUTER_URI = "http://mlflow.invalid:5000"


def test_settings_do_not_see_the_developers_environment() -> None:
    # Run with VISIONLOOP_MLFLOW_TRACKING_URI exported outside pytest (the next test does so):
    # the autouse fixture in tests/conftest.py hides it, so the local default is used.
    assert "VISIONLOOP_MLFLOW_TRACKING_URI" not in os.environ
    assert not any(k.startswith("MLFLOW_") for k in os.environ)
    assert Settings().mlflow_tracking_uri.startswith("sqlite:")


def test_an_exported_variable_does_not_reach_the_tests() -> None:
    env = {
        **os.environ,
        "VISIONLOOP_MLFLOW_TRACKING_URI": OUTER_URI,
        "MLFLOW_TRACKING_URI": OUTER_URI,
    }
    test = f"{Path(__file__)}::test_settings_do_not_see_the_developers_environment"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test],
        env=env,
        cwd=Path(__file__).parents[1],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "VISIONLOOP_DATABASE_UR",
            "unknown setting VISIONLOOP_DATABASE_UR (did you mean VISIONLOOP_DATABASE_URL?)",
        ),
        (
            "VISIONLOOP_DATADIR",
            "unknown setting VISIONLOOP_DATADIR (did you mean VISIONLOOP_DATA_DIR?)",
        ),
        ("visionloop_cookie_secur", "(did you mean VISIONLOOP_COOKIE_SECURE?)"),
        ("VISIONLOOP_XYZZY", "unknown setting VISIONLOOP_XYZZY"),
    ],
    ids=["typo", "missing-underscore", "lower-case", "nothing-close"],
)
def test_an_unknown_variable_is_an_error_naming_the_closest(
    monkeypatch: pytest.MonkeyPatch, name: str, expected: str
) -> None:
    monkeypatch.setenv(name, "x")
    with pytest.raises(ValidationError) as info:
        Settings()
    assert expected in str(info.value)
    if "XYZZY" in name:
        assert "did you mean" not in str(info.value)


def test_every_field_has_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    # The valid names come from the fields themselves: setting each one is accepted.
    for name in Settings.env_names():
        monkeypatch.setenv(name, os.environ.get(name, ""))
    assert {n.removeprefix("VISIONLOOP_").lower() for n in Settings.env_names()} == set(
        Settings.model_fields
    )
    assert Settings.unknown_env_names(os.environ) == []


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("mysql://u@h/db", None),
        ("postgresql+asyncpg://u@h/db", None),
        ("/tmp/x.db", None),
    ],
)
def test_database_urls(tmp_path: Path, url: str, ok: str | None) -> None:
    if ok is None:
        with pytest.raises(ValidationError, match="not a supported database URL"):
            Settings(data_dir=tmp_path, database_url=url)
    else:
        assert Settings(data_dir=tmp_path, database_url=url).database_url == ok


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"VISIONLOOP_JOB_LEASE_SECONDS": "6", "VISIONLOOP_JOB_HEARTBEAT_SECONDS": "3"},
            "VISIONLOOP_JOB_HEARTBEAT_SECONDS: must be under a third of "
            "VISIONLOOP_JOB_LEASE_SECONDS (6)",
        ),
        (
            {"VISIONLOOP_JOB_HEARTBEAT_SECONDS": "30"},
            "VISIONLOOP_JOB_HEARTBEAT_SECONDS: Input should be less than or equal to 5",
        ),
        ({"VISIONLOOP_JOB_MAX_ATTEMPTS": "0"}, "VISIONLOOP_JOB_MAX_ATTEMPTS: Input should be"),
    ],
    ids=["heartbeat-vs-lease", "heartbeat-too-slow-to-cancel", "no-attempts"],
)
def test_bad_job_settings_name_the_variable(
    env: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(app, ["jobs", "list"])
    assert result.exit_code == 2
    assert message in result.output


def test_every_path_is_absolute_once_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A relative data dir (the default ./var) and relative paths beside it are resolved against
    the working directory when the settings are read: a later chdir changes nothing."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VISIONLOOP_GOLDEN_SET", "golden")
    settings = Settings()
    assert settings.data_dir == tmp_path / "var"
    assert settings.blobs_path == tmp_path / "var" / "blobs"
    assert settings.golden_set_path == tmp_path / "golden"
    assert settings.database_url == f"sqlite:///{tmp_path}/var/visionloop.db"
    assert settings.mlflow_tracking_uri == f"sqlite:///{tmp_path}/var/mlflow.db"
    assert settings.mlflow_artifacts_path == tmp_path / "var" / "mlartifacts"
    monkeypatch.setenv("VISIONLOOP_DATABASE_URL", "sqlite:///db/v.db?timeout=5")
    monkeypatch.setenv("VISIONLOOP_MLFLOW_TRACKING_URI", "sqlite:///ml.db")
    monkeypatch.setenv("VISIONLOOP_BLOB_DIR", "~/blobs")
    other = Settings()
    assert other.database_url == f"sqlite:///{tmp_path}/db/v.db?timeout=5"
    assert other.mlflow_tracking_uri == f"sqlite:///{tmp_path}/ml.db"
    assert other.blobs_path == Path.home() / "blobs"
