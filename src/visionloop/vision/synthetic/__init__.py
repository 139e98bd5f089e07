"""The synthetic production line: parts with defects on a conveyor, drift, exact ground truth.

``SyntheticLine(seed, size_wh, schedule).render(index)`` returns a ``Scene`` (the frame and the
boxes of its visible defects); ``write_dataset`` writes a YOLO-format dataset of such frames and
``write_video`` a video of consecutive ones.
"""

from __future__ import annotations

from visionloop.vision.synthetic.dataset import write_dataset
from visionloop.vision.synthetic.defects import CLASS_NAMES
from visionloop.vision.synthetic.line import Scene, SyntheticLine
from visionloop.vision.synthetic.schedule import (
    SCENARIOS,
    Drift,
    ScenarioSchedule,
    parse_schedule,
)
from visionloop.vision.synthetic.video import write_video

__all__ = [
    "CLASS_NAMES",
    "SCENARIOS",
    "Drift",
    "ScenarioSchedule",
    "Scene",
    "SyntheticLine",
    "parse_schedule",
    "write_dataset",
    "write_video",
]
