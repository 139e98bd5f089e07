"""Backend and precision choice: CPU flags, ``auto`` rules, the INT8 companion, the bf16 check."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from support.models import write_constant_model
from visionloop.errors import InvalidInputError, ModelError
from visionloop.types import Detections
from visionloop.vision.backends import CpuInfo, choose_backend, cpu_info, openvino_installed
from visionloop.vision.detector import load_detector
from visionloop.vision.precision import (
    BF16_MAX_SCORE_DIFF,
    agreement,
    int8_companion,
    int8_dir,
    matched,
    pack_int8,
    unpack_int8,
)

needs_openvino = pytest.mark.skipif(not openvino_installed(), reason="needs the openvino extra")

ZEN4 = CpuInfo("AuthenticAMD", "x86_64", frozenset({"avx2", "avx512f", "avx512_bf16"}))
SAPPHIRE = CpuInfo("GenuineIntel", "x86_64", frozenset({"avx512f", "amx_bf16", "amx_tile"}))
OLD_XEON = CpuInfo("GenuineIntel", "x86_64", frozenset({"avx2", "avx512f"}))
GRAVITON = CpuInfo("", "aarch64", frozenset({"asimd", "bf16"}))


@pytest.mark.parametrize(
    ("cpu", "bf16", "unit"),
    [(ZEN4, True, "AVX512_BF16"), (SAPPHIRE, True, "AMX"), (OLD_XEON, False, None)],
    ids=["zen4", "sapphire-rapids", "skylake"],
)
def test_bf16_from_cpu_flags(cpu: CpuInfo, bf16: bool, unit: str | None) -> None:
    assert cpu.x86 and cpu.bf16 is bf16
    if unit is not None:
        assert cpu.bf16_unit() == unit


def test_cpu_info_reads_proc_cpuinfo(tmp_path: Path) -> None:
    fake = tmp_path / "cpuinfo"
    fake.write_text(
        "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu avx512f avx512_bf16\n\n"
        "processor\t: 1\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu avx512f avx512_bf16\n"
    )
    info = cpu_info(str(fake))
    assert info.vendor == "AuthenticAMD" and info.bf16
    assert not cpu_info(str(tmp_path / "missing")).flags


@pytest.mark.parametrize("cpu", [ZEN4, SAPPHIRE], ids=["amd", "intel"])
def test_auto_picks_openvino_on_any_x86_vendor(cpu: CpuInfo) -> None:
    backend, why = choose_backend("auto", cpu)
    if openvino_installed():
        assert backend == "openvino" and cpu.vendor in why
    else:
        assert backend == "onnxruntime" and "not installed" in why


def test_auto_picks_onnxruntime_off_x86_and_explicit_wins() -> None:
    assert choose_backend("auto", GRAVITON) == ("onnxruntime", "not an x86 CPU (aarch64)")
    assert choose_backend("onnxruntime", ZEN4)[0] == "onnxruntime"
    assert choose_backend("openvino", GRAVITON)[0] == "openvino"


def _boxes(*rows: tuple[float, float, float, float, int]) -> Detections:
    arr = np.array([r[:4] for r in rows], np.float32).reshape(-1, 4)
    return Detections(
        xyxy=arr,
        confidence=np.full(len(rows), 0.9, np.float32),
        class_id=np.array([r[4] for r in rows], np.int64),
    )


def test_agreement_matches_by_class_and_iou() -> None:
    a = _boxes((0, 0, 10, 10, 0), (20, 20, 30, 30, 1))
    same = _boxes((0, 0, 10, 10, 0), (20, 20, 30, 31, 1))
    other_class = _boxes((0, 0, 10, 10, 1), (20, 20, 30, 30, 1))
    assert matched(a, same) == 2 and matched(a, other_class) == 1
    assert agreement([a, a], [same, same], 0.01).ok
    assert not agreement([a, a], [same, other_class], 0.01).ok  # 3 of 4
    assert not agreement([a], [same], BF16_MAX_SCORE_DIFF * 2).ok  # scores moved too far
    empty = Detections.empty()
    assert agreement([empty], [empty], 0.0).ok
    assert str(agreement([a], [same], 0.0)) == "2/2 boxes, score diff 0.000"


def _raw_model(tmp_path: Path) -> Path:
    table = np.zeros((1, 7, 3), np.float32)
    table[0, :, 0] = [20, 30, 10, 10, 0.9, 0.0, 0.0]
    table[0, :, 1] = [44, 30, 8, 8, 0.0, 0.0, 0.6]
    return write_constant_model(
        tmp_path / "model.onnx", table, names={0: "scratch", 1: "dent", 2: "crack"}
    )


def _int8_companion(onnx: Path, *, accepted: bool) -> Path:
    """A stand-in INT8 artifact: the same graph saved as an OpenVINO IR (what NNCF writes)."""
    import openvino as ov

    folder = int8_dir(onnx)
    folder.mkdir()
    ov.save_model(ov.Core().read_model(str(onnx)), str(folder / "model.xml"))
    info = {"accepted": accepted, "map50_fp32": 0.997, "map50_int8": 0.994}
    (folder / "int8.json").write_text(json.dumps(info))
    return folder


FRAME = np.zeros((64, 64, 3), np.uint8)


def test_onnxruntime_auto_is_fp32_and_says_why(tmp_path: Path) -> None:
    det = load_detector(_raw_model(tmp_path), backend="onnxruntime")
    assert det.info.extra["precision"] == "fp32"
    assert det.info.extra["choice"] == (
        "onnxruntime fp32: --backend onnxruntime; fp32: ONNX Runtime runs fp32"
    )
    with pytest.raises(InvalidInputError, match="int8 needs OpenVINO"):
        load_detector(_raw_model(tmp_path), backend="onnxruntime", precision="int8")


@needs_openvino
def test_openvino_auto_is_bf16_where_the_cpu_has_it(tmp_path: Path) -> None:
    det = load_detector(_raw_model(tmp_path), backend="auto")
    choice = det.info.extra["choice"]
    if cpu_info().bf16 and cpu_info().x86:
        assert det.info.extra["precision"] == "bf16"
        assert "agree with fp32 (8/8 boxes" in choice
    elif cpu_info().x86:
        assert det.info.extra["precision"] == "fp32" and "neither AVX512_BF16 nor AMX" in choice
    assert len(det.detect(FRAME)) == 2


@needs_openvino
def test_auto_runs_an_accepted_int8_companion(tmp_path: Path) -> None:
    onnx = _raw_model(tmp_path)
    _int8_companion(onnx, accepted=True)
    det = load_detector(onnx, backend="openvino")
    choice = det.info.extra["choice"]
    if cpu_info().bf16:
        # Both are candidates: a short race keeps the faster (bf16 beats int8 on AMX).
        assert det.info.extra["precision"] in ("int8", "bf16")
        assert "faster than bf16 here" in choice or "faster than the INT8 artifact" in choice
    else:
        assert det.info.extra["precision"] == "int8"
    if det.info.extra["precision"] == "int8":
        assert "INT8 artifact (golden-set mAP50 0.994 vs fp32 0.997" in choice
    forced = load_detector(onnx, backend="openvino", precision="int8")
    assert forced.info.extra["precision"] == "int8"
    ref = load_detector(onnx, backend="onnxruntime").detect(FRAME)
    out = forced.detect(FRAME)
    np.testing.assert_allclose(out.xyxy, ref.xyxy, atol=0.05)
    assert out.class_id.tolist() == ref.class_id.tolist()
    # Explicit precisions still win.
    assert load_detector(onnx, backend="openvino", precision="fp32").info.extra["precision"] == (
        "fp32"
    )


@needs_openvino
def test_auto_skips_an_int8_companion_over_budget(tmp_path: Path) -> None:
    onnx = _raw_model(tmp_path)
    _int8_companion(onnx, accepted=False)
    companion = int8_companion(onnx)
    assert companion is not None and not companion.accepted
    assert load_detector(onnx, backend="openvino").info.extra["precision"] != "int8"
    forced = load_detector(onnx, backend="openvino", precision="int8")
    assert (
        forced.info.extra["precision"] == "int8"
        and "--precision int8" in (forced.info.extra["choice"])
    )


def test_int8_without_companion_is_refused(tmp_path: Path) -> None:
    onnx = _raw_model(tmp_path)
    assert int8_companion(onnx) is None
    with pytest.raises(InvalidInputError, match="no INT8 artifact"):
        load_detector(onnx, backend="auto", precision="int8")


def test_pack_and_unpack_int8(tmp_path: Path) -> None:
    src = tmp_path / "src.int8"
    src.mkdir()
    for name, data in (("model.xml", b"<xml/>"), ("model.bin", b"\0" * 16), ("int8.json", b"{}")):
        (src / name).write_bytes(data)
    tar = pack_int8(src, tmp_path / "a.tar")
    assert pack_int8(src, tmp_path / "b.tar").read_bytes() == tar.read_bytes()  # reproducible
    out = unpack_int8(tar, tmp_path / "out")
    assert sorted(p.name for p in out.iterdir()) == ["int8.json", "model.bin", "model.xml"]
    # Only the three known files come out; a path that climbs out of the folder does not.
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as t:
        t.add(src / "model.xml", arcname="../escape.xml")
    with pytest.raises(ModelError, match=r"lacks model\.xml"):
        unpack_int8(evil, tmp_path / "evil")
    assert not (tmp_path / "escape.xml").exists()
    (tmp_path / "junk.tar").write_bytes(b"not a tar at all" * 64)
    with pytest.raises(ModelError, match="not an INT8 model archive"):
        unpack_int8(tmp_path / "junk.tar", tmp_path / "junk")
