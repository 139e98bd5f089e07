"""Several cameras in one process: one shared model, each camera its own device and outbox."""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path
from typing import cast

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from support.db import DeviceCredentials, LiveServer, add_device, app_state
from support.edge import device_http, outbox_committed
from visionloop.edge.agent import AgentConfig, SharedModel
from visionloop.edge.cameras import Cameras, check_cameras
from visionloop.edge.model_watch import ModelWatcher
from visionloop.edge.sampler import SamplerConfig
from visionloop.edge.sync import SyncConfig
from visionloop.errors import InvalidInputError
from visionloop.server.models import Device, Frame
from visionloop.vision.detector import Detector

N = 24
FAST = SyncConfig(backoff_base_s=0.02, backoff_max_s=0.1, heartbeat_s=0.2, idle_wait_s=0.05)
HAS_OPENVINO = importlib.util.find_spec("openvino") is not None


def camera(tmp_path: Path, url: str, token: str, i: int, model: Path, **kw: object) -> AgentConfig:
    base = AgentConfig(
        server=url,
        token=token,
        source="synthetic",
        outbox_path=tmp_path / f"camera-{i}" / "outbox.db",
        model=model,
        backend="onnxruntime",
        threads=1,
        sampler=SamplerConfig(audit_rate=0.2, max_per_minute=10_000),
        max_frames=N,
        sync=FAST,
        seed=i,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "runtime",
    [
        {"backend": "onnxruntime", "threads": 1},
        pytest.param(
            {"backend": "openvino", "precision": "fp32", "streams": 2},
            marks=pytest.mark.skipif(not HAS_OPENVINO, reason="needs the openvino extra"),
        ),
    ],
    ids=["onnxruntime", "openvino-2-streams"],
)
def test_two_cameras_share_one_model_and_keep_their_own_devices_and_outboxes(
    runtime: dict[str, object],
    app: FastAPI,
    device: DeviceCredentials,
    live_server: LiveServer,
    edge_onnx: Path,
    tmp_path: Path,
) -> None:
    second = add_device(app, "cam2")
    devices = [device, second]
    configs = [
        camera(tmp_path, live_server.url, d.token, i, edge_onnx, **runtime)
        for i, d in enumerate(devices, start=1)
    ]
    announced: list[str] = []
    clients = [device_http(live_server.url, d.token) for d in devices]
    try:
        cameras = Cameras(configs, clients=clients, announce=announced.append)
        summaries = cameras.run()
    finally:
        for client in clients:
            client.close()

    assert len(announced) == 1, announced  # the model was loaded once
    pipelines = [agent.pipeline for agent in cameras.agents]
    assert pipelines[0] is not None and pipelines[1] is not None
    assert pipelines[0].detector is pipelines[1].detector
    for summary in summaries:
        assert summary.pipeline is not None and summary.pipeline.frames == N
        assert summary.failure is None and summary.drained and summary.left_records == 0
    # Each camera committed into its own outbox file.
    assert [outbox_committed(c.outbox_path) for c in configs] == [N, N]

    with app_state(app).engine.connect() as conn:
        per_device = dict(
            conn.execute(select(Frame.device_id, func.count()).group_by(Frame.device_id)).all()
        )
        heartbeats = dict(conn.execute(select(Device.id, Device.model_version)).all())
    assert per_device == {device.id: N, second.id: N}
    version = summaries[0].model_version
    assert version.startswith("local-")
    assert heartbeats[device.id] == version and heartbeats[second.id] == version


def test_cameras_need_their_own_tokens_and_outboxes(tmp_path: Path, edge_onnx: Path) -> None:
    a = camera(tmp_path, "http://127.0.0.1:9", "t1", 1, edge_onnx)
    b = camera(tmp_path, "http://127.0.0.1:9", "t2", 2, edge_onnx)
    check_cameras([a, b])
    with pytest.raises(InvalidInputError, match="cameras 1 and 2 have the same device token"):
        check_cameras([a, replace(b, token="t1")])
    with pytest.raises(InvalidInputError, match="cameras 1 and 3 share the outbox"):
        check_cameras([a, b, replace(b, token="t3", outbox_path=a.outbox_path)])
    with pytest.raises(InvalidInputError, match="no camera"):
        check_cameras([])


def test_a_new_model_reaches_every_camera_once(tmp_path: Path) -> None:
    """The one watcher's new detector goes to every subscribed pipeline; a pipeline built on
    the model before a swap gets the new one when it subscribes."""
    old, new = cast("Detector", object()), cast("Detector", object())
    with httpx.Client(base_url="http://127.0.0.1:9") as client:
        watcher = ModelWatcher(client, cache_dir=tmp_path, load=lambda p, v: old)
        shared = SharedModel(watcher, old)
        got: dict[str, list[Detector]] = {"a": [], "b": [], "late": []}
        shared.subscribe(got["a"].append, old)
        shared.subscribe(got["b"].append, old)
        assert watcher.on_new is not None
        watcher.on_new(new)
        shared.subscribe(got["late"].append, old)  # built on the old model, before the swap
    assert got == {"a": [new], "b": [new], "late": [new]}
    assert shared.detector is new
