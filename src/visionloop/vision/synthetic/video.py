"""Writing frames of the synthetic line as a video file, to replay a drift episode as a camera."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2

from visionloop.errors import InvalidInputError
from visionloop.vision.synthetic.line import SyntheticLine
from visionloop.vision.synthetic.schedule import parse_schedule

# Codec by file suffix: Motion-JPEG in AVI keeps thin defects visible; mp4v for .mp4 players.
_FOURCC = {".avi": "MJPG", ".mp4": "mp4v"}


def write_video(
    out: Path,
    *,
    frames: int,
    scenario: str = "nominal",
    seed: int = 0,
    size_wh: tuple[int, int] = (640, 480),
    fps: float = 30.0,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Render frames ``0 .. frames - 1`` of the line (schedule ``scenario``) into ``out``.

    ``out`` ends in ``.avi`` (Motion-JPEG) or ``.mp4`` (MPEG-4 part 2). Returns ``out``.
    """
    out = Path(out)
    fourcc = _FOURCC.get(out.suffix.lower())
    if fourcc is None:
        raise InvalidInputError(f"video file must end in .avi or .mp4, got {out.name!r}")
    if frames < 1:
        raise InvalidInputError(f"frames must be at least 1, got {frames}")
    if not 0 < fps <= 240:
        raise InvalidInputError(f"fps must be within 0..240, got {fps}")
    line = SyntheticLine(seed=seed, size_wh=size_wh, schedule=parse_schedule(scenario))
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter.fourcc(*fourcc), fps, line.size_wh)
    if not writer.isOpened():
        raise InvalidInputError(f"cannot write a video to {out}")
    try:
        for index in range(frames):
            writer.write(line.render(index).frame_bgr)
            if progress is not None:
                progress(index + 1, frames)
    finally:
        writer.release()
    return out
