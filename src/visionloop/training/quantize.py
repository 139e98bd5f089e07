"""INT8 post-training quantization of a detector with NNCF, into an OpenVINO INT8 model.

``quantize_int8`` reads the ONNX file with OpenVINO, calibrates NNCF's post-training
quantization on frames of the model's training distribution (the synthetic line the
baseline and the loop's versions are trained on, or the images of a YOLO dataset), letterboxed
exactly as the edge does, and writes ``model.xml`` + ``model.bin`` (input height and width stay
as the ONNX file has them: a dynamic export stays dynamic). The detection head's box decoding
(DFL, the arithmetic after it and the sigmoid) stays in floating point, as Ultralytics' own
INT8 export does: quantizing it moves boxes by whole pixels.

``check_int8`` then evaluates the fp32 and the INT8 model on the golden set (and optionally a
drift set) and writes ``int8.json``: the INT8 model is *accepted* (used by ``--precision auto``)
only when it loses at most ``INT8_MAP50_BUDGET`` mAP50 on the golden set.

NNCF's telemetry is switched off before it is imported (``NNCF_CI``); OpenVINO's own sender
reads its consent file (``scripts/install.sh`` opts out).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from numpy.typing import NDArray

from visionloop.errors import InvalidInputError, ModelError
from visionloop.training.evaluate import EVAL_CONF, EVAL_IOU, evaluate, split_files
from visionloop.types import Precision
from visionloop.vision.detector import load_detector
from visionloop.vision.precision import (
    INT8_BIN,
    INT8_INFO,
    INT8_MAP50_BUDGET,
    INT8_XML,
    int8_accepted,
    int8_dir,
)
from visionloop.vision.preprocess import letterbox

if TYPE_CHECKING:
    from visionloop.training.registry import Registry

log = logging.getLogger(__name__)

CALIBRATION_FRAMES = 300


def calibration_frames(
    n: int, imgsz_hw: tuple[int, int], *, data: Path | None = None, seed: int = 0
) -> Iterator[NDArray[np.float32]]:
    """``n`` model inputs ``(1, 3, H, W)``: the train split of the YOLO dataset ``data``, or
    frames of the synthetic line (``seed``, nominal, one field of view apart: no part twice)."""
    if data is not None:
        files = split_files(data, "train").images[:n]
        if not files:
            raise InvalidInputError(f"{data}: no training images to calibrate on")
        for path in files:
            frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if frame is None:
                raise InvalidInputError(f"{path}: not a readable image")
            yield letterbox(np.asarray(frame, np.uint8), imgsz_hw)[0]
        return
    from visionloop.vision.synthetic import SyntheticLine

    line = SyntheticLine(seed=seed)
    for i in range(n):
        yield letterbox(line.render(i * line.frames_per_view).frame_bgr, imgsz_hw)[0]


def _head_scope(model: Any) -> Any:
    """NNCF's ignored scope for an Ultralytics detection head (the last ``/model.N/`` block)."""
    import nncf

    numbers = {
        int(m)
        for op in model.get_ops()
        for m in re.findall(r"/model\.(\d+)/", op.get_friendly_name())
    }
    if not numbers:
        return None
    head = f"model.{max(numbers)}"
    return nncf.IgnoredScope(
        patterns=[
            f".*/{head}/.*/Add",
            f".*/{head}/.*/Sub.*",
            f".*/{head}/.*/Mul.*",
            f".*/{head}/.*/Div.*",
            f".*/{head}/dfl.*",
        ],
        types=["Sigmoid"],
        validate=False,
    )


def quantize_int8(
    onnx_path: Path,
    out_dir: Path,
    *,
    n: int = CALIBRATION_FRAMES,
    data: Path | None = None,
    seed: int = 0,
) -> Path:
    """Quantize ``onnx_path`` to an OpenVINO INT8 model in ``out_dir`` (``model.xml``/``.bin``).

    Calibrates on ``n`` frames (:func:`calibration_frames`) at the model's own input size.
    """
    if n < 1:
        raise InvalidInputError(f"calibration needs at least one frame, got {n}")
    os.environ.setdefault("NNCF_CI", "1")  # NNCF's telemetry stub; read when nncf is imported
    try:
        import nncf
        import openvino as ov
    except ImportError as exc:
        raise InvalidInputError(
            "quantization needs the openvino extra (OpenVINO and NNCF): "
            "pip install 'visionloop[openvino]'"
        ) from exc
    nncf.set_log_level(logging.WARNING)  # its INFO lines list every node it skips
    detector = load_detector(onnx_path, backend="onnxruntime", precision="fp32")
    imgsz_hw = detector.info.imgsz_hw
    core = ov.Core()
    model = core.read_model(str(onnx_path))
    frames = list(calibration_frames(n, imgsz_hw, data=data, seed=seed))
    quantized = nncf.quantize(
        model,
        nncf.Dataset(frames),
        preset=nncf.QuantizationPreset.MIXED,
        subset_size=len(frames),
        ignored_scope=_head_scope(model),
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    ov.save_model(quantized, str(out_dir / INT8_XML), compress_to_fp16=False)
    if not (out_dir / INT8_BIN).is_file():
        raise ModelError("OpenVINO wrote no weights for the INT8 model")
    log.info("quantized %s on %d frames into %s", onnx_path.name, len(frames), out_dir)
    return out_dir


@dataclass(frozen=True)
class Int8Check:
    """fp32 vs INT8 mAP50 on the golden set (and a drift set), and the verdict."""

    map50_fp32: float
    map50_int8: float
    accepted: bool
    budget: float
    calibration_frames: int
    drift: str | None = None
    drift_map50_fp32: float | None = None
    drift_map50_int8: float | None = None

    def tags(self) -> dict[str, str]:
        """As model-version tags (``int8_…``)."""
        out: dict[str, str] = {}
        for key, value in asdict(self).items():
            if value is None:
                continue
            out[f"int8_{key}"] = f"{value:.6f}" if isinstance(value, float) else str(value)
        out["int8_accepted"] = "true" if self.accepted else "false"
        return out


def check_int8(
    onnx_path: Path,
    int8_folder: Path,
    golden: Path,
    *,
    drift: Path | None = None,
    drift_name: str | None = None,
    calibration: int = CALIBRATION_FRAMES,
) -> Int8Check:
    """Evaluate fp32 (OpenVINO) and INT8 on ``golden`` (and ``drift``); write ``int8.json``.

    Both run on OpenVINO with Ultralytics' ``val`` thresholds, so the difference is the
    quantization alone.
    """
    with tempfile.TemporaryDirectory(prefix="visionloop-int8-") as tmp:
        # load_detector finds the INT8 model beside the ONNX file (precision.int8_dir).
        onnx_copy = Path(tmp) / "model.onnx"
        os.symlink(onnx_path.resolve(), onnx_copy)
        shutil.copytree(int8_folder, int8_dir(onnx_copy))

        def map50(precision: Precision, dataset: Path) -> float:
            detector = load_detector(
                onnx_copy,
                backend="openvino",
                precision=precision,
                conf=EVAL_CONF,
                iou=EVAL_IOU,
                multi_label=True,
            )
            return evaluate(detector, dataset).map50

        fp32, int8 = map50("fp32", golden), map50("int8", golden)
        drift_fp32 = map50("fp32", drift) if drift is not None else None
        drift_int8 = map50("int8", drift) if drift is not None else None
    check = Int8Check(
        map50_fp32=fp32,
        map50_int8=int8,
        accepted=int8_accepted(fp32, int8),
        budget=INT8_MAP50_BUDGET,
        calibration_frames=calibration,
        drift=drift_name if drift is not None else None,
        drift_map50_fp32=drift_fp32,
        drift_map50_int8=drift_int8,
    )
    (int8_folder / INT8_INFO).write_text(json.dumps(asdict(check), indent=2))
    return check


def quantize_version(
    registry: Registry,
    version: str,
    *,
    calibration: int = CALIBRATION_FRAMES,
    data: Path | None = None,
    golden: Path | None = None,
    drift: str | None = "lighting:1.0",
    eval_images: int = 300,
    progress: Callable[[float, str], None] | None = None,
) -> Int8Check:
    """Quantize a registered version, check it, and store the INT8 tar with the version.

    ``golden`` defaults to ``eval_images`` fresh nominal frames of the synthetic line, seed 1
    (the model card's golden set); ``drift`` (a scenario spec, or None) adds a drift set.
    What ``visionloop models quantize`` and the ``quantize`` job run.
    """
    from visionloop.vision.precision import pack_int8
    from visionloop.vision.synthetic import write_dataset

    def say(fraction: float, message: str) -> None:
        if progress is not None:
            progress(fraction, message)

    onnx = registry.onnx_path(version)
    with tempfile.TemporaryDirectory(prefix="visionloop-quantize-") as tmp:
        work = Path(tmp)
        say(0.0, f"quantizing version {version} on {calibration} calibration frames")
        folder = quantize_int8(onnx, work / "model.int8", n=calibration, data=data)
        say(0.5, "evaluating fp32 and INT8")
        if golden is None:
            golden = write_dataset(
                work / "golden", n=eval_images, scenario="nominal", seed=1, splits=(0, 0, 1)
            ).parent
        drift_set = None
        if drift is not None:
            drift_set = write_dataset(
                work / "drift", n=eval_images, scenario=drift, seed=1, splits=(0, 0, 1)
            ).parent
        check = check_int8(
            onnx, folder, golden, drift=drift_set, drift_name=drift, calibration=calibration
        )
        registry.add_int8(version, pack_int8(folder, work / "model-int8.tar"), check.tags())
    say(1.0, "stored")
    return check
