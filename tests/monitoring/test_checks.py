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
from visionloop.monitoring.checks import CheckOutcome, Lineage, ProfileSource, check_device
from visionloop.monitoring.features import NUMERICAL_FEATURES, FeatureTable, records_table
from visionloop.monitoring.profile import Profile
from visionloop.monitoring.thinning import MIN_EFFECTIVE_FRAMES, MIN_FRAMES
from visionloop.server.models import DriftCheck, Job
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


def _check(
    app: FastAPI,
    device_id: int,
    profiles: ProfileSource | None = None,
    lineage: Lineage | None = None,
) -> CheckOutcome:
    state = app_state(app)
    return check_device(
        read_sessions=state.read_sessions,
        write_sessions=state.write_sessions,
        blobs=state.blobs,
        settings=state.settings,
        device_id=device_id,
        **({"profiles": profiles} if profiles else {}),
        **({"lineage": lineage} if lineage else {}),
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


# --- inconclusive checks (too few independent frames) -----------------------------------------


def _consecutive(draw: int, count: int, version: str = "1") -> list[dict[str, Any]]:
    return simulated_records(
        SyntheticLine(seed=0, size_wh=SIZE_WH),
        draw=draw,
        count=count,
        drift=Drift("nominal", 0.0),
        t0=BASE_TIME + draw * WINDOW_GAP,
        model_version=version,
        consecutive=True,
    )


def test_a_short_run_of_consecutive_frames_is_inconclusive_never_drifted_nor_an_alarm(
    app: FastAPI, cam: tuple[DeviceCredentials, TestClient]
) -> None:
    """250 consecutive nominal frames against the automatic reference (250 more) hold a few
    independent samples: tested as 30 thinned frames they 'drifted, share 1.0' before."""
    device, client = cam
    state = app_state(app)
    short = state.settings.model_copy(update={"drift_window": 250})
    _ingest(client, _consecutive(0, 250))
    for draw in (1, 2, 3):
        _ingest(client, _consecutive(draw, 250))
        outcome = check_device(
            read_sessions=state.read_sessions,
            write_sessions=state.write_sessions,
            blobs=state.blobs,
            settings=short,
            device_id=device.id,
        )
        assert (outcome.verdict, outcome.drifted, outcome.alarm_open, outcome.alarm_event) == (
            "inconclusive",
            False,
            False,
            None,
        ), outcome
    with state.read_sessions() as session:
        check = drift_store.get_check(session, check_id=outcome.check_id or 0)
        assert check.verdict == "inconclusive" and check.drifted is False
        assert check.effective_frames is not None
        assert check.effective_frames < MIN_EFFECTIVE_FRAMES
        assert "too few independent frames" in (check.verdict_reason or "")
        assert check.report_sha256 is not None  # the report still shows what was seen
        status = {s.device.id: s for s in drift_store.statuses(session)}[device.id]
        assert drift_store.device_state(status) == "inconclusive"
        assert status.alarm is not None and status.alarm.last_check_id == check.id
        assert (status.alarm.drifted_streak, status.alarm.clean_streak) == (0, 0)
        assert not session.scalars(select(Job).where(Job.kind == "alert_webhook")).all()


def _stored(session: Any, device_id: int, verdict: str, at: int) -> DriftCheck:
    t = BASE_TIME + at * WINDOW_GAP
    return drift_store.add_check(
        session,
        DriftCheck(
            device_id=device_id,
            reference_kind="auto",
            reference_start=BASE_TIME,
            reference_end=BASE_TIME,
            reference_frames=100,
            window_start=t,
            window_end=t,
            window_frames=100,
            features=[],
            drifted_features=0,
            share_drifted=1.0 if verdict != "clean" else 0.0,
            drifted=verdict == "drifted",
            verdict=verdict,
            report_sha256=None,
            duration_s=0.1,
        ),
    )


@pytest.mark.parametrize(
    ("verdicts", "events"),
    [
        pytest.param("DD", [None, "opened"], id="two-drifted-open"),
        pytest.param("DID", [None, None, "opened"], id="inconclusive-does-not-break-a-streak"),
        pytest.param("IIII", [None] * 4, id="inconclusive-never-opens"),
        pytest.param("DDCIC", [None, "opened", None, None, "closed"], id="nor-breaks-a-clean-one"),
        pytest.param("DDIIII", [None, "opened"] + [None] * 4, id="nor-closes"),
    ],
)
def test_an_inconclusive_check_neither_counts_nor_breaks_a_streak(
    app: FastAPI, cam: tuple[DeviceCredentials, TestClient], verdicts: str, events: list[str]
) -> None:
    device, _ = cam
    word = {"D": "drifted", "C": "clean", "I": "inconclusive"}
    seen = []
    with app_state(app).write_sessions() as session, session.begin():
        for at, letter in enumerate(verdicts):
            check = _stored(session, device.id, word[letter], at)
            seen.append(drift_store.record_verdict(session, check=check, consecutive=2).event)
    assert seen == events


# --- reference continuity: alarms, inheritance, a retrained version's profile ------------------


def _versioned(records: list[dict[str, Any]], version: str) -> list[dict[str, Any]]:
    return [r | {"model_version": version} for r in records]


def _profile_of(draw: int, scenario: str = "nominal", intensity: float = 0.0) -> FeatureTable:
    return records_table(window_records(draw, scenario, intensity, count=WINDOW))


def _open_alarm_on_version_1(app: FastAPI, client: TestClient, device_id: int, **kw: Any) -> None:
    """Nominal frames of version 1, then two lighting windows: the alarm opens."""
    _ingest(client, window_records(0, count=WINDOW))
    for draw in (1, 2):
        _ingest(client, window_records(draw, "lighting", 0.6, count=WINDOW))
        outcome = _check(app, device_id, **kw)
    assert outcome.alarm_open is True and outcome.alarm_event == "opened", outcome


def test_the_automatic_reference_leaves_out_frames_captured_during_an_alarm(
    app: FastAPI, cam: tuple[DeviceCredentials, TestClient]
) -> None:
    """Version 2 (no profile) reaches the device while its alarm is open: its first frames are
    drifted, and taking them as its reference accepted the drift (the alarm closed)."""
    device, client = cam
    _open_alarm_on_version_1(app, client, device.id)
    for draw in (3, 4, 5):
        _ingest(client, _versioned(window_records(draw, "lighting", 0.6, count=WINDOW), "2"))
        outcome = _check(app, device.id, lineage=lambda v: ["1"] if v == "2" else [])
        assert outcome.alarm_open is True, outcome
        with app_state(app).read_sessions() as session:
            check = drift_store.get_check(session, check_id=outcome.check_id or 0)
            # Version 2 has no frame outside the alarm: the first frames of version 1 it is.
            assert (check.reference_kind, check.reference_version) == ("auto", "1")
            assert check.reference_end < BASE_TIME + WINDOW_GAP
            assert check.verdict == "drifted"
    with app_state(app).read_sessions() as session:
        assert drift_store.auto_window(session, device_id=device.id, frames=WINDOW) is None
        ((since, until),) = drift_store.alarm_periods(session, device_id=device.id)
        assert since == BASE_TIME + WINDOW_GAP and until is None  # the first lighting frame


def test_a_promoted_version_without_a_usable_profile_inherits_the_previous_ones(
    app: FastAPI, cam: tuple[DeviceCredentials, TestClient]
) -> None:
    device, client = cam
    nominal = Profile(version="1", features=_profile_of(7), created_at=BASE_TIME)
    three = FeatureTable(columns={k: v[:3] for k, v in _profile_of(8).columns.items()})
    tiny = Profile(version="2", features=three, created_at=BASE_TIME)
    profiles = {"1": nominal, "2": tiny}
    kw: dict[str, Any] = {
        "profiles": profiles.get,
        "lineage": lambda v: ["1"] if v == "2" else [],
    }
    _open_alarm_on_version_1(app, client, device.id, **kw)
    for draw in (3, 4):
        _ingest(client, _versioned(window_records(draw, "lighting", 0.6, count=WINDOW), "2"))
        outcome = _check(app, device.id, **kw)
        assert outcome.verdict == "drifted" and outcome.alarm_open is True, outcome
        with app_state(app).read_sessions() as session:
            check = drift_store.get_check(session, check_id=outcome.check_id or 0)
            assert (check.reference_kind, check.reference_version) == ("inherited", "1")


def test_a_retrained_version_that_learned_the_conditions_closes_the_alarm_saying_so(
    app: FastAPI, cam: tuple[DeviceCredentials, TestClient]
) -> None:
    device, client = cam
    profiles = {"1": Profile(version="1", features=_profile_of(7), created_at=BASE_TIME)}
    kw: dict[str, Any] = {
        "profiles": lambda v: profiles.get(v),
        "lineage": lambda v: ["1"] if v == "2" else [],
    }
    _open_alarm_on_version_1(app, client, device.id, **kw)
    # Version 2 trained on the lighting labels: its profile (computed from its training and
    # validation images) holds the new conditions.
    learned = _profile_of(9, "lighting", 0.6)
    profiles["2"] = Profile(version="2", features=learned, created_at=BASE_TIME)
    events = []
    for draw in (3, 4):
        _ingest(client, _versioned(window_records(draw, "lighting", 0.6, count=WINDOW), "2"))
        outcome = _check(app, device.id, **kw)
        assert outcome.verdict == "clean", outcome
        events.append(outcome.alarm_event)
    assert events == [None, "closed"]
    with app_state(app).read_sessions() as session:
        check = drift_store.get_check(session, check_id=outcome.check_id or 0)
        assert (check.reference_kind, check.reference_version) == ("model", "2")
        assert check.alarm_event == "closed"
        status = {s.device.id: s for s in drift_store.statuses(session)}[device.id]
        assert status.alarm is not None and not status.alarm.is_open
        assert status.alarm.close_reason is not None
        assert status.alarm.close_reason.startswith("version 2 learned these conditions")
        ((_, until),) = drift_store.alarm_periods(session, device_id=device.id)
        assert until == check.checked_at


def test_an_alarm_that_ends_by_itself_says_the_frames_match_the_reference_again(
    app: FastAPI, cam: tuple[DeviceCredentials, TestClient]
) -> None:
    device, client = cam
    _open_alarm_on_version_1(app, client, device.id)
    for draw in (3, 4):
        _ingest(client, window_records(draw, count=WINDOW))
        outcome = _check(app, device.id)
    assert outcome.alarm_event == "closed"
    with app_state(app).read_sessions() as session:
        status = {s.device.id: s for s in drift_store.statuses(session)}[device.id]
        assert status.alarm is not None
        assert status.alarm.close_reason == "the frames match the auto reference again"
