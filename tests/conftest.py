"""Shared pytest set-up: fixtures live in tests/support/, one module per area.

Every test runs with no ``VISIONLOOP_*`` and no ``MLFLOW_*`` variable of the developer's
environment (as httpx's ``clean_environ`` does): a developer with
``VISIONLOOP_MLFLOW_TRACKING_URI`` exported must not register test versions in a real registry.
The whole environment is restored after each test, including variables code under test set.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

pytest_plugins = ["support.db", "support.models"]

CLEARED_PREFIXES = ("VISIONLOOP_", "MLFLOW_")


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
