"""Fixtures for the edge tests: the detector model they run."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def edge_onnx(detector_onnx: Path) -> Path:
    """The shipped baseline when committed, else a real YOLO11n export (support/models.py)."""
    return detector_onnx
