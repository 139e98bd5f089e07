"""Part sprites for the synthetic line: a shape, a textured and shaded surface, its defects.

A sprite is rendered once per part (from its own random stream) and composed onto many frames
as the part rides along the belt, which keeps per-frame rendering cheap.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from visionloop.vision.synthetic.defects import CLASS_NAMES, DefectMark, defect_radius, draw_defect
from visionloop.vision.synthetic.textures import TILE, TextureBank

SHAPES: tuple[str, ...] = ("plate", "disc", "washer", "hex", "bracket", "gear")
SHADOW_OFFSET = 6  # pixels down and right: the light comes from the top-left

_TINTS: dict[str, tuple[tuple[float, float, float], ...]] = {
    "brushed": ((1.02, 1.0, 0.96), (0.95, 0.98, 1.0)),
    "cast": ((0.92, 0.97, 1.04), (1.0, 1.0, 1.0)),
    "painted": (
        (0.95, 0.55, 0.28),  # blue
        (0.35, 0.75, 0.35),  # green
        (0.2, 0.55, 1.0),  # orange
        (0.3, 0.85, 0.95),  # yellow
        (0.95, 0.95, 0.95),  # white
    ),
    "polished": ((1.0, 1.0, 1.0), (0.85, 0.93, 1.05)),
}
_SUPPLIER_B_TINT = np.array([0.9, 0.98, 1.06], np.float32)


@dataclass(frozen=True, slots=True)
class PartSprite:
    """A rendered part: ``bgr`` uint8 ``(h, w, 3)``, ``mask`` and ``shadow`` uint8 ``(h, w)``
    (255 inside), and its defects with boxes in sprite pixels."""

    bgr: NDArray[np.uint8]
    mask: NDArray[np.uint8]
    shadow: NDArray[np.uint8]
    defects: tuple[DefectMark, ...]


def _outline(shape: str, rng: np.random.Generator, radius: float) -> list[NDArray[np.float64]]:
    """Polygons (outer first, then holes) of ``shape`` centred at 0 and within ``radius``."""
    t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    circle = np.stack([np.cos(t), np.sin(t)], axis=1)
    if shape == "disc":
        return [circle * radius]
    if shape == "washer":
        return [circle * radius, circle * radius * rng.uniform(0.3, 0.5)]
    if shape == "hex":
        a = np.linspace(0, 2 * np.pi, 6, endpoint=False)
        return [np.stack([np.cos(a), np.sin(a)], axis=1) * radius]
    if shape == "gear":
        teeth = int(rng.integers(8, 14))
        a = np.linspace(0, 2 * np.pi, teeth * 4, endpoint=False)
        r = np.where((np.arange(teeth * 4) // 2) % 2 == 0, 1.0, 0.84) * radius
        hole = circle * radius * rng.uniform(0.18, 0.3)
        return [np.stack([np.cos(a) * r, np.sin(a) * r], axis=1), hole]
    if shape == "bracket":
        # An L: two arms, sized to fit in the circle of the given radius.
        s = radius / np.sqrt(2.0)
        arm = rng.uniform(0.38, 0.55) * 2 * s
        corners = [(-s, -s), (s, -s), (s, -s + arm), (-s + arm, -s + arm), (-s + arm, s), (-s, s)]
        return [np.array(corners, np.float64)]
    # plate: a rounded rectangle with an aspect ratio of 0.5..1
    aspect = rng.uniform(0.5, 1.0)
    half_w = radius / np.sqrt(1 + aspect**2)
    half_h = half_w * aspect
    corner = min(half_w, half_h) * rng.uniform(0.1, 0.4)
    quarter = np.linspace(0, np.pi / 2, 8)
    arcs: list[NDArray[np.float64]] = []
    for (sx, sy), start in zip(((1, 1), (-1, 1), (-1, -1), (1, -1)), range(4), strict=True):
        arc = quarter + start * np.pi / 2
        cx, cy = sx * (half_w - corner), sy * (half_h - corner)
        arcs.append(np.stack([cx + corner * np.cos(arc), cy + corner * np.sin(arc)], axis=1))
    return [np.concatenate(arcs)]


def _surface(
    rng: np.random.Generator, textures: TextureBank, size: int, angle: float, new_texture: float
) -> NDArray[np.float32]:
    """A ``(size, size, 3)`` BGR float surface cut from a material tile at ``angle``."""
    material = str(rng.choice(list(textures.materials)))
    tints = _TINTS[material]
    tint = np.array(tints[int(rng.integers(0, len(tints)))], np.float32)
    brightness = rng.uniform(0.88, 1.1)
    # Cut around a point far enough inside the tile that the rotated square rarely leaves it
    # (beyond the tile, the texture is mirrored).
    inset = min(0.71 * size, TILE / 2)
    cx, cy = rng.uniform(inset, TILE - inset, 2)
    rotation = cv2.getRotationMatrix2D((float(cx), float(cy)), float(np.rad2deg(angle)), 1.0)
    rotation[:, 2] += (size / 2.0 - cx, size / 2.0 - cy)

    def cut_at(tile: NDArray[np.float32]) -> NDArray[np.float32]:
        cut = cv2.warpAffine(
            tile, rotation, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
        )
        return np.asarray(cut, np.float32)

    luma = cut_at(textures.materials[material]) * brightness
    colour = luma[..., None] * tint
    if new_texture > 0.0:
        supplier = cut_at(textures.supplier_b)[..., None] * _SUPPLIER_B_TINT
        colour = colour * (1.0 - new_texture) + supplier * new_texture
    return colour


def make_part(
    rng: np.random.Generator, textures: TextureBank, extent: int, new_texture: float = 0.0
) -> PartSprite:
    """Render one part that fits in a circle of diameter ``extent`` pixels.

    ``new_texture`` (0..1) blends the surface towards the new supplier's. The random stream is
    consumed identically for every ``new_texture``, so a part keeps its shape and defects.
    """
    shape = str(rng.choice(SHAPES))
    angle = rng.uniform(0, 2 * np.pi)
    margin = SHADOW_OFFSET + 2
    size = extent + 2 * margin
    centre = np.array([size / 2.0, size / 2.0])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    mask = np.zeros((size, size), np.uint8)
    for i, poly in enumerate(_outline(shape, rng, extent / 2.0 - 1.0)):
        pts = np.round((poly @ rotation.T + centre) * 16).astype(np.int32)
        cv2.fillPoly(mask, [pts], 255 if i == 0 else 0, cv2.LINE_8, 4)

    colour = _surface(rng, textures, size, angle, new_texture)
    # Shading: light falls across the part, and its rim is darker (a bevelled edge).
    light = rng.uniform(0, 2 * np.pi)
    ramp = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    shade = 1.0 + 0.1 * (np.cos(light) * ramp[None, :] + np.sin(light) * ramp[:, None])
    rim = cv2.subtract(mask, cv2.erode(mask, np.ones((3, 3), np.uint8), iterations=2))
    shade = shade - 0.3 * (rim > 0)
    bgr = np.clip(colour * shade[..., None], 0, 255).astype(np.uint8)

    defects = _draw_defects(rng, bgr, mask, extent)
    shifted = np.zeros_like(mask)
    shifted[SHADOW_OFFSET:, SHADOW_OFFSET:] = mask[:-SHADOW_OFFSET, :-SHADOW_OFFSET]
    shadow = np.asarray(cv2.bitwise_and(shifted, cv2.bitwise_not(mask)), np.uint8)
    bgr[mask == 0] = 0
    return PartSprite(bgr=bgr, mask=mask, shadow=shadow, defects=defects)


def _draw_defects(
    rng: np.random.Generator, bgr: NDArray[np.uint8], mask: NDArray[np.uint8], extent: int
) -> tuple[DefectMark, ...]:
    # About a quarter of the parts are good; the others carry one to four defects, fewer on
    # small parts.
    if rng.random() < 0.25:
        return ()
    count = min(1 + int(rng.poisson(1.0)), 4 if extent >= 140 else 2)
    inner = cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (15, 15)))
    candidates = np.flatnonzero(inner)
    if len(candidates) == 0:
        return ()
    marks: list[DefectMark] = []
    taken: list[tuple[int, int, int, int]] = []
    for _ in range(count):
        class_id = int(rng.integers(0, len(CLASS_NAMES)))
        radius = defect_radius(class_id, rng)
        for _attempt in range(8):
            flat = int(candidates[int(rng.integers(0, len(candidates)))])
            cy, cx = divmod(flat, mask.shape[1])
            square = (cx - radius - 3, cy - radius - 3, cx + radius + 3, cy + radius + 3)
            if not any(_overlaps(square, other) for other in taken):
                break
        else:
            continue
        # The square is taken even when the defect ends up invisible on this surface, so that
        # a part's defects do not depend on its texture.
        taken.append(square)
        mark = draw_defect(class_id, radius, bgr, mask, (cx, cy), rng)
        if mark is not None:
            marks.append(mark)
    return tuple(marks)


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
