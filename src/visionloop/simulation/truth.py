"""Ground truth of the frames an edge agent on the synthetic line reported.

Frame ``i`` of a synthetic line is a pure function of (seed, size, schedule, ``i``), and the edge
agent sends ``i`` as the frame record's ``source_index``: re-rendering that frame gives its exact
boxes. The line must be built exactly as the agent's (same seed, size and schedule).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from visionloop.errors import InvalidInputError
from visionloop.vision.synthetic.defects import CLASS_NAMES
from visionloop.vision.synthetic.line import SyntheticLine


@dataclass(frozen=True, slots=True)
class Box:
    """One object: its class name and corners ``xyxyn`` normalised to 0..1 of the frame."""

    class_name: str
    xyxyn: tuple[float, float, float, float]


class LineTruth:
    """``truth(frame)`` -> the boxes of a frame (the frames API's JSON) of ``line``.

    Not thread-safe (the line caches sprites): one instance per thread.
    """

    def __init__(self, line: SyntheticLine) -> None:
        self.line = line

    def boxes_at(self, index: int) -> list[Box]:
        """The boxes of frame ``index`` of the line."""
        scene = self.line.render(index)
        w, h = self.line.size_wh
        return [
            Box(
                class_name=CLASS_NAMES[int(cls)],
                xyxyn=(
                    min(max(x0 / w, 0.0), 1.0),
                    min(max(y0 / h, 0.0), 1.0),
                    min(max(x1 / w, 0.0), 1.0),
                    min(max(y1 / h, 0.0), 1.0),
                ),
            )
            for (x0, y0, x1, y1), cls in zip(
                scene.xyxy.tolist(), scene.class_id.tolist(), strict=True
            )
        ]

    def __call__(self, frame: Mapping[str, Any]) -> list[Box]:
        """The boxes of ``frame``, a frame as ``GET /api/v1/frames/{id}`` returns it; a frame
        without ``source_index`` or of another size than the line's is an InvalidInputError."""
        index = frame.get("source_index")
        if not isinstance(index, int) or index < 0:
            raise InvalidInputError(
                f"frame {frame.get('id')} has no source_index: its ground truth is unknown"
            )
        size = (frame.get("width"), frame.get("height"))
        if size != self.line.size_wh:
            raise InvalidInputError(
                f"frame {frame.get('id')} is {size[0]}x{size[1]}, the line renders "
                f"{self.line.size_wh[0]}x{self.line.size_wh[1]}: not this line's frame"
            )
        return self.boxes_at(index)
