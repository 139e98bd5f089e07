"""The synthetic production line: a conveyor carrying parts past a fixed camera.

Frame ``i`` is a pure function of the seed, ``i`` and the drift schedule. The belt moves
``speed`` pixels per frame; parts sit in slots of fixed pitch along it, so a part stays in view
for about ``frames_per_view`` frames and its sprite (rendered once, then cached) is reused on
every one of them.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from visionloop.errors import InvalidInputError
from visionloop.vision.synthetic.defects import DefectMark
from visionloop.vision.synthetic.effects import COMBINED_SHARE, FrameEffects
from visionloop.vision.synthetic.parts import PartSprite, make_part
from visionloop.vision.synthetic.schedule import Drift, ScenarioSchedule, parse_schedule
from visionloop.vision.synthetic.textures import make_belt, make_textures

# A defect cut by the frame edge keeps its box only while this share of its pixels is in view.
MIN_VISIBLE_SHARE = 0.35
MIN_BOX_SIDE = 3  # pixels
_SHADOW = (0.55, 0.55, 0.55, 0.0)  # a part's shadow keeps this share of the light
_TEXTURE_STEPS = 20  # new_texture intensity is quantised so sprites can be cached
_CACHE_SIZE = 48

# Stream ids, so that each random stream of a seed is independent of the others.
_TEXTURES, _SLOT, _PART, _FRAME = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class Scene:
    """A rendered frame and the exact ground truth of its visible defects.

    ``frame_bgr`` uint8 ``(H, W, 3)``; ``xyxy`` float32 ``(N, 4)`` in pixels (end-exclusive:
    a defect covering columns 10..19 has x0 = 10, x1 = 20); ``class_id`` int64 ``(N,)``,
    an index into ``CLASS_NAMES``.
    """

    frame_bgr: NDArray[np.uint8]
    xyxy: NDArray[np.float32]
    class_id: NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class _Placement:
    """Where part ``k`` of a slot sits: its centre relative to the slot, and its size."""

    dx: float
    y: float
    extent: int


class SyntheticLine:
    """Renders frames of the synthetic line; ``render(index)`` is deterministic.

    ``schedule`` is a ``ScenarioSchedule`` or its spec (see ``parse_schedule``). Not
    thread-safe (it caches part sprites); use one instance per thread.
    """

    def __init__(
        self,
        seed: int = 0,
        size_wh: tuple[int, int] = (640, 480),
        schedule: str | ScenarioSchedule = "nominal",
    ) -> None:
        if not isinstance(seed, int) or seed < 0:
            raise InvalidInputError(f"seed must be a non-negative integer, got {seed!r}")
        w, h = size_wh
        if w < 160 or h < 120 or w > 4096 or h > 4096:
            raise InvalidInputError(f"frame size must be within 160x120..4096x4096, got {w}x{h}")
        self.seed = seed
        self.size_wh = (int(w), int(h))
        self.schedule = parse_schedule(schedule) if isinstance(schedule, str) else schedule
        scale = h / 480.0
        self.speed = max(1, round(6 * scale))  # belt pixels per frame
        self.pitch = round(230 * scale)  # slot pitch along the belt
        self._period = round(96 * scale)  # belt seam spacing
        self._belt_y = (int(h * 0.09) + 4, int(h * 0.91) - 4)
        self._scale = scale
        rng = np.random.default_rng([seed, _TEXTURES])
        self._textures = make_textures(rng)
        self._belt = make_belt(rng, self.size_wh, self._period)
        self._effects = FrameEffects(rng, self.size_wh)
        self._sprites: OrderedDict[tuple[int, int, int], PartSprite] = OrderedDict()

    @property
    def frames_per_view(self) -> int:
        """Frames from a slot entering the view to leaving it: frames this far apart share no
        part (``write_dataset`` renders frames this far apart)."""
        return math.ceil((self.size_wh[0] + self.pitch) / self.speed) + 1

    def render(self, index: int, *, drift: Drift | None = None) -> Scene:
        """Frame ``index`` (>= 0) under the schedule's drift, or under ``drift`` if given."""
        if index < 0:
            raise InvalidInputError(f"frame index must be non-negative, got {index}")
        drift = self.schedule.at(index) if drift is None else drift
        w, h = self.size_wh
        offset = (-self.speed * index) % self._period
        frame = self._belt[:, offset : offset + w].copy()
        texture_step = self._texture_step(drift)
        boxes: list[tuple[float, float, float, float]] = []
        classes: list[int] = []
        travelled = self.speed * index + w
        first, last = (travelled - w) // self.pitch, (travelled + self.pitch) // self.pitch
        for slot in range(max(first, 0), last + 1):
            slot_x = travelled - slot * self.pitch  # the slot's centre on the frame
            for k, place in enumerate(self._placements(slot)):
                sprite = self._sprite(slot, k, place.extent, texture_step)
                sh, sw = sprite.mask.shape
                x0 = round(slot_x + place.dx) - sw // 2
                y0 = round(place.y) - sh // 2
                if x0 >= w or x0 + sw <= 0:
                    continue
                _compose(frame, sprite, x0, y0)
                for mark in sprite.defects:
                    box = _visible_box(mark, x0, y0, w, h)
                    if box is not None:
                        boxes.append(box)
                        classes.append(mark.class_id)
        rng = np.random.default_rng([self.seed, _FRAME, index])
        frame = self._effects.apply(frame, drift, rng)
        return Scene(
            frame_bgr=frame,
            xyxy=np.array(boxes, np.float32).reshape(-1, 4),
            class_id=np.array(classes, np.int64),
        )

    def _texture_step(self, drift: Drift) -> int:
        if drift.scenario == "new_texture":
            return round(drift.intensity * _TEXTURE_STEPS)
        if drift.scenario == "combined":
            return round(COMBINED_SHARE * drift.intensity * _TEXTURE_STEPS)
        return 0

    def _placements(self, slot: int) -> list[_Placement]:
        """One big part, two small ones stacked across the belt, or (rarely) none."""
        rng = np.random.default_rng([self.seed, _SLOT, slot])
        top, bottom = self._belt_y
        s = self._scale
        roll = rng.random()
        if roll < 0.08:
            return []
        if roll < 0.6:
            extent = round(rng.uniform(140, 205) * s)
            sizes, lanes = [extent], [(top, bottom)]
        else:
            sizes = [round(rng.uniform(90, 150) * s) for _ in range(2)]
            middle = (top + bottom) // 2
            lanes = [(top, middle), (middle, bottom)]
        placements = []
        for extent, (lo, hi) in zip(sizes, lanes, strict=True):
            free_y = max(0.0, (hi - lo - extent) / 2)
            free_x = max(0.0, (self.pitch - extent - 12 * s) / 2)
            placements.append(
                _Placement(
                    dx=float(rng.uniform(-free_x, free_x)),
                    y=(lo + hi) / 2 + float(rng.uniform(-free_y, free_y)),
                    extent=extent,
                )
            )
        return placements

    def _sprite(self, slot: int, k: int, extent: int, texture_step: int) -> PartSprite:
        key = (slot, k, texture_step)
        sprite = self._sprites.get(key)
        if sprite is None:
            rng = np.random.default_rng([self.seed, _PART, slot, k])
            sprite = make_part(rng, self._textures, extent, texture_step / _TEXTURE_STEPS)
            self._sprites[key] = sprite
            if len(self._sprites) > _CACHE_SIZE:
                self._sprites.popitem(last=False)
        else:
            self._sprites.move_to_end(key)
        return sprite


def _compose(frame: NDArray[np.uint8], sprite: PartSprite, x0: int, y0: int) -> None:
    """Paste ``sprite`` with its top-left corner at ``(x0, y0)``, clipped to the frame."""
    h, w = frame.shape[:2]
    fx0, fy0 = max(x0, 0), max(y0, 0)
    fx1, fy1 = min(x0 + sprite.mask.shape[1], w), min(y0 + sprite.mask.shape[0], h)
    if fx1 <= fx0 or fy1 <= fy0:
        return
    roi = frame[fy0:fy1, fx0:fx1]
    crop = (slice(fy0 - y0, fy1 - y0), slice(fx0 - x0, fx1 - x0))
    # Darken the belt under the shadow, then paste the part through its mask; both write into
    # ``roi``, a view of the frame.
    cv2.copyTo(cv2.multiply(roi, _SHADOW), sprite.shadow[crop], roi)
    cv2.copyTo(sprite.bgr[crop], sprite.mask[crop], roi)


def _visible_box(
    mark: DefectMark, x0: int, y0: int, w: int, h: int
) -> tuple[float, float, float, float] | None:
    """The defect's box on the frame, tight around its pixels in view; ``None`` if it is
    (nearly) out of view or thinner than ``MIN_BOX_SIDE``."""
    bx0, by0, bx1, by1 = mark.box
    gx0, gy0, gx1, gy1 = bx0 + x0, by0 + y0, bx1 + x0, by1 + y0
    if gx0 >= 0 and gy0 >= 0 and gx1 <= w and gy1 <= h:
        box = (gx0, gy0, gx1, gy1)
    else:
        cx0, cy0, cx1, cy1 = max(gx0, 0), max(gy0, 0), min(gx1, w), min(gy1, h)
        if cx1 <= cx0 or cy1 <= cy0:
            return None
        seen = mark.pixels[cy0 - gy0 : cy1 - gy0, cx0 - gx0 : cx1 - gx0]
        count = int(seen.sum())
        if count < MIN_VISIBLE_SHARE * int(mark.pixels.sum()):
            return None
        rows, cols = np.flatnonzero(seen.any(axis=1)), np.flatnonzero(seen.any(axis=0))
        box = (cx0 + int(cols[0]), cy0 + int(rows[0]), cx0 + int(cols[-1]) + 1,
               cy0 + int(rows[-1]) + 1)  # fmt: skip
    if box[2] - box[0] < MIN_BOX_SIDE or box[3] - box[1] < MIN_BOX_SIDE:
        return None
    return (float(box[0]), float(box[1]), float(box[2]), float(box[3]))
