"""Frame sources, with real files: a video written by OpenCV, a folder of images, sockets."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC
from itertools import islice
from pathlib import Path

import cv2
import numpy as np
import pytest

from visionloop.errors import SourceError
from visionloop.vision.sources import (
    CaptureSource,
    Frame,
    FrameSource,
    ImageFolderSource,
    open_source,
)
from visionloop.vision.synthetic import Drift, SyntheticLine

LEVELS = [20 * i + 10 for i in range(12)]  # one grey level per frame, far apart


def _write_video(path: Path, levels: list[int], size_wh: tuple[int, int] = (160, 120)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, size_wh)
    assert writer.isOpened()
    for level in levels:
        frame = np.full((size_wh[1], size_wh[0], 3), level, np.uint8)
        cv2.putText(frame, str(level), (10, 60), cv2.FONT_HERSHEY_SIMPLEX, 1, (255, 255, 255), 2)
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture
def video(tmp_path: Path) -> Path:
    return _write_video(tmp_path / "line.avi", LEVELS)


@pytest.fixture
def listening_port() -> Iterator[int]:
    """A TCP port that accepts connections and never answers: a stalled camera."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    yield server.getsockname()[1]
    server.close()


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _check_frames(frames: list[Frame]) -> None:
    assert [f.index for f in frames] == list(range(len(frames)))
    for frame in frames:
        assert frame.captured_at.tzinfo is not None
        assert frame.captured_at.utcoffset() == UTC.utcoffset(None)
        assert frame.frame_bgr.dtype == np.uint8 and frame.frame_bgr.ndim == 3
    stamps = [f.captured_at for f in frames]
    assert stamps == sorted(stamps)


# --- synthetic -----------------------------------------------------------------------------


def test_synthetic_source_plays_the_line_in_order() -> None:
    source: FrameSource = open_source("synthetic", seed=4, size_wh=(320, 240))
    assert source.live is False
    frames = list(islice(iter(source), 5))
    _check_frames(frames)
    line = SyntheticLine(seed=4, size_wh=(320, 240))
    for frame in frames:
        assert np.array_equal(frame.frame_bgr, line.render(frame.index).frame_bgr)
    source.close()


def test_synthetic_source_follows_its_schedule() -> None:
    source = open_source("synthetic:noise:1.0@3", seed=1)
    frames = list(islice(iter(source), 4))
    line = SyntheticLine(seed=1)
    assert np.array_equal(frames[2].frame_bgr, line.render(2).frame_bgr)
    assert np.array_equal(frames[3].frame_bgr, line.render(3, drift=Drift("noise", 1.0)).frame_bgr)


def test_synthetic_source_is_endless_until_closed() -> None:
    source = open_source("synthetic", size_wh=(160, 120))
    count = 0
    for _frame in source:
        count += 1
        if count == 300:
            source.close()
        assert count <= 301
    assert count == 300


@pytest.mark.parametrize("spec", ["synthetic:fog", "synthetic:blur:2", "synthetic:blur@x"])
def test_synthetic_source_rejects_bad_schedules(spec: str) -> None:
    with pytest.raises(SourceError, match="bad synthetic source"):
        open_source(spec)


# --- video file ----------------------------------------------------------------------------


def test_video_file_yields_every_frame_in_order(video: Path) -> None:
    source = open_source(str(video))
    assert source.live is False
    frames = list(source)
    _check_frames(frames)
    assert len(frames) == len(LEVELS)
    assert frames[0].frame_bgr.shape == (120, 160, 3)
    # The corner of each frame keeps its grey level (within codec loss): order preserved.
    corners = [float(f.frame_bgr[100:, 120:].mean()) for f in frames]
    assert np.allclose(corners, LEVELS, atol=6)
    source.close()


def test_video_file_close_ends_iteration(video: Path) -> None:
    source = open_source(str(video))
    seen = []
    for frame in source:
        seen.append(frame.index)
        if frame.index == 2:
            source.close()
    assert seen == [0, 1, 2]


def test_file_that_is_not_a_video(tmp_path: Path) -> None:
    bogus = tmp_path / "clip.mp4"
    bogus.write_bytes(b"this is not a video" * 100)
    with pytest.raises(SourceError, match=r"cannot (open|read a frame from) video file"):
        open_source(str(bogus))


def test_missing_file() -> None:
    with pytest.raises(SourceError, match=r"no such file or folder.*expected synthetic"):
        open_source("/nonexistent/clip.mp4")


def test_live_source_that_loses_its_stream_raises(tmp_path: Path) -> None:
    """A live capture whose reads fail reconnects a few times, then names the loss."""
    path = _write_video(tmp_path / "cam.avi", LEVELS[:3])
    source = CaptureSource(str(path), live=True, label="camera cam", reconnect_delay_s=0.01)
    path.unlink()  # reopening fails from now on
    frames = []
    with pytest.raises(SourceError, match="lost camera cam"):
        for frame in source:
            frames.append(frame)
    assert len(frames) == 3
    source.close()


# --- image folder --------------------------------------------------------------------------


def test_image_folder_in_name_order(tmp_path: Path) -> None:
    for name, level in [("b.png", 100), ("a.jpg", 50), ("c.PNG", 150)]:
        cv2.imwrite(str(tmp_path / name.lower()), np.full((40, 60, 3), level, np.uint8))
    (tmp_path / "c.png").rename(tmp_path / "c.PNG")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG garbage")
    (tmp_path / "sub").mkdir()
    cv2.imwrite(str(tmp_path / "sub" / "d.png"), np.zeros((40, 60, 3), np.uint8))
    source = open_source(str(tmp_path))
    assert source.live is False
    frames = list(source)
    _check_frames(frames)
    assert [round(float(f.frame_bgr.mean())) for f in frames] == [50, 100, 150]
    assert isinstance(source, ImageFolderSource)
    assert source.skipped == 1  # broken.png, with a warning


def test_single_image_file(tmp_path: Path) -> None:
    path = tmp_path / "one.png"
    cv2.imwrite(str(path), np.full((40, 60, 3), 77, np.uint8))
    frames = list(open_source(str(path)))
    assert len(frames) == 1 and frames[0].frame_bgr.shape == (40, 60, 3)


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(SourceError, match="no images in folder"):
        open_source(str(tmp_path))


# --- cameras and streams: only the error paths run here -------------------------------------


def test_missing_webcam() -> None:
    with pytest.raises(SourceError, match="cannot open webcam 97"):
        open_source("webcam:97")


def test_refused_rtsp_stream_redacts_the_password() -> None:
    port = _closed_port()
    with pytest.raises(SourceError, match="cannot open stream") as info:
        open_source(f"rtsp://admin:secret@127.0.0.1:{port}/stream1")
    assert "secret" not in str(info.value)
    assert "admin:***@" in str(info.value)


def test_stalled_rtsp_stream_times_out(listening_port: int) -> None:
    start = time.monotonic()
    with pytest.raises(SourceError, match="cannot open stream"):
        CaptureSource(
            f"rtsp://127.0.0.1:{listening_port}/cam",
            live=True,
            label=f"stream rtsp://127.0.0.1:{listening_port}/cam",
            open_timeout_ms=300,
            read_timeout_ms=300,
        )
    assert time.monotonic() - start < 5


@pytest.mark.parametrize(
    ("spec", "message"),
    [("", "empty source"), ("   ", "empty source"), ("webcam:front", "bad webcam"),
     ("webcam:-1", "bad webcam")],
)  # fmt: skip
def test_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        open_source(spec)


def test_close_from_another_thread_stops_a_synthetic_run() -> None:
    source = open_source("synthetic", size_wh=(160, 120))
    threading.Timer(0.2, source.close).start()
    start = time.monotonic()
    count = sum(1 for _ in source)
    assert count > 0
    assert time.monotonic() - start < 5
