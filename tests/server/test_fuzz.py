"""Schemathesis over the served OpenAPI schema: every route, every kind of caller, both databases.

The operations come from the schema itself, so a route added later is fuzzed without touching this
file. Each (caller, operation) pair gets a share of ``BUDGET`` generated requests, valid and
invalid ones (schemathesis' positive and negative modes), so the run stays bounded as routes are
added. They go to a real uvicorn server. Path parameters are often drawn from things that exist
(sampled frames, one with an image, a spare device), so handlers are reached, not only their
404s. Generation is seeded per caller and operation: a run is reproducible, and a failure names
the request (a curl command) to replay. Then the admin sends ``COVERAGE_PER_OPERATION`` of each
operation's coverage cases (schemathesis' coverage phase: a value past a bound, a required
parameter missing, a wrong type or content type, an undocumented method).

Every answer goes through every check schemathesis has (``--checks all``): no 5xx; the status,
content type, headers and body as documented; invalid data refused and valid data accepted; a
405 with ``Allow`` for an undocumented method; and the rest. Checks in ``EXPECTED_FAILURES`` still
run, must fail at least once for the stated reason and never fail the test, so the table cannot
outlive its reason. Four checks hold vacuously here: ``use_after_free`` and
``ensure_resource_availability`` judge chains of calls (schemathesis' stateful phase, which needs
links this schema does not declare), and ``ignored_auth`` and ``object_level_authorization`` need
security schemes or several identities declared to schemathesis; our callers' credentials are
set on their sessions instead, and tests/server/test_roles.py checks every route for each.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from itertools import zip_longest
from typing import Any

import cv2
import hypothesis
import numpy as np
import requests
import schemathesis
from fastapi import FastAPI
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS as CHECK_REGISTRY
from schemathesis.checks import Failure, FailureGroup, load_all_checks

from support.db import LiveServer, add_device, add_user, app_state, frame_batch
from visionloop.server.auth import SESSION_COOKIE
from visionloop.server.store import people

CALLERS = ("none", "device", "viewer", "reviewer", "admin")
"""In this order: the admin, who can disable devices and sign sessions out, comes last."""
BUDGET = 900
"""Generated requests per database, shared by every (caller, operation) pair: ~45 s of CPU."""
MIN_EXAMPLES = 4
COVERAGE_PER_OPERATION = 8
"""Coverage cases the admin sends per operation, one of each scenario in turn (all: ~1,800)."""
load_all_checks()  # the OpenAPI checks register themselves when their module is first loaded
ALL_CHECKS = dict(zip(CHECK_REGISTRY.get_all_names(), CHECK_REGISTRY.get_all(), strict=True))
EXPECTED_FAILURES = {
    "positive_data_acceptance": (
        "schema-valid data the server rightly refuses with a 422, for rules JSON Schema cannot "
        "state: times outside 1970..2100 (TIMESTAMPS sends them on purpose), a box's x1 < x2 "
        "and y1 < y2, since before until, a window's unit and range, a password's length and "
        "the common-password list, invisible characters in names, a job kind this server runs"
    ),
}
"""Checks that fail for a reason that is not a bug, and the reason."""
CHECKS = [check for name, check in ALL_CHECKS.items() if name not in EXPECTED_FAILURES]
CSRF_HEADER = {"X-Visionloop-CSRF": "1"}
DEVICE_ROUTES = ("POST /api/v1/ingest", "PUT /api/v1/frames/{frame_id}/image")
"""Routes whose handlers the device caller must reach (an answer other than 401/403/5xx)."""


EDGE_TIMESTAMPS = [
    "0001-01-01T00:00:00+05:00",  # before year 1 in UTC
    "9999-12-31T23:59:59-05:00",  # after year 9999 in UTC
    "0001-01-01T00:00:00Z",
    "1969-12-31T23:59:59.999999Z",
    "2100-01-01T00:00:00+00:00",
    "2026-02-29T12:00:00Z",  # not a date (422, not 500)
]
TIMESTAMPS = st.one_of(
    st.sampled_from(EDGE_TIMESTAMPS),
    st.datetimes(
        min_value=datetime(1, 1, 1),
        max_value=datetime(9999, 12, 31, 23, 59, 59),
        timezones=st.sampled_from([timezone(timedelta(hours=h)) for h in (-12, -5, 0, 5, 14)]),
    ).map(lambda t: t.isoformat()),
)
"""RFC 3339 times over the whole range a client can send, often at its edges (schemathesis' own
date-time values stay in a narrow range, so they never find an overflow)."""
schemathesis.openapi.format("date-time", TIMESTAMPS)  # process-wide: only this module fuzzes


def _jpeg(width: int, height: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.full((height, width, 3), 128, np.uint8))
    assert ok
    return buf.tobytes()


def _seed(app: FastAPI, live: LiveServer) -> tuple[str, dict[str, list[Any]]]:
    """A device with frames (one sampled without an image, one with one), a spare device and a
    spare person. Returns the device's token and the existing values of each path parameter name."""
    device = add_device(app, "cam1")
    spare = add_device(app, "spare")
    headers = {"Authorization": f"Bearer {device.token}"}
    batch = frame_batch(3, sample_reason="uncertain")
    r = requests.post(f"{live.url}/api/v1/ingest", json=batch, headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    with_image = batch["frames"][0]
    r = requests.put(
        f"{live.url}/api/v1/frames/{with_image['id']}/image",
        data=_jpeg(with_image["width"], with_image["height"]),
        headers={**headers, "Content-Type": "image/jpeg"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    known = {
        "frame_id": [f["id"] for f in batch["frames"]],
        "device_id": [spare.id],
        "user_id": [add_user(app, "spare-person", "reviewer")],
        "version": ["1", "9" * 30, "\u00b2"],  # a version, too big for the store, not ASCII
    }
    return device.token, known


def _callers(app: FastAPI, token: str) -> dict[str, Callable[[], requests.Session]]:
    """A fresh HTTP session per request for each kind of caller. People get a new session cookie
    each time, so a fuzzed logout does not sign the rest of the run out."""
    user_ids = {
        role: add_user(app, f"fuzz-{role}", role) for role in ("viewer", "reviewer", "admin")
    }

    def anonymous() -> requests.Session:
        return requests.Session()

    def device() -> requests.Session:
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {token}"
        return s

    def person(role: str) -> Callable[[], requests.Session]:
        def make() -> requests.Session:
            with app_state(app).write_sessions() as session, session.begin():
                cookie = people.open_session(
                    session, user_id=user_ids[role], ttl=timedelta(hours=1)
                )
            s = requests.Session()
            s.headers.update(CSRF_HEADER)
            s.cookies.set(SESSION_COOKIE, cookie)
            return s

        return make

    return {
        "none": anonymous,
        "device": device,
        **{role: person(role) for role in ("viewer", "reviewer", "admin")},
    }


def _strategy(operation: Any, known: dict[str, list[Any]]) -> Any:
    """Cases with free path parameters, or with ones naming things that exist."""
    names = re.findall(r"{(\w+)}", operation.path)
    free = st.one_of(
        operation.as_strategy(), operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)
    )
    if not names or not all(n in known for n in names):
        return free
    fixed = st.fixed_dictionaries({n: st.sampled_from(known[n]) for n in names})
    return st.one_of(
        free,
        fixed.flatmap(lambda p: operation.as_strategy(path_parameters=p)),
        fixed.flatmap(
            lambda p: operation.as_strategy(
                generation_mode=GenerationMode.NEGATIVE, path_parameters=p
            )
        ),
    )


def _send(
    case: Any,
    new_session: Callable[[], requests.Session],
    seen: Counter[int],
    expected_failures: set[str],
) -> None:
    """Send ``case`` in a fresh session and run every check on the answer: those of
    ``EXPECTED_FAILURES`` only record their name in ``expected_failures`` when they fail."""
    with new_session() as session:
        response = case.call(session=session, timeout=30)
    seen[response.status_code] += 1
    for name in EXPECTED_FAILURES:
        try:
            case.validate_response(response, checks=[ALL_CHECKS[name]])
        except (Failure, FailureGroup):
            expected_failures.add(name)
    case.validate_response(response, checks=CHECKS)


def _fuzz(
    strategy: Any,
    new_session: Callable[[], requests.Session],
    seen: Counter[int],
    expected_failures: set[str],
    *,
    examples: int,
    seed: str,
) -> None:
    """``examples`` cases from ``strategy``, each sent in a fresh session and checked. The same
    ``seed`` draws the same cases; each caller and operation has its own."""

    @hypothesis.seed(zlib.crc32(seed.encode()))
    @hypothesis.settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(case=strategy)
    def run(case: Any) -> None:
        _send(case, new_session, seen, expected_failures)

    run()


def _sample_by_scenario(cases: Iterable[Any], limit: int) -> list[Any]:
    """Up to ``limit`` of ``cases``, taking one of each coverage scenario (a missing header, an
    undocumented method, a value past a bound…) in turn, so that a cap keeps every kind."""
    by_scenario: dict[Any, list[Any]] = {}
    for case in cases:
        by_scenario.setdefault(case.meta.phase.data.scenario, []).append(case)
    rounds = zip_longest(*by_scenario.values())
    return [case for round_ in rounds for case in round_ if case is not None][:limit]


def test_fuzz_every_route_for_every_caller(app: FastAPI, live_server: LiveServer) -> None:
    token, known = _seed(app, live_server)
    sessions = _callers(app, token)
    schema = schemathesis.openapi.from_url(f"{live_server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10, "the schema lost its routes"
    examples = max(MIN_EXAMPLES, BUDGET // (len(operations) * len(CALLERS)))
    statuses: dict[tuple[str, str], Counter[int]] = {}
    failures: list[str] = []
    expected_failures: set[str] = set()

    for caller in CALLERS:
        for operation in operations:
            label = f"{operation.method.upper()} {operation.path}"
            seen = statuses.setdefault((caller, label), Counter())

            try:
                _fuzz(
                    _strategy(operation, known),
                    sessions[caller],
                    seen,
                    expected_failures,
                    examples=examples,
                    seed=f"{caller} {label}",
                )
            # Every failing pair is reported, not only the first (a FailureGroup is a
            # BaseExceptionGroup).
            except (Exception, BaseExceptionGroup) as exc:
                failures.append(f"--- {caller}: {label}\n{exc}")

    coverage = Counter[int]()
    for operation in operations:
        label = f"{operation.method.upper()} {operation.path}"
        generation = schema.config.generation_for(operation=operation, phase="coverage")
        cases = schema.iter_coverage_cases(
            operation, generation_modes=list(GenerationMode), generation_config=generation
        )
        for case in _sample_by_scenario(cases, COVERAGE_PER_OPERATION):
            try:
                _send(case, sessions["admin"], coverage, expected_failures)
            except (Failure, FailureGroup) as exc:
                failures.append(f"--- admin, coverage: {label}\n{exc}")

    summary = "\n".join(f"{c:8} {op}: {dict(s)}" for (c, op), s in statuses.items())
    assert not failures, f"{len(failures)} failing operations:\n" + "\n".join(failures)
    assert expected_failures == set(EXPECTED_FAILURES), "EXPECTED_FAILURES names checks that pass"
    cases = sum(sum(s.values()) for s in statuses.values()) + sum(coverage.values())
    print(f"{cases} cases, {len(ALL_CHECKS)} checks")  # noqa: T201  # the run's size, with -s
    for label in DEVICE_ROUTES:
        reached = {
            code: n
            for code, n in statuses[("device", label)].items()
            if code not in (401, 403) and code < 500
        }
        assert reached, f"the fuzzer never reached the {label} handler:\n{summary}"
