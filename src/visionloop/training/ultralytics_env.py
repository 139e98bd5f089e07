"""Offline set-up of Ultralytics: a config folder of ours, no telemetry, no downloads, our threads.

Ultralytics reads its environment once, at import: ``YOLO_CONFIG_DIR`` (where ``settings.json``
and fonts live), ``YOLO_OFFLINE`` (skips its DNS probes), ``YOLO_AUTOINSTALL`` (its habit of
``pip install``-ing missing packages) and ``OMP_NUM_THREADS`` (which it otherwise forces to 1).
So :func:`prepare_ultralytics` sets them *before* the first import and then fixes what is left:

- settings ``sync=False`` and the datasets/weights/runs folders inside our config folder (its
  settings file otherwise freezes ``datasets_dir`` to whichever folder it was first run from);
- a font file named ``Arial.ttf`` in its config folder: every dataset check calls ``check_font``,
  which otherwise sends an HTTP HEAD to download one. We copy matplotlib's DejaVu Sans there;
- ``torch_utils.NUM_THREADS``, which it passes to ``torch.set_num_threads`` for CPU training
  (``cpu_count - 1`` by default; on our 2-core machines 2 threads train 1.9x faster than 1).

The AMP check is avoided by the caller: it downloads ``yolo26n.pt``, so training passes
``amp=False`` on CPU and ``amp="bf16"`` on CUDA (a supported mode that skips the check).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

log = logging.getLogger(__name__)

_FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")


def prepare_ultralytics(
    config_dir: Path | None = None, *, threads: int | None = None
) -> ModuleType:
    """Configure Ultralytics for offline use under ``config_dir`` and return the imported module.

    ``config_dir`` defaults to ``$YOLO_CONFIG_DIR`` when set, else a ``visionloop-ultralytics``
    folder in the temporary directory.
    ``threads`` is the number of CPU threads torch uses when training on the CPU (default: every
    core, at most 8). Safe to call more than once; a second call with another ``config_dir`` in
    the same process keeps Ultralytics' first config folder (it is fixed at import) but still
    points its dataset/run folders at the new one.
    """
    if config_dir is None:
        env_dir = os.environ.get("YOLO_CONFIG_DIR")
        config_dir = (
            Path(env_dir) if env_dir else Path(tempfile.gettempdir()) / "visionloop-ultralytics"
        )
    config_dir = config_dir.resolve()
    config_dir.mkdir(parents=True, exist_ok=True)
    n_threads = threads if threads is not None else min(8, os.cpu_count() or 1)
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "false"
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(config_dir))
    os.environ.setdefault("OMP_NUM_THREADS", str(n_threads))

    import ultralytics
    import ultralytics.utils
    import ultralytics.utils.torch_utils

    # Untyped module globals: bind them as Any once rather than scatter ignores.
    yolo_utils: Any = ultralytics.utils
    torch_utils: Any = ultralytics.utils.torch_utils
    settings: Any = yolo_utils.SETTINGS

    wanted: dict[str, object] = {
        "sync": False,
        "datasets_dir": str(config_dir / "datasets"),
        "weights_dir": str(config_dir / "weights"),
        "runs_dir": str(config_dir / "runs"),
        "vscode_msg": False,
        "openvino_msg": False,
        # Integrations off: we log to MLflow ourselves, once, with our own run layout.
        **dict.fromkeys(
            ("tensorboard", "mlflow", "wandb", "clearml", "comet", "dvc", "raytune"), False
        ),
    }
    # Keys differ between Ultralytics releases; its update() rejects unknown ones.
    settings.update({k: v for k, v in wanted.items() if k in settings.defaults})
    _install_local_font(Path(yolo_utils.USER_CONFIG_DIR))
    torch_utils.NUM_THREADS = n_threads
    return ultralytics


def _install_local_font(user_config_dir: Path) -> None:
    """Put a font under the names Ultralytics looks for, so ``check_font`` never downloads."""
    import matplotlib

    source = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    user_config_dir.mkdir(parents=True, exist_ok=True)
    for name in _FONT_NAMES:
        target = user_config_dir / name
        if not target.exists():
            shutil.copyfile(source, target)
            log.debug("installed local font %s for Ultralytics", target)
