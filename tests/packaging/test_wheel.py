"""The installed wheel, run as a user runs it: built from the checkout, installed (not
editable) into a fresh virtual environment, and run from an empty folder outside the
repository with the default relative data dir.

The wheel must carry everything ``visionloop demo`` and ``visionloop simulate`` need (the
shipped baseline as package data, the migrations, the dashboard), and its base install must
not pull torch: the edge agent runs without it.

The fresh environment gets the wheel alone (``--no-deps``); the third-party packages come from
the test interpreter's site-packages through a ``.pth`` line, so the run does not reinstall
5 GB of torch. That line adds the folder to ``sys.path`` without running its ``.pth`` files, so
the checkout's editable install stays out of reach: ``visionloop`` imports from the wheel
(asserted below).
"""

from __future__ import annotations

import email
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from support.simulate import FIELDS
from visionloop import __version__
from visionloop.simulation.scenario import FAST

REPO = Path(__file__).resolve().parents[2]
NOT_IN_THE_BASE_INSTALL = ("torch", "torchvision", "ultralytics", "mlflow", "fastapi")
"""Heavy or server-side packages the base install (the edge agent's) must not require."""


def _build_wheel(out: Path) -> Path:
    """The wheel of the checkout as it is (a copy of ``src``, ``pyproject.toml`` and the README,
    so the build leaves nothing in the repository)."""
    source = out / "source"
    shutil.copytree(
        REPO / "src",
        source / "src",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"),
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    dist = out / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(dist), str(source)],
        check=True, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    (wheel,) = dist.glob("visionloop-*.whl")
    return wheel


def _fresh_venv(root: Path, wheel: Path) -> Path:
    """A new virtual environment with the wheel installed; returns its ``bin`` folder."""
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
         str(wheel)],
        check=True, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    (Path(purelib) / "zz_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv / "bin"


def _user_env() -> dict[str, str]:
    """The environment of a user's shell: none of our settings, no PYTHONPATH to the checkout."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VISIONLOOP_", "MLFLOW_", "PYTEST_", "PYTHONPATH"))
    } | {"YOLO_OFFLINE": "1", "DO_NOT_TRACK": "1", "NO_COLOR": "1"}


def test_the_base_install_does_not_require_torch_or_the_server(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = email.message_from_bytes(zf.read(meta_name))
    base = [r for r in metadata.get_all("Requires-Dist") or [] if "extra ==" not in r]
    assert base, "the base install requires nothing?"
    for requirement in base:
        name = requirement.split(";")[0].split("[")[0].split("<")[0].split(">")[0].split("=")[0]
        assert name.strip().lower() not in NOT_IN_THE_BASE_INSTALL, requirement
    for shipped in ("model.onnx", "best.pt", "drift_profile.json", "eval.json", "MODEL_CARD.md"):
        assert f"visionloop/baseline/{shipped}" in names
    assert any(n.startswith("visionloop/server/migrations/versions/") for n in names)
    if os.environ.get("CI", "").lower() == "true":  # CI builds the dashboard before the tests
        assert "visionloop/server/static/index.html" in names
    # 14.8 MB measured (most of it the baseline's ONNX and .pt, 15.9 MB unpacked): a jump
    # means something was packed by mistake (a data set, a venv, node_modules).
    assert wheel.stat().st_size < 40e6, f"{wheel.stat().st_size / 1e6:.1f} MB"


@pytest.mark.slow
@pytest.mark.train
# About 6 minutes on 2 quiet cores (two rounds of the loop); a loaded machine takes longer.
@pytest.mark.timeout(2400)
@pytest.mark.skipif(
    importlib.util.find_spec("ultralytics") is None, reason="simulate retrains: the train extra"
)
def test_the_installed_wheel_runs_the_loop_from_an_empty_folder(tmp_path: Path) -> None:
    """``visionloop --version``, ``demo --help`` and ``simulate --fast`` (two strategies, each a
    whole round of the loop: camera, labels, a train job, the gate, the new model on the edge)
    from the installed wheel, in an empty folder, with relative paths."""
    bin_dir = _fresh_venv(tmp_path, _build_wheel(tmp_path))
    home = tmp_path / "plant"
    home.mkdir()
    env = _user_env()

    def visionloop(*args: str, timeout: float = 60) -> str:
        result = subprocess.run(
            [str(bin_dir / "visionloop"), *args],
            cwd=home, env=env, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return result.stdout

    where = subprocess.run(
        [str(bin_dir / "python"), "-c", "import visionloop.shipped as s; print(s.BASELINE_ONNX)"],
        cwd=home, env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert where.startswith(str(bin_dir.parent)), f"imported from {where}, not the wheel"
    assert visionloop("--version").strip() == f"visionloop {__version__}"
    assert "--demo-oracle" in visionloop("demo", "--help")

    visionloop(
        "simulate", "--fast", "--compare", "uncertainty,random", "--out", "sim", timeout=2300
    )
    report = json.loads((home / "sim" / "report.json").read_text())
    runs = report["strategies"]
    assert [r["strategy"] for r in runs] == ["uncertainty", "random"]
    for run in runs:
        assert set(FIELDS) <= set(run), run.keys()
        assert run["labels_used"] == FAST.budget
        assert run["train_job"] is not None and run["train_job"]["status"] == "succeeded"
        assert run["frames"]["promotion_on_edge"] is not None, run
        assert run["recovered_fraction"] is not None and run["recovered_fraction"] > 0, run
    assert "| recovered fraction |" in (home / "sim" / "report.md").read_text()
    assert (home / "sim" / "timeline.png").stat().st_size > 10_000
    assert sorted(p.name for p in home.iterdir()) == ["sim"]  # nothing else written here
