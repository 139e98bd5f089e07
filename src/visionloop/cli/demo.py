"""The demo's parts beside the server: its settings, kept credentials, the simulated camera, the
oracle reviewer and the child processes that ``visionloop demo`` starts and stops together.

The demo story (README "Demo", docs/demo.md): one camera on the synthetic line whose drift begins
a few minutes in, the worker's drift checks and retraining policy tuned so that a round happens
within minutes on a 2-core CPU, and (``--demo-oracle``) a reviewer that labels each task with the
line's ground truth. These settings are the demo's only: they are put into the environment of
the demo process (and so of its children) where the person did not set them, never into the
product's defaults.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from visionloop.config import Settings
from visionloop.simulation.processes import STOP_TIMEOUT_S, Child

log = logging.getLogger(__name__)

DEMO_ENV: dict[str, str] = {
    # A round after 60 reviewed frames (30 with a drift alarm on), at most every 5 minutes.
    "VISIONLOOP_RETRAIN_MIN_LABELS": "60",
    "VISIONLOOP_RETRAIN_DRIFT_MIN_LABELS": "30",
    "VISIONLOOP_RETRAIN_COOLDOWN": "300",
    # Drift checked every minute over the camera's last 1,500 frames (~100 s at 15 FPS, thinned
    # to 30 by their decorrelation lag); the synthetic line's drift moves fewer features than a
    # real one (README, Drift monitoring).
    "VISIONLOOP_DRIFT_INTERVAL": "60",
    "VISIONLOOP_DRIFT_WINDOW": "1500",
    "VISIONLOOP_DRIFT_ALARM_SHARE": "0.4",
}
"""The demo's settings (the product defaults wait for 200 labels and retrain at most hourly)."""

FAST_ENV: dict[str, str] = {
    **DEMO_ENV,
    "VISIONLOOP_RETRAIN_MIN_LABELS": "12",
    "VISIONLOOP_RETRAIN_DRIFT_MIN_LABELS": "12",
    "VISIONLOOP_RETRAIN_POLICY_INTERVAL": "5",
    "VISIONLOOP_DRIFT_INTERVAL": "30",
    "VISIONLOOP_DRIFT_WINDOW": "60",
    "VISIONLOOP_RETRAIN_EPOCHS": "1",
    "VISIONLOOP_RETRAIN_IMGSZ": "160",
    "VISIONLOOP_RETRAIN_BATCH": "8",
    "VISIONLOOP_RETRAIN_REPLAY": "0.5",
    "VISIONLOOP_RETRAIN_QUANTIZE": "false",
    # A one-epoch model at 160 px need not beat production: the fast configuration shows the
    # loop's mechanics (gate report, promotion, the edge's swap), not a better model.
    "VISIONLOOP_GATE_MAX_GOLDEN_DROP": "1",
    "VISIONLOOP_GATE_MAX_RECENT_DROP": "1",
    # Its 12 labels leave one or two held-out images: no minimum evidence, and "no worse" on
    # them suffices (the product's gate needs 30 images and a better candidate).
    "VISIONLOOP_GATE_MIN_RECENT_IMAGES": "0",
    "VISIONLOOP_GATE_PROMOTE_ON": "no_worse",
}
"""``--fast``: a tiny round for tests (the first promotion within about two minutes)."""


@dataclass(frozen=True, slots=True)
class Camera:
    """The simulated camera: an edge agent (``visionloop edge``) on the synthetic line.

    ``schedule`` is the line's drift schedule (``NAME:INTENSITY@START+RAMP``, frames); ``fps``
    paces the line; the frame size and ``seed`` are what the oracle renders the truth with.
    """

    schedule: str
    fps: float
    model_poll_s: float
    heartbeat_s: float
    seed: int = 0
    size_wh: tuple[int, int] = (640, 480)
    golden_images: int = 100

    @property
    def source(self) -> str:
        return f"synthetic:{self.schedule}"

    def drift_starts_s(self) -> float:
        """Seconds after the camera's start at which the schedule's drift begins."""
        from visionloop.vision.synthetic import parse_schedule

        return parse_schedule(self.schedule).start / self.fps

    def args(self, url: str, token_file: Path, outbox: Path) -> list[str]:
        """``visionloop edge`` arguments for this camera."""
        return [
            "edge",
            "--server",
            url,
            "--token-file",
            str(token_file),
            "--source",
            self.source,
            "--seed",
            str(self.seed),
            "--fps-limit",
            f"{self.fps:g}",
            "--model-poll",
            f"{self.model_poll_s:g}",
            "--heartbeat",
            f"{self.heartbeat_s:g}",
            "--synthetic-size",
            f"{self.size_wh[0]}x{self.size_wh[1]}",
            "--outbox",
            str(outbox),
            "--drain-timeout",
            "5",
        ]


DEMO_SCHEDULE = "blur:0.6@900+300"
"""Blur (a lens going out of focus) from frame 900, fully in 300 frames later: at the demo's
5 frames per second it begins 3 minutes in."""
DEMO_FPS = 5.0
FAST_SCHEDULE = "blur:0.6@40+40"
FAST_FPS = 4.0


def demo_camera(*, fast: bool, schedule: str | None, fps: float | None) -> Camera:
    if fast:  # small frames and a small golden set, as `visionloop simulate --fast` has them
        return Camera(
            schedule=schedule or FAST_SCHEDULE,
            fps=fps or FAST_FPS,
            model_poll_s=2,
            heartbeat_s=2,
            size_wh=(320, 240),
            golden_images=20,
        )
    return Camera(
        schedule=schedule or DEMO_SCHEDULE, fps=fps or DEMO_FPS, model_poll_s=10, heartbeat_s=5
    )


def apply_demo_env(*, fast: bool) -> dict[str, str]:
    """Put the demo's settings into this process's environment where they are not set; returns
    those it set (a person's own ``VISIONLOOP_*`` variables win)."""
    applied = {}
    for key, value in (FAST_ENV if fast else DEMO_ENV).items():
        if key not in os.environ:
            os.environ[key] = value
            applied[key] = value
    return applied


# --- credentials kept in the store, so that a second `visionloop demo` resumes


def demo_dir(settings: Settings) -> Path:
    """``<data dir>/demo``: the demo's kept credentials and its camera's outbox."""
    return settings.data_dir / "demo"


def read_secret(path: Path) -> str | None:
    try:
        value = path.read_text().strip()
    except OSError:
        return None
    return value or None


def write_secret(path: Path, value: str) -> None:
    """Write ``value`` to ``path``, readable by this user only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(value + "\n")


def new_password() -> str:
    return secrets.token_urlsafe(12)


# --- child processes


class Children:
    """The demo's child processes (``python -m visionloop ...``, the simulation's :class:`Child`,
    each logging to ``<log_dir>/<name>.log``): started now or once the server answers
    ``/readyz``, and stopped together (SIGTERM, then SIGKILL if one does not stop in time)."""

    def __init__(self, log_dir: Path, announce: Callable[[str], None]) -> None:
        self.log_dir = log_dir
        self.announce = announce
        self._children: list[Child] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.closing = threading.Event()

    def start(self, name: str, args: list[str]) -> None:
        with self._lock:
            if self.closing.is_set():
                return
            child = Child(
                name, args, dict(os.environ), self.log_dir / f"{name.replace(' ', '-')}.log"
            )
            self._children.append(child)
        self.announce(f"{name} started (pid {child.process.pid}), its log in {child.log_path}")

    def when_ready(self, url: str, name: str, run: Callable[[], None]) -> None:
        """Run ``run`` in a thread once the server at ``url`` is ready (never after close)."""

        def wait_then_run() -> None:
            if wait_ready(url, self.closing):
                try:
                    run()
                except Exception:  # a demo part failing must not go unnoticed, nor stop the rest
                    log.exception("%s failed", name)

        thread = threading.Thread(target=wait_then_run, name=f"demo-{name}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def stop_all(self) -> None:
        self.closing.set()
        with self._lock:
            children = list(self._children)
        for child in children:  # SIGTERM to all first: they stop side by side
            if child.alive():
                child.process.terminate()
        for child in children:
            child.stop(timeout_s=STOP_TIMEOUT_S)
        for thread in self._threads:
            thread.join(timeout=5)


def wait_ready(url: str, stop: threading.Event, timeout_s: float = 600.0) -> bool:
    """Until ``url/readyz`` answers 200 (True), or ``stop`` is set or the time is up (False)."""
    deadline = time.monotonic() + timeout_s
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        stop.wait(0.5)
    return False


# --- the oracle reviewer


def run_oracle(
    url: str,
    *,
    username: str,
    password: str,
    camera: Camera,
    stop: threading.Event,
    announce: Callable[[str], None],
) -> None:
    """Label the labeling queue's tasks with the camera's ground truth until ``stop`` is set:
    the simulation's oracle reviewer, signed in as ``username`` (a reviewer), polling the queue
    every few seconds when it is empty; ``announce`` hears the running count."""
    from visionloop.errors import VisionloopError
    from visionloop.simulation.oracle import OracleReviewer, sign_in
    from visionloop.simulation.truth import LineTruth
    from visionloop.vision.synthetic.line import SyntheticLine

    line = SyntheticLine(seed=camera.seed, size_wh=camera.size_wh, schedule=camera.schedule)
    with httpx.Client(base_url=url, timeout=30) as client:
        oracle = OracleReviewer(client, truth=LineTruth(line))
        signed_in = False
        while not stop.is_set():
            try:
                if not signed_in:
                    sign_in(client, username=username, password=password)
                    signed_in = True
                if oracle.review(limit=10) == 0:
                    stop.wait(2.0)
                else:
                    announce(f"oracle: {oracle.submitted} tasks labeled with the ground truth")
            except (httpx.HTTPError, VisionloopError) as exc:
                log.warning("oracle: %s; trying again", exc)
                signed_in = False
                stop.wait(5.0)
