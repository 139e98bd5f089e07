"""The DVC pipeline (dvc.yaml, params.yaml) runs from a fresh clone, as the README tells it.

A temporary copy of the repository (its files as a clone has them, ``.venv`` being the
environment running the tests) becomes a git repository; its ``params.yaml`` keeps the repo's
structure and scenarios with tiny sizes. Then the README's commands: ``dvc repro`` with
``.venv/bin`` on ``PATH`` (what ``. .venv/bin/activate`` does), and ``dvc metrics show``, whose
table must hold every metrics file with the values in it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.readme import commands_of, copy_checkout

REPO = Path(__file__).resolve().parents[2]

# Each key must exist in the repository's params.yaml: a renamed parameter fails here first.
TINY_PARAMS: dict[str, dict[str, Any]] = {
    "synthesize": {"n": 24},  # 19 train / 2 val / 3 test images
    "train": {"epochs": 1, "imgsz": 160, "batch": 8, "device": "cpu", "workers": 0},
    "test": {"n": 8},
}


def _tiny_params() -> str:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, values in TINY_PARAMS.items():
        for key, value in values.items():
            assert key in params[section], f"params.yaml has no {section}.{key}"
            params[section][key] = value
    return yaml.safe_dump(params, sort_keys=False)


def test_readme_runs_the_pipeline_as_this_test_does() -> None:
    lines = [
        c.first_line.split("#")[0].strip() for c in commands_of((REPO / "README.md").read_text())
    ]
    for expected in (". .venv/bin/activate", "dvc repro", "dvc metrics show"):
        assert expected in lines, f"the README no longer says `{expected}`"
    assert lines.index(". .venv/bin/activate") < lines.index("dvc repro")


def _table(output: str) -> dict[str, dict[str, str]]:
    """`dvc metrics show`'s table as {path: {column: cell}} (columns are 2+ spaces apart)."""
    rows = [re.split(r"\s{2,}", line.strip()) for line in output.splitlines() if line.strip()]
    header = rows[0]
    assert header[0] == "Path", output
    return {row[0]: dict(zip(header[1:], row[1:], strict=True)) for row in rows[1:]}


@pytest.mark.slow
@pytest.mark.train
@pytest.mark.timeout(600)
def test_dvc_repro_runs_the_pipeline_and_metrics_show_prints_its_metrics(tmp_path: Path) -> None:
    pytest.importorskip("ultralytics", reason="the pipeline trains: needs the train extra")
    copy = tmp_path / "visionloop"
    copy_checkout(REPO, copy)
    (copy / "params.yaml").write_text(_tiny_params())
    subprocess.run(["git", "init", "-q"], cwd=copy, check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VISIONLOOP_", "MLFLOW_"))}
    env.update(
        PATH=f"{copy / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}",  # the activated venv
        PYTHONPATH=str(copy / "src"),
        VISIONLOOP_DATA_DIR=str(copy / "var"),
        DVC_NO_ANALYTICS="1",
        YOLO_OFFLINE="1",
        DO_NOT_TRACK="1",
    )

    def dvc(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [shutil.which("dvc", path=env["PATH"]) or "dvc", *args],
            cwd=copy,
            env=env,
            capture_output=True,
            text=True,
            timeout=500,
        )

    repro = dvc("repro")
    assert repro.returncode == 0, repro.stdout[-6000:] + repro.stderr[-6000:]
    shown = dvc("metrics", "show")
    assert shown.returncode == 0, shown.stderr
    assert "failed to load" not in shown.stdout + shown.stderr, shown.stdout + shown.stderr
    table = _table(shown.stdout)

    scenarios = yaml.safe_load((REPO / "params.yaml").read_text())["scenarios"]
    expected = ["runs/baseline/eval.json", *(f"metrics/{key}.json" for key in scenarios)]
    assert sorted(table) == sorted(expected), shown.stdout
    for path in expected:
        report = json.loads((copy / path).read_text())
        row = table[path]
        assert row["images"] == str(report["images"])
        for metric in ("map50", "map50_95"):
            assert float(row[metric]) == pytest.approx(report[metric], abs=1e-4), (path, metric)
    assert table["metrics/nominal.json"]["images"] == str(TINY_PARAMS["test"]["n"])
