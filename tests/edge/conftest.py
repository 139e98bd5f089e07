"""Fixtures for the edge tests: the detector model they run."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.models import BASELINE_ONNX
from support.shared import build_once, run_dir
from visionloop.vision.detector import sha256_file

BASELINE_PT = BASELINE_ONNX.with_name("best.pt")
EDGE_IMGSZ = 320

_EXPORT = """
import sys
from pathlib import Path
from visionloop.training.train import export_onnx
weights, out, imgsz, config = sys.argv[1:5]
export_onnx(Path(weights), Path(out), imgsz=int(imgsz), config_dir=Path(config))
"""


@pytest.fixture(scope="session")
def edge_onnx(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real baseline detector at 320x320 (3.5x cheaper than its shipped 640 export).

    Exported from the shipped weights (``visionloop/baseline/best.pt``) in a subprocess
    (ultralytics stays out of the test process) and cached by the weights' sha256, built once
    for all xdist workers. Without the weights or the train extra: the shipped ONNX, else
    support/models.py's YOLO11n export.
    """
    if not BASELINE_PT.is_file() or importlib.util.find_spec("ultralytics") is None:
        return Path(request.getfixturevalue("detector_onnx"))
    store = getattr(request.config, "cache", None)  # None with -p no:cacheprovider
    cache = Path(store.mkdir("edge-models")) if store else run_dir(tmp_path_factory) / "edge-models"
    out = cache / f"baseline-{sha256_file(BASELINE_PT)[:16]}-{EDGE_IMGSZ}.onnx"

    def export(target: Path) -> None:
        env = {**os.environ, "YOLO_OFFLINE": "1", "DO_NOT_TRACK": "1"}
        proc = subprocess.run(
            [sys.executable, "-c", _EXPORT, str(BASELINE_PT), str(target), str(EDGE_IMGSZ),
             str(cache / "ultralytics")],
            capture_output=True, text=True, env=env, timeout=300, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            pytest.fail(f"exporting the baseline at {EDGE_IMGSZ} failed:\n{proc.stderr[-3000:]}")

    return build_once(out, export)  # once for all xdist workers
