"""Fixtures for the edge tests (they live in support/edge.py so test modules can import helpers)."""

from support.edge import edge_onnx

__all__ = ["edge_onnx"]
