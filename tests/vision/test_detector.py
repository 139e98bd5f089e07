"""The detector: exact decode/NMS on crafted graphs, model checks, backends, Ultralytics parity."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from support.models import (
    BASELINE_ONNX,
    BASELINE_PT,
    NAMES,
    YoloFiles,
    have_ultralytics,
    ultralytics_json,
    write_constant_model,
)
from visionloop.errors import InvalidInputError, ModelError
from visionloop.types import Detections
from visionloop.vision.backends import choose_backend, openvino_installed
from visionloop.vision.detector import load_detector, sha256_file
from visionloop.vision.synthetic import SyntheticLine

BACKENDS = [
    "onnxruntime",
    pytest.param(
        "openvino",
        marks=pytest.mark.skipif(not openvino_installed(), reason="needs the openvino extra"),
    ),
]

# --- crafted raw output [1, 4+nc, N]: boxes cx, cy, w, h in a 64x64 input, 3 classes -------------
RAW_NAMES = {0: "scratch", 1: "dent", 2: "crack"}
RAW_ANCHORS = [
    # cx, cy, w, h, score per class
    (20, 30, 10, 10, 0.90, 0.10, 0.00),  # A: kept, class 0
    (21, 30, 10, 10, 0.80, 0.00, 0.00),  # B: class 0, IoU 0.82 with A: suppressed at iou 0.45
    (21, 30, 10, 10, 0.00, 0.70, 0.00),  # C: same box as B but class 1: NMS is per class
    (40, 40, 8, 8, 0.20, 0.10, 0.24),  # D: best score 0.24 < conf 0.25: dropped
    (50, 20, 4, 6, 0.00, 0.00, 0.30),  # E: kept, class 2
    (20, 36, 10, 10, 0.50, 0.00, 0.00),  # F: class 0, IoU 0.25 with A: kept
    (62, 20, 10, 4, 0.40, 0.00, 0.00),  # G: sticks out of the frame on the right: clipped
]


def _raw_output() -> np.ndarray:
    table = np.array(RAW_ANCHORS, np.float32).T  # (4+nc, N)
    return table[None]


def _to_frame(cx: float, cy: float, w: float, h: float) -> list[float]:
    # 64x64 input from a 128x64 frame: scale 0.5, pad (0, 16).
    x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
    return [
        min(max(v, 0.0), hi)
        for v, hi in zip(
            [x1 * 2, (y1 - 16) * 2, x2 * 2, (y2 - 16) * 2], [128, 64, 128, 64], strict=True
        )
    ]


@pytest.fixture
def raw_model(tmp_path: Path) -> Path:
    return write_constant_model(tmp_path / "raw.onnx", _raw_output(), names=RAW_NAMES)


FRAME_128x64 = np.zeros((64, 128, 3), np.uint8)


@pytest.mark.parametrize("backend", BACKENDS)
def test_raw_decode_and_class_aware_nms(raw_model: Path, backend: str) -> None:
    det = load_detector(raw_model, backend=backend, conf=0.25, iou=0.45)  # type: ignore[arg-type]
    out = det.detect(FRAME_128x64)
    a, c, e, f, g = (RAW_ANCHORS[i] for i in (0, 2, 4, 5, 6))
    assert out.class_id.tolist() == [0, 1, 0, 0, 2]
    np.testing.assert_allclose(out.confidence, [0.9, 0.7, 0.5, 0.4, 0.3], atol=1e-6)
    expected = [_to_frame(*r[:4]) for r in (a, c, f, g, e)]
    np.testing.assert_allclose(out.xyxy, expected, atol=1e-4)
    assert out.xyxy[3].tolist()[2] == 128.0  # G clipped to the frame's right edge
    assert det.info.names == RAW_NAMES
    assert det.info.imgsz_hw == (64, 64)
    assert det.info.extra["layout"] == "raw"


def test_nms_threshold_and_conf_are_honoured(raw_model: Path) -> None:
    loose = load_detector(raw_model, backend="onnxruntime", conf=0.25, iou=0.9).detect(FRAME_128x64)
    assert len(loose) == 6  # B (IoU 0.82) survives an IoU threshold of 0.9
    strict = load_detector(raw_model, backend="onnxruntime", conf=0.6, iou=0.45)
    assert strict.detect(FRAME_128x64).confidence.tolist() == pytest.approx([0.9, 0.7])


def test_max_det_keeps_the_highest_scores(tmp_path: Path) -> None:
    n = 500
    rng = np.random.default_rng(0)
    table = np.zeros((1, 5, n), np.float32)
    table[0, 0] = np.arange(n) * 20.0  # far apart: NMS removes nothing
    table[0, 1] = 30
    table[0, 2:4] = 4
    table[0, 4] = rng.uniform(0.3, 0.99, n)
    model = write_constant_model(tmp_path / "many.onnx", table, names={0: "x"}, imgsz_hw=(64, 64))
    out = load_detector(model, backend="onnxruntime").detect(np.zeros((64, 64, 3), np.uint8))
    assert len(out) == 300
    np.testing.assert_allclose(out.confidence, np.sort(table[0, 4])[::-1][:300], atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_end_to_end_layout(tmp_path: Path, backend: str) -> None:
    rows = np.array(
        [
            [10, 20, 30, 40, 0.90, 3],
            [5, 5, 9, 9, 0.10, 0],  # below conf
            [0, 16, 64, 48, 0.50, 1],  # the whole image area
            [40, 30, 70, 50, 0.30, 2],  # sticks out right: clipped
            [0, 0, 0, 0, 0.00, 0],  # padding row of an end-to-end head
        ],
        np.float32,
    )[None]
    model = write_constant_model(
        tmp_path / "e2e.onnx", rows, names=NAMES, metadata={"end2end": "True"}
    )
    det = load_detector(model, backend=backend, conf=0.25)  # type: ignore[arg-type]
    out = det.detect(FRAME_128x64)
    assert det.info.extra["layout"] == "end2end"
    assert out.class_id.tolist() == [3, 1, 2]
    np.testing.assert_allclose(out.confidence, [0.9, 0.5, 0.3], atol=1e-6)
    np.testing.assert_allclose(
        out.xyxy, [[20, 8, 60, 48], [0, 0, 128, 64], [80, 28, 128, 64]], atol=1e-4
    )


def test_two_classes_square_output_follows_the_end2end_metadata(tmp_path: Path) -> None:
    # nc=2 makes a raw [1, 6, 6] output look like an end-to-end one; the metadata decides.
    table = np.zeros((1, 6, 6), np.float32)
    table[0, :, 0] = [32, 32, 10, 10, 0.1, 0.8]
    model = write_constant_model(tmp_path / "nc2.onnx", table, names={0: "a", 1: "b"})
    out = load_detector(model, backend="onnxruntime").detect(np.zeros((64, 64, 3), np.uint8))
    assert out.class_id.tolist() == [1]
    np.testing.assert_allclose(out.xyxy, [[27, 27, 37, 37]], atol=1e-4)


def test_no_detections_gives_empty(raw_model: Path) -> None:
    det = load_detector(raw_model, backend="onnxruntime", conf=0.95)
    out = det.detect(FRAME_128x64)
    assert len(out) == 0
    assert isinstance(out, Detections)


def test_stages_compose_to_detect(raw_model: Path) -> None:
    det = load_detector(raw_model, backend="onnxruntime")
    tensor, lb = det.preprocess(FRAME_128x64)
    staged = det.postprocess(det.forward(tensor), lb, (128, 64))
    whole = det.detect(FRAME_128x64)
    np.testing.assert_array_equal(staged.xyxy, whole.xyxy)


def test_dynamic_input_uses_the_metadata_size_or_imgsz(tmp_path: Path) -> None:
    model = write_constant_model(
        tmp_path / "dyn.onnx",
        _raw_output(),
        names=RAW_NAMES,
        imgsz_hw=(64, 64),
        dynamic_input=True,
    )
    assert load_detector(model, backend="onnxruntime").info.imgsz_hw == (64, 64)
    assert load_detector(model, backend="onnxruntime", imgsz=96).info.imgsz_hw == (96, 96)
    with pytest.raises(InvalidInputError, match="multiple of 32"):
        load_detector(model, backend="onnxruntime", imgsz=100)


def test_static_input_refuses_another_imgsz(raw_model: Path) -> None:
    with pytest.raises(InvalidInputError, match="fixed input size"):
        load_detector(raw_model, backend="onnxruntime", imgsz=320)


@pytest.mark.parametrize(
    ("output", "metadata", "message"),
    [
        (_raw_output(), {"names": ""}, "no 'names'"),
        (_raw_output(), {"task": "segment"}, "'segment' model"),
        (_raw_output(), {"names": "{0: 'a'}"}, r"not \[1, 4\+nc, N\]"),
        (_raw_output(), {"names": "not a dict"}, "'names' is not"),
        (np.zeros((1, 9, 5), np.float32), {"end2end": "True"}, r"must be \[1, N, 6\]"),
        (np.zeros((7, 7), np.float32), {}, "output must be"),
    ],
    ids=["no-names", "segment", "nc-mismatch", "bad-names", "e2e-width", "rank-2"],
)
def test_not_a_detector_is_a_model_error(
    tmp_path: Path, output: np.ndarray, metadata: dict[str, str], message: str
) -> None:
    model = write_constant_model(tmp_path / "bad.onnx", output, names=RAW_NAMES, metadata=metadata)
    with pytest.raises(ModelError, match=message):
        load_detector(model, backend="onnxruntime")


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_file_that_is_not_onnx_is_a_model_error(tmp_path: Path, backend: str) -> None:
    junk = tmp_path / "model.onnx"
    junk.write_bytes(b"this is not a protobuf" * 10)
    with pytest.raises(ModelError, match="not a loadable ONNX model"):
        load_detector(junk, backend=backend)  # type: ignore[arg-type]
    with pytest.raises(ModelError, match="no such model file"):
        load_detector(tmp_path / "missing.onnx", backend=backend)  # type: ignore[arg-type]


def test_bf16_needs_openvino(raw_model: Path) -> None:
    with pytest.raises(InvalidInputError, match="fp32 only"):
        load_detector(raw_model, backend="onnxruntime", precision="bf16")


def test_auto_backend_resolves_to_a_real_backend() -> None:
    assert choose_backend("onnxruntime")[0] == "onnxruntime"
    assert choose_backend("openvino")[0] == "openvino"
    assert choose_backend("auto")[0] in ("onnxruntime", "openvino")
    if not openvino_installed():
        assert choose_backend("auto")[0] == "onnxruntime"


def test_sha256_file(tmp_path: Path) -> None:
    data = np.random.default_rng(0).bytes(3 << 20)
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_model_info_names_the_file(raw_model: Path) -> None:
    det = load_detector(raw_model, backend="onnxruntime", version="7")
    assert det.info.version == "7"
    assert det.info.sha256 == sha256_file(raw_model)


# --- real models -------------------------------------------------------------------------------


def _scene(size_wh: tuple[int, int], seed: int) -> np.ndarray:
    """A grey conveyor-like frame with coloured blobs: enough structure for real detections."""
    w, h = size_wh
    rng = np.random.default_rng(seed)
    frame = np.full((h, w, 3), 90, np.uint8)
    for _ in range(14):
        x, y = int(rng.integers(0, w - 20)), int(rng.integers(0, h - 20))
        bw, bh = int(rng.integers(10, w // 4)), int(rng.integers(10, h // 4))
        color = tuple(int(c) for c in rng.integers(0, 255, 3))
        if rng.random() < 0.5:
            cv2.rectangle(frame, (x, y), (x + bw, y + bh), color, -1)
        else:
            cv2.ellipse(frame, (x, y), (bw // 2, bh // 2), 30, 0, 360, color, -1)
    return frame


def _box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(br - tl, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / (area_a[:, None] + area_b[None, :] - inter + 1e-9)


def assert_same_detections(
    ours: Detections, ref: Detections, *, conf_tol: float, iou_min: float, conf: float
) -> None:
    """Every reference box has a match (same class, IoU >= iou_min, confidence within conf_tol).

    Boxes whose confidence is within ``conf_tol`` of the threshold may be on either side of it.
    """

    def firm(d: Detections) -> np.ndarray:
        # Boxes clipped to nothing lie wholly in the letterbox padding: noise of random weights
        # whose order among near-equal scores is at the mercy of float rounding.
        wh = d.xyxy[:, 2:] - d.xyxy[:, :2]
        return np.flatnonzero((d.confidence > conf + conf_tol) & (wh.min(axis=1) >= 1.0))

    assert len(firm(ours)) == len(firm(ref)), (ours, ref)
    assert len(ref) > 0, "the reference found nothing: the comparison would prove nothing"
    iou = _box_iou(ref.xyxy, ours.xyxy) if len(ours) else np.zeros((len(ref), 0))
    for i in firm(ref):
        same = (ours.class_id == ref.class_id[i]) & (
            np.abs(ours.confidence - ref.confidence[i]) <= conf_tol
        )
        best = float(iou[i][same].max()) if same.any() else 0.0
        assert best >= iou_min, (
            f"no match for class {ref.class_id[i]} conf {ref.confidence[i]:.4f} "
            f"box {ref.xyxy[i].tolist()} (best IoU {best:.4f})"
        )


@pytest.mark.skipif(not openvino_installed(), reason="needs the openvino extra")
def test_onnxruntime_and_openvino_fp32_agree(detector_onnx: Path) -> None:
    ort_det = load_detector(detector_onnx, backend="onnxruntime", conf=0.25)
    ov_det = load_detector(detector_onnx, backend="openvino", precision="fp32", conf=0.25)
    total = 0
    for seed, size in enumerate([(640, 480), (1280, 720), (480, 640)]):
        frame = SyntheticLine(seed=seed, size_wh=size).render(5).frame_bgr
        a, b = ort_det.detect(frame), ov_det.detect(frame)
        total += len(a)
        assert_same_detections(b, a, conf_tol=1e-3, iou_min=0.99, conf=0.25)
    assert total > 0


@pytest.mark.skipif(not openvino_installed(), reason="needs the openvino extra")
def test_openvino_bf16_runs_close_to_fp32(detector_onnx: Path) -> None:
    fp32 = load_detector(detector_onnx, backend="openvino", precision="fp32")
    try:
        bf16 = load_detector(detector_onnx, backend="openvino", precision="bf16")
    except InvalidInputError:
        pytest.skip("this CPU has no bf16")
    assert bf16.info.extra["precision"] == "bf16"
    frame = SyntheticLine(seed=3).render(0).frame_bgr
    a, b = fp32.detect(frame), bf16.detect(frame)
    assert a.xyxy.size and b.xyxy.size
    # bf16 keeps ~3 significant digits: the strongest box is the same, roughly.
    assert int(a.class_id[0]) == int(b.class_id[0])
    assert abs(float(a.confidence[0]) - float(b.confidence[0])) < 0.05


@pytest.mark.skipif(not openvino_installed(), reason="needs the openvino extra")
def test_openvino_backend_never_starts_telemetry(
    raw_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # OpenVINO's telemetry lives in its model-conversion tools; our path (read_model on the
    # ONNX file, compile, infer) must never create a Telemetry object, which would send.
    telemetry = pytest.importorskip("openvino_telemetry")

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("OpenVINO telemetry was started")

    monkeypatch.setattr(telemetry.Telemetry, "__init__", refuse)
    det = load_detector(raw_model, backend="openvino", precision="fp32")
    assert len(det.detect(FRAME_128x64)) == 5


@pytest.mark.train
@pytest.mark.skipif(not have_ultralytics(), reason="needs the train extra (ultralytics)")
@pytest.mark.parametrize(
    ("export", "size"),
    [
        ("raw", None),
        ("nms-in-graph", None),
        ("baseline", "640"),
        ("baseline", "320"),
        ("baseline", "384x640"),  # a 16:9 letterbox
    ],
    ids=["raw", "nms-in-graph", "baseline", "baseline-320", "baseline-384x640"],
)
def test_decode_matches_ultralytics_predictions(
    request: pytest.FixtureRequest, tmp_path: Path, export: str, size: str | None
) -> None:
    """Same weights, same image: our ONNX runtime path vs Ultralytics' own torch predictions.

    The shipped baseline is a dynamic export: it runs at any size, square or not.
    """
    images = []
    run_size: tuple[int, int] | None = None
    if export == "baseline":
        if not (BASELINE_ONNX.is_file() and BASELINE_PT.is_file()):
            pytest.skip("src/visionloop/baseline/{model.onnx,best.pt} are not there yet")
        onnx, weights, config_dir = BASELINE_ONNX, BASELINE_PT, tmp_path / "yolo"
        assert size is not None
        sides = [int(v) for v in size.split("x")]
        run_size = (sides[0], sides[-1])
        imgsz: int | str = size
        frames = [SyntheticLine(seed=3).render(i * 40).frame_bgr for i in range(3)]
        frames.append(SyntheticLine(seed=4, size_wh=(960, 540)).render(0).frame_bgr)
    else:
        files: YoloFiles = request.getfixturevalue("yolo_model")
        onnx = files.onnx if export == "raw" else files.onnx_nms
        weights, imgsz, config_dir = files.pt, files.imgsz, files.config_dir
        sizes = [(640, 480), (1280, 720), (480, 640), (333, 517)]
        frames = [_scene(size, seed) for seed, size in enumerate(sizes)]
    for i, frame in enumerate(frames):
        path = tmp_path / f"frame{i}.png"
        cv2.imwrite(str(path), frame)
        images.append(path)
    conf, iou = 0.25, 0.7  # Ultralytics' predict defaults (and what nms=True bakes in)
    answers = ultralytics_json(
        "predict",
        "--weights", str(weights),
        "--images", *map(str, images),
        "--predict-imgsz", str(imgsz),
        "--conf", str(conf),
        "--iou", str(iou),
        config_dir=config_dir,
        out=tmp_path / "ref.json",
    )  # fmt: skip
    det = load_detector(onnx, backend="onnxruntime", conf=conf, iou=iou, imgsz=run_size)
    assert det.info.extra["layout"] == ("end2end" if export == "nms-in-graph" else "raw")
    if run_size is not None:
        assert det.info.imgsz_hw == run_size
    total = 0
    for path, answer in zip(images, answers, strict=True):
        ref = Detections(
            xyxy=np.array(answer["xyxy"], np.float32).reshape(-1, 4),
            confidence=np.array(answer["confidence"], np.float32),
            class_id=np.array(answer["class_id"], np.int64),
        )
        ours = det.detect(cv2.imread(str(path)))
        total += len(ref)
        assert_same_detections(ours, ref, conf_tol=1e-3, iou_min=0.99, conf=conf)
    assert total >= 10


def test_multi_label_keeps_every_class_above_conf(raw_model: Path) -> None:
    # As Ultralytics' val: anchor A (0.9 scratch, 0.1 dent) gives no dent at conf 0.05 unless
    # multi-label, where each class of an anchor is its own candidate for class-aware NMS.
    single = load_detector(raw_model, backend="onnxruntime", conf=0.05)
    multi = load_detector(raw_model, backend="onnxruntime", conf=0.05, multi_label=True)
    a, b = single.detect(FRAME_128x64), multi.detect(FRAME_128x64)
    pairs = set(
        zip(b.class_id.tolist(), np.round(b.confidence.astype(float), 3).tolist(), strict=True)
    )
    assert (1, 0.1) in pairs and (1, 0.1) not in set(
        zip(a.class_id.tolist(), np.round(a.confidence.astype(float), 3).tolist(), strict=True)
    )
    # D (0.20 scratch, 0.10 dent, 0.24 crack) yields three boxes, one per class.
    d_box = _to_frame(*RAW_ANCHORS[3][:4])
    at_d = [c for c, box in zip(b.class_id.tolist(), b.xyxy.tolist(), strict=True)
            if np.allclose(box, d_box, atol=1e-3)]  # fmt: skip
    assert sorted(at_d) == [0, 1, 2]
    assert len(b) > len(a)
