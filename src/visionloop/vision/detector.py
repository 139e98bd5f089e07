"""The detector: any Ultralytics ONNX export, run by ONNX Runtime or OpenVINO, frames in, boxes out.

``load_detector`` opens the file with a backend (see :mod:`visionloop.vision.backends`), reads
the class names and input size from the ONNX metadata Ultralytics writes, works out the output
layout and refuses a file that is not such a model with a ``ModelError`` that says why.
A ``Detector`` then runs letterbox (:mod:`~visionloop.vision.preprocess`), the graph and
decode + NMS (:mod:`~visionloop.vision.decode`), mapping boxes back to the original frame.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import logging
import statistics
import time
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from visionloop.errors import InvalidInputError, ModelError
from visionloop.types import BackendChoice, Detections, ModelInfo, Precision, PrecisionChoice
from visionloop.vision.backends import (
    BackendName,
    Dim,
    InferenceBackend,
    Pending,
    choose_backend,
    cpu_info,
    default_streams,
    open_backend,
)
from visionloop.vision.decode import MAX_DET, OutputLayout, decode
from visionloop.vision.precision import Agreement, agreement, int8_companion, probe_frames
from visionloop.vision.preprocess import Letterbox, LetterboxBuffer, unletterbox_xyxy

log = logging.getLogger(__name__)


class Detector(Protocol):
    """A loaded detector. ``detect`` = ``preprocess`` -> ``forward`` -> ``postprocess``.

    The three stages are public so a pipeline can time them separately. ``preprocess`` returns
    a view of a buffer it reuses: consume it before the next call. ``forward`` and ``start`` are
    thread-safe and return the caller's own arrays; ``postprocess`` is pure.
    """

    info: ModelInfo

    @property
    def depth(self) -> int:
        """How many ``start``-ed inferences run side by side (the backend's streams)."""
        ...

    def preprocess(self, frame_bgr: NDArray[np.uint8]) -> tuple[NDArray[np.float32], Letterbox]:
        """Letterbox a BGR uint8 frame into the model's ``(1, 3, H, W)`` RGB 0..1 input."""
        ...

    def forward(self, tensor: NDArray[np.float32]) -> list[NDArray[np.floating]]:
        """Run the model on a preprocessed tensor; returns the raw outputs."""
        ...

    def start(self, tensor: NDArray[np.float32]) -> Pending:
        """Start ``forward`` without waiting; ``tensor`` must stay unchanged until the result."""
        ...

    def postprocess(
        self, outputs: list[NDArray[np.floating]], lb: Letterbox, size_wh: tuple[int, int]
    ) -> Detections:
        """Decode + NMS, boxes mapped back to the ``(width, height)`` frame they came from."""
        ...

    def detect(self, frame_bgr: NDArray[np.uint8]) -> Detections:
        """All three stages on one frame."""
        ...


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks. The one file-hashing helper of the project."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class YoloDetector:
    """A ``Detector`` for Ultralytics YOLO ONNX exports, over any ``InferenceBackend``."""

    def __init__(
        self,
        backend: InferenceBackend,
        info: ModelInfo,
        layout: OutputLayout,
        *,
        conf: float,
        iou: float,
        max_det: int = MAX_DET,
        multi_label: bool = False,
    ) -> None:
        if not 0.0 <= conf < 1.0:
            raise InvalidInputError(f"conf must be in [0, 1), got {conf}")
        if not 0.0 < iou <= 1.0:
            raise InvalidInputError(f"iou must be in (0, 1], got {iou}")
        self.info = info
        self.layout: OutputLayout = layout
        self.conf = conf
        self.iou = iou
        self.max_det = max_det
        self.multi_label = multi_label
        self._backend = backend
        self._letterbox = LetterboxBuffer(info.imgsz_hw)
        backend.prepare(info.imgsz_hw)

    def preprocess(self, frame_bgr: NDArray[np.uint8]) -> tuple[NDArray[np.float32], Letterbox]:
        return self._letterbox(frame_bgr)

    @property
    def depth(self) -> int:
        return self._backend.depth

    def forward(self, tensor: NDArray[np.float32]) -> list[NDArray[np.floating]]:
        return self._backend.run(tensor)

    def start(self, tensor: NDArray[np.float32]) -> Pending:
        return self._backend.start(tensor)

    def postprocess(
        self, outputs: list[NDArray[np.floating]], lb: Letterbox, size_wh: tuple[int, int]
    ) -> Detections:
        boxes = decode(
            outputs[0],
            self.layout,
            conf=self.conf,
            iou=self.iou,
            max_det=self.max_det,
            multi_label=self.multi_label,
        )
        if len(boxes.confidence) == 0:
            return Detections.empty()
        return Detections(
            xyxy=unletterbox_xyxy(boxes.xyxy, lb, size_wh),
            confidence=boxes.confidence,
            class_id=boxes.class_id,
        )

    def detect(self, frame_bgr: NDArray[np.uint8]) -> Detections:
        tensor, lb = self.preprocess(frame_bgr)
        outputs = self.forward(tensor)
        h, w = frame_bgr.shape[:2]
        return self.postprocess(outputs, lb, (w, h))


def parse_names(raw: str) -> dict[int, str]:
    """Class names from Ultralytics' ``names`` metadata: a Python dict literal ``{0: 'a', …}``."""
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError) as exc:
        raise ModelError(f"metadata 'names' is not a dict of class names: {raw[:80]!r}") from exc
    if isinstance(value, list | tuple):
        value = dict(enumerate(value))
    if not isinstance(value, dict) or not value:
        raise ModelError(f"metadata 'names' is not a dict of class names: {raw[:80]!r}")
    names = {int(k): str(v) for k, v in value.items()}
    if sorted(names) != list(range(len(names))):
        raise ModelError("metadata 'names' must number the classes 0..nc-1")
    return names


def parse_imgsz(raw: str) -> tuple[int, int]:
    """Input size ``(height, width)`` from Ultralytics' ``imgsz`` metadata (``[h, w]`` or ``n``)."""
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError) as exc:
        raise ModelError(f"metadata 'imgsz' is not a size: {raw[:40]!r}") from exc
    if isinstance(value, int):
        value = [value, value]
    if (
        not isinstance(value, list | tuple)
        or len(value) != 2
        or not all(isinstance(v, int) and v > 0 for v in value)
    ):
        raise ModelError(f"metadata 'imgsz' is not a size: {raw[:40]!r}")
    return int(value[0]), int(value[1])


def _static(dim: Dim) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None


def inspect_model(
    backend: InferenceBackend, *, imgsz: int | tuple[int, int] | None
) -> tuple[dict[int, str], tuple[int, int], OutputLayout]:
    """Check that the backend's graph is an Ultralytics detector; names, input size, layout.

    ``imgsz`` overrides the input size for models exported with a dynamic input; a static
    model only accepts its own size.
    """
    meta = backend.metadata
    task = meta.get("task", "detect")
    if task != "detect":
        raise ModelError(f"this is a {task!r} model; visionloop runs 'detect' models only")
    if "names" not in meta:
        raise ModelError(
            "no 'names' in the ONNX metadata: not an Ultralytics export "
            "(export with `yolo export format=onnx` or YOLO(...).export(format='onnx'))"
        )
    names = parse_names(meta["names"])
    nc = len(names)

    shape = backend.input_shape
    if len(shape) != 4 or _static(shape[1]) not in (3, None):
        raise ModelError(f"input must be [1, 3, H, W] images, got {shape}")
    static_hw = (_static(shape[2]), _static(shape[3]))
    if imgsz is not None:
        wanted = (imgsz, imgsz) if isinstance(imgsz, int) else imgsz
        if wanted[0] % 32 or wanted[1] % 32 or min(wanted) <= 0:
            raise InvalidInputError(f"imgsz must be a positive multiple of 32, got {imgsz}")
        if static_hw[0] is not None and static_hw != wanted:
            raise InvalidInputError(
                f"this model has a fixed input size {static_hw[0]}x{static_hw[1]}; "
                "export it with dynamic=True to run it at another size"
            )
        imgsz_hw = (int(wanted[0]), int(wanted[1]))
    elif static_hw[0] is not None and static_hw[1] is not None:
        imgsz_hw = (static_hw[0], static_hw[1])
    elif "imgsz" in meta:
        imgsz_hw = parse_imgsz(meta["imgsz"])
    else:
        raise ModelError("dynamic input size and no 'imgsz' metadata: pass imgsz")

    if not backend.output_shapes:
        raise ModelError("the model has no outputs")
    out = backend.output_shapes[0]
    if len(out) != 3:
        raise ModelError(f"output must be [1, 4+nc, N] or [1, N, 6], got {out}")
    rows, cols = _static(out[1]), _static(out[2])
    raw_fits, e2e_fits = rows in (4 + nc, None), cols in (6, None)
    layout: OutputLayout
    if raw_fits and not e2e_fits:
        layout = "raw"
    elif e2e_fits and not raw_fits:
        layout = "end2end"
    else:
        # Ambiguous (nc=2 gives [1, 6, 6]; or dynamic dims): ask the metadata. Its "end2end" is
        # False for an `nms=True` export, whose args then say nms: True.
        args = meta.get("args", "")
        nms_in_graph = "'nms': True" in args or '"nms": true' in args
        e2e_meta = meta.get("end2end", "").strip().lower() == "true"
        layout = "end2end" if (e2e_meta or nms_in_graph) else "raw"
    if layout == "raw" and rows not in (4 + nc, None):
        raise ModelError(
            f"output {out} is not [1, 4+nc, N] for the {nc} classes named in the metadata"
        )
    if layout == "end2end" and cols not in (6, None):
        raise ModelError(f"end-to-end output must be [1, N, 6], got {out}")
    return names, imgsz_hw, layout


def _open(
    path: Path,
    *,
    backend: BackendName,
    precision: Precision,
    threads: int | None,
    streams: int,
    imgsz: int | tuple[int, int] | None,
    conf: float,
    iou: float,
    multi_label: bool,
    version: str,
    sha256: str,
    choice: str,
) -> YoloDetector:
    runtime = open_backend(
        path, backend=backend, precision=precision, threads=threads, streams=streams
    )
    names, imgsz_hw, layout = inspect_model(runtime, imgsz=imgsz)
    info = ModelInfo(
        version=version,
        sha256=sha256,
        names=names,
        imgsz_hw=imgsz_hw,
        extra={
            "backend": backend,
            "precision": precision,
            "choice": choice,
            "layout": layout,
            "task": "detect",
            "producer": runtime.metadata.get("version", ""),
            "streams": str(runtime.depth),
        },
    )
    return YoloDetector(runtime, info, layout, conf=conf, iou=iou, multi_label=multi_label)


RACE_ROUNDS = 6


def race(a: Detector, b: Detector, rounds: int = RACE_ROUNDS) -> tuple[float, float]:
    """Median seconds per ``forward`` of two detectors on the same input, runs interleaved (so a
    load change on a shared machine hits both alike). About ``2 * rounds + 2`` inferences."""
    frame = probe_frames(1)[0]
    tensor_a = a.preprocess(frame)[0].copy()
    tensor_b = b.preprocess(frame)[0].copy()
    a.forward(tensor_a)
    b.forward(tensor_b)
    times_a, times_b = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        a.forward(tensor_a)
        t1 = time.perf_counter()
        b.forward(tensor_b)
        t2 = time.perf_counter()
        times_a.append(t1 - t0)
        times_b.append(t2 - t1)
    return statistics.median(times_a), statistics.median(times_b)


def bf16_agreement(fp32: Detector, bf16: Detector) -> Agreement:
    """Run both detectors on the probe frames (:mod:`visionloop.vision.precision`) and compare."""
    reference, candidate, diff = [], [], 0.0
    for frame in probe_frames():
        tensor, lb = fp32.preprocess(frame)
        out_ref = [np.array(o, copy=True) for o in fp32.forward(tensor)]
        tensor, lb = bf16.preprocess(frame)
        out_new = [np.array(o, copy=True) for o in bf16.forward(tensor)]
        size_wh = (frame.shape[1], frame.shape[0])
        reference.append(fp32.postprocess(out_ref, lb, size_wh))
        candidate.append(bf16.postprocess(out_new, lb, size_wh))
        if fp32.info.extra.get("layout") == "raw":  # class scores are rows 4.. of [1, 4+nc, N]
            diff = max(diff, float(np.max(np.abs(out_ref[0][0, 4:] - out_new[0][0, 4:]))))
    return agreement(reference, candidate, diff)


def load_detector(
    path: Path,
    *,
    backend: BackendChoice = "auto",
    precision: PrecisionChoice = "auto",
    conf: float = 0.25,
    iou: float = 0.45,
    version: str = "local",
    threads: int | None = None,
    imgsz: int | tuple[int, int] | None = None,
    multi_label: bool = False,
    streams: int | None = 1,
) -> Detector:
    """Load an Ultralytics ONNX export as a ``Detector``.

    ``backend`` ``auto`` is OpenVINO when installed on an x86 CPU, else ONNX Runtime.
    ``precision`` ``auto`` (OpenVINO only; ONNX Runtime runs fp32) is ``int8`` when the model
    has an accepted INT8 companion (:func:`~visionloop.vision.precision.int8_companion`) —
    on a CPU with bf16 only when a short race (:func:`race`) finds it faster than bf16 —, else
    ``bf16`` when the CPU has AVX512_BF16 or AMX and bf16 detections agree with fp32 on the
    probe frames, else ``fp32``. ``bf16`` needs OpenVINO and a CPU with bf16; ``int8`` needs
    OpenVINO and the INT8 companion. The choice and why are in ``info.extra["choice"]``.
    ``conf`` and ``iou`` are the score threshold and the NMS IoU threshold. ``version`` names
    the model in records. ``threads`` caps the backend's intra-op threads (None: the
    backend's default). ``imgsz`` picks the input size, ``n`` or ``(h, w)``, of a model
    exported with ``dynamic=True``. ``multi_label`` reports every class above ``conf`` of a
    box, not only the best (for mAP). ``streams`` is how many inferences OpenVINO runs side by
    side: 1 (latency mode, for one ``detect`` after another), or more for callers that keep
    frames in flight with ``start`` (None: :func:`~visionloop.vision.backends.default_streams`,
    what the edge agent uses: 2 on 2 or more cores); ONNX Runtime runs one at a time.
    Raises ``ModelError`` for a file that is not such a model, ``InvalidInputError`` for an
    impossible combination of options.
    """
    path = Path(path)
    if precision not in ("auto", "fp32", "bf16", "int8"):
        raise InvalidInputError(f"precision must be auto, fp32, bf16 or int8, got {precision!r}")
    chosen, why_backend = choose_backend(backend)
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    sha256 = sha256_file(path)
    companion = int8_companion(path)
    cpu = cpu_info()
    if streams is not None and streams < 1:
        raise InvalidInputError(f"streams must be at least 1, got {streams}")
    opener = functools.partial(
        _open,
        threads=threads,
        streams=(streams or default_streams(chosen)) if chosen == "openvino" else 1,
        imgsz=imgsz,
        conf=conf,
        iou=iou,
        multi_label=multi_label,
        version=version,
        sha256=sha256,
    )
    detector: YoloDetector
    auto_int8 = precision == "auto" and chosen == "openvino" and companion and companion.accepted
    if precision == "int8" or auto_int8:
        if chosen != "openvino":
            raise InvalidInputError("int8 needs OpenVINO: --backend openvino or auto")
        if companion is None:
            raise InvalidInputError(
                f"{path.name} has no INT8 artifact (`visionloop models quantize VERSION`)"
            )
        why = "--precision int8" if precision == "int8" else companion.why()
        detector = opener(
            companion.xml,
            backend=chosen,
            precision="int8",
            choice=f"{chosen} int8: {why_backend}; int8: {why}",
        )
        if auto_int8 and cpu.bf16:
            # On AMX, bf16 often beats int8 (FACTS.md; docs/performance.md): time both, keep the
            # faster, and bf16 only if it also passes the agreement check.
            bf16 = opener(path, backend=chosen, precision="bf16", choice="")
            t_int8, t_bf16 = race(detector, bf16)
            if t_bf16 < t_int8:
                fp32 = opener(path, backend=chosen, precision="fp32", choice="")
                agreed = bf16_agreement(fp32, bf16)
                if agreed.ok:
                    detector = bf16
                    detector.info.extra["choice"] = (
                        f"{chosen} bf16: {why_backend}; bf16: faster than the INT8 artifact on "
                        f"this CPU ({cpu.bf16_unit()}: {t_bf16 * 1000:.1f} vs "
                        f"{t_int8 * 1000:.1f} ms) and bf16 detections agree with fp32 ({agreed})"
                    )
            if detector.info.extra["precision"] == "int8":
                detector.info.extra["choice"] += (
                    f"; faster than bf16 here ({t_int8 * 1000:.1f} vs {t_bf16 * 1000:.1f} ms)"
                )
    elif precision == "auto" and chosen == "openvino" and cpu.bf16:
        fp32 = opener(path, backend=chosen, precision="fp32", choice="")
        bf16 = opener(path, backend=chosen, precision="bf16", choice="")
        agreed = bf16_agreement(fp32, bf16)
        if agreed.ok:
            detector = bf16
            why = f"the CPU has {cpu.bf16_unit()} and bf16 detections agree with fp32 ({agreed})"
        else:
            detector = fp32
            why = f"bf16 detections differ from fp32 on the probe frames ({agreed})"
        detector.info.extra["choice"] = (
            f"{chosen} {detector.info.extra['precision']}: {why_backend}; "
            f"{detector.info.extra['precision']}: {why}"
        )
    else:
        resolved: Precision = "fp32" if precision == "auto" else precision
        if precision != "auto":
            why = f"--precision {precision}"
        elif chosen == "onnxruntime":
            why = "ONNX Runtime runs fp32"
        else:
            why = "the CPU has neither AVX512_BF16 nor AMX"
        detector = opener(
            path,
            backend=chosen,
            precision=resolved,
            choice=f"{chosen} {resolved}: {why_backend}; {resolved}: {why}",
        )
    info = detector.info
    log.info(
        "loaded %s (%d classes, %dx%d, %s): %s",
        path.name,
        len(info.names),
        info.imgsz_hw[1],
        info.imgsz_hw[0],
        info.extra["layout"],
        info.extra["choice"],
    )
    return detector
