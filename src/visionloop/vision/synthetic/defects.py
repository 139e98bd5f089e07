"""The four defect classes, drawn onto a part sprite with the exact box of the pixels they change.

Each class has a look of its own so that a small detector can tell them apart at 640 px:
``scratch`` a thin, long, nearly straight bright groove with a dark edge; ``dent`` a round blob
shaded dark on the side away from the light and bright on the other; ``crack`` a jagged,
branching dark line; ``stain`` an irregular translucent colour blotch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

CLASS_NAMES: tuple[str, ...] = ("scratch", "dent", "crack", "stain")

# A pixel belongs to a defect when the defect changed it by at least this much (0..255, any
# channel): the box is tight around exactly these pixels.
VISIBLE_DELTA = 12.0

Region = NDArray[np.float32]  # (h, w, 3) BGR, 0..255
Painter = Callable[[Region, np.random.Generator, int], Region]


@dataclass(frozen=True, slots=True)
class DefectMark:
    """A drawn defect: ``box`` is ``(x0, y0, x1, y1)`` in sprite pixels, end-exclusive, tight
    around ``pixels`` (bool ``(y1 - y0, x1 - x0)``), the pixels the defect changed."""

    class_id: int
    box: tuple[int, int, int, int]
    pixels: NDArray[np.bool_]


def _canvas(size: int) -> NDArray[np.uint8]:
    return np.zeros((size, size), np.uint8)


def _alpha(canvas: NDArray[np.uint8]) -> NDArray[np.float32]:
    return (canvas.astype(np.float32) / 255.0)[..., None]


def _scratch(old: Region, rng: np.random.Generator, radius: int) -> Region:
    size = old.shape[0]
    centre = np.array([size / 2.0, size / 2.0])
    # Keep the line at least 15 degrees off the image axes: its box is then never a sliver.
    angle = np.deg2rad(rng.uniform(15.0, 75.0) + 90.0 * int(rng.integers(0, 4)))
    half = rng.uniform(0.55, 1.0) * radius
    direction = np.array([np.cos(angle), np.sin(angle)])
    normal = np.array([-direction[1], direction[0]])
    bow = rng.uniform(-0.06, 0.06) * half
    pts = np.stack(
        [centre - half * direction, centre + normal * bow, centre + half * direction]
    ).reshape(-1, 1, 2)
    core, shade = _canvas(size), _canvas(size)
    width = int(rng.integers(1, 3))
    shift = 4  # sub-pixel precision for anti-aliased lines
    fixed = np.round(pts * (1 << shift)).astype(np.int32)
    cv2.polylines(core, [fixed], False, 255, width, cv2.LINE_AA, shift)
    cv2.polylines(shade, [fixed + np.round(normal * (1 << shift)).astype(np.int32)], False, 255,
                  width, cv2.LINE_AA, shift)  # fmt: skip
    a_core, a_shade = _alpha(core), _alpha(shade) * 0.7
    new = old * (1.0 - a_shade) + 45.0 * a_shade
    return np.asarray(new * (1.0 - a_core) + 245.0 * a_core, np.float32)


def _dent(old: Region, rng: np.random.Generator, radius: int) -> Region:
    size = old.shape[0]
    r = rng.uniform(0.55, 0.85) * radius
    squash = rng.uniform(0.7, 1.0)
    tilt = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) - size / 2.0 + 0.5
    # Ellipse coordinates, then shading for a concave dish lit from the top-left: the inner wall
    # at the bottom-right faces the light (bright), the top-left wall is in shadow (dark).
    u = (xx * np.cos(tilt) + yy * np.sin(tilt)) / r
    v = (-xx * np.sin(tilt) + yy * np.cos(tilt)) / (r * squash)
    rho2 = u * u + v * v
    window = np.clip(1.0 - rho2, 0.0, None)
    toward_light = (xx + yy) / (np.sqrt(2.0) * r)
    factor = 1.0 + 1.4 * toward_light * window - 0.25 * window
    return np.asarray(old * np.clip(factor, 0.3, 1.8)[..., None], np.float32)


def _crack(old: Region, rng: np.random.Generator, radius: int) -> Region:
    size = old.shape[0]
    canvas = _canvas(size)
    length = rng.uniform(1.3, 1.9) * radius
    angle = rng.uniform(0, 2 * np.pi)
    start = np.array([size / 2.0, size / 2.0]) - 0.5 * length * np.array(
        [np.cos(angle), np.sin(angle)]
    )
    main = _walk(rng, start, angle, length)
    thickness = 1 if rng.random() < 0.3 else 2
    cv2.polylines(canvas, [main], False, 255, thickness, cv2.LINE_8)
    for _ in range(int(rng.integers(1, 4))):
        fork = main[int(rng.integers(1, len(main) - 1)), 0].astype(np.float64)
        branch_angle = angle + rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.1)
        branch = _walk(rng, fork, branch_angle, length * rng.uniform(0.25, 0.5))
        cv2.polylines(canvas, [branch], False, 255, 1, cv2.LINE_8)
    halo = np.asarray(cv2.GaussianBlur(canvas, (0, 0), 1.0), np.uint8)
    alpha = np.maximum(_alpha(canvas) * 0.9, _alpha(halo) * 0.5)
    return np.asarray(old * (1.0 - alpha) + 18.0 * alpha, np.float32)


def _walk(
    rng: np.random.Generator, start: NDArray[np.float64], angle: float, length: float
) -> NDArray[np.int32]:
    """A jagged path: steps of 3-6 px whose heading jitters around ``angle``."""
    points = [start]
    travelled = 0.0
    heading = angle
    while travelled < length:
        step = rng.uniform(3.0, 6.0)
        heading = angle + 0.6 * (heading - angle) + rng.uniform(-0.8, 0.8)
        points.append(points[-1] + step * np.array([np.cos(heading), np.sin(heading)]))
        travelled += step
    return np.round(np.array(points)).astype(np.int32).reshape(-1, 1, 2)


_STAIN_COLOURS = np.array(
    [[35.0, 55.0, 70.0], [40.0, 100.0, 175.0], [60.0, 150.0, 150.0], [120.0, 60.0, 140.0]],
    np.float32,
)  # BGR: oil, rust, coolant residue, dye


def _stain(old: Region, rng: np.random.Generator, radius: int) -> Region:
    size = old.shape[0]
    canvas = _canvas(size)
    extent = rng.uniform(0.45, 0.9) * radius
    for _ in range(int(rng.integers(3, 8))):
        offset = rng.uniform(-0.55, 0.55, 2) * extent
        centre = (int(size / 2 + offset[0]), int(size / 2 + offset[1]))
        axes = (int(rng.uniform(0.3, 0.55) * extent) + 2, int(rng.uniform(0.3, 0.55) * extent) + 2)
        cv2.ellipse(canvas, centre, axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)
    soft = np.asarray(cv2.GaussianBlur(canvas, (0, 0), 1.2), np.uint8)
    grid = rng.uniform(0.75, 1.0, (4, 4)).astype(np.float32)
    mottle = np.asarray(cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC))[..., None]
    alpha = _alpha(soft) * rng.uniform(0.6, 0.85) * mottle
    # The stain colour that stands out most from this surface.
    surface = old.reshape(-1, 3).mean(axis=0)
    colour = _STAIN_COLOURS[int(np.argmax(np.abs(_STAIN_COLOURS - surface).sum(axis=1)))]
    return np.asarray(old * (1.0 - alpha) + colour * alpha, np.float32)


_PAINTERS: tuple[Painter, ...] = (_scratch, _dent, _crack, _stain)
# Half the side of the square each class is drawn in, in pixels (lower, upper bound).
_RADIUS: tuple[tuple[int, int], ...] = ((16, 46), (10, 20), (16, 34), (10, 22))


def defect_radius(class_id: int, rng: np.random.Generator) -> int:
    """Half the side of the square a defect of ``class_id`` is drawn in, in pixels."""
    low, high = _RADIUS[class_id]
    return int(rng.integers(low, high + 1))


def draw_defect(
    class_id: int,
    radius: int,
    sprite: NDArray[np.uint8],
    part_mask: NDArray[np.uint8],
    centre_xy: tuple[int, int],
    rng: np.random.Generator,
) -> DefectMark | None:
    """Draw one defect of ``class_id`` within ``radius`` of ``centre_xy`` onto ``sprite``.

    The sprite changes in place, and only inside ``part_mask``. Returns the mark, or ``None``
    (leaving the sprite untouched) when fewer than 6 pixels changed visibly.
    """
    size = 2 * radius + 6
    h, w = part_mask.shape
    x0, y0 = centre_xy[0] - size // 2, centre_xy[1] - size // 2
    # Draw on a full square canvas (so the look does not depend on clipping), then keep the
    # part of it that lies on the sprite.
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x0 + size, w), min(y0 + size, h)
    if cx1 <= cx0 or cy1 <= cy0:
        return None
    old = np.zeros((size, size, 3), np.float32)
    old[:] = sprite[cy0:cy1, cx0:cx1].reshape(-1, 3).mean(axis=0)
    old[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0] = sprite[cy0:cy1, cx0:cx1]
    new = np.clip(_PAINTERS[class_id](old, rng, radius), 0.0, 255.0)
    new_u8 = new.astype(np.uint8)[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
    region = sprite[cy0:cy1, cx0:cx1]
    on_part = part_mask[cy0:cy1, cx0:cx1] > 0
    changed = np.abs(new_u8.astype(np.int16) - region.astype(np.int16)).max(axis=2)
    pixels = (changed >= VISIBLE_DELTA) & on_part
    if int(pixels.sum()) < 6:
        return None
    region[on_part] = new_u8[on_part]
    rows, cols = np.flatnonzero(pixels.any(axis=1)), np.flatnonzero(pixels.any(axis=0))
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    return DefectMark(
        class_id=class_id,
        box=(cx0 + c0, cy0 + r0, cx0 + c1, cy0 + r1),
        pixels=pixels[r0:r1, c0:c1].copy(),
    )
