"""Shared pytest set-up: fixtures live in tests/support/, one module per area.

Every test runs with no ``VISIONLOOP_*`` and no ``MLFLOW_*`` variable of the developer's
environment (as httpx's ``clean_environ`` does): a developer with
``VISIONLOOP_MLFLOW_TRACKING_URI`` exported must not register test versions in a real registry.
The whole environment is restored after each test, including variables code under test set.

``make test`` runs the suite in two processes (pytest-xdist, ``-n 2 --dist loadgroup``). There the
long tests (marked ``slow``, ``train`` or ``browser``) start first, so that the run does not end
with one process busy on a long test while the other waits, and the tests of ``XDIST_GROUPS`` run
in one process each: the browser tests (one Chromium, one page at a time) and the tests that share
the session's YOLO11n. (pytest-xdist 3.8's own ``xdist_group`` mark has no effect under pytest 9,
whose node ids it can no longer extend, so the groups are named here by node id.)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

pytest_plugins = ["support.db", "support.models"]

CLEARED_PREFIXES = ("VISIONLOOP_", "MLFLOW_")
LONG_MARKERS = ("slow", "train", "browser")
XDIST_GROUPS = {
    "tests/web/": "browser",
    "tests/vision/test_detector.py::test_decode_matches_ultralytics_predictions": "yolo11n",
}
"""Node id prefix -> the group whose tests run in one xdist process."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist only: the long tests first (module doc)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda item: not any(item.get_closest_marker(m) for m in LONG_MARKERS))


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: absent without it
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """With ``--dist loadgroup``: one work unit per test, or per group of ``XDIST_GROUPS``."""
    if config.getoption("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class Scheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            for prefix, group in XDIST_GROUPS.items():
                if nodeid.startswith(prefix):
                    return group
            return nodeid

    return Scheduling(config, log)


@pytest.fixture(autouse=True)
def clean_environ() -> Iterator[None]:
    """Clear our and MLflow's variables for the test; restore the environment afterwards."""
    original = os.environ.copy()
    for key in list(os.environ):
        if key.upper().startswith(CLEARED_PREFIXES):
            del os.environ[key]
    yield
    os.environ.clear()
    os.environ.update(original)
