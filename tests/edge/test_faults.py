"""The agent end to end under faults: real server (uvicorn on loopback, SQLite and PostgreSQL),
real SQLite outboxes, a real detector, the synthetic line (issue 4, item 6)."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from support.db import DeviceCredentials, LiveServer, count_rows
from support.edge import (
    FaultTransport,
    RacingDeque,
    ServerFrame,
    device_http,
    fail_records_after,
    outbox_committed,
    race_timings,
    server_frames,
)
from visionloop.edge.agent import Agent, AgentConfig, AgentSummary
from visionloop.edge.answers import TOKEN_REJECTED
from visionloop.edge.outbox import Outbox
from visionloop.edge.sampler import SamplerConfig
from visionloop.edge.sync import SyncConfig

N = 80
FAST = SyncConfig(backoff_base_s=0.02, backoff_max_s=0.1, heartbeat_s=0.5, idle_wait_s=0.05)


def config(
    tmp_path: Path, server: LiveServer, token: str, model: Path, **kw: object
) -> AgentConfig:
    base = AgentConfig(
        server=server.url,
        token=token,
        source="synthetic",
        outbox_path=tmp_path / "edge" / "outbox.db",
        model=model,
        backend="onnxruntime",
        threads=1,
        sampler=SamplerConfig(audit_rate=0.15, max_per_minute=10_000),
        max_frames=N,
        drain_timeout_s=60.0,
        sync=FAST,
        seed=7,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def run(cfg: AgentConfig, transport: httpx.BaseTransport) -> tuple[Agent, AgentSummary]:
    with device_http(cfg.server, cfg.token, transport=transport) as client:
        agent = Agent(cfg, client=client)
        return agent, agent.run()


def assert_exactly(app: FastAPI, summary: AgentSummary, n: int) -> list[ServerFrame]:
    frames = server_frames(app)
    assert len(frames) == n
    assert len({f.id for f in frames}) == n
    assert summary.left_records == 0 and summary.left_images == 0 and summary.drained
    # Every sampled frame has its image; every detection arrived.
    assert all(f.has_image for f in frames if f.sample_reason is not None)
    assert count_rows(app, "detections") == sum(f.detection_count for f in frames)
    return frames


def test_clean_run(
    app: FastAPI,
    device: DeviceCredentials,
    live_server: LiveServer,
    edge_onnx: Path,
    tmp_path: Path,
) -> None:
    cfg = config(tmp_path, live_server, device.token, edge_onnx)
    _, summary = run(cfg, FaultTransport(httpx.HTTPTransport()))
    assert summary.pipeline is not None
    assert summary.pipeline.frames == N and summary.pipeline.dropped == 0
    frames = assert_exactly(app, summary, N)
    assert sum(f.sample_reason is not None for f in frames) == summary.pipeline.sampled_total > 0
    assert count_rows(app, "detections") == summary.pipeline.detections
    assert {f.model_version for f in frames} == set(summary.pipeline.versions)
    assert summary.uploaded == N and summary.duplicates == 0


def test_server_down_for_the_first_half(
    app: FastAPI,
    device: DeviceCredentials,
    live_server: LiveServer,
    edge_onnx: Path,
    tmp_path: Path,
) -> None:
    agent: Agent | None = None

    def down() -> bool:
        return agent is None or agent.pipeline is None or agent.pipeline.frames < N // 2

    transport = FaultTransport(httpx.HTTPTransport(), down=down)
    cfg = config(tmp_path, live_server, device.token, edge_onnx)
    with device_http(cfg.server, cfg.token, transport=transport) as client:
        agent = Agent(cfg, client=client)
        summary = agent.run()
    assert transport.calls["down"] > 0
    assert agent.uploader is not None and agent.uploader.stats.retries > 0
    assert_exactly(app, summary, N)


def test_random_500s_and_stalls_lose_and_duplicate_nothing(
    app: FastAPI,
    device: DeviceCredentials,
    live_server: LiveServer,
    edge_onnx: Path,
    tmp_path: Path,
) -> None:
    transport = FaultTransport(
        httpx.HTTPTransport(), fail_rate=0.2, stall_rate=0.05, lost_rate=0.15, stall_s=0.1, seed=11
    )
    cfg = config(tmp_path, live_server, device.token, edge_onnx)
    _, summary = run(cfg, transport)
    assert transport.calls["500"] and transport.calls["stall"] and transport.calls["lost"]
    assert_exactly(app, summary, N)


def test_a_rejected_record_does_not_block_the_rest(
    app: FastAPI,
    device: DeviceCredentials,
    live_server: LiveServer,
    edge_onnx: Path,
    tmp_path: Path,
) -> None:
    transport = FaultTransport(httpx.HTTPTransport(), poison_one_frame=True)
    cfg = config(tmp_path, live_server, device.token, edge_onnx)
    _, summary = run(cfg, transport)
    frames = server_frames(app)
    assert len(frames) == N - 1
    assert transport.poisoned_id is not None
    assert transport.poisoned_id not in {f.id for f in frames}
    assert summary.dead_letters == 1 and summary.left_records == 0
    with Outbox(cfg.outbox_path) as box:
        letters = box.dead_letters()
    assert [(d.record_id, d.status) for d in letters] == [(transport.poisoned_id, 422)]


def test_sigkill_mid_run_then_restart_delivers_each_committed_frame_once(
    app: FastAPI,
    device: DeviceCredentials,
    live_server: LiveServer,
    edge_onnx: Path,
    tmp_path: Path,
) -> None:
    outbox = tmp_path / "edge" / "outbox.db"
    command = [
        sys.executable, "-m", "visionloop", "edge",
        "--server", live_server.url, "--token", device.token,
        "--source", "synthetic", "--model", str(edge_onnx), "--backend", "onnxruntime",
        "--threads", "1", "--outbox", str(outbox), "--audit-rate", "0.2",
        "--max-sampled-per-minute", "100000", "--heartbeat", "0.5",
    ]  # fmt: skip
    with subprocess.Popen(
        [*command, "--max-frames", "100000"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    ) as agent:
        deadline = time.monotonic() + 60
        while outbox_committed(outbox) < 60:
            assert agent.poll() is None, agent.stderr.read() if agent.stderr else ""
            assert time.monotonic() < deadline, "agent committed nothing"
            time.sleep(0.05)
        agent.send_signal(signal.SIGKILL)
        agent.wait(timeout=30)
    assert agent.returncode == -signal.SIGKILL

    with Outbox(outbox) as box:
        committed = box.counters()["committed"]
        waiting = {p.id for p in box.peek(limit=100_000, max_bytes=1 << 40)}
    on_server = {f.id for f in server_frames(app)}
    assert committed >= 60
    assert len(on_server) + len(waiting) >= committed  # nothing lost (some may be on both)

    restart = subprocess.run(
        [*command, "--max-frames", "0", "--drain-timeout", "60"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert restart.returncode == 0, restart.stderr
    assert "left in outbox: 0 records, 0 images" in restart.stdout
    frames = server_frames(app)
    assert len(frames) == committed
    assert {f.id for f in frames} == on_server | waiting
    assert all(f.has_image for f in frames if f.sample_reason is not None)


def test_starts_on_the_cached_model_when_the_server_is_unreachable(
    edge_onnx: Path, tmp_path: Path
) -> None:
    from support.db import free_port
    from visionloop.vision.detector import sha256_file

    cache = tmp_path / "edge" / "models"
    cache.mkdir(parents=True)
    cached = cache / f"7-{sha256_file(edge_onnx)[:16]}.onnx"
    cached.write_bytes(edge_onnx.read_bytes())
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    cfg = AgentConfig(
        server=dead,
        token="t",
        source="synthetic",
        outbox_path=tmp_path / "edge" / "outbox.db",
        backend="onnxruntime",
        threads=1,
        max_frames=10,
        drain_timeout_s=0.5,
        sync=FAST,
    )
    summary = Agent(cfg).run()
    assert summary.pipeline is not None and summary.pipeline.versions == {"7": 10}
    assert summary.model_error is not None and "Connect" in summary.model_error
    # Nothing was lost: the frames wait in the outbox for the next start.
    assert not summary.drained and summary.left_records == 10


def test_a_record_that_breaks_the_server_is_set_aside_and_the_rest_arrive(
    app: FastAPI,
    device: DeviceCredentials,
    live_server: LiveServer,
    edge_onnx: Path,
    tmp_path: Path,
    admin_client: httpx.Client,
) -> None:
    """The server answers 500 for any batch holding one record (issue 7, poison records)."""
    transport = FaultTransport(httpx.HTTPTransport(), crash_first_middle=True)
    cfg = config(tmp_path, live_server, device.token, edge_onnx, drain_timeout_s=20.0)
    _, summary = run(cfg, transport)
    assert len(transport.crash_ids) == 1
    (poison,) = transport.crash_ids
    frames = server_frames(app)
    assert len(frames) == N - 1 and poison not in {f.id for f in frames}
    assert summary.dead_letters == summary.dead_letters_run == 1
    assert summary.left_records == 0 and summary.drained
    with Outbox(cfg.outbox_path) as box:
        letters = box.dead_letters()
    assert [(d.record_id, d.status) for d in letters] == [(poison, 500)]
    assert "breaks the server" in letters[0].reason
    beat = next(d for d in admin_client.get("/api/v1/devices").json() if d["name"] == device.name)
    assert beat["heartbeat"]["dead_letters"] == 1


def test_a_heartbeat_that_raises_does_not_stop_the_uploads(
    app: FastAPI,
    device: DeviceCredentials,
    live_server: LiveServer,
    edge_onnx: Path,
    tmp_path: Path,
) -> None:
    transport = FaultTransport(httpx.HTTPTransport(), raise_on_heartbeat=True)
    cfg = config(tmp_path, live_server, device.token, edge_onnx, drain_timeout_s=20.0)
    agent, summary = run(cfg, transport)
    assert transport.calls["heartbeat_raised"] >= 1
    assert agent.uploader is not None and agent.uploader.stats.errors >= 1
    assert_exactly(app, summary, N)


def test_timings_changing_during_heartbeats_do_not_stop_the_uploads(
    app: FastAPI,
    device: DeviceCredentials,
    live_server: LiveServer,
    edge_onnx: Path,
    tmp_path: Path,
) -> None:
    """Every heartbeat races a thread that adds a pipeline stage while the timings are read."""
    cfg = config(
        tmp_path,
        live_server,
        device.token,
        edge_onnx,
        drain_timeout_s=20.0,
        sync=replace(FAST, heartbeat_s=0.05),
        fps_limit=40.0,
    )
    with device_http(cfg.server, cfg.token) as client:
        agent = Agent(cfg, client=client)
        racing: list[RacingDeque] = []

        def inject() -> None:
            while agent.pipeline is None:
                time.sleep(0.005)
            racing.append(race_timings(agent.pipeline, wait_s=0.02))

        injector = threading.Thread(target=inject, daemon=True)
        injector.start()
        summary = agent.run()
        injector.join(5)
    assert racing and racing[0].races >= 3
    assert agent.uploader is not None and agent.uploader.stats.heartbeats >= 3
    assert_exactly(app, summary, N)


def test_pipeline_failing_mid_run_still_delivers_every_committed_record(
    app: FastAPI,
    device: DeviceCredentials,
    live_server: LiveServer,
    edge_onnx: Path,
    tmp_path: Path,
) -> None:
    """The outbox refuses records after 30 (a full disk): ``Pipeline.run`` raises mid-run. The
    uploader is stopped only after the drain, before the outbox and the client close."""
    cfg = config(tmp_path, live_server, device.token, edge_onnx, drain_timeout_s=20.0)
    fail_records_after(cfg.outbox_path, 30)
    agent, summary = run(cfg, FaultTransport(httpx.HTTPTransport()))
    assert summary.failure is not None and "disk full" in summary.failure
    assert summary.pipeline is not None and summary.pipeline.frames == 30
    assert_exactly(app, summary, 30)
    assert agent.uploader is not None and not agent.uploader.alive


def test_a_wrong_token_is_said_plainly_at_start_and_the_records_kept(
    live_server: LiveServer,
    edge_onnx: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cfg = config(tmp_path, live_server, "not-a-token", edge_onnx, max_frames=5, drain_timeout_s=0.3)
    with caplog.at_level(logging.WARNING):
        _, summary = run(cfg, FaultTransport(httpx.HTTPTransport()))
    said = [r for r in caplog.records if TOKEN_REJECTED in r.getMessage()]
    assert said
    assert summary.rejected is not None and TOKEN_REJECTED in summary.rejected
    assert summary.uploaded == 0
    assert summary.left_records == (summary.pipeline.frames if summary.pipeline else 0)
