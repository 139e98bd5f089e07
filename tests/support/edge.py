"""Edge test support: a real YOLO11n ONNX export (random weights) and simple frame sources."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

EDGE_IMGSZ = 320


@pytest.fixture(scope="session")
def edge_onnx(request: pytest.FixtureRequest) -> Path:
    """A real Ultralytics YOLO11n detector exported to ONNX at 320 (random init, 80 classes).

    Exported once and cached in pytest's cache folder (about 2 s with the train extra).
    """
    cache = Path(request.config.cache.mkdir("edge-models"))
    out = cache / f"yolo11n-{EDGE_IMGSZ}.onnx"
    if out.exists():
        return out
    pytest.importorskip("ultralytics")
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(cache / "ultralytics"))
    from ultralytics import YOLO

    with warnings.catch_warnings():
        # torch's exporter warns about its own legacy path; not ours to fix.
        warnings.simplefilter("ignore")
        model = YOLO("yolo11n.yaml")
        exported = Path(
            model.export(
                format="onnx", imgsz=EDGE_IMGSZ, dynamic=False, simplify=False, verbose=False
            )
        )
    exported.replace(out)
    return out


@dataclass
class TestFrame:
    """Duck-typed ``visionloop.vision.sources.Frame``."""

    index: int
    captured_at: datetime
    frame_bgr: NDArray[np.uint8]


class ArraySource:
    """A ``FrameSource`` over generated frames; ``live`` sources drop, file sources block."""

    def __init__(self, n: int, *, live: bool = False, size_wh: tuple[int, int] = (640, 480)):
        self.n = n
        self.live = live
        rng = np.random.default_rng(0)
        w, h = size_wh
        self._frames = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(4)]
        self.produced = 0
        self.closed = False

    def __iter__(self) -> Iterator[TestFrame]:
        t0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
        for i in range(self.n):
            if self.closed:
                return
            self.produced += 1
            yield TestFrame(i, t0 + timedelta(milliseconds=33 * i), self._frames[i % 4])

    def close(self) -> None:
        self.closed = True
