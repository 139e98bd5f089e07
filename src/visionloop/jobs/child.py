"""The subprocess a worker runs one job in: ``python -m visionloop.jobs.child``.

The worker writes a ``ChildSpec`` as JSON to its stdin. Everything the job prints or logs goes to
stdout, which the worker stores as the job's log. Progress and the outcome go to the worker as
JSON lines on the file descriptor ``control_fd``: ``{"progress": f, "message": m}``, then one
``{"result": {...}}`` (exit 0) or ``{"error": "..."}`` (exit 1). A process that ends without
either crashed (the worker may retry it).

The job runs in its own process group. If the worker dies (SIGKILL, OOM), a watchdog thread kills
the whole group within a second, so that a job taken over by another worker never runs twice.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import signal
import sys
import threading
import time
import traceback
from typing import IO, Any

from pydantic import BaseModel, ConfigDict

PARENT_CHECK_SECONDS = 0.5


class ChildSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    job_id: int
    attempt: int
    run: str
    """``module:qualname`` of the kind's run function."""
    params_model: str
    params: dict[str, Any]
    control_fd: int


def _import(target: str) -> Any:
    module_name, _, qualname = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


class _Context:
    """The ``JobContext`` a job's run function gets."""

    def __init__(self, spec: ChildSpec, control: IO[str]) -> None:
        from visionloop.config import Settings

        self.job_id = spec.job_id
        self.attempt = spec.attempt
        self.settings = Settings()
        self._control = control
        self._lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> None:
        with self._lock:
            self._control.write(json.dumps(message, default=str) + "\n")
            self._control.flush()

    def progress(self, fraction: float, message: str = "") -> None:
        self.send({"progress": float(fraction), "message": str(message)})


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(PARENT_CHECK_SECONDS)
        if os.getppid() != parent:
            os.killpg(os.getpgrp(), signal.SIGKILL)


def main() -> int:
    parent = os.getppid()
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # a TextIOWrapper
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stdout,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    spec = ChildSpec.model_validate_json(sys.stdin.read())
    with os.fdopen(spec.control_fd, "w", encoding="utf-8") as control:
        ctx = _Context(spec, control)
        try:
            params = _import(spec.params_model).model_validate(spec.params)
            result = _import(spec.run)(params, ctx)
            ctx.send({"result": result})
            return 0
        except Exception as exc:
            from visionloop.errors import VisionloopError

            if isinstance(exc, VisionloopError):
                ctx.send({"error": str(exc) or type(exc).__name__})
            else:
                traceback.print_exc(file=sys.stdout)
                ctx.send({"error": f"{type(exc).__name__}: {exc}"})
            return 1
        finally:
            sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
