"""The agent's first start with no model at hand: it waits for the server with backoff, over a
real port that first drops connections and then serves the real app (uvicorn)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path

import pytest
from fastapi import FastAPI

from support.db import DeviceCredentials, LiveServer, free_port
from visionloop.config import Settings
from visionloop.edge.agent import Agent, AgentConfig, AgentSummary
from visionloop.edge.answers import TOKEN_REJECTED
from visionloop.edge.sync import SyncConfig
from visionloop.errors import AuthenticationError, ModelError
from visionloop.server.model_catalog import ModelCatalog

pytest.importorskip("mlflow")

RETRY_LINE = "no model yet"


class DroppingPort:
    """A listener on ``port`` that accepts each connection and closes it without a word, as a
    server that restarts or a proxy without a backend does, until :meth:`close`."""

    def __init__(self, port: int) -> None:
        self.drops = 0
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen()
        self._sock.settimeout(0.05)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            conn.recv(1024)  # the request arrived; the answer never comes
            conn.close()
            self.drops += 1

    def close(self) -> None:
        self._closed.set()
        self._thread.join(5)
        self._sock.close()


@pytest.fixture
def production(settings: Settings, app: FastAPI, edge_onnx: Path) -> None:
    """The app's registry with version 1 of the detector in production."""
    from visionloop.training.registry import Registry

    app.state.model_catalog = ModelCatalog(settings, ttl_s=0.2)
    registry = Registry.from_settings(settings)
    registry.register(edge_onnx)
    registry.promote("1", by="test", reason="first")


def agent_config(tmp_path: Path, url: str, token: str, **kw: float) -> AgentConfig:
    return AgentConfig(
        server=url,
        token=token,
        source="synthetic",
        outbox_path=tmp_path / "edge" / "outbox.db",
        backend="onnxruntime",
        threads=1,
        max_frames=5,
        drain_timeout_s=10.0,
        sync=SyncConfig(backoff_base_s=0.02, backoff_max_s=0.1, heartbeat_s=0.2),
        model_retry_base_s=kw.get("model_retry_base_s", 0.05),
        model_retry_max_s=kw.get("model_retry_max_s", 0.2),
        seed=1,
    )


def retry_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(RETRY_LINE)]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_first_start_waits_through_dropped_connections_until_the_server_serves(
    production: None,
    app: FastAPI,
    device: DeviceCredentials,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    dropping = DroppingPort(port)
    agent = Agent(agent_config(tmp_path, f"http://127.0.0.1:{port}", device.token))
    result: list[AgentSummary | BaseException] = []

    def run() -> None:
        try:
            result.append(agent.run())
        except BaseException as exc:
            result.append(exc)

    caplog.set_level(logging.WARNING)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    server = LiveServer(app, port)
    try:
        deadline = time.monotonic() + 30
        while dropping.drops < 3 and time.monotonic() < deadline and thread.is_alive():
            time.sleep(0.01)
        assert dropping.drops >= 3, result  # still asking, not given up after the first drop
        dropping.close()
        server.start()
        thread.join(60)
    finally:
        agent.stop()
        thread.join(10)
        server.stop()
    assert len(result) == 1 and isinstance(result[0], AgentSummary), result
    summary = result[0]
    assert summary.pipeline is not None and summary.pipeline.versions == {"1": 5}
    lines = retry_lines(caplog)
    assert len(lines) >= 3  # one line per attempt, each saying when the next one comes
    assert all("\n" not in line and " in " in line for line in lines)
    assert summary.model_error is None


def test_stopping_while_waiting_for_the_first_model_ends_the_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    agent = Agent(agent_config(tmp_path, dead, "t", model_retry_base_s=0.05, model_retry_max_s=5))
    caplog.set_level(logging.WARNING)
    threading.Timer(0.5, agent.stop).start()
    started = time.monotonic()
    with pytest.raises(ModelError, match="stopped before the production model"):
        agent.run()
    assert time.monotonic() - started < 5
    waits = [float(line.rsplit(" in ", 1)[1].removesuffix(" s")) for line in retry_lines(caplog)]
    assert len(waits) >= 2
    assert all(w <= 5.0 for w in waits)  # capped
    assert waits[1] > waits[0] * 0.5  # growing (with jitter: each between half and all its cap)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_refused_token_ends_the_first_start_at_once(
    live_server: LiveServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    agent = Agent(agent_config(tmp_path, live_server.url, "not-a-token", model_retry_base_s=5))
    caplog.set_level(logging.WARNING)
    started = time.monotonic()
    with pytest.raises(AuthenticationError, match=r"rejected this device token \(401\)") as raised:
        agent.run()
    assert TOKEN_REJECTED in str(raised.value) and "\n" not in str(raised.value)
    assert time.monotonic() - started < 3
    assert retry_lines(caplog) == []
