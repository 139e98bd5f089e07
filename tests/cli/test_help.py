"""``--help`` of every command reads cleanly in an 80-column terminal; ``--version`` works."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from visionloop import __version__
from visionloop.cli import HELP_WIDTH, app


def _command_paths(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from _command_paths(sub, (*path, name))


COMMANDS = list(_command_paths(typer.main.get_command(app)))


def test_every_command_is_walked() -> None:
    assert len(COMMANDS) > 15
    assert ("edge",) in COMMANDS and ("models", "register") in COMMANDS


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(p) or "visionloop" for p in COMMANDS])
def test_help_fits_80_columns(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("Usage: ")
    cut = [line for line in lines if "…" in line or len(line) > HELP_WIDTH]
    assert cut == [], "\n".join(cut)


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"visionloop {__version__}\n"
