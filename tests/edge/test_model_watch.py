"""Model updates from the server's production alias: download, verify, load, swap mid-run."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from support.db import DeviceCredentials, LiveServer
from support.edge import FaultTransport, device_http, server_frames
from visionloop.config import Settings
from visionloop.edge.agent import Agent, AgentConfig, AgentSummary
from visionloop.edge.identity import server_slug
from visionloop.edge.model_watch import ModelWatcher
from visionloop.edge.sampler import SamplerConfig
from visionloop.edge.sync import SyncConfig
from visionloop.server.model_catalog import ModelCatalog
from visionloop.vision.detector import Detector, load_detector

pytest.importorskip("mlflow")

N = 80


def variant(model: Path, out: Path, tag: str) -> Path:
    """The same network with one more metadata entry: another file, another sha256."""
    import onnx

    proto = onnx.load(str(model))
    entry = proto.metadata_props.add()
    entry.key, entry.value = "visionloop_variant", tag
    onnx.save(proto, str(out))
    return out


@pytest.fixture
def registry(settings: Settings, app: FastAPI, edge_onnx: Path, tmp_path: Path) -> object:
    """A local MLflow registry (the app's) with versions 1 and 2 of the detector; 1 in production.

    The app's catalog caches the production answer for 0.2 s instead of 5 s.
    """
    from visionloop.training.registry import Registry

    app.state.model_catalog = ModelCatalog(settings, ttl_s=0.2)
    reg = Registry.from_settings(settings)
    reg.register(variant(edge_onnx, tmp_path / "v1.onnx", "1"))
    reg.register(variant(edge_onnx, tmp_path / "v2.onnx", "2"))
    reg.promote("1", by="test", reason="first")
    return reg


def loader(path: Path, version: str) -> Detector:
    return load_detector(path, backend="onnxruntime", version=version, threads=1)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_watcher_follows_the_alias_and_keeps_the_old_model_on_a_bad_download(
    registry: object,
    device: DeviceCredentials,
    live_server: LiveServer,
    tmp_path: Path,
) -> None:
    swapped: list[str] = []
    transport = FaultTransport(httpx.HTTPTransport())
    with device_http(live_server.url, device.token, transport=transport) as client:
        watcher = ModelWatcher(
            client,
            cache_dir=tmp_path / "models",
            load=loader,
            on_new=lambda d: swapped.append(d.info.version),
        )
        first = watcher.check_once()
        assert first is not None and first.info.version == "1" and swapped == ["1"]
        assert watcher.check_once() is None  # unchanged: nothing downloaded again
        assert transport.calls["total"] == 3  # production, download, production

        transport.corrupt_downloads = True
        registry.promote("2", by="test", reason="second")  # type: ignore[attr-defined]
        time.sleep(0.25)
        assert watcher.check_once() is None
        assert watcher.error is not None and "sha256" in watcher.error
        assert watcher.current is not None and watcher.current.version == "1"
        assert swapped == ["1"]
        assert not list((tmp_path / "models").glob(".download-*"))  # no partial file left

        transport.corrupt_downloads = False
        second = watcher.check_once()
        assert second is not None and second.info.version == "2" and swapped == ["1", "2"]
        assert watcher.error is None


def agent_config(tmp_path: Path, url: str, token: str) -> AgentConfig:
    return AgentConfig(
        server=url,
        token=token,
        source="synthetic",
        outbox_path=tmp_path / "edge" / "outbox.db",
        backend="onnxruntime",
        threads=1,
        sampler=SamplerConfig(audit_rate=0.1, max_per_minute=10_000),
        max_frames=N,
        fps_limit=30.0,
        model_poll_s=0.3,
        sync=SyncConfig(backoff_base_s=0.02, backoff_max_s=0.1, heartbeat_s=0.2),
        seed=3,
    )


def promote_when_half_done(agent_ref: list[Agent], registry: object) -> threading.Thread:
    def wait_and_promote() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            agent = agent_ref[0] if agent_ref else None
            if agent is not None and agent.pipeline is not None and agent.pipeline.frames >= N // 3:
                registry.promote("2", by="test", reason="mid-run")  # type: ignore[attr-defined]
                return
            time.sleep(0.01)

    thread = threading.Thread(target=wait_and_promote, daemon=True)
    thread.start()
    return thread


def test_alias_moves_mid_run_records_carry_the_right_versions(
    registry: object,
    app: FastAPI,
    device: DeviceCredentials,
    live_server: LiveServer,
    tmp_path: Path,
) -> None:
    cfg = agent_config(tmp_path, live_server.url, device.token)
    ref: list[Agent] = []
    with device_http(live_server.url, device.token) as client:
        agent = Agent(cfg, client=client)
        ref.append(agent)
        promoter = promote_when_half_done(ref, registry)
        summary = agent.run()
        promoter.join(5)
    assert summary.pipeline is not None and summary.model_error is None
    versions = [f.model_version for f in server_frames(app)]  # in capture order
    assert len(versions) == N
    switch = versions.index("2")
    assert N // 3 <= switch < N
    assert versions == ["1"] * switch + ["2"] * (N - switch)
    assert summary.pipeline.versions == {"1": switch, "2": N - switch}


def test_corrupt_download_mid_run_keeps_the_old_model_and_reports_it(
    registry: object,
    app: FastAPI,
    device: DeviceCredentials,
    live_server: LiveServer,
    admin_client: httpx.Client,
    tmp_path: Path,
) -> None:
    cfg = agent_config(tmp_path, live_server.url, device.token)
    ref: list[Agent] = []
    transport = FaultTransport(httpx.HTTPTransport())
    with device_http(live_server.url, device.token, transport=transport) as client:
        agent = Agent(cfg, client=client)
        ref.append(agent)

        def corrupt_after_start() -> None:
            while not ref[0].pipeline:
                time.sleep(0.01)
            transport.corrupt_downloads = True

        threading.Thread(target=corrupt_after_start, daemon=True).start()
        promoter = promote_when_half_done(ref, registry)
        summary = agent.run()
        promoter.join(5)
    assert transport.calls["corrupted"] > 0
    assert summary.model_error is not None and "sha256" in summary.model_error
    assert {f.model_version for f in server_frames(app)} == {"1"}
    assert len(server_frames(app)) == N
    beat = next(d for d in admin_client.get("/api/v1/devices").json() if d["name"] == device.name)
    assert beat["heartbeat"]["model_error"] is not None
    assert "sha256" in beat["heartbeat"]["model_error"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_offline_start_runs_the_last_announced_production_not_the_newest_download(
    registry: object,
    device: DeviceCredentials,
    live_server: LiveServer,
    tmp_path: Path,
) -> None:
    """Production 2, then rolled back to 1 while the agent is online; restarted without the
    server, the agent runs 1 (issue 14, item 4), though 2 is the newest file in its cache."""
    from support.db import free_port

    def short_run(url: str) -> AgentSummary:
        base = agent_config(tmp_path, url, device.token)
        cfg = replace(
            base,
            max_frames=3,
            fps_limit=None,
            drain_timeout_s=0.5,
            # The same model cache whichever URL stands in for the server; an outbox of each
            # (an outbox belongs to one server and token).
            model_cache=base.model_cache_dir,
            outbox_path=tmp_path / server_slug(url) / "outbox.db",
        )
        return Agent(cfg).run()

    assert short_run(live_server.url).model_version == "1"
    registry.promote("2", by="test", reason="second")  # type: ignore[attr-defined]
    time.sleep(0.25)
    assert short_run(live_server.url).model_version == "2"
    registry.rollback(by="test", reason="false rejects")  # type: ignore[attr-defined]
    time.sleep(0.25)
    online = short_run(live_server.url)
    assert online.model_version == "1"

    offline = short_run(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    assert offline.pipeline is not None and offline.pipeline.versions == {"1": 3}
    assert offline.model_error is not None


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_watcher_fetches_the_int8_model_beside_the_onnx_file(
    registry: object,
    device: DeviceCredentials,
    live_server: LiveServer,
    tmp_path: Path,
) -> None:
    pytest.importorskip("openvino")
    import openvino as ov

    from visionloop.vision.precision import int8_companion, int8_dir, pack_int8

    def int8_tar(name: str, accepted: bool) -> Path:
        # A stand-in INT8 model: version 1's graph as an OpenVINO IR (what NNCF writes).
        onnx = registry.onnx_path("1")  # type: ignore[attr-defined]
        folder = tmp_path / name
        folder.mkdir()
        ov.save_model(ov.Core().read_model(str(onnx)), str(folder / "model.xml"))
        (folder / "int8.json").write_text(f'{{"accepted": {str(accepted).lower()}}}')
        return pack_int8(folder, tmp_path / f"{name}.tar")

    def auto(path: Path, version: str) -> Detector:
        # int8 explicitly: under auto a CPU with bf16 may race int8 against bf16 and keep bf16.
        precision = "int8" if int8_companion(path) is not None else "fp32"
        return load_detector(
            path, backend="openvino", precision=precision, version=version, threads=1
        )

    with device_http(live_server.url, device.token) as client:
        watcher = ModelWatcher(client, cache_dir=tmp_path / "models", load=auto)
        first = watcher.check_once()
        assert first is not None and first.info.extra["precision"] != "int8"

        registry.add_int8("1", int8_tar("q1", True), {"int8_accepted": "true"})  # type: ignore[attr-defined]
        time.sleep(0.25)
        second = watcher.check_once()  # same version, quantized since: loaded again
        assert second is not None and second.info.extra["precision"] == "int8"
        assert second.info.version == "1"
        onnx = next((tmp_path / "models").glob("1-*.onnx"))
        assert (int8_dir(onnx) / "model.xml").is_file()
        assert not list((tmp_path / "models").glob("*.tar"))
        assert watcher.check_once() is None  # nothing changed: nothing fetched
