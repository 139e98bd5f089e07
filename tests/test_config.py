"""Settings: the job timing settings are checked against each other, with the variable named."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from visionloop.cli import app


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"VISIONLOOP_JOB_LEASE_SECONDS": "6", "VISIONLOOP_JOB_HEARTBEAT_SECONDS": "3"},
            "VISIONLOOP_JOB_HEARTBEAT_SECONDS: Value error, must be under a third of "
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
