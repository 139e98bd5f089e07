"""Inference backends that run an ONNX file: ONNX Runtime (portable default) and OpenVINO (extra).

A backend only runs the graph; it knows nothing of boxes. Each one also reads the ONNX metadata
(Ultralytics writes ``names``, ``imgsz``, ``task``…) and the input/output shapes, so the
detector can check the file before it is used.

OpenVINO note: its CPU plugin runs bf16 by default on CPUs that support it, even for an f32
model, so the precision hint is always set explicitly. With ``streams`` above 1 it compiles in
throughput mode: that many streams (each on its share of the cores) and a pool of as many infer
requests, so inferences started with :meth:`~InferenceBackend.start` run side by side (several
frames of one camera in flight, or frames of several cameras sharing one loaded model).
``import openvino`` loads its conversion tools, whose telemetry sender asks a per-user consent
file: ``scripts/install.sh`` runs ``opt_in_out --opt_out`` so nothing tries the network
(README, "Telemetry").
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import platform
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from visionloop.errors import InvalidInputError, ModelError
from visionloop.types import BackendChoice, Precision

log = logging.getLogger(__name__)

BackendName = Literal["onnxruntime", "openvino"]

Dim = int | str | None
"""A tensor dimension: a size, or a name / None where the model leaves it dynamic."""


class Pending(Protocol):
    """An inference started with :meth:`InferenceBackend.start`."""

    def result(self) -> list[NDArray[np.floating]]:
        """Wait for it; the outputs are the caller's own arrays (no backend memory)."""
        ...


class InferenceBackend(Protocol):
    """Runs one ONNX graph on one input tensor; thread-safe (several cameras may share one)."""

    name: BackendName
    precision: Precision
    metadata: dict[str, str]
    input_shape: list[Dim]
    output_shapes: list[list[Dim]]
    depth: int
    """How many inferences run side by side (``start`` blocks while that many are running)."""

    def prepare(self, imgsz_hw: tuple[int, int]) -> None:
        """Fix the input size (a no-op for static models; compiles dynamic ones for this size)."""

    def run(self, tensor: NDArray[np.float32]) -> list[NDArray[np.floating]]:
        """Run the graph and wait; the outputs are the caller's own arrays."""

    def start(self, tensor: NDArray[np.float32]) -> Pending:
        """Start the graph on ``tensor``, which must stay unchanged until the result is in."""


class _Done:
    """A :class:`Pending` that already has its outputs (a backend without asynchronous runs)."""

    def __init__(self, outputs: list[NDArray[np.floating]]) -> None:
        self._outputs = outputs

    def result(self) -> list[NDArray[np.floating]]:
        return self._outputs


class _Waiting:
    """A :class:`Pending` filled by an OpenVINO completion callback."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._outputs: list[NDArray[np.floating]] = []
        self._error: BaseException | None = None

    def fill(self, outputs: list[NDArray[np.floating]], error: BaseException | None) -> None:
        self._outputs, self._error = outputs, error
        self._done.set()

    def result(self) -> list[NDArray[np.floating]]:
        self._done.wait()
        if self._error is not None:
            raise ModelError(f"inference failed: {self._error}") from self._error
        return self._outputs


def default_streams(backend: BackendName, cpu_count: int | None = None) -> int:
    """Streams when none are asked for: ONNX Runtime 1 (it runs one inference at a time);
    OpenVINO 2 on a machine with 2 or more cores (throughput mode: one frame's pre- and
    post-processing overlap the next frame's inference; docs/performance.md has the figures)."""
    if backend != "openvino":
        return 1
    cores = cpu_count if cpu_count is not None else os.cpu_count() or 1
    return 2 if cores >= 2 else 1


@dataclass(frozen=True)
class CpuInfo:
    """What the backend choice needs to know of the CPU: vendor, architecture and flags."""

    vendor: str
    machine: str
    flags: frozenset[str]

    @property
    def x86(self) -> bool:
        return self.machine.lower() in _X86_MACHINES

    @property
    def bf16(self) -> bool:
        """AVX512_BF16 (Cooper Lake, Zen 4 and later) or AMX-BF16 (Sapphire Rapids and later)."""
        return bool(self.flags & {"avx512_bf16", "amx_bf16"})

    def bf16_unit(self) -> str:
        return "AMX" if "amx_bf16" in self.flags else "AVX512_BF16"


_X86_MACHINES = frozenset({"x86_64", "amd64", "i386", "i686", "x86"})


@functools.cache
def cpu_info(cpuinfo_path: str = "/proc/cpuinfo") -> CpuInfo:
    """The CPU's vendor and flags from ``/proc/cpuinfo`` (Linux; elsewhere no flags)."""
    vendor, flags = "", frozenset[str]()
    try:
        with open(cpuinfo_path, encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("vendor_id") and not vendor:
                    vendor = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = frozenset(line.split(":", 1)[1].split())
                if vendor and flags:
                    break
    except OSError:
        pass
    return CpuInfo(vendor=vendor or platform.processor(), machine=platform.machine(), flags=flags)


def openvino_installed() -> bool:
    """Whether the ``openvino`` extra is importable."""
    return importlib.util.find_spec("openvino") is not None


def choose_backend(backend: BackendChoice, cpu: CpuInfo | None = None) -> tuple[BackendName, str]:
    """Resolve ``auto`` and say why: OpenVINO when installed on an x86 CPU (Intel or AMD: its CPU
    plugin is the faster one on both), else ONNX Runtime."""
    if backend != "auto":
        return backend, f"--backend {backend}"
    cpu = cpu or cpu_info()
    if not cpu.x86:
        return "onnxruntime", f"not an x86 CPU ({cpu.machine})"
    if not openvino_installed():
        return "onnxruntime", "OpenVINO is not installed (the openvino extra)"
    return "openvino", f"OpenVINO is installed on this x86 CPU ({cpu.vendor or 'unknown vendor'})"


def is_openvino_ir(path: Path) -> bool:
    """Whether ``path`` is an OpenVINO IR (``.xml`` beside its ``.bin``), e.g. an INT8 model."""
    return path.suffix.lower() == ".xml"


class OnnxRuntimeBackend:
    """ONNX Runtime on the CPU, fp32 only, one inference at a time (``start`` runs it at once)."""

    name: BackendName = "onnxruntime"
    depth = 1

    def __init__(self, path: Path, *, precision: Precision, threads: int | None) -> None:
        if precision != "fp32":
            raise InvalidInputError(
                f"ONNX Runtime runs fp32 only on the CPU; use --backend openvino for {precision}"
            )
        if is_openvino_ir(path):
            raise InvalidInputError(f"{path} is an OpenVINO model: use --backend openvino")
        import onnxruntime as ort

        self.precision: Precision = precision
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.inter_op_num_threads = 1
        if threads is not None:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ORT raises its own untyped errors for any bad file
            raise ModelError(f"{path}: not a loadable ONNX model ({exc})") from exc
        meta = self._session.get_modelmeta().custom_metadata_map
        self.metadata: dict[str, str] = {str(k): str(v) for k, v in meta.items()}
        inputs = self._session.get_inputs()
        self._input_name = inputs[0].name
        self.input_shape: list[Dim] = list(inputs[0].shape)
        self.output_shapes: list[list[Dim]] = [list(o.shape) for o in self._session.get_outputs()]
        self._output_names = [o.name for o in self._session.get_outputs()]
        # One run at a time: cameras sharing the session would otherwise split its threads.
        self._lock = threading.Lock()

    def prepare(self, imgsz_hw: tuple[int, int]) -> None:
        """ONNX Runtime takes any input size the graph allows; nothing to do."""

    def run(self, tensor: NDArray[np.float32]) -> list[NDArray[np.floating]]:
        with self._lock:
            outputs: list[NDArray[np.floating]] = self._session.run(
                self._output_names, {self._input_name: tensor}
            )
        return outputs

    def start(self, tensor: NDArray[np.float32]) -> Pending:
        return _Done(self.run(tensor))


class OpenVinoBackend:
    """OpenVINO on the CPU, fp32 or bf16 set explicitly; latency mode with ``streams`` 1, else
    throughput mode with that many streams and infer requests.

    ``int8`` runs an INT8 model (an OpenVINO IR that NNCF quantized): its quantized layers run
    in int8 and the rest in bf16 where the CPU has it (else f32).
    """

    name: BackendName = "openvino"

    def __init__(
        self, path: Path, *, precision: Precision, threads: int | None, streams: int = 1
    ) -> None:
        if streams < 1:
            raise InvalidInputError(f"streams must be at least 1, got {streams}")
        if not openvino_installed():
            raise InvalidInputError(
                "the OpenVINO backend needs the openvino extra: pip install 'visionloop[openvino]'"
            )
        import openvino as ov

        self.precision: Precision = precision
        self._core = ov.Core()
        if precision == "int8" and not is_openvino_ir(path):
            raise InvalidInputError(
                f"{path}: int8 runs the model version's INT8 artifact (an OpenVINO .xml); "
                "`visionloop models quantize VERSION` makes one"
            )
        if precision == "bf16":
            caps = self._core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
            if "BF16" not in caps:
                raise InvalidInputError(
                    "this CPU has no bf16 support (AVX512-BF16 or AMX); use --precision fp32"
                )
        try:
            self._model = self._core.read_model(str(path))
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses for any bad file
            raise ModelError(f"{path}: not a loadable ONNX model ({exc})") from exc
        self.metadata = _openvino_metadata(self._model)
        self.input_shape = _openvino_shape(self._model.inputs[0].get_partial_shape())
        self.output_shapes = [_openvino_shape(o.get_partial_shape()) for o in self._model.outputs]
        rest = "bf16" if precision == "int8" and cpu_info().bf16 else "f32"
        self._config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else rest,
            "PERFORMANCE_HINT": "LATENCY" if streams == 1 else "THROUGHPUT",
            "NUM_STREAMS": str(streams),
        }
        if threads is not None:
            self._config["INFERENCE_NUM_THREADS"] = threads
        self.depth = streams
        self._queue: Any = None
        # AsyncInferQueue.start_async waits for an idle request; one caller at a time picks one.
        self._start_lock = threading.Lock()
        self._compiled_hw: tuple[int, int] | None = None

    def prepare(self, imgsz_hw: tuple[int, int]) -> None:
        """Compile for ``imgsz_hw`` (a static shape compiles to faster code than a dynamic one)."""
        if self._compiled_hw == imgsz_hw:
            return
        if not self._model.inputs[0].get_partial_shape().is_static:
            self._model.reshape({0: [1, 3, imgsz_hw[0], imgsz_hw[1]]})
        import openvino as ov

        try:
            compiled = self._core.compile_model(self._model, "CPU", self._config)
        except Exception as exc:
            raise ModelError(f"OpenVINO cannot compile this model: {exc}") from exc
        self._queue = ov.AsyncInferQueue(compiled, self.depth)
        self._queue.set_callback(_finished)
        self._compiled_hw = imgsz_hw

    def run(self, tensor: NDArray[np.float32]) -> list[NDArray[np.floating]]:
        return self.start(tensor).result()

    def start(self, tensor: NDArray[np.float32]) -> Pending:
        if self._queue is None:
            raise RuntimeError("OpenVinoBackend.prepare() must run before start()")
        pending = _Waiting()
        with self._start_lock:
            self._queue.start_async({0: tensor}, pending, share_inputs=True)
        return pending


def _finished(request: Any, pending: _Waiting) -> None:
    """OpenVINO's completion callback: copy the outputs out before the request is reused."""
    try:
        pending.fill([np.array(t.data, copy=True) for t in request.output_tensors], None)
    except BaseException as exc:  # surfaces in result(), on the caller's thread
        pending.fill([], exc)


def _openvino_shape(shape: Any) -> list[Dim]:
    return [d.get_length() if d.is_static else None for d in shape]


def _openvino_metadata(model: Any) -> dict[str, str]:
    # OpenVINO keeps ONNX metadata_props under rt_info["framework"].
    if not model.has_rt_info(["framework"]):
        return {}
    keys = model.get_rt_info()["framework"].keys()
    return {str(k): str(model.get_rt_info(["framework", k]).astype(str)) for k in keys}


def open_backend(
    path: Path,
    *,
    backend: BackendName,
    precision: Precision,
    threads: int | None,
    streams: int = 1,
) -> InferenceBackend:
    """Open ``path`` with the named backend (``auto`` already resolved); ``streams`` is how many
    inferences OpenVINO runs side by side (ONNX Runtime runs one)."""
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    if threads is not None and threads < 1:
        raise InvalidInputError(f"threads must be at least 1, got {threads}")
    log.debug("opening %s with %s %s", path, backend, precision)
    if backend == "onnxruntime":
        return OnnxRuntimeBackend(path, precision=precision, threads=threads)
    if backend == "openvino":
        return OpenVinoBackend(path, precision=precision, threads=threads, streams=streams)
    raise InvalidInputError(f"unknown backend {backend!r}: use auto, onnxruntime or openvino")
