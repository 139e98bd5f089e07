"""What ``--precision auto`` decides on: a model's INT8 companion and the bf16 agreement check.

**INT8 companion.** A model version's INT8 artifact (``visionloop models quantize``) lives beside
its ONNX file as a folder ``<stem>.int8/`` holding ``model.xml`` + ``model.bin`` (an OpenVINO IR
that NNCF quantized) and ``int8.json`` (its mAP50 against the fp32 model's on the golden set and
whether that is within the budget). The edge's model cache and a local ``--model`` use the same
layout, so ``model.onnx`` runs ``model.int8/`` beside it when present.

**bf16 check.** bf16 keeps 8 bits of mantissa: for most detectors the boxes do not move, but a
model with large activations can lose detections. Before ``auto`` settles on bf16 it runs the
fp32 and the bf16 model on a few fixed frames of the synthetic line and compares their
detections (same class, IoU >= 0.5): it keeps bf16 when at least ``BF16_MIN_AGREEMENT`` of them
match. A detector the frames mean nothing to finds few boxes on both sides and passes; the raw
class scores are compared too (largest difference at most ``BF16_MAX_SCORE_DIFF``).
"""

from __future__ import annotations

import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from visionloop.errors import ModelError
from visionloop.types import Detections

INT8_SUFFIX = ".int8"
INT8_XML = "model.xml"
INT8_BIN = "model.bin"
INT8_INFO = "int8.json"
INT8_MAP50_BUDGET = 0.01
"""Most mAP50 (absolute, on the golden set) the INT8 model may lose against fp32 to be used."""

BF16_MIN_AGREEMENT = 0.95
BF16_MAX_SCORE_DIFF = 0.1
PROBE_FRAMES = 4
"""Synthetic frames the bf16 check runs (seed 0, one field of view apart)."""


@dataclass(frozen=True)
class Int8Companion:
    """A model's INT8 artifact on disk, and what its evaluation said."""

    xml: Path
    accepted: bool
    map50_fp32: float | None
    map50_int8: float | None

    def why(self) -> str:
        if self.map50_fp32 is None or self.map50_int8 is None:
            return "the model version has an INT8 artifact"
        return (
            f"the model version has an INT8 artifact (golden-set mAP50 {self.map50_int8:.3f} vs "
            f"fp32 {self.map50_fp32:.3f}, budget {INT8_MAP50_BUDGET:.2f})"
        )


def int8_dir(onnx_path: Path) -> Path:
    """Where an ONNX file's INT8 companion lives: ``<stem>.int8/`` beside it."""
    return onnx_path.with_name(onnx_path.stem + INT8_SUFFIX)


def int8_companion(onnx_path: Path) -> Int8Companion | None:
    """The INT8 companion of ``onnx_path``, or None when there is none (or it is incomplete)."""
    folder = int8_dir(onnx_path)
    xml, weights, info = folder / INT8_XML, folder / INT8_BIN, folder / INT8_INFO
    if not (xml.is_file() and weights.is_file()):
        return None
    data: dict[str, object] = {}
    if info.is_file():
        try:
            loaded = json.loads(info.read_text())
            data = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            data = {}
    return Int8Companion(
        xml=xml,
        accepted=bool(data.get("accepted", False)),
        map50_fp32=_float(data.get("map50_fp32")),
        map50_int8=_float(data.get("map50_int8")),
    )


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def int8_accepted(map50_fp32: float, map50_int8: float) -> bool:
    """Whether an INT8 model's golden-set mAP50 is within the budget of the fp32 model's."""
    return map50_fp32 - map50_int8 <= INT8_MAP50_BUDGET + 1e-9


def pack_int8(folder: Path, out: Path) -> Path:
    """Pack an INT8 companion folder (xml, bin, json) into one uncompressed tar at ``out``."""
    with tarfile.open(out, "w") as tar:
        for name in (INT8_XML, INT8_BIN, INT8_INFO):
            path = folder / name
            if path.is_file():
                info = tar.gettarinfo(str(path), arcname=name)
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                with path.open("rb") as f:
                    tar.addfile(info, f)
    return out


def unpack_int8(tar_path: Path, folder: Path) -> Path:
    """Unpack an INT8 tar (only its three known regular files) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(tar_path, "r") as tar:
            for member in tar.getmembers():
                if member.name not in (INT8_XML, INT8_BIN, INT8_INFO) or not member.isfile():
                    continue
                src = tar.extractfile(member)
                if src is None:
                    continue
                (folder / member.name).write_bytes(src.read())
    except tarfile.TarError as exc:
        raise ModelError(f"{tar_path}: not an INT8 model archive ({exc})") from exc
    if not (folder / INT8_XML).is_file() or not (folder / INT8_BIN).is_file():
        raise ModelError(f"{tar_path}: the INT8 archive lacks model.xml or model.bin")
    return folder


def probe_frames(n: int = PROBE_FRAMES) -> list[NDArray[np.uint8]]:
    """Fixed frames of the synthetic line (seed 0, 640x480), one field of view apart."""
    from visionloop.vision.synthetic import SyntheticLine

    line = SyntheticLine(seed=0)
    return [line.render(i * line.frames_per_view).frame_bgr for i in range(n)]


def _iou(a: NDArray[np.float32], b: NDArray[np.float32]) -> NDArray[np.float32]:
    """IoU of every box in ``a`` (N, 4) with every box in ``b`` (M, 4), xyxy."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.asarray(np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0), np.float32)


def matched(a: Detections, b: Detections, *, iou: float = 0.5) -> int:
    """Pairs of boxes of the same class with IoU >= ``iou``, matched greedily by IoU."""
    if len(a) == 0 or len(b) == 0:
        return 0
    overlap = _iou(a.xyxy, b.xyxy)
    overlap[a.class_id[:, None] != b.class_id[None, :]] = 0.0
    pairs = 0
    while True:
        i, j = np.unravel_index(int(np.argmax(overlap)), overlap.shape)
        if overlap[i, j] < iou:
            return pairs
        pairs += 1
        overlap[i, :] = 0.0
        overlap[:, j] = 0.0


@dataclass(frozen=True)
class Agreement:
    """How far two runs of a model agree on the probe frames."""

    matched: int
    boxes: int
    score_diff: float

    @property
    def ok(self) -> bool:
        share_ok = self.boxes == 0 or self.matched / self.boxes >= BF16_MIN_AGREEMENT
        return share_ok and self.score_diff <= BF16_MAX_SCORE_DIFF

    def __str__(self) -> str:
        return f"{self.matched}/{self.boxes} boxes, score diff {self.score_diff:.3f}"


def agreement(
    reference: list[Detections],
    candidate: list[Detections],
    score_diff: float,
) -> Agreement:
    """Agreement of ``candidate``'s detections with ``reference``'s, frame by frame."""
    pairs = sum(matched(r, c) for r, c in zip(reference, candidate, strict=True))
    boxes = sum(max(len(r), len(c)) for r, c in zip(reference, candidate, strict=True))
    return Agreement(matched=pairs, boxes=boxes, score_diff=score_diff)
