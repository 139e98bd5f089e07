"""Plausible mistakes get one line on stderr and a non-zero exit, never a traceback.

Each row runs the real CLI in a subprocess (``python -m visionloop``) on a temporary store. Edge
agent options (``--fps-limit``, ``--outbox-max-mb``, ``--max-frames``) have their own table in
``tests/cli/test_edge.py``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.engine import make_url

from support.db import PG_ADMIN_URL, _postgres_reachable
from support.models import write_constant_model


@dataclass(frozen=True)
class Mistake:
    id: str
    args: list[str]
    code: int
    says: str
    env: dict[str, str] = field(default_factory=dict)
    setup: Callable[[Path], None] | None = None


def run_cli(
    args: list[str], tmp_path: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``visionloop ARGS`` on a store in ``tmp_path`` (the test's environment, cleaned)."""
    full_env = {**os.environ, "VISIONLOOP_DATA_DIR": str(tmp_path / "var"), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "visionloop", *args],
        env=full_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, says: str) -> None:
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.returncode == code, output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    assert lines[0].startswith("error: "), lines[0]
    assert says in lines[0], lines[0]


def _a_file(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("not a folder")


MISTAKES = [
    Mistake(
        "typo-in-a-setting",
        ["db", "upgrade"],
        2,
        "unknown setting VISIONLOOP_DATABASE_UR (did you mean VISIONLOOP_DATABASE_URL?)",
        env={"VISIONLOOP_DATABASE_UR": "postgresql+psycopg://postgres@127.0.0.1/visionloop"},
    ),
    Mistake(
        "demo-bad-drift",
        ["demo", "--drift", "bogus:2"],
        2,
        "--drift: unknown scenario 'bogus'",
    ),
    Mistake(
        "mysql-url",
        ["db", "upgrade"],
        2,
        "VISIONLOOP_DATABASE_URL: 'mysql' is not a supported database URL",
        env={"VISIONLOOP_DATABASE_URL": "mysql://root@127.0.0.1/visionloop"},
    ),
    Mistake(
        "bad-setting-value",
        ["devices", "list"],
        2,
        "VISIONLOOP_SESSION_TTL_HOURS: Input should be greater than 0",
        env={"VISIONLOOP_SESSION_TTL_HOURS": "-1"},
    ),
    Mistake(
        "data-dir-is-a-file",
        ["devices", "list"],
        2,
        "VISIONLOOP_DATA_DIR:",
        env={"VISIONLOOP_DATA_DIR": "afile"},
        setup=_a_file,
    ),
    Mistake(
        "data-dir-under-a-file",
        ["db", "upgrade"],
        2,
        "afile/var cannot be created: ",  # the path as resolved: absolute
        env={"VISIONLOOP_DATA_DIR": "afile/var"},
        setup=_a_file,
    ),
    Mistake("port-too-big", ["serve", "--port", "99999"], 2, "Invalid value for '--port'"),
    Mistake("port-zero", ["demo", "--port", "0"], 2, "Invalid value for '--port'"),
    Mistake("mlflow-ui-port", ["mlflow-ui", "--port", "70000"], 2, "Invalid value for '--port'"),
    Mistake("workers-zero", ["serve", "--workers", "0"], 2, "Invalid value for '--workers'"),
    Mistake("unknown-command", ["servee"], 2, "No such command 'servee'"),
    Mistake("unknown-option", ["serve", "--prot", "80"], 2, "No such option: --prot"),
    Mistake("missing-argument", ["devices", "add"], 2, "Missing argument 'name'"),
    Mistake("unknown-device", ["devices", "disable", "no-such-cam"], 1, "no-such-cam"),
    Mistake(
        "dataset-under-a-file",
        ["synth", "dataset", "afile/data", "--n", "3"],
        1,
        "Not a directory",
        setup=_a_file,
    ),
    Mistake("bad-tag", ["models", "register", "m.onnx", "--tag", "novalue"], 2, "KEY=VALUE"),
]


@pytest.mark.parametrize("mistake", MISTAKES, ids=[m.id for m in MISTAKES])
def test_mistake_is_one_line(mistake: Mistake, tmp_path: Path) -> None:
    if mistake.setup is not None:
        mistake.setup(tmp_path)
    result = run_cli(mistake.args, tmp_path, mistake.env)
    assert_one_line_error(result, mistake.code, mistake.says)


def test_register_with_a_bad_alias_registers_nothing(tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    model = write_constant_model(tmp_path / "m.onnx", np.full((1, 8, 4), 0.1, np.float32))
    result = run_cli(["models", "register", str(model), "--alias", "canary"], tmp_path)
    assert_one_line_error(result, 2, "must be one of production, staging, got 'canary'")
    listed = run_cli(["models", "list", "--json"], tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []


def test_train_on_a_gpu_that_is_not_there(tmp_path: Path) -> None:
    if importlib.util.find_spec("ultralytics") is None:
        pytest.skip("needs the train extra")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = run_cli(["train", "data.yaml", "--device", "0"], tmp_path)
    assert_one_line_error(result, 2, "CUDA is not available here; use --device cpu")


@pytest.mark.postgres
def test_a_postgres_database_nobody_created(tmp_path: Path) -> None:
    problem = _postgres_reachable()
    if problem is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(problem)
        pytest.skip(problem)
    name = f"visionloop_missing_{uuid.uuid4().hex[:8]}"
    admin = make_url(PG_ADMIN_URL)
    url = admin.set(database=name).render_as_string(hide_password=False)
    result = run_cli(["db", "upgrade"], tmp_path, {"VISIONLOOP_DATABASE_URL": url})
    assert_one_line_error(result, 1, f'PostgreSQL database "{name}" does not exist')
    assert f"createdb -h {admin.host} -p {admin.port or 5432}" in result.stderr


def test_version(tmp_path: Path) -> None:
    from visionloop import __version__

    result = run_cli(["--version"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"visionloop {__version__}"
