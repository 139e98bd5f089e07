"""Training: argument checks, and one real offline run from data to a registered model version.

The end-to-end test drives ``visionloop train`` on a tiny synthetic dataset (1 epoch, imgsz 160,
CPU) with every non-loopback connection refused and recorded, then reads the MLflow store back.
"""

from __future__ import annotations

import ast
import importlib.util
import ipaddress
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from visionloop.errors import InvalidInputError
from visionloop.training.train import train

NEEDS_TRAIN_EXTRA = pytest.mark.skipif(
    importlib.util.find_spec("ultralytics") is None or importlib.util.find_spec("mlflow") is None,
    reason="needs the train extra (ultralytics, mlflow)",
)


@pytest.mark.parametrize(
    ("setup", "kwargs", "message"),
    [
        pytest.param("none", {"epochs": 1}, "dataset file not found", id="missing-data-yaml"),
        pytest.param("yaml", {"epochs": 0}, "epochs must be at least 1", id="zero-epochs"),
        pytest.param("yaml", {"epochs": 1, "imgsz": 100}, "multiple of 32", id="imgsz-not-x32"),
        pytest.param(
            "yaml", {"epochs": 1, "model": "missing.pt"}, "never downloaded", id="missing-weights"
        ),
        pytest.param(
            "yaml", {"epochs": 1, "model": "yolo11n.onnx"}, "architecture .yaml", id="bad-model"
        ),
    ],
)
def test_train_rejects_bad_arguments_before_loading_anything(
    tmp_path: Path, setup: str, kwargs: dict[str, Any], message: str
) -> None:
    data = tmp_path / "data.yaml"
    if setup == "yaml":
        data.write_text("path: .\ntrain: images/train\nval: images/val\nnames: {0: a}\n")
    with pytest.raises(InvalidInputError, match=message):
        train(data, out_dir=tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def _is_loopback(host: object) -> bool:
    if host in (None, "", "localhost"):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture
def network_attempts(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Refuse and record every DNS lookup or connection to a host that is not loopback."""
    attempts: list[str] = []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def check(address: Any) -> None:
        if isinstance(address, tuple) and not _is_loopback(address[0]):
            attempts.append(f"connect {address[0]}:{address[1]}")
            raise OSError("network access is disabled in this test")

    def connect(self: socket.socket, address: Any) -> None:
        check(address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(address)
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not _is_loopback(host):
            attempts.append(f"resolve {host}")
            raise socket.gaierror(socket.EAI_NONAME, "network access is disabled in this test")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield attempts


def test_network_guard_refuses_and_records_remote_hosts(network_attempts: list[str]) -> None:
    # The end-to-end test's "no network" claim is only as good as this guard.
    with pytest.raises(OSError):
        socket.create_connection(("ultralytics.com", 443), timeout=1)
    with pytest.raises(OSError), socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.connect(("1.1.1.1", 53))
    assert network_attempts == ["resolve ultralytics.com", "connect 1.1.1.1:53"]


@pytest.mark.train
@NEEDS_TRAIN_EXTRA
def test_visionloop_train_runs_offline_and_registers_a_staging_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, network_attempts: list[str]
) -> None:
    import onnx
    from typer.testing import CliRunner

    from visionloop.cli import app
    from visionloop.training.evaluate import dataset_digest
    from visionloop.training.registry import Registry
    from visionloop.vision.detector import sha256_file
    from visionloop.vision.synthetic import CLASS_NAMES, write_dataset

    data = write_dataset(tmp_path / "data", n=24, seed=3, splits=(16 / 24, 4 / 24, 4 / 24))
    var = tmp_path / "var"
    # What training sets in the environment is undone after the test.
    monkeypatch.setenv("VISIONLOOP_DATA_DIR", str(var))
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "ultralytics"))
    for name in ("YOLO_OFFLINE", "YOLO_AUTOINSTALL", "YOLO_VERBOSE", "OMP_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("VISIONLOOP_MLFLOW_TRACKING_URI", raising=False)
    run_dir = tmp_path / "run"
    args = ["train", str(data), "--out", str(run_dir), "--epochs", "1", "--imgsz", "160"]
    result = CliRunner().invoke(app, [*args, "--batch", "8"])
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    assert network_attempts == []
    output = " ".join(result.output.split())  # rich wraps lines at the terminal width
    assert "registered visionloop-detector version 1 with alias 'staging'" in output, output

    onnx_path = run_dir / "model.onnx"
    proto = onnx.load(str(onnx_path))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert ast.literal_eval(meta["names"]) == dict(enumerate(CLASS_NAMES))
    assert ast.literal_eval(meta["imgsz"]) == [160, 160]
    # The registry stores dynamic exports: height and width are left to the runtime.
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.HasField("dim_value") for d in dims[2:]] == [False, False]
    report = json.loads((run_dir / "eval.json").read_text())
    assert report["images"] == 4
    assert 0.0 <= report["map50"] <= 1.0

    registry = Registry(f"sqlite:///{var / 'mlflow.db'}")
    (version,) = registry.versions()
    digest = dataset_digest(data.parent)
    assert version.aliases == ["staging"]
    assert version.sha256 == sha256_file(onnx_path)
    assert version.tags["dataset_digest"] == digest
    assert version.metrics["map50"] == pytest.approx(report["map50"], abs=1e-6)

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{var / 'mlflow.db'}")
    run = client.get_run(version.tags["train_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["dataset_digest"] == digest
    assert run.data.params["imgsz"] == "160"
    assert run.data.metrics["test_map50"] == pytest.approx(report["map50"], abs=1e-6)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train_box_loss")] == [1]
    logged = {
        f.path
        for folder in ("weights", "model", "evaluation")
        for f in client.list_artifacts(run.info.run_id, folder)
    }
    assert logged == {"weights/best.pt", "model/model.onnx", "evaluation/eval.json"}
    # Artifacts of a local store stay under the data folder, never in the working directory.
    assert (var / "mlartifacts").is_dir()
    assert not (Path.cwd() / "mlruns").exists()


@pytest.mark.train
@NEEDS_TRAIN_EXTRA
def test_train_without_test_split_evaluates_on_val_and_registers_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, network_attempts: list[str]
) -> None:
    from typer.testing import CliRunner

    from visionloop.cli import app
    from visionloop.vision.synthetic import write_dataset

    data = write_dataset(tmp_path / "data", n=12, seed=4, splits=(8 / 12, 4 / 12, 0.0))
    var = tmp_path / "var"
    monkeypatch.setenv("VISIONLOOP_DATA_DIR", str(var))
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "ultralytics"))
    for name in ("YOLO_OFFLINE", "YOLO_AUTOINSTALL", "YOLO_VERBOSE", "OMP_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    run_dir = tmp_path / "run"
    args = ["train", str(data), "--out", str(run_dir), "--epochs", "1", "--imgsz", "96"]
    result = CliRunner().invoke(app, [*args, "--no-register"])
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    assert "no test split (or it is empty): using val" in " ".join(result.output.split())
    assert json.loads((run_dir / "eval.json").read_text())["images"] == 4
    assert not (var / "mlflow.db").exists()
    assert network_attempts == []
