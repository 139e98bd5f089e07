"""The perceptual difference hash."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from visionloop.vision.dhash import dhash64, hamming, image_dhash, to_signed64


def _scene(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.resize(rng.integers(0, 256, (12, 16), dtype=np.uint8), (640, 480))


def test_gradient_has_a_known_hash() -> None:
    rising = np.tile(np.arange(0, 90, 10, dtype=np.uint8), (8, 1))  # every pixel > its left
    assert dhash64(rising) == (1 << 64) - 1
    assert dhash64(rising[:, ::-1].copy()) == 0


def test_near_duplicates_are_close_and_other_scenes_far() -> None:
    a = _scene(1)
    noisy = np.clip(a.astype(int) + np.random.default_rng(2).integers(-4, 5, a.shape), 0, 255)
    brighter = cv2.convertScaleAbs(a, alpha=1.0, beta=20)
    assert hamming(dhash64(a), dhash64(noisy.astype(np.uint8))) <= 4
    assert hamming(dhash64(a), dhash64(brighter)) <= 4
    assert hamming(dhash64(a), dhash64(_scene(3))) > 15


def test_image_dhash_decodes_jpeg_and_png() -> None:
    gray = _scene(4)
    bgr = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    ok_j, jpg = cv2.imencode(".jpg", bgr)
    ok_p, png = cv2.imencode(".png", bgr)
    assert ok_j and ok_p
    assert hamming(image_dhash(jpg.tobytes()) or 0, dhash64(gray)) <= 4
    assert hamming(image_dhash(png.tobytes()) or 0, dhash64(gray)) <= 4
    assert image_dhash(b"not an image") is None


def test_signed_form_round_trips_through_hamming() -> None:
    h = (1 << 64) - 5
    assert to_signed64(h) == -5
    assert to_signed64(5) == 5
    assert hamming(to_signed64(h), h) == 0


def test_rejects_colour_or_empty_arrays() -> None:
    with pytest.raises(ValueError, match="2-D"):
        dhash64(np.zeros((4, 4, 3), np.uint8))
