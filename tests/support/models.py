"""Model fixtures: a real tiny ONNX detector and the shipped baseline.

- ``write_constant_model``: a hand-built ONNX graph whose output is a given array, whatever the
  input; with Ultralytics-style metadata. For exact decode/NMS expectations, no ultralytics needed.
- ``yolo_model`` (session): a YOLO11n (4 classes, 320x320) built and exported once per test
  session (once for all xdist workers) by Ultralytics in a subprocess, with its ``.pt``; skips
  where the ``train`` extra is absent. See ``support/ultralytics_ref.py``.
- ``baseline_onnx`` (session): the shipped baseline (package data, ``visionloop.shipped``).
- ``detector_onnx`` (session): the baseline when present, else the YOLO11n export.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from support.shared import build_once, run_dir
from visionloop.shipped import BASELINE_ONNX
from visionloop.shipped import BASELINE_WEIGHTS as BASELINE_PT

__all__ = ["BASELINE_ONNX", "BASELINE_PT"]  # re-exported for the tests that use the baseline

REF_SCRIPT = Path(__file__).with_name("ultralytics_ref.py")
NAMES = {0: "scratch", 1: "dent", 2: "crack", 3: "stain"}


def have_ultralytics() -> bool:
    """Whether the ``train`` extra is installed (checked without importing it)."""
    return importlib.util.find_spec("ultralytics") is not None


def write_constant_model(
    path: Path,
    output: np.ndarray,
    *,
    names: Mapping[int, str] | None = None,
    imgsz_hw: tuple[int, int] = (64, 64),
    metadata: Mapping[str, str] | None = None,
    dynamic_input: bool = False,
) -> Path:
    """Write an ONNX model ``images [1,3,H,W] -> output0 = output`` (the input is ignored).

    The metadata is what Ultralytics writes (``names``, ``imgsz``, ``task``, ``end2end``);
    ``metadata`` entries override or add keys (a value of ``""`` removes the key).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    h, w = imgsz_hw
    in_shape: list[Any] = [1, 3, "height", "width"] if dynamic_input else [1, 3, h, w]
    const = numpy_helper.from_array(np.asarray(output, np.float32), name="table")
    nodes = [
        # output = table + 0 * mean(images): keeps the input in the graph, value unchanged.
        helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
        helper.make_node("Constant", [], ["zero"], value=numpy_helper.from_array(np.float32(0))),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Add", ["table", "nothing"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "constant_detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(output.shape))],
        initializer=[const],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta: dict[str, str] = {
        "task": "detect",
        "names": repr(dict(names if names is not None else NAMES)),
        "imgsz": repr([h, w]),
        "end2end": "False",
    }
    for key, value in (metadata or {}).items():
        if value == "":
            meta.pop(key, None)
        else:
            meta[key] = value
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def run_ultralytics(command: str, *args: str, config_dir: Path) -> None:
    """Run ``support/ultralytics_ref.py COMMAND`` in a subprocess; fail the test on error."""
    env = {**os.environ, "YOLO_OFFLINE": "1", "DO_NOT_TRACK": "1", "YOLO_AUTOINSTALL": "false"}
    env["YOLO_CONFIG_DIR"] = str(config_dir)
    proc = subprocess.run(
        [sys.executable, str(REF_SCRIPT), command, "--config-dir", str(config_dir), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"ultralytics {command} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


def ultralytics_json(command: str, *args: str, config_dir: Path, out: Path) -> Any:
    """Run a reference command that writes JSON to ``out`` and return the parsed answer."""
    run_ultralytics(command, *args, "--out", str(out), config_dir=config_dir)
    return json.loads(out.read_text())


@dataclass(frozen=True)
class YoloFiles:
    """A model with its Ultralytics weights, its ONNX export and an export with NMS in the graph."""

    onnx: Path
    pt: Path
    imgsz: int
    config_dir: Path
    onnx_nms: Path


@pytest.fixture(scope="session")
def yolo_model(tmp_path_factory: pytest.TempPathFactory) -> YoloFiles:
    """YOLO11n (4 classes, re-scaled random weights) as ``.pt`` and a 320x320 ONNX export."""
    if not have_ultralytics():
        pytest.skip("needs the train extra (ultralytics)")

    def make(folder: Path) -> None:
        run_ultralytics(
            "make-model", "--out", str(folder), "--imgsz", "320", config_dir=folder / "ultralytics"
        )

    root = build_once(run_dir(tmp_path_factory) / "yolo11n", make)  # once for all xdist workers
    config_dir = root / "ultralytics"
    return YoloFiles(
        onnx=root / "model.onnx",
        pt=root / "model.pt",
        imgsz=320,
        config_dir=config_dir,
        onnx_nms=root / "model-nms.onnx",
    )


@pytest.fixture(scope="session")
def baseline_onnx() -> Path:
    """The shipped baseline model; skips until it is committed."""
    if not BASELINE_ONNX.is_file():
        pytest.skip(f"{BASELINE_ONNX} is missing")
    return BASELINE_ONNX


@pytest.fixture(scope="session")
def detector_onnx(request: pytest.FixtureRequest) -> Path:
    """A real trained-or-exported detector: the baseline when present, else the YOLO11n export."""
    if BASELINE_ONNX.is_file():
        return BASELINE_ONNX
    files: YoloFiles = request.getfixturevalue("yolo_model")
    return files.onnx
