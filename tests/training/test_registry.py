"""The MLflow registry on a real local sqlite store: register, list, promote, rollback, download."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from support.models import write_constant_model
from visionloop.config import Settings
from visionloop.errors import ConflictError, InvalidInputError, ModelError, NotFoundError
from visionloop.shipped import BASELINE_PROFILE
from visionloop.training.registry import Registry, ensure_baseline
from visionloop.vision.detector import sha256_file

pytest.importorskip("mlflow")


def _onnx(tmp_path: Path, name: str, value: float) -> Path:
    """A small valid detector; ``value`` makes each file (and its sha256) different."""
    table = np.full((1, 8, 10), value, np.float32)
    return write_constant_model(tmp_path / name, table)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Registry, list[Path]]:
    """One store with three registered versions (MLflow set-up is slow: shared by the module)."""
    root = tmp_path_factory.mktemp("registry")
    registry = Registry.from_settings(Settings(data_dir=root / "var"))
    files = [_onnx(root, f"m{i}.onnx", 0.01 * (i + 1)) for i in range(3)]
    for i, path in enumerate(files):
        registry.register(
            path,
            tags={"dataset_digest": f"d{i}", "map50": f"{0.5 + i / 10:.6f}", "map50_95": "0.4"},
            description=f"model {i}",
        )
    return registry, files


def test_register_and_list(store: tuple[Registry, list[Path]]) -> None:
    registry, files = store
    versions = registry.versions()
    assert [v.version for v in versions] == ["1", "2", "3"]
    first = versions[0]
    assert first.sha256 == sha256_file(files[0])
    assert first.size_bytes == files[0].stat().st_size
    assert first.tags["dataset_digest"] == "d0"
    assert first.tags["file_name"] == "m0.onnx"
    assert first.metrics == {"map50": pytest.approx(0.5), "map50_95": pytest.approx(0.4)}
    assert first.description == "model 0"
    assert first.created_at.tzinfo is not None
    assert registry.get("2").sha256 == sha256_file(files[1])


def test_the_store_is_where_the_settings_say(store: tuple[Registry, list[Path]]) -> None:
    registry, _ = store
    assert registry.tracking_uri.startswith("sqlite:///")
    assert registry.tracking_uri.endswith("var/mlflow.db")
    assert registry.artifact_root is not None
    assert any(registry.artifact_root.rglob("m0.onnx"))


def test_promote_and_rollback_move_the_alias(store: tuple[Registry, list[Path]]) -> None:
    registry, _ = store
    assert registry.production() is None
    with pytest.raises(ConflictError, match="nothing is production"):
        registry.rollback(by="ops", reason="nothing yet")

    registry.promote("1", by="alice", reason="first model")
    registry.promote("3", by="bob", reason="better mAP")
    registry.promote("2", alias="staging", by="ci", reason="candidate")
    prod = registry.production()
    assert prod is not None and prod.version == "3"
    assert prod.aliases == ["production"]
    assert prod.tags["production.promoted_by"] == "bob"
    assert prod.tags["production.promoted_reason"] == "better mAP"
    assert {v.version: v.aliases for v in registry.versions()} == {
        "1": [],
        "2": ["staging"],
        "3": ["production"],
    }

    back = registry.rollback(by="carol", reason="false rejects on line 2")
    assert back.version == "1"
    assert back.tags["production.rolled_back_by"] == "carol"
    assert back.tags["production.rolled_back_reason"] == "false rejects on line 2"
    prod = registry.production()
    assert prod is not None and prod.version == "1"
    assert "production.rolled_back_at" in registry.get("3").tags

    with pytest.raises(ConflictError, match="first production version"):
        registry.rollback(by="carol", reason="again")
    prod = registry.production()
    assert prod is not None and prod.version == "1"  # unchanged by the refused rollback

    registry.promote("3", by="bob", reason="fixed")
    assert registry.rollback(by="bob", reason="undo").version == "1"


def test_history_survives_an_alias_moved_outside_visionloop(
    store: tuple[Registry, list[Path]],
) -> None:
    registry, _ = store
    registry.promote("1", by="a", reason="r")
    # Someone moves the alias in MLflow's own UI.
    registry._client.set_registered_model_alias(registry.name, "production", "2")
    registry.promote("3", by="a", reason="r")
    assert registry.rollback(by="a", reason="r").version == "2"
    history = json.loads(registry._registered().tags["production.history"])
    assert history[-1] == "2"


@pytest.mark.parametrize(
    ("version", "alias", "error"),
    [("99", "production", NotFoundError), ("x", "production", NotFoundError)],
    ids=["unknown", "not-a-number"],
)
def test_promote_unknown_version(
    store: tuple[Registry, list[Path]], version: str, alias: str, error: type[Exception]
) -> None:
    registry, _ = store
    with pytest.raises(error):
        registry.promote(version, alias=alias, by="a", reason="r")


def test_promote_refuses_other_aliases_and_anonymous(store: tuple[Registry, list[Path]]) -> None:
    registry, _ = store
    with pytest.raises(InvalidInputError, match="alias must be"):
        registry.promote("1", alias="champion", by="a", reason="r")
    with pytest.raises(InvalidInputError, match="who"):
        registry.promote("1", by=" ", reason="r")


def test_onnx_path_downloads_and_verifies(
    store: tuple[Registry, list[Path]], tmp_path: Path
) -> None:
    registry, files = store
    path = registry.onnx_path("2")
    assert path.is_file()
    assert path.read_bytes() == files[1].read_bytes()
    assert registry.onnx_path("2") == path  # cached
    with pytest.raises(NotFoundError):
        registry.onnx_path("42")


def test_register_refuses_a_file_that_is_not_a_detector(
    store: tuple[Registry, list[Path]], tmp_path: Path
) -> None:
    registry, _ = store
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelError):
        registry.register(junk)
    assert len(registry.versions()) == 3


def test_register_into_an_existing_run_reuses_its_artifact(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    registry = Registry.from_settings(Settings(data_dir=tmp_path / "var"))
    model = _onnx(tmp_path, "model.onnx", 0.2)
    client = MlflowClient(tracking_uri=registry.tracking_uri)
    exp = client.create_experiment(
        "training", artifact_location=(tmp_path / "var" / "mlartifacts").as_uri()
    )
    run = client.create_run(exp)
    client.log_artifact(run.info.run_id, str(model), artifact_path="model")
    version = registry.register(model, run_id=run.info.run_id, tags={"train_run_id": "x"})
    assert version.version == "1"
    assert version.source.endswith("/model")
    assert registry.versions()[0].tags["train_run_id"] == "x"
    assert registry.onnx_path("1").read_bytes() == model.read_bytes()
    # Nothing was copied twice into the run.
    names = [a.path for a in client.list_artifacts(run.info.run_id)]
    assert names == ["model"]


def test_empty_registry(tmp_path: Path) -> None:
    registry = Registry.from_settings(Settings(data_dir=tmp_path / "var"))
    assert registry.versions() == []
    assert registry.production() is None
    with pytest.raises(NotFoundError):
        registry.get("1")


@pytest.mark.parametrize("version", ["9" * 30, "9223372036854775808", "\u00b2", "\u0661", "-1", ""])
def test_a_version_that_cannot_exist_is_not_found(tmp_path: Path, version: str) -> None:
    # Found by the fuzzer: a 30-digit version reached MLflow's store and came back as a 503.
    registry = Registry.from_settings(Settings(data_dir=tmp_path / "var"))
    with pytest.raises(NotFoundError, match="versions are numbers"):
        registry.get(version)


def test_ensure_baseline_only_fills_an_empty_registry(tmp_path: Path) -> None:
    registry = Registry.from_settings(Settings(data_dir=tmp_path / "var"))
    assert ensure_baseline(registry, tmp_path / "missing.onnx") is None
    baseline = _onnx(tmp_path, "baseline.onnx", 0.3)
    (tmp_path / "eval.json").write_text('{"nominal": {"map50": 0.97, "map50_95": 0.8}}')
    first = ensure_baseline(registry, baseline)
    assert first is not None and first.version == "1"
    assert first.aliases == ["production"]
    assert first.tags["production.promoted_by"] == "visionloop demo"
    assert first.metrics == {"map50": pytest.approx(0.97), "map50_95": pytest.approx(0.8)}
    assert ensure_baseline(registry, baseline) is None  # not twice
    assert len(registry.versions()) == 1
    assert registry.drift_profile_path("1") is None  # nothing shipped beside it


def test_ensure_baseline_stores_the_shipped_drift_profile(tmp_path: Path) -> None:
    """The profile beside the baseline goes with its version, also into a store whose baseline
    was registered before profiles existed."""
    registry = Registry.from_settings(Settings(data_dir=tmp_path / "var"))
    baseline = _onnx(tmp_path, "baseline.onnx", 0.3)
    ensure_baseline(registry, baseline)
    assert registry.drift_profile_path("1") is None
    shipped = tmp_path / "drift_profile.json"
    shutil.copy(BASELINE_PROFILE, shipped)
    assert ensure_baseline(registry, baseline) is None  # registers nothing new
    stored = registry.drift_profile_path("1")
    assert stored is not None and stored.read_bytes() == shipped.read_bytes()
    assert registry.get("1").tags["drift_profile_frames"] == "500"


def test_a_large_gate_report_keeps_its_tag_without_per_class_figures(
    store: tuple[Registry, list[Path]],
) -> None:
    registry, _ = store
    per_class = {f"class{k}": {"ap50": 0.9, "recall": 0.9, "instances": 10} for k in range(50)}
    brief = {"map50": 0.9, "map50_95": 0.5, "images": 40, "per_class": per_class}
    report = {
        "passed": True,
        "summary": "passed",
        "rules": [{"rule": "golden_drop", "passed": True, "detail": "x" * 1000}],
        "sets": {"golden": {"candidate": brief, "production": brief, "note": "n"}},
    }
    registry.set_gate("1", report, run_id=None)
    gate = json.loads(registry.get("1").tags["gate"])
    assert gate["rules"] == report["rules"]
    assert gate["sets"]["golden"]["candidate"] == {"map50": 0.9, "map50_95": 0.5, "images": 40}
    assert gate["sets"]["golden"]["note"] == "n"
