"""Surface textures of the synthetic line, generated once per seed: the belt and part materials.

Textures are single-channel float32 luma tiles (0..255); parts tint them with a colour. The
``supplier_b`` material is the drift scenario ``new_texture``: a new supplier's cast surface
whose pits, veins and blotches look like defects.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

TILE = 512
MATERIALS: tuple[str, ...] = ("brushed", "cast", "painted", "polished")

Gray = NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class TextureBank:
    """One tile per material plus the new supplier's surface, all ``(TILE, TILE)`` float32."""

    materials: dict[str, Gray]
    supplier_b: Gray


def smooth_noise(rng: np.random.Generator, size: int, cells: int) -> Gray:
    """Zero-mean, unit-scale smooth noise: a ``cells``-square random grid upsampled to ``size``."""
    grid = rng.standard_normal((cells, cells)).astype(np.float32)
    return np.asarray(cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC), np.float32)


def _brushed(rng: np.random.Generator) -> Gray:
    # Streaks along x: a tall, narrow random grid stretched horizontally, kept faint so that
    # the brushing never reads as a scratch.
    streaks = cv2.resize(
        rng.standard_normal((TILE, 12)).astype(np.float32),
        (TILE, TILE),
        interpolation=cv2.INTER_LINEAR,
    )
    grain = rng.standard_normal((TILE, TILE)).astype(np.float32)
    return np.asarray(
        170.0 + 6.0 * streaks + 2.5 * grain + 6.0 * smooth_noise(rng, TILE, 4), np.float32
    )


def _cast(rng: np.random.Generator) -> Gray:
    mottle = smooth_noise(rng, TILE, 24) + 0.5 * smooth_noise(rng, TILE, 64)
    grain = rng.standard_normal((TILE, TILE)).astype(np.float32)
    return 135.0 + 7.0 * mottle + 4.0 * grain


def _painted(rng: np.random.Generator) -> Gray:
    grain = rng.standard_normal((TILE, TILE)).astype(np.float32)
    return 190.0 + 5.0 * smooth_noise(rng, TILE, 6) + 1.5 * grain


def _polished(rng: np.random.Generator) -> Gray:
    # A broad reflection band across the tile, like a polished part under a strip light.
    ramp = np.linspace(-1.0, 1.0, TILE, dtype=np.float32)
    band = np.exp(-((ramp[:, None] + ramp[None, :] * 0.6) ** 2) * 4.0)
    grain = rng.standard_normal((TILE, TILE)).astype(np.float32)
    return np.asarray(
        120.0 + 70.0 * band + 4.0 * smooth_noise(rng, TILE, 8) + 1.5 * grain, np.float32
    )


def _supplier_b(rng: np.random.Generator) -> Gray:
    """Coarse, pitted, veined and blotchy: features at the scale and contrast of defects."""
    base = (
        125.0
        + 16.0 * smooth_noise(rng, TILE, 40)
        + 12.0 * rng.standard_normal((TILE, TILE)).astype(np.float32)
    )
    marks = np.zeros((TILE, TILE), np.float32)
    for _ in range(260):  # pits, like dents and pores
        centre = (int(rng.integers(0, TILE)), int(rng.integers(0, TILE)))
        cv2.circle(marks, centre, int(rng.integers(2, 8)), -float(rng.uniform(40, 80)), -1)
    for _ in range(70):  # veins, like cracks and scratches
        point = rng.uniform(0, TILE, 2)
        angle = rng.uniform(0, 2 * np.pi)
        pts = [point.copy()]
        for _ in range(int(rng.integers(4, 12))):
            angle += rng.uniform(-0.7, 0.7)
            point = point + 6.0 * np.array([np.cos(angle), np.sin(angle)])
            pts.append(point.copy())
        poly = np.round(np.array(pts)).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(marks, [poly], False, -float(rng.uniform(50, 90)), int(rng.integers(1, 3)))
    blotches = smooth_noise(rng, TILE, 20)
    marks += np.where(blotches > 1.2, -45.0, 0.0).astype(np.float32)
    marks = np.asarray(cv2.GaussianBlur(marks, (0, 0), 0.8), np.float32)
    return base + marks


def make_textures(rng: np.random.Generator) -> TextureBank:
    """Generate every texture tile from ``rng`` (about 50 ms)."""
    makers = {"brushed": _brushed, "cast": _cast, "painted": _painted, "polished": _polished}
    materials = {name: makers[name](rng) for name in MATERIALS}
    return TextureBank(materials=materials, supplier_b=_supplier_b(rng))


def make_belt(rng: np.random.Generator, size_wh: tuple[int, int], period: int) -> NDArray[np.uint8]:
    """The conveyor scene, ``period`` pixels wider than the frame so that it can scroll.

    The belt runs horizontally between two metal rails; transverse seams every ``period``
    pixels show it moving. Returned as BGR uint8 ``(H, W + period, 3)``.
    """
    w, h = size_wh
    width = w + period
    top, bottom = int(h * 0.09), int(h * 0.91)
    luma = np.empty((h, width), np.float32)
    # Floor and rails are constant along x, so the whole view can scroll with the belt.
    floor = cv2.resize(
        rng.standard_normal((8, 1)).astype(np.float32), (1, h), interpolation=cv2.INTER_CUBIC
    )
    luma[:] = 45.0 + 6.0 * floor
    belt = 70.0 + 3.0 * rng.standard_normal((bottom - top, period)).astype(np.float32)
    belt += 3.0 * cv2.resize(
        rng.standard_normal((6, max(2, period // 40))).astype(np.float32),
        (period, bottom - top),
        interpolation=cv2.INTER_CUBIC,
    )
    belt[:, :3] -= 10.0  # the seam between belt segments
    reps = -(-width // period)
    luma[top:bottom] = np.tile(belt, (1, reps))[:, :width]
    # Rails: bright brushed bars with a dark edge towards the belt.
    rail = max(6, int(h * 0.035))
    luma[top - rail : top] = 175.0
    luma[bottom : bottom + rail] = 165.0
    luma[top - 2 : top] = 60.0
    luma[bottom : bottom + 2] = 60.0
    # Light falls from above: the bottom of the view is a little darker.
    luma *= np.linspace(1.05, 0.9, h, dtype=np.float32)[:, None]
    bgr = np.clip(luma[..., None] * np.array([1.02, 1.0, 0.97], np.float32), 0, 255)
    return np.ascontiguousarray(bgr.astype(np.uint8))
