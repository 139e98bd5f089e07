"""GET /api/v1/models/production and /api/v1/models/{version}/onnx on both databases."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from support.db import app_state
from support.models import write_constant_model
from visionloop.config import Settings
from visionloop.server.model_catalog import ModelCatalog
from visionloop.training.registry import Registry
from visionloop.types import ProductionModel

pytest.importorskip("mlflow")


def _register(settings: Settings, tmp_path: Path, n: int) -> tuple[Registry, list[Path]]:
    registry = Registry.from_settings(settings)
    files = []
    for i in range(n):
        path = write_constant_model(
            tmp_path / f"model{i}.onnx", np.full((1, 8, 4), 0.1 * (i + 1), np.float32)
        )
        registry.register(path)
        files.append(path)
    return registry, files


def test_production_and_download(
    app: FastAPI, settings: Settings, device_client: TestClient, tmp_path: Path
) -> None:
    missing = device_client.get("/api/v1/models/production")
    assert missing.status_code == 404
    assert "no production model" in missing.json()["detail"]

    registry, files = _register(settings, tmp_path, 2)
    registry.promote("2", by="test", reason="r")
    app_state_catalog(app).invalidate()  # the 404 above is cached for a few seconds

    resp = device_client.get("/api/v1/models/production")
    assert resp.status_code == 200
    model = ProductionModel.model_validate(resp.json())
    data = files[1].read_bytes()
    assert model.version == "2"
    assert model.sha256 == hashlib.sha256(data).hexdigest()
    assert model.size_bytes == len(data)

    file = device_client.get(model.download_url)
    assert file.status_code == 200
    assert file.content == data
    assert file.headers["etag"] == f'"{model.sha256}"'
    assert file.headers["content-type"] == "application/octet-stream"

    old = device_client.get("/api/v1/models/1/onnx")
    assert old.status_code == 200 and old.content == files[0].read_bytes()

    for bad in ("9", "latest"):
        unknown = device_client.get(f"/api/v1/models/{bad}/onnx")
        assert unknown.status_code == 404
        assert "does not exist" in unknown.json()["detail"]


def app_state_catalog(app: FastAPI) -> ModelCatalog:
    catalog: ModelCatalog = app.state.model_catalog
    return catalog


def test_polling_reads_the_registry_once_per_ttl(
    app: FastAPI, settings: Settings, viewer_client: TestClient, tmp_path: Path
) -> None:
    registry, _ = _register(settings, tmp_path, 2)
    registry.promote("1", by="test", reason="r")
    now = [1000.0]
    app.state.model_catalog = ModelCatalog(settings, ttl_s=5.0, clock=lambda: now[0])
    for _ in range(20):
        assert viewer_client.get("/api/v1/models/production").json()["version"] == "1"
    assert app.state.model_catalog.registry_reads == 1

    registry.promote("2", by="test", reason="r")
    now[0] += 4.0  # still fresh: the old answer
    assert viewer_client.get("/api/v1/models/production").json()["version"] == "1"
    now[0] += 2.0  # past the TTL: the promotion shows
    assert viewer_client.get("/api/v1/models/production").json()["version"] == "2"
    assert app.state.model_catalog.registry_reads == 2

    for _ in range(3):
        assert viewer_client.get("/api/v1/models/2/onnx").status_code == 200
    assert app.state.model_catalog.registry_reads == 3  # the file is looked up once


def test_a_corrupt_artifact_is_refused(
    app: FastAPI, settings: Settings, device_client: TestClient, tmp_path: Path
) -> None:
    registry, _ = _register(settings, tmp_path, 1)
    source = Path(registry.get("1").source.removeprefix("file://"))
    stored = next(source.glob("*.onnx"))
    stored.write_bytes(stored.read_bytes()[:-10] + b"0123456789")
    resp = device_client.get("/api/v1/models/1/onnx")
    assert resp.status_code == 422
    assert "sha256" in resp.json()["detail"]
    assert app_state(app) is not None


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic eDp5"}],
    ids=["nobody", "bad-token", "not-bearer"],
)
def test_strangers_get_401(client: TestClient, headers: dict[str, str]) -> None:
    # Admitted callers (devices, every role) are in tests/server/test_roles.py.
    for path in ("/api/v1/models/production", "/api/v1/models/1/onnx"):
        resp = client.get(path, headers=headers)
        assert resp.status_code == 401, path
        assert resp.json()["detail"]


def test_registry_down_is_a_503(
    app: FastAPI, settings: Settings, device_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    down = settings.model_copy(update={"mlflow_tracking_uri": "http://127.0.0.1:9"})
    app.state.model_catalog = ModelCatalog(down)
    resp = device_client.get("/api/v1/models/production")
    assert resp.status_code == 503
    assert "registry cannot be reached" in resp.json()["detail"]


def test_int8_artifact_is_announced_and_served(
    app: FastAPI, settings: Settings, device_client: TestClient, tmp_path: Path
) -> None:
    from visionloop.vision.precision import pack_int8

    registry, _ = _register(settings, tmp_path, 1)
    registry.promote("1", by="test", reason="r")
    plain = ProductionModel.model_validate(device_client.get("/api/v1/models/production").json())
    assert plain.int8 is None
    never = device_client.get("/api/v1/models/1/int8")
    assert never.status_code == 404 and "quantize 1" in never.json()["detail"]

    folder = tmp_path / "q"
    folder.mkdir()
    for name in ("model.xml", "model.bin", "int8.json"):
        (folder / name).write_bytes(name.encode())
    tar = pack_int8(folder, tmp_path / "model-int8.tar")
    tags = {"int8_accepted": "true", "int8_map50_fp32": "0.997", "int8_map50_int8": "0.993"}
    registry.add_int8("1", tar, tags)
    app_state_catalog(app).invalidate()

    model = ProductionModel.model_validate(device_client.get("/api/v1/models/production").json())
    assert model.int8 is not None
    assert model.int8.accepted and model.int8.map50_int8 == pytest.approx(0.993)
    assert model.int8.sha256 == hashlib.sha256(tar.read_bytes()).hexdigest()
    assert model.int8.size_bytes == tar.stat().st_size
    got = device_client.get(model.int8.download_url)
    assert got.status_code == 200 and got.content == tar.read_bytes()
    assert got.headers["etag"] == f'"{model.int8.sha256}"'
    for bad in ("9", "latest"):
        assert device_client.get(f"/api/v1/models/{bad}/int8").status_code == 404
