"""The real parts of a simulation as child processes: ``visionloop serve``, ``visionloop
worker`` and ``visionloop edge``, each with its output in a log file, stopped with SIGTERM (as
a person's Ctrl-C would) and killed only if it does not stop in time."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO

import httpx

from visionloop.config import ENV_PREFIX
from visionloop.errors import VisionloopError

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 30.0


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def child_environment(settings_env: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any ``VISIONLOOP_*`` or ``MLFLOW_*`` variable (the
    simulation's store must not mix with the caller's), plus ``settings_env``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith(ENV_PREFIX) and not k.upper().startswith("MLFLOW_")
    }
    env.update(settings_env)
    return env


class Child:
    """One ``python -m visionloop ARGS`` process, its output in ``log_path``."""

    def __init__(self, name: str, args: list[str], env: Mapping[str, str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log: IO[bytes] = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "visionloop", *args],
            env=dict(env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.info("started %s (pid %d): %s", name, self.process.pid, " ".join(args))

    def alive(self) -> bool:
        return self.process.poll() is None

    def check(self) -> None:
        """Raise VisionloopError if the process ended (with the end of its log)."""
        code = self.process.poll()
        if code is not None:
            raise VisionloopError(
                f"the {self.name} process ended (status {code}); the end of its log "
                f"({self.log_path}):\n{self.tail()}"
            )

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM, wait up to ``timeout_s``, then SIGKILL; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0f s: killed", self.name, timeout_s)
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


def wait_ready(url: str, server: Child, timeout_s: float = 120.0) -> None:
    """Wait until ``GET url/readyz`` answers 200 (the server migrated and is up)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        server.check()
        try:
            if httpx.get(f"{url}/readyz", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise VisionloopError(f"the server at {url} was not ready after {timeout_s:.0f} s")


def wait_for_production(url: str, token: str, server: Child, timeout_s: float = 300.0) -> None:
    """Wait until the server names its production model: it opens the registry (importing
    MLflow, seconds on a busy machine) in the background after start and answers 503 with
    ``Retry-After`` meanwhile; any other answer is an error."""
    deadline = time.monotonic() + timeout_s
    while True:
        server.check()
        answer = httpx.get(
            f"{url}/api/v1/models/production",
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout_s,
        )
        if answer.status_code == 200:
            return
        if answer.status_code != 503 or time.monotonic() > deadline:
            raise VisionloopError(f"no production model on the server: {answer.text}")
        time.sleep(min(float(answer.headers.get("retry-after", "1")), 5.0))
