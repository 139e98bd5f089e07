"""The ``visionloop`` command: the only place that reads settings and wires objects together.

Each area registers its commands from its own module; heavy libraries are imported inside the
commands so that ``visionloop --help`` stays fast. ``main`` is the entry point: it turns every
mistake a user can make (a bad value, a ``VisionloopError``) into one line on stderr and a
non-zero exit, in one place, instead of a traceback.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

# Typer vendors Click (since 0.2x): its parser raises these, not ``click``'s own classes.
from typer._click import exceptions as click_errors

from visionloop import __version__
from visionloop.cli import datasets, drift, edge, jobs, models, server, simulate, train, vision
from visionloop.errors import VisionloopError

HELP_WIDTH = 80
"""Help is laid out for an 80-column terminal at most (wider terminals get the same layout)."""

app = typer.Typer(
    name="visionloop",
    help="Closed-loop computer vision: edge detection, monitoring, labeling and retraining.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"max_content_width": HELP_WIDTH},
    # Click's plain layout wraps long option names, defaults and URLs; Rich's panels cut them
    # off with "…" at 80 columns.
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"visionloop {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Closed-loop computer vision: edge detection, monitoring, labeling and retraining."""


server.register(app)
vision.register(app)
models.register(app)
edge.register(app)
train.register(app)
datasets.register(app)
jobs.register(app)
drift.register(app)
simulate.register(app)


def _error(message: str, code: int) -> int:
    first = message.strip().splitlines()[0] if message.strip() else "failed"
    typer.echo(f"error: {first}", err=True)
    return code


def run(argv: list[str] | None = None) -> int:
    """Run the CLI on ``argv`` (default: the process's arguments); returns the exit code."""
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="visionloop", standalone_mode=False)
    except click_errors.NoArgsIsHelpError as exc:
        typer.echo(exc.ctx.get_help())
        return 0
    except click_errors.UsageError as exc:
        hint = f" (see: {exc.ctx.command_path} --help)" if exc.ctx is not None else ""
        return _error(exc.format_message() + hint, exc.exit_code)
    except click_errors.ClickException as exc:
        return _error(exc.format_message(), exc.exit_code)
    except typer.Abort:
        return _error("aborted", 130)
    except VisionloopError as exc:
        return _error(str(exc) or type(exc).__name__, 1)
    except OSError as exc:  # a path the user named: a file where a folder must be, no space...
        return _error(str(exc), 1)
    return result if isinstance(result, int) else 0


def main() -> None:
    """The console entry point (``visionloop``, ``python -m visionloop``)."""
    sys.exit(run())
