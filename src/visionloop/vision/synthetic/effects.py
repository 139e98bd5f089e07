"""Frame-level drift effects of the synthetic line: lighting, blur and sensor noise.

Each effect is one or two OpenCV calls on the whole frame, so that a drifted frame costs about
as much as a nominal one. Noise comes from a tile generated once and read at a random offset.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
from numpy.typing import NDArray

from visionloop.vision.synthetic.schedule import Drift

Image = NDArray[np.uint8]

NOMINAL_NOISE_SIGMA = 2.5  # a real camera is never noise-free
MAX_NOISE_SIGMA = 40.0  # sensor noise at intensity 1.0, in grey levels
_TILE_SIGMA = 42.0  # noise tile: uint8 centred on 128, this standard deviation
_TILE_MARGIN = 64
COMBINED_SHARE = 0.7  # "combined" applies every effect at this share of its intensity


@lru_cache(maxsize=64)
def _lighting_lut(step: int) -> Image:
    """Gain, gamma and a warm colour cast at intensity ``step / 50``: a failing, yellowing lamp."""
    t = step / 50.0
    x = np.arange(256, dtype=np.float64) / 255.0
    gain = np.array([1.0 - 0.6 * t, 1.0 - 0.5 * t, 1.0 - 0.38 * t])  # B, G, R: blue fades first
    gamma = 1.0 + 0.6 * t
    lut = np.clip(255.0 * gain[None, :] * x[:, None] ** gamma, 0, 255)
    return np.ascontiguousarray(lut.astype(np.uint8).reshape(256, 1, 3))


class FrameEffects:
    """Applies a frame's drift: ``apply(frame, drift, rng)`` returns a new frame."""

    def __init__(self, rng: np.random.Generator, size_wh: tuple[int, int]) -> None:
        w, h = size_wh
        noise = rng.standard_normal((h + _TILE_MARGIN, w + _TILE_MARGIN, 3), dtype=np.float32)
        self._noise = np.clip(128.0 + _TILE_SIGMA * noise, 0, 255).astype(np.uint8)
        self._size_wh = size_wh

    def apply(self, frame: Image, drift: Drift, rng: np.random.Generator) -> Image:
        """Lighting, then optics (blur), then the sensor (noise and exposure jitter)."""
        lighting = blur = noise = 0.0
        if drift.scenario == "lighting":
            lighting = drift.intensity
        elif drift.scenario == "blur":
            blur = drift.intensity
        elif drift.scenario == "noise":
            noise = drift.intensity
        elif drift.scenario == "combined":
            lighting = blur = noise = COMBINED_SHARE * drift.intensity
        out = frame
        step = round(lighting * 50)
        if step > 0:
            out = np.asarray(cv2.LUT(out, _lighting_lut(step)), np.uint8)
        if blur > 0.0:
            out = _blur(out, blur)
        # Exposure jitter and noise in one pass: gain * frame + a * (tile - 128).
        gain = float(rng.uniform(0.96, 1.04))
        sigma = NOMINAL_NOISE_SIGMA + (MAX_NOISE_SIGMA - NOMINAL_NOISE_SIGMA) * noise
        a = sigma / _TILE_SIGMA
        w, h = self._size_wh
        ox, oy = (int(v) for v in rng.integers(0, _TILE_MARGIN, 2))
        window = self._noise[oy : oy + h, ox : ox + w]
        return np.asarray(cv2.addWeighted(out, gain, window, a, -128.0 * a), np.uint8)


def _blur(frame: Image, intensity: float) -> Image:
    """Defocus (Gaussian, sigma up to 3.2 px) and horizontal motion blur (up to 13 px).

    Strong blur runs at half resolution (then upscales): the same look within a grey level on
    average, at a third of the cost.
    """
    sigma = 3.2 * intensity
    length = 1 + round(12 * intensity)
    if sigma < 1.5:
        if sigma >= 0.3:
            frame = np.asarray(cv2.GaussianBlur(frame, (0, 0), sigma), np.uint8)
        if length > 1:
            frame = np.asarray(cv2.blur(frame, (length, 1)), np.uint8)
        return frame
    h, w = frame.shape[:2]
    small = cv2.resize(frame, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / 2)
    small = cv2.blur(small, (max(1, round(length / 2)), 1))
    return np.asarray(cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR), np.uint8)
