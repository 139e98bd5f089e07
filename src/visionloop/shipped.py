"""Where the shipped baseline model lives: package data inside the installed ``visionloop``.

The baseline (``model.onnx``, its fine-tuning weights ``best.pt``, its drift reference profile
``drift_profile.json``, ``eval.json`` and ``MODEL_CARD.md``) ships in the wheel beside the code,
so ``visionloop demo`` and ``visionloop simulate`` work from any folder and from an installed
package, never relative to the working directory.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

BASELINE_DIR = Path(str(files("visionloop") / "baseline")).resolve()
"""The baseline's folder inside the installed package (an absolute path; the package is
installed as plain files, never zipped)."""
BASELINE_ONNX = BASELINE_DIR / "model.onnx"
BASELINE_WEIGHTS = BASELINE_DIR / "best.pt"
"""Ultralytics weights of the baseline: what a train job fine-tunes from version 1."""
BASELINE_PROFILE = BASELINE_DIR / "drift_profile.json"
"""500 random nominal frames of the synthetic line (seed 0) run through the baseline."""
BASELINE_EVAL = BASELINE_DIR / "eval.json"
"""The model card's evaluation (nominal and drifted test sets)."""
