"""Inference backends that run an ONNX file: ONNX Runtime (portable default) and OpenVINO (extra).

A backend only runs the graph; it knows nothing of boxes. Each one also reads the ONNX metadata
(Ultralytics writes ``names``, ``imgsz``, ``task``…) and the input/output shapes, so the
detector can check the file before it is used.

OpenVINO note: its CPU plugin runs bf16 by default on CPUs that support it, even for an f32
model, so the precision hint is always set explicitly. ``import openvino`` loads its conversion
tools, whose telemetry sender asks a per-user consent file: ``scripts/install.sh`` runs
``opt_in_out --opt_out`` so nothing tries the network (README, "Telemetry").
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import platform
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


class InferenceBackend(Protocol):
    """Runs one ONNX graph on one input tensor."""

    name: BackendName
    precision: Precision
    metadata: dict[str, str]
    input_shape: list[Dim]
    output_shapes: list[list[Dim]]

    def prepare(self, imgsz_hw: tuple[int, int]) -> None:
        """Fix the input size (a no-op for static models; compiles dynamic ones for this size)."""

    def run(self, tensor: NDArray[np.float32]) -> list[NDArray[np.floating]]:
        """Run the graph; the arrays may be views of backend memory reused by the next call."""


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
    """ONNX Runtime on the CPU, fp32 only."""

    name: BackendName = "onnxruntime"

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

    def prepare(self, imgsz_hw: tuple[int, int]) -> None:
        """ONNX Runtime takes any input size the graph allows; nothing to do."""

    def run(self, tensor: NDArray[np.float32]) -> list[NDArray[np.floating]]:
        outputs: list[NDArray[np.floating]] = self._session.run(
            self._output_names, {self._input_name: tensor}
        )
        return outputs


class OpenVinoBackend:
    """OpenVINO on the CPU, latency mode, fp32 or bf16 set explicitly.

    ``int8`` runs an INT8 model (an OpenVINO IR that NNCF quantized): its quantized layers run
    in int8 and the rest in bf16 where the CPU has it (else f32).
    """

    name: BackendName = "openvino"

    def __init__(self, path: Path, *, precision: Precision, threads: int | None) -> None:
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
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": "1",
        }
        if threads is not None:
            self._config["INFERENCE_NUM_THREADS"] = threads
        self._request: Any = None
        self._compiled_hw: tuple[int, int] | None = None

    def prepare(self, imgsz_hw: tuple[int, int]) -> None:
        """Compile for ``imgsz_hw`` (a static shape compiles to faster code than a dynamic one)."""
        if self._compiled_hw == imgsz_hw:
            return
        if not self._model.inputs[0].get_partial_shape().is_static:
            self._model.reshape({0: [1, 3, imgsz_hw[0], imgsz_hw[1]]})
        try:
            compiled = self._core.compile_model(self._model, "CPU", self._config)
        except Exception as exc:
            raise ModelError(f"OpenVINO cannot compile this model: {exc}") from exc
        self._request = compiled.create_infer_request()
        self._compiled_hw = imgsz_hw

    def run(self, tensor: NDArray[np.float32]) -> list[NDArray[np.floating]]:
        if self._request is None:
            raise RuntimeError("OpenVinoBackend.prepare() must run before run()")
        self._request.infer({0: tensor}, share_inputs=True)
        return [t.data for t in self._request.output_tensors]


def _openvino_shape(shape: Any) -> list[Dim]:
    return [d.get_length() if d.is_static else None for d in shape]


def _openvino_metadata(model: Any) -> dict[str, str]:
    # OpenVINO keeps ONNX metadata_props under rt_info["framework"].
    if not model.has_rt_info(["framework"]):
        return {}
    keys = model.get_rt_info()["framework"].keys()
    return {str(k): str(model.get_rt_info(["framework", k]).astype(str)) for k in keys}


def open_backend(
    path: Path, *, backend: BackendName, precision: Precision, threads: int | None
) -> InferenceBackend:
    """Open ``path`` with the named backend (``auto`` already resolved)."""
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    if threads is not None and threads < 1:
        raise InvalidInputError(f"threads must be at least 1, got {threads}")
    log.debug("opening %s with %s %s", path, backend, precision)
    if backend == "onnxruntime":
        return OnnxRuntimeBackend(path, precision=precision, threads=threads)
    if backend == "openvino":
        return OpenVinoBackend(path, precision=precision, threads=threads)
    raise InvalidInputError(f"unknown backend {backend!r}: use auto, onnxruntime or openvino")
