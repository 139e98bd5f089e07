"""A model version's drift reference profile: computed by running frames through the model,
stored with the version in the registry, and used by the checks of devices running it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from support.datasets import synthetic_yolo
from support.db import DeviceCredentials, add_device, app_state
from support.drift import window_records
from visionloop.config import Settings
from visionloop.monitoring.checks import check_device
from visionloop.monitoring.features import (
    FEATURES,
    records_table,
)
from visionloop.monitoring.profile import (
    PROMOTED_AT_TAG,
    RegistryProfiles,
    compute_profile,
    earlier_production,
    profile_frames,
    read_profile,
    reference_words,
    synthetic_frames,
    write_profile,
)
from visionloop.server.store import drift as drift_store
from visionloop.training.registry import ModelVersion

WINDOW = 60


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"drift_window": WINDOW})


@pytest.fixture
def cam(app: FastAPI) -> Iterator[tuple[DeviceCredentials, TestClient]]:
    device = add_device(app, "cam1")
    with TestClient(app, headers=device.headers) as c:
        yield device, c


def _ingest(client: TestClient, records: list[dict[str, Any]]) -> None:
    r = client.post("/api/v1/ingest", json={"frames": records})
    assert r.status_code == 200, r.text


def test_a_profile_runs_frames_through_the_model(detector_onnx: Path, tmp_path: Path) -> None:
    frames = list(synthetic_frames(count=6, size_wh=(320, 240)))
    table = compute_profile(detector_onnx, frames)
    assert len(table) == 6
    assert all(0.0 <= b <= 1.0 for b in table.columns["brightness"])
    assert all(c >= 0 for c in table.columns["detection_count"])
    path = write_profile(table, tmp_path / "p.json", source="test")
    assert read_profile(path).columns == table.columns


@pytest.mark.slow  # a fresh MLflow store and two Evidently checks: ~10 s quiet, minutes loaded
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_checks_compare_with_the_versions_profile(
    app: FastAPI,
    settings: Settings,
    cam: tuple[DeviceCredentials, TestClient],
    detector_onnx: Path,
    tmp_path: Path,
) -> None:
    from visionloop.training.registry import Registry

    registry = Registry.from_settings(settings)
    version = registry.register(detector_onnx).version
    assert version == "1"  # what the records say produced them
    # The profile of the version's "validation frames": a nominal window of the line (its
    # detections from the simulated detector, as the devices' frames have).
    profile = records_table(window_records(0, count=WINDOW, seed=5))
    path = write_profile(profile, tmp_path / "drift_profile.json", source="test")
    registry.add_drift_profile(version, path, frames=len(profile), source="test")
    assert read_profile(registry.drift_profile_path(version) or Path()).columns == profile.columns

    device, client = cam
    state = app_state(app)

    def check() -> Any:
        return check_device(
            read_sessions=state.read_sessions,
            write_sessions=state.write_sessions,
            blobs=state.blobs,
            settings=state.settings,
            device_id=device.id,
            profiles=RegistryProfiles(settings),
        )

    _ingest(client, window_records(1, count=WINDOW))
    assert check().drifted is False  # no frame of the device's own is needed as a reference
    _ingest(client, window_records(2, "lighting", 0.6, count=WINDOW))
    assert check().drifted is True
    with state.read_sessions() as session:
        last = drift_store.last_check(session, device_id=device.id)
        assert last is not None
        assert (last.reference_kind, last.reference_version) == ("model", version)
        assert last.reference_frames == WINDOW
        brightness = next(f for f in last.features if f["feature"] == "brightness")
        assert len(brightness["reference_quantiles"]) == 5
    assert set(FEATURES) == {f["feature"] for f in last.features}


def test_without_a_registry_there_is_no_profile(settings: Settings) -> None:
    assert RegistryProfiles(settings)("1") is None  # and MLflow's store was not created
    assert RegistryProfiles(settings).lineage("1") == []
    assert not (settings.data_dir / "mlflow.db").exists()


def _version(number: str, *, frames: int = 0, promoted: str | None = None) -> ModelVersion:
    tags = {"drift_profile_frames": str(frames)} if frames else {}
    if promoted is not None:
        tags[PROMOTED_AT_TAG] = promoted
    return ModelVersion(
        version=number,
        aliases=[],
        sha256="0" * 64,
        size_bytes=1,
        metrics={},
        tags=tags,
        created_at=datetime(2026, 11, int(number), tzinfo=UTC),
    )


@pytest.mark.parametrize(
    ("versions", "expected"),
    [
        pytest.param(
            [_version("1", frames=500, promoted="2026-11-01T10:00:00Z"), _version("2", frames=400)],
            "its own profile: 400 frames",
            id="own",
        ),
        pytest.param(
            [
                _version("1", frames=500, promoted="2026-11-01T10:00:00Z"),
                _version("2", promoted="2026-11-02T10:00:00Z"),
            ],
            "inherited from version 1 (no profile of its own)",
            id="none-inherits",
        ),
        pytest.param(
            [
                _version("1", frames=500, promoted="2026-11-01T10:00:00Z"),
                _version("2", frames=3, promoted="2026-11-02T10:00:00Z"),
            ],
            "inherited from version 1 (a profile of only 3 frames of its own)",
            id="three-images-inherits",
        ),
        pytest.param(
            [
                _version("1", frames=500, promoted="2026-11-01T10:00:00Z"),
                _version("2", promoted="2026-11-02T10:00:00Z"),
                _version("3", promoted="2026-11-03T10:00:00Z"),
            ],
            "inherited from version 1 (no profile of its own)",
            id="through-a-version-without-one",
        ),
        pytest.param(
            [_version("2", promoted="2026-11-02T10:00:00Z")],
            "the first frames each device sends with it",
            id="nothing-to-inherit",
        ),
    ],
)
def test_a_versions_drift_reference_in_words(versions: list[ModelVersion], expected: str) -> None:
    assert reference_words(versions[-1], versions).startswith(expected)


def test_a_version_inherits_from_the_versions_in_production_before_it_newest_first() -> None:
    versions = [
        _version("1", frames=500, promoted="2026-11-01T10:00:00Z"),
        _version("2", frames=500, promoted="2026-11-02T10:00:00Z"),
        _version("3"),  # registered, never promoted (a canary, say)
        _version("4", promoted="2026-11-04T10:00:00Z"),
        _version("5", promoted="2026-11-05T10:00:00Z"),
    ]
    assert earlier_production("4", versions) == ["2", "1"]
    assert earlier_production("3", versions) == ["2", "1"]
    assert earlier_production("1", versions) == []


def test_a_retrained_versions_profile_frames_span_training_validation_and_golden(
    tmp_path: Path,
) -> None:
    data, truth = synthetic_yolo(tmp_path / "data", n=20)
    golden, golden_truth = synthetic_yolo(tmp_path / "golden", n=10, seed=8)
    sources = [(data, "train"), (data, "val"), (golden, "test"), (tmp_path / "none", "val")]
    total, frames = profile_frames(sources)
    expected = sum(t.split in ("train", "val") for t in truth)
    expected += sum(t.split == "test" for t in golden_truth)
    assert total == expected == len(list(frames))
    total, frames = profile_frames(sources, limit=5)
    assert total == 5 and all(f.ndim == 3 for f in frames)
