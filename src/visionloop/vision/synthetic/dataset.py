"""Writing frames of the synthetic line as a YOLO-format dataset.

Layout: ``images/{train,val,test}/NNNNNN.jpg`` (or ``.png``), ``labels/{split}/NNNNNN.txt``
with one ``class x_centre y_centre width height`` line per defect (normalised to 0..1; an empty
file for a frame without defects), and ``data.yaml`` naming the splits and the classes.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from visionloop.errors import InvalidInputError
from visionloop.vision.synthetic.defects import CLASS_NAMES
from visionloop.vision.synthetic.line import Scene, SyntheticLine
from visionloop.vision.synthetic.schedule import parse_schedule

logger = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "test")
JPEG_QUALITY = 95
_SHUFFLE = 4  # random stream id for the split assignment


def split_sizes(n: int, fractions: Sequence[float]) -> list[int]:
    """Images per split: ``n`` shared by ``fractions`` (which sum to 1), at least one image in
    every split with a non-zero fraction."""
    if len(fractions) != len(SPLITS) or any(not 0.0 <= f <= 1.0 for f in fractions):
        raise InvalidInputError(f"splits must be three fractions in 0..1, got {list(fractions)}")
    if not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise InvalidInputError(f"splits must sum to 1, got {sum(fractions):g}")
    wanted = sum(1 for f in fractions if f > 0)
    if n < wanted:
        raise InvalidInputError(f"need at least {wanted} images for these splits, got n={n}")
    sizes = [max(1, round(n * f)) if f > 0 else 0 for f in fractions]
    sizes[0] += n - sum(sizes)  # rounding leftovers go to (or come from) train
    if sizes[0] < (1 if fractions[0] > 0 else 0):
        raise InvalidInputError(f"n={n} is too small for splits {list(fractions)}")
    return sizes


def yolo_labels(scene: Scene, size_wh: tuple[int, int]) -> str:
    """The YOLO label text of a scene: ``class xc yc w h`` per line, normalised, 6 decimals."""
    w, h = size_wh
    lines = []
    for (x0, y0, x1, y1), cls in zip(scene.xyxy.tolist(), scene.class_id.tolist(), strict=True):
        xc, yc = (x0 + x1) / 2 / w, (y0 + y1) / 2 / h
        lines.append(f"{cls} {xc:.6f} {yc:.6f} {(x1 - x0) / w:.6f} {(y1 - y0) / h:.6f}")
    return "".join(line + "\n" for line in lines)


def write_dataset(
    out: Path,
    *,
    n: int,
    scenario: str = "nominal",
    seed: int = 0,
    splits: tuple[float, float, float] = (0.8, 0.1, 0.1),
    size_wh: tuple[int, int] = (640, 480),
    image_format: Literal["jpg", "png"] = "jpg",
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Render ``n`` independent frames into a YOLO dataset under ``out``; return ``data.yaml``.

    ``scenario`` is a schedule spec (``"blur:0.6"``; a time schedule applies to the image
    number). Frames are ``frames_per_view`` apart on the line, so no part appears twice; the
    split of each image is drawn from ``seed``. ``out`` must not exist or be empty. JPEG
    images are written at quality 95. ``progress(done, n)`` is called after each image.
    """
    if n < 1:
        raise InvalidInputError(f"n must be at least 1, got {n}")
    if image_format not in ("jpg", "png"):
        raise InvalidInputError(f"image format must be jpg or png, got {image_format!r}")
    schedule = parse_schedule(scenario)
    sizes = split_sizes(n, splits)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InvalidInputError(f"{out} already exists and is not an empty folder")
    line = SyntheticLine(seed=seed, size_wh=size_wh, schedule=schedule)
    for split in SPLITS:
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
    order = np.random.default_rng([seed, _SHUFFLE]).permutation(n)
    split_of = np.repeat(np.arange(len(SPLITS)), sizes)[np.argsort(order)]
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if image_format == "jpg" else []
    for k in range(n):
        scene = line.render(k * line.frames_per_view, drift=schedule.at(k))
        split = SPLITS[int(split_of[k])]
        ok, encoded = cv2.imencode(f".{image_format}", scene.frame_bgr, params)
        if not ok:  # pragma: no cover - OpenCV encodes any uint8 BGR image
            raise InvalidInputError(f"could not encode image {k}")
        (out / "images" / split / f"{k:06d}.{image_format}").write_bytes(encoded.tobytes())
        (out / "labels" / split / f"{k:06d}.txt").write_text(yolo_labels(scene, line.size_wh))
        if progress is not None:
            progress(k + 1, n)
    data_yaml = out / "data.yaml"
    data_yaml.write_text(_data_yaml(out, schedule=str(schedule), seed=seed, n=n))
    logger.info("wrote %d images (%s) to %s", n, sizes, out)
    return data_yaml


def _data_yaml(out: Path, *, schedule: str, seed: int, n: int) -> str:
    # JSON strings are valid YAML scalars, which keeps paths with odd characters safe.
    lines = [
        f"# visionloop synthetic line: seed {seed}, scenario {schedule}, {n} images",
        f"path: {json.dumps(str(out.resolve()))}",
        *(f"{split}: images/{split}" for split in SPLITS),
        f"nc: {len(CLASS_NAMES)}",
        "names:",
        *(f"  {i}: {name}" for i, name in enumerate(CLASS_NAMES)),
    ]
    return "\n".join(lines) + "\n"
