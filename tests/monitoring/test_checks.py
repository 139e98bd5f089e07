"""Drift checks of a device end to end below HTTP: synthetic-line frames through ingest, checks
against the automatic or a pinned reference, and the alarm's hysteresis (SQLite and
PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from support.db import DeviceCredentials, add_device, app_state
from support.drift import BASE_TIME, WINDOW_GAP, window_records
from visionloop.config import Settings
from visionloop.monitoring import alarms
from visionloop.monitoring.checks import CheckOutcome, ProfileSource, check_device
from visionloop.monitoring.features import NUMERICAL_FEATURES, records_table
from visionloop.monitoring.profile import Profile
from visionloop.monitoring.thinning import MIN_FRAMES
from visionloop.server.models import Job
from visionloop.server.store import drift as drift_store
from visionloop.vision.synthetic.line import SyntheticLine
from visionloop.vision.synthetic.records import SIZE_WH, simulated_records
from visionloop.vision.synthetic.schedule import Drift

WINDOW = 60


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"drift_window": WINDOW, "alert_webhook_url": "http://127.0.0.1:9/hook"}
    )


@pytest.fixture
def cam(app: FastAPI) -> Iterator[tuple[DeviceCredentials, TestClient]]:
    device = add_device(app, "cam1")
    with TestClient(app, headers=device.headers) as c:
        yield device, c


def _ingest(client: TestClient, records: list[dict[str, Any]]) -> None:
    r = client.post("/api/v1/ingest", json={"frames": records})
    assert r.status_code == 200, r.text


def _check(app: FastAPI, device_id: int, profiles: ProfileSource | None = None) -> CheckOutcome:
    state = app_state(app)
    return check_device(
        read_sessions=state.read_sessions,
        write_sessions=state.write_sessions,
        blobs=state.blobs,
        settings=state.settings,
        device_id=device_id,
        **({"profiles": profiles} if profiles else {}),
    )


def test_alarm_opens_after_two_drifted_checks_and_closes_after_two_clean(
    app: FastAPI, cam: tuple[DeviceCredentials, TestClient]
) -> None:
    device, client = cam
    _ingest(client, window_records(0, count=WINDOW))  # the automatic reference
    plan = [
        ("nominal", 0.0, False, False, None),
        ("lighting", 0.6, True, False, None),
        ("lighting", 0.6, True, True, "opened"),
        ("lighting", 0.6, True, True, None),
        ("nominal", 0.0, False, True, None),
        ("nominal", 0.0, False, False, "closed"),
    ]
    for draw, (scenario, intensity, drifted, alarm_open, event) in enumerate(plan, start=1):
        _ingest(client, window_records(draw, scenario, intensity, count=WINDOW))
        outcome = _check(app, device.id)
        assert (outcome.drifted, outcome.alarm_open, outcome.alarm_event) == (
            drifted,
            alarm_open,
            event,
        ), f"window {draw} ({scenario}): {outcome}"
        with app_state(app).read_sessions() as session:
            assert alarms.device_open(session, device_id=device.id) is alarm_open
            assert alarms.any_open(session) is alarm_open
    with app_state(app).read_sessions() as session:
        page = drift_store.list_checks(
            session, device_id=device.id, since=None, limit=10, cursor=None
        )
        assert len(page.checks) == len(plan)
        newest = page.checks[0]
        assert newest.reference_kind == "auto" and newest.reference_frames == WINDOW
        assert newest.window_frames == WINDOW
        assert {f["feature"] for f in newest.features} >= {"brightness", "top_class"}
        drifted = page.checks[-2]  # the first lighting window
        assert drifted.share_drifted >= 0.5
        assert {"brightness", "contrast"} <= {
            f["feature"] for f in drifted.features if f["drifted"]
        }
        verdict = {"feature", "method", "score", "threshold", "drifted"}
        for f in drifted.features:
            numerical = f["feature"] in NUMERICAL_FEATURES
            assert set(f) == verdict | (
                {"reference_quantiles", "window_quantiles"} if numerical else set()
            )
        hooks = session.scalars(select(Job).where(Job.kind == "alert_webhook").order_by(Job.id))
        events = [j.params["event"]["type"] for j in hooks]
        assert events == ["drift_alarm_opened", "drift_alarm_closed"]


def test_nominal_windows_stay_clean(
    app: FastAPI, cam: tuple[DeviceCredentials, TestClient]
) -> None:
    device, client = cam
    _ingest(client, window_records(0, count=WINDOW))
    for draw in range(1, 4):
        _ingest(client, window_records(draw, count=WINDOW))
        outcome = _check(app, device.id)
        assert outcome.drifted is False and outcome.alarm_open is False, outcome


def test_a_pinned_reference_is_the_new_normal(
    app: FastAPI, cam: tuple[DeviceCredentials, TestClient]
) -> None:
    device, client = cam
    _ingest(client, window_records(0, count=WINDOW))
    _ingest(client, window_records(1, "lighting", 0.6, count=WINDOW))
    _ingest(client, window_records(2, "lighting", 0.6, count=WINDOW))
    assert _check(app, device.id).drifted is True  # against the automatic (nominal) reference
    with app_state(app).write_sessions() as session, session.begin():
        drift_store.pin_reference(
            session,
            device_id=device.id,
            since=BASE_TIME + WINDOW_GAP,
            until=BASE_TIME + 2 * WINDOW_GAP,
            pinned_by="test",
        )
    outcome = _check(app, device.id)
    assert outcome.drifted is False, outcome
    with app_state(app).read_sessions() as session:
        check = drift_store.get_check(session, check_id=outcome.check_id or 0)
        assert check.reference_kind == "pinned" and check.reference_frames == WINDOW


def test_no_new_frames_no_second_verdict(
    app: FastAPI, cam: tuple[DeviceCredentials, TestClient]
) -> None:
    device, client = cam
    _ingest(client, window_records(0, count=WINDOW))
    _ingest(client, window_records(1, "lighting", 0.6, count=WINDOW))
    assert _check(app, device.id).drifted is True
    again = _check(app, device.id)
    assert again.check_id is None and again.skipped == "no new frames since the last check"


@pytest.mark.parametrize(
    ("windows", "reason"),
    [
        pytest.param(0, "reference holds 0 frames", id="no-frames"),
        pytest.param(1, "0 frames after the reference", id="reference-only"),
    ],
)
def test_a_check_without_enough_frames_is_skipped(
    app: FastAPI, cam: tuple[DeviceCredentials, TestClient], windows: int, reason: str
) -> None:
    device, client = cam
    for draw in range(windows):
        _ingest(client, window_records(draw, count=WINDOW))
    outcome = _check(app, device.id)
    assert outcome.check_id is None and reason in (outcome.skipped or "")


def test_a_profile_too_small_to_test_against_gives_way_to_the_automatic_reference(
    app: FastAPI, cam: tuple[DeviceCredentials, TestClient]
) -> None:
    device, client = cam
    tiny = records_table(window_records(5, count=MIN_FRAMES - 1))
    _ingest(client, window_records(0, count=WINDOW))
    _ingest(client, window_records(1, count=WINDOW))
    outcome = _check(
        app,
        device.id,
        lambda version: Profile(version=version, features=tiny, created_at=BASE_TIME),
    )
    with app_state(app).read_sessions() as session:
        check = drift_store.get_check(session, check_id=outcome.check_id or 0)
        assert (check.reference_kind, check.reference_frames) == ("auto", WINDOW)


def test_consecutive_frames_are_tested_thinned_and_the_check_says_by_how_much(
    app: FastAPI, cam: tuple[DeviceCredentials, TestClient]
) -> None:
    device, client = cam
    line = SyntheticLine(seed=0, size_wh=SIZE_WH)
    for draw in (0, 1):
        _ingest(
            client,
            simulated_records(
                line,
                draw=draw,
                count=WINDOW,
                drift=Drift("nominal", 0.0),
                t0=BASE_TIME + draw * WINDOW_GAP,
                consecutive=True,
            ),
        )
    outcome = _check(app, device.id)
    with app_state(app).read_sessions() as session:
        check = drift_store.get_check(session, check_id=outcome.check_id or 0)
        # 60 consecutive frames are correlated far beyond 2 apart: thinned as far as the 30
        # frames a test needs allow.
        assert (check.window_stride, check.reference_stride) == (2, 2)
        assert check.window_frames == WINDOW
