"""What the test processes of one run share when pytest-xdist runs them in parallel (``-n 2``).

- ``run_dir(tmp_path_factory)``: a folder of this run that every xdist worker sees (the parent
  of the workers' own temporary folders), or the run's temporary folder without xdist.
- ``build_once(path, build)``: ``path`` (a file or a folder) built by exactly one process, under
  a lock file next to it: the first to take the lock calls ``build(tmp)``, which makes ``tmp``,
  then renames it to ``path``; the others wait for the lock and find it there. A failed build
  leaves nothing behind, so the next one tries again.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest


def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def build_once(path: Path, build: Callable[[Path], None]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            try:
                build(tmp)
                os.replace(tmp, path)
            finally:
                if tmp.is_dir():
                    shutil.rmtree(tmp)
                tmp.unlink(missing_ok=True)
    return path
