"""Frame sources: the synthetic line, a video file, a webcam, an RTSP camera, an image folder.

``open_source(spec)`` reads a spec and returns a ``FrameSource``: an iterable of ``Frame``s with
``live`` saying whether frames keep arriving whether or not anyone reads them (a camera: the
reader may drop frames) or wait for the reader (a file, a folder, the synthetic line: nothing is
ever dropped). ``captured_at`` is the wall-clock time (UTC) at which a frame was read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
from numpy.typing import NDArray

from visionloop.errors import SourceError, VisionloopError

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
STREAM_SCHEMES = ("rtsp://", "rtsps://")
OPEN_TIMEOUT_MS = 5000  # how long a camera or stream may take to open
READ_TIMEOUT_MS = 5000  # and to deliver a frame once open
RECONNECTS = 3  # attempts to reopen a live source whose reads fail, before giving up

SPEC_HELP = (
    "expected synthetic[:SCHEDULE], webcam:N, rtsp://HOST/PATH, a video file or a folder of images"
)


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame: ``index`` counts frames delivered by the source from 0; ``captured_at`` is
    timezone-aware UTC; ``frame_bgr`` is uint8 ``(H, W, 3)``."""

    index: int
    captured_at: datetime
    frame_bgr: NDArray[np.uint8]


class FrameSource(Protocol):
    """Where frames come from. Iterate once; ``close()`` may be called from another thread and
    ends the iteration."""

    live: bool

    def __iter__(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...


def _now() -> datetime:
    return datetime.now(UTC)


class SyntheticSource:
    """Frames of the synthetic line, in order, without end (the caller limits them)."""

    live = False

    def __init__(self, schedule: str, *, seed: int, size_wh: tuple[int, int]) -> None:
        from visionloop.vision.synthetic import SyntheticLine

        try:
            self.line = SyntheticLine(seed=seed, size_wh=size_wh, schedule=schedule)
        except VisionloopError as exc:
            raise SourceError(f"bad synthetic source: {exc}") from exc
        self._closed = threading.Event()

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        while not self._closed.is_set():
            scene = self.line.render(index)
            yield Frame(index=index, captured_at=_now(), frame_bgr=scene.frame_bgr)
            index += 1

    def close(self) -> None:
        self._closed.set()


class ImageFolderSource:
    """The images of a folder (not its subfolders) in name order, then the end.

    An image that cannot be decoded is skipped with a warning and counted in ``skipped``.
    """

    live = False

    def __init__(self, folder: Path) -> None:
        if folder.is_dir():
            self.paths = sorted(
                p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
        else:
            self.paths = [folder]
        if not self.paths:
            raise SourceError(
                f"no images in folder {folder} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})"
            )
        self.skipped = 0
        self._closed = threading.Event()

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        for path in self.paths:
            if self._closed.is_set():
                return
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                self.skipped += 1
                logger.warning("skipping %s: not a readable image", path)
                continue
            yield Frame(index=index, captured_at=_now(), frame_bgr=np.asarray(image, np.uint8))
            index += 1

    def close(self) -> None:
        self._closed.set()


class CaptureSource:
    """A ``cv2.VideoCapture``: a video file (``live=False``: every frame, then the end) or a
    camera or stream (``live=True``: reopened up to ``RECONNECTS`` times when reads fail, waiting
    ``reconnect_delay_s``, doubled each time, then ``SourceError``)."""

    def __init__(
        self,
        target: str | int,
        *,
        live: bool,
        label: str,
        open_timeout_ms: int = OPEN_TIMEOUT_MS,
        read_timeout_ms: int = READ_TIMEOUT_MS,
        reconnect_delay_s: float = 0.5,
    ) -> None:
        self.live = live
        self.label = label
        self._target = target
        self._timeouts_ms = (open_timeout_ms, read_timeout_ms)
        self._reconnect_delay_s = reconnect_delay_s
        self._lock = threading.Lock()
        self._closed = False
        self._capture = self._open()
        # Read the first frame now, so that a file that opens but does not decode fails here.
        ok, first = self._capture.read()
        if not ok or first is None:
            self._capture.release()
            raise SourceError(f"cannot read a frame from {label}")
        self._first: NDArray[np.uint8] | None = np.asarray(first, np.uint8)

    def _open(self) -> cv2.VideoCapture:
        open_ms, read_ms = self._timeouts_ms
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, open_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, read_ms]
        backend = cv2.CAP_ANY if isinstance(self._target, int) else cv2.CAP_FFMPEG
        capture = cv2.VideoCapture(self._target, backend, params)
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"cannot open {self.label}")
        return capture

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        if self._first is not None:
            first, self._first = self._first, None
            yield Frame(index=index, captured_at=_now(), frame_bgr=first)
            index += 1
        while True:
            image = self._read()
            if image is None:
                return
            yield Frame(index=index, captured_at=_now(), frame_bgr=image)
            index += 1

    def _read(self) -> NDArray[np.uint8] | None:
        """The next frame; ``None`` at the end of a file or once closed."""
        for attempt in range(RECONNECTS + 1):
            with self._lock:
                if self._closed:
                    return None
                ok, image = self._capture.read()
            if ok and image is not None:
                return np.asarray(image, np.uint8)
            if not self.live:
                return None
            if attempt < RECONNECTS:
                logger.warning("%s: read failed, reconnecting (%d/%d)", self.label, attempt + 1,
                               RECONNECTS)  # fmt: skip
                time.sleep(self._reconnect_delay_s * 2**attempt)
                self._reopen()
        raise SourceError(f"lost {self.label}: no frames after {RECONNECTS} reconnects")

    def _reopen(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._capture.release()
            try:
                self._capture = self._open()
            except SourceError as exc:
                logger.warning("%s", exc)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._capture.release()


def open_source(spec: str, *, seed: int = 0, size_wh: tuple[int, int] = (640, 480)) -> FrameSource:
    """Open the frame source that ``spec`` names; ``SourceError`` if it cannot be opened.

    - ``synthetic`` or ``synthetic:SCHEDULE`` (e.g. ``synthetic:blur:1.0@300+200``): the
      synthetic line at ``size_wh`` from ``seed``, without end;
    - ``webcam:N``: camera device N; ``rtsp://…``: a network camera (both live);
    - a folder: its images in name order; an image file: that one image;
    - any other existing file: a video, every frame in order.

    ``seed`` and ``size_wh`` apply to the synthetic line only.
    """
    text = spec.strip()
    if not text:
        raise SourceError(f"empty source; {SPEC_HELP}")
    if text == "synthetic" or text.startswith("synthetic:"):
        return SyntheticSource(text.partition(":")[2] or "nominal", seed=seed, size_wh=size_wh)
    if text == "webcam" or text.startswith("webcam:"):
        device = text.partition(":")[2] or "0"
        if not (device.isascii() and device.isdigit()):
            raise SourceError(f"bad webcam {text!r}: expected webcam:N with N a device number")
        return CaptureSource(int(device), live=True, label=f"webcam {device}")
    if text.lower().startswith(STREAM_SCHEMES):
        return CaptureSource(text, live=True, label=f"stream {_redact(text)}")
    path = Path(text).expanduser()
    if path.is_dir() or (path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES):
        return ImageFolderSource(path)
    if path.is_file():
        return CaptureSource(str(path), live=False, label=f"video file {path}")
    raise SourceError(f"no such file or folder: {text!r}; {SPEC_HELP}")


def _redact(url: str) -> str:
    """The URL without a password (``rtsp://user:secret@host`` → ``rtsp://user:***@host``)."""
    scheme, _, rest = url.partition("://")
    credentials, at, host = rest.partition("@")
    if at and ":" in credentials:
        user = credentials.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url
