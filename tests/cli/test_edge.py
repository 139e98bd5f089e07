"""``visionloop edge``: flags, bad input, and a clean stop on SIGTERM with the summary."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

from support.db import DeviceCredentials, LiveServer
from support.edge import outbox_committed, server_frames
from visionloop.cli import app as cli_app

FLAGS = (
    "--server", "--token", "--source", "--model", "--backend", "--precision", "--imgsz", "--conf",
    "--sample-band", "--audit-rate", "--max-frames", "--fps-limit", "--outbox", "--drain-timeout",
)  # fmt: skip


def test_help_lists_every_flag_of_the_issue() -> None:
    result = CliRunner().invoke(cli_app, ["edge", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for flag in FLAGS:
        assert flag in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sample-band", "0.7,0.4"], "LOW <= HIGH"),
        (["--sample-band", "abc"], "LOW,HIGH"),
        (["--backend", "tensorrt"], "onnxruntime"),
        (["--precision", "int4"], "bf16"),
        (["--audit-rate", "2"], "audit rate"),
    ],
    ids=["band-reversed", "band-garbage", "backend", "precision", "audit-rate"],
)
def test_bad_flags_exit_2_with_a_message(args: list[str], message: str, tmp_path: Path) -> None:
    base = ["edge", "--server", "http://127.0.0.1:9", "--token", "t", "--source", "synthetic"]
    result = CliRunner().invoke(
        cli_app, [*base, "--outbox", str(tmp_path / "o.db"), *args], terminal_width=200
    )
    assert result.exit_code == 2
    assert message in result.output


def test_missing_model_file_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli_app,
        [
            "edge",
            "--server",
            "http://127.0.0.1:9",
            "--token",
            "t",
            "--source",
            "synthetic",
            "--model",
            str(tmp_path / "nope.onnx"),
            "--outbox",
            str(tmp_path / "o.db"),
        ],
    )
    assert result.exit_code != 0


def test_sigterm_stops_cleanly_drains_and_prints_the_summary(
    app: FastAPI,
    device: DeviceCredentials,
    live_server: LiveServer,
    detector_onnx: Path,
    tmp_path: Path,
) -> None:
    outbox = tmp_path / "outbox.db"
    command = [
        sys.executable, "-m", "visionloop", "edge", "--server", live_server.url,
        "--token", device.token, "--source", "synthetic", "--model", str(detector_onnx),
        "--backend", "onnxruntime", "--threads", "1", "--outbox", str(outbox),
        "--audit-rate", "0.2", "--fps-limit", "40",
    ]  # fmt: skip
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as agent:
        deadline = time.monotonic() + 60
        while outbox_committed(outbox) < 30:
            assert agent.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.05)
        agent.send_signal(signal.SIGTERM)
        out, err = agent.communicate(timeout=60)
    assert agent.returncode == 0, err
    assert "SIGTERM: stopping" in err
    frames_line = next(line for line in out.splitlines() if line.startswith("frames:"))
    n = int(frames_line.split()[1])
    assert n >= 30
    assert "FPS" in frames_line
    assert "sampled:" in out and "uploaded:" in out
    assert "left in outbox: 0 records, 0 images" in out
    assert len(server_frames(app)) == n
