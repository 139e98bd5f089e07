"""Letterbox geometry, content and round-trip; frame statistics."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from visionloop.vision.preprocess import (
    PAD_VALUE,
    Letterbox,
    LetterboxBuffer,
    frame_stats,
    letterbox,
    unletterbox_xyxy,
)


def _frame(w: int, h: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    ("size_wh", "imgsz_hw", "scale", "pad_xy"),
    [
        ((640, 480), (320, 320), 0.5, (0.0, 40.0)),
        ((1280, 720), (640, 640), 0.5, (0.0, 140.0)),
        ((300, 500), (320, 320), 0.64, (64.0, 0.0)),
        # Odd padding: Ultralytics' round(d/2 - 0.1) puts the extra pixel right/bottom.
        ((101, 50), (64, 64), 64 / 101, (0.0, 16.0)),
        ((640, 640), (640, 640), 1.0, (0.0, 0.0)),
        ((1280, 720), (384, 640), 0.5, (0.0, 12.0)),
    ],
    ids=["vga-320", "720p-640", "portrait", "odd", "same-size", "16:9-input"],
)
def test_letterbox_geometry(
    size_wh: tuple[int, int],
    imgsz_hw: tuple[int, int],
    scale: float,
    pad_xy: tuple[float, float],
) -> None:
    tensor, lb = letterbox(_frame(*size_wh), imgsz_hw)
    assert tensor.shape == (1, 3, *imgsz_hw)
    assert tensor.dtype == np.float32
    assert lb.scale == pytest.approx(scale)
    assert lb.pad_xy == pad_xy


def test_letterbox_content_is_rgb_scaled_with_grey_border() -> None:
    frame = _frame(640, 480)
    tensor, lb = letterbox(frame, (320, 320))
    top = int(lb.pad_xy[1])
    resized = cv2.resize(frame, (320, 240), interpolation=cv2.INTER_LINEAR)
    expected_rgb = resized[..., ::-1].transpose(2, 0, 1).astype(np.float32) / 255
    np.testing.assert_allclose(tensor[0, :, top : top + 240, :], expected_rgb, atol=1e-6)
    np.testing.assert_allclose(tensor[0, :, :top, :], PAD_VALUE / 255, atol=1e-6)
    np.testing.assert_allclose(tensor[0, :, top + 240 :, :], PAD_VALUE / 255, atol=1e-6)


def test_letterbox_side_padding_content() -> None:
    frame = _frame(300, 500)
    tensor, lb = letterbox(frame, (320, 320))
    left = int(lb.pad_xy[0])
    resized = cv2.resize(frame, (192, 320), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(
        tensor[0, 0, :, left : left + 192], resized[..., 2].astype(np.float32) / 255, atol=1e-6
    )
    np.testing.assert_allclose(tensor[0, :, :, :left], PAD_VALUE / 255, atol=1e-6)


def test_buffer_is_reused_and_repaints_when_the_frame_size_changes() -> None:
    buffer = LetterboxBuffer((320, 320))
    first, _ = buffer(_frame(300, 500, seed=1))  # pads left/right
    second, lb = buffer(_frame(640, 480, seed=2))  # pads top/bottom
    assert first is second  # the same memory, no allocation per frame
    # The old side padding must be gone: fresh letterbox of the second frame is identical.
    fresh, fresh_lb = letterbox(_frame(640, 480, seed=2), (320, 320))
    np.testing.assert_array_equal(second, fresh)
    assert lb == fresh_lb


@pytest.mark.parametrize(
    ("size_wh", "imgsz_hw"),
    [((640, 480), (320, 320)), ((300, 500), (640, 640)), ((1920, 1080), (384, 640))],
    ids=["landscape", "portrait-upscale", "1080p-16:9"],
)
def test_box_round_trip(size_wh: tuple[int, int], imgsz_hw: tuple[int, int]) -> None:
    _, lb = letterbox(_frame(*size_wh), imgsz_hw)
    w, h = size_wh
    boxes = np.array([[0, 0, w, h], [10.5, 20.25, 100, 90], [w - 5, h - 7, w, h]], np.float32)
    in_input = boxes * lb.scale + np.array([*lb.pad_xy, *lb.pad_xy], np.float32)
    np.testing.assert_allclose(unletterbox_xyxy(in_input, lb, size_wh), boxes, atol=1e-3)


def test_unletterbox_clips_to_the_frame() -> None:
    lb = Letterbox(scale=0.5, pad_xy=(0.0, 40.0))
    boxes = np.array([[-10, 20, 400, 300]], np.float32)  # sticks out left, top, right, bottom
    assert unletterbox_xyxy(boxes, lb, (640, 480)).tolist() == [[0.0, 0.0, 640.0, 480.0]]


@pytest.mark.parametrize(
    "frame",
    [np.zeros((480, 640), np.uint8), np.zeros((480, 640, 3), np.float32)],
    ids=["grey", "float"],
)
def test_letterbox_rejects_non_bgr_frames(frame: np.ndarray) -> None:
    with pytest.raises(ValueError, match="uint8"):
        letterbox(frame, (320, 320))


def test_frame_stats_of_a_flat_frame() -> None:
    stats = frame_stats(np.full((480, 640, 3), 128, np.uint8))
    assert stats.brightness == pytest.approx(128 / 255, abs=1e-3)
    assert stats.contrast == pytest.approx(0.0, abs=1e-6)
    assert stats.sharpness == pytest.approx(0.0, abs=1e-6)


def test_frame_stats_track_brightness_contrast_and_blur() -> None:
    rng = np.random.default_rng(0)
    base = rng.integers(60, 200, (480, 640, 3), dtype=np.uint8)
    blurred = cv2.GaussianBlur(base, (0, 0), 3)
    darker = (base * 0.5).astype(np.uint8)
    s_base, s_blur, s_dark = frame_stats(base), frame_stats(blurred), frame_stats(darker)
    assert s_dark.brightness == pytest.approx(s_base.brightness * 0.5, rel=0.02)
    assert s_dark.contrast < s_base.contrast
    assert s_blur.sharpness < s_base.sharpness / 10
    assert s_blur.brightness == pytest.approx(s_base.brightness, abs=0.01)


def test_frame_stats_white_is_bright() -> None:
    stats = frame_stats(np.full((100, 100, 3), 255, np.uint8))
    assert stats.brightness == pytest.approx(1.0)
