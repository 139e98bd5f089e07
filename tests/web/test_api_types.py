"""The dashboard's API types (web/src/api/schema.d.ts) match the server's OpenAPI schema: a
changed route changes the types, so the web build, not the user, finds what it breaks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = ROOT / "web" / "node_modules" / "openapi-typescript" / "bin" / "cli.js"


def test_committed_api_types_match_the_server() -> None:
    if not GENERATOR.is_file():
        reason = f"{GENERATOR.relative_to(ROOT)} is missing: run `make web`"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "web_types.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
