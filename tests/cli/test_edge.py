"""``visionloop edge``: flags, bad input, and a clean stop on SIGTERM with the summary."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
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
        (["--imgsz", "100"], "multiples of 32"),
        (["--imgsz", "384x600"], "multiples of 32"),
        (["--imgsz", "big"], "N or HxW"),
        (["--synthetic-size", "640"], "WxH"),
        (["--synthetic-size", "100x100"], "within 160x120"),
    ],
    ids=[
        "band-reversed",
        "band-garbage",
        "backend",
        "precision",
        "audit-rate",
        "imgsz-100",
        "imgsz-rect",
        "imgsz-garbage",
        "synthetic-size-garbage",
        "synthetic-size-small",
    ],
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


def edge_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "visionloop", "edge", *args]


def run_edge(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        edge_command(*args),
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **(env or {})},
        check=False,
    )


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fps-limit", "0"], "error: --fps-limit must be more than 0 frames per second, got 0"),
        (["--outbox-max-mb", "0"], "error: --outbox-max-mb must be at least 1 (MiB), got 0"),
        (["--max-frames", "-1"], "error: --max-frames must be 0 or more"),
        (["--heartbeat", "0"], "error: --heartbeat must be more than 0 seconds"),
        (["--dead-letter-after", "0"], "error: --dead-letter-after must be at least 1"),
        (["--token-file", "/nonexistent/token"], "error: --token-file /nonexistent/token:"),
        (["--token", "t", "--token-file", "x"], "error: pass --token or --token-file, not both"),
        ([], "error: no device token: pass --token TOKEN, --token-file PATH or set"),
        (["--streams", "0"], "error: --streams must be at least 1, got 0"),
        (
            ["--source", "synthetic:blur"],
            "error: 2 sources need 2 device tokens, one per camera (--token or --token-file "
            "once per --source, in the same order); got 1",
        ),
        (
            ["--token", "t1", "--source", "synthetic:blur", "--token", "t2"],
            "error: 2 sources need 2 outboxes (--outbox once per --source, in the same order); "
            "got 1",
        ),
        (
            ["--token", "t", "--source", "synthetic:blur", "--token", "t", "--outbox", "o2.db"],
            "error: cameras 1 and 2 have the same device token: each camera is its own device",
        ),
    ],
    ids=[
        "fps-limit-0",
        "outbox-max-mb-0",
        "max-frames-negative",
        "heartbeat-0",
        "dead-letter-after-0",
        "token-file-missing",
        "token-and-token-file",
        "no-token",
        "streams-0",
        "two-sources-one-token",
        "two-sources-one-outbox",
        "two-cameras-one-token",
    ],
)
def test_flag_mistakes_are_one_line_errors(
    args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VISIONLOOP_EDGE_TOKEN", raising=False)
    token = [] if any(a.startswith("--token") for a in args) or not args else ["--token", "t"]
    result = run_edge(
        "--server", "http://127.0.0.1:9", "--source", "synthetic",
        "--outbox", str(tmp_path / "o.db"), *token, *args,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "o.db").exists()  # refused before acting


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_an_api_url_instead_of_the_base_url_is_named(
    live_server: LiveServer, device: DeviceCredentials, detector_onnx: Path, tmp_path: Path
) -> None:
    for model in ([], ["--model", str(detector_onnx)]):
        result = run_edge(
            "--server", f"{live_server.url}/api/v1", "--token", device.token,
            "--source", "synthetic", "--outbox", str(tmp_path / "o.db"), "--max-frames", "3",
            *model,
        )  # fmt: skip
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr
        assert result.stderr.strip() == (
            "error: this is not a visionloop server URL (404 on /api/v1/models/production): "
            "pass the base URL, e.g. http://host:8000"
        )


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_wrong_token_is_said_plainly_and_the_records_stay(
    live_server: LiveServer, detector_onnx: Path, tmp_path: Path
) -> None:
    """A 401 is permanent: exit 4 without waiting out the drain, records kept."""
    started = time.monotonic()
    result = run_edge(
        "--server", live_server.url, "--token", "not-a-token", "--source", "synthetic",
        "--model", str(detector_onnx), "--backend", "onnxruntime", "--threads", "1",
        "--outbox", str(tmp_path / "o.db"), "--max-frames", "3", "--drain-timeout", "60",
    )  # fmt: skip
    assert result.returncode == 4, result.stderr
    assert time.monotonic() - started < 40  # the 60 s drain was not waited out
    assert "Traceback" not in result.stderr
    errors = error_lines(result.stderr)
    assert len(errors) == 1, result.stderr
    assert (
        "the server rejected this device token (401): check --token or rotate it "
        "(visionloop devices rotate NAME)"
    ) in errors[0]
    kept = outbox_committed(tmp_path / "o.db")
    assert f"{kept} record{'' if kept == 1 else 's'} and" in errors[0]
    assert f"kept in {tmp_path / 'o.db'}" in errors[0]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_wrong_token_with_no_model_at_hand_exits_4_at_once(
    live_server: LiveServer, tmp_path: Path
) -> None:
    """First start, nothing cached: the production-model fetch is retried only when waiting can
    help; a 401 cannot be waited out (issue 20, finding 11)."""
    started = time.monotonic()
    result = run_edge(
        "--server", live_server.url, "--token", "not-a-token", "--source", "synthetic",
        "--backend", "onnxruntime", "--outbox", str(tmp_path / "o.db"), "--max-frames", "3",
    )  # fmt: skip
    assert result.returncode == 4, result.stderr
    assert time.monotonic() - started < 40
    assert "Traceback" not in result.stderr
    errors = error_lines(result.stderr)
    assert len(errors) == 1, result.stderr
    assert "the server rejected this device token (401)" in errors[0]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_each_token_keeps_its_own_outbox_and_never_uploads_another_s(
    app: FastAPI, live_server: LiveServer, device: DeviceCredentials, detector_onnx: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    """The issue's finding: a run with a wrong token wrote 20 records to the shared default
    outbox, and the next run with a valid token uploaded them as its own. Now the default
    outbox is the token's own (relative data dir, run from another folder), and an outbox
    refuses a token that is not its owner."""
    work = tmp_path / "elsewhere"
    work.mkdir()
    common = (
        "--server", live_server.url, "--source", "synthetic", "--model", str(detector_onnx),
        "--backend", "onnxruntime", "--threads", "1", "--drain-timeout", "30",
    )  # fmt: skip
    env = {"VISIONLOOP_DATA_DIR": "var"}
    wrong = run_edge_in(work, *common, "--token", "WRONG", "--max-frames", "20", env=env)
    assert wrong.returncode == 4, wrong.stderr
    edge_dir = work / "var" / "edge"
    outboxes = sorted(edge_dir.glob("*/*/outbox.db"))
    assert len(outboxes) == 1
    held = outbox_committed(outboxes[0])  # what it took before the 401 ended the run

    good = run_edge_in(work, *common, "--token", device.token, "--max-frames", "5", env=env)
    assert good.returncode == 0, good.stderr
    assert len(server_frames(app)) == 5  # the wrong token's records stayed where they were
    assert outbox_committed(outboxes[0]) == held
    assert len(sorted(edge_dir.glob("*/*/outbox.db"))) == 2

    stolen = run_edge_in(
        work, *common, "--token", device.token, "--outbox", str(outboxes[0]),
        "--max-frames", "0", env=env,
    )  # fmt: skip
    assert stolen.returncode == 1
    assert "holds the records of another device" in stolen.stderr
    assert len(server_frames(app)) == 5


def run_edge_in(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``visionloop edge`` run as a user runs it, from the folder ``cwd``."""
    return subprocess.run(
        edge_command(*args),
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        check=False,
    )


def test_undelivered_records_images_and_evictions_are_counted_and_exit_3(
    detector_onnx: Path, tmp_path: Path
) -> None:
    """The server is unreachable and the outbox is capped at 1 MiB: every frame is sampled, so
    images are evicted. The summary counts the images left (they wait for their records, none
    is "ready"), names the evictions, and the --max-frames run exits 3."""
    from support.db import free_port

    outbox = tmp_path / "o.db"
    result = run_edge(
        "--server", f"http://127.0.0.1:{free_port()}", "--token", "t", "--source", "synthetic",
        "--model", str(detector_onnx), "--backend", "onnxruntime", "--threads", "1",
        "--outbox", str(outbox), "--max-frames", "60", "--audit-rate", "1",
        "--max-sampled-per-minute", "100000", "--outbox-max-mb", "1", "--drain-timeout", "0.5",
    )  # fmt: skip
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    with sqlite3.connect(outbox) as raw:
        images = raw.execute("SELECT COUNT(*) FROM images").fetchone()[0]
        evicted = dict(raw.execute("SELECT name, value FROM counters").fetchall())
    assert 0 < images < 60 and evicted["evicted_images"] == 60 - images
    assert f"left in outbox: 60 records, {images} images" in result.stdout
    assert f"evicted (outbox over --outbox-max-mb): {60 - images} images, 0 records" in (
        result.stderr
    )
    assert (
        f"not delivered: 60 records and {images} images remain in {outbox} "
        "(sent at the next start); exit status 3"
    ) in result.stderr


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("how", ["flag", "file", "environment"])
def test_the_token_comes_from_a_flag_a_file_or_the_environment(
    how: str,
    app: FastAPI,
    device: DeviceCredentials,
    live_server: LiveServer,
    detector_onnx: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("VISIONLOOP_EDGE_TOKEN", raising=False)
    env: dict[str, str] = {}
    if how == "flag":
        token = ["--token", device.token]
    elif how == "file":
        path = tmp_path / "token"
        path.write_text(device.token + "\n")
        path.chmod(0o600)
        token = ["--token-file", str(path)]
    else:
        token, env = [], {"VISIONLOOP_EDGE_TOKEN": device.token}
    result = run_edge(
        "--server", live_server.url, *token, "--source", "synthetic",
        "--model", str(detector_onnx), "--backend", "onnxruntime", "--threads", "1",
        "--outbox", str(tmp_path / "o.db"), "--max-frames", "3",
        env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "left in outbox: 0 records, 0 images" in result.stdout
    assert len(server_frames(app)) == 3


def test_help_describes_the_cap_as_a_token_bucket_and_the_exit_statuses() -> None:
    result = CliRunner().invoke(cli_app, ["edge", "--help"], env={"COLUMNS": "300"})
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.output).split())
    text = re.sub(r"(\w)- (\w)", r"\1-\2", text)  # Click wraps lines after a hyphen
    assert "token bucket" in text and "burst" in text
    assert "--token-file" in text and "VISIONLOOP_EDGE_TOKEN" in text
    assert "3 a --max-frames run that ended with records still undelivered" in text


def test_the_summary_shows_dead_letters(capsys: pytest.CaptureFixture[str]) -> None:
    from visionloop.cli.edge import _print_summary
    from visionloop.edge.agent import AgentSummary

    summary = AgentSummary(
        pipeline=None,
        uploaded=79,
        duplicates=0,
        images_uploaded=3,
        left_records=0,
        left_images=0,
        dead_letters=2,
        drained=True,
        model_version="1",
        model_error=None,
        dead_letters_run=1,
    )
    assert _print_summary(summary, Path("o.db")) == 0
    out = capsys.readouterr().out
    assert (
        "dead letters: 1 this run, 2 in all (refused by the server; kept in the dead_letters" in out
    )


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_agent_says_which_backend_it_chose_and_runs_a_16_9_letterbox(
    live_server: LiveServer, device: DeviceCredentials, baseline_onnx: Path, tmp_path: Path
) -> None:
    result = run_edge(
        "--server", live_server.url, "--token", device.token, "--source", "synthetic",
        "--model", str(baseline_onnx), "--imgsz", "384x640", "--threads", "1",
        "--outbox", str(tmp_path / "o.db"), "--max-frames", "3", "--drain-timeout", "10",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith("model local-") and " at 640x384 on " in first

    from visionloop.vision.backends import choose_backend, default_streams

    backend, why = choose_backend("auto")
    assert f"on {backend} " in first and why in first
    streams = default_streams(backend)
    assert first.endswith(f"; {streams} frames in flight (--streams)") == (streams > 1)
    assert "frames: 3 in" in result.stdout
