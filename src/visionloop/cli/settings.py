"""Loading settings for CLI commands, with a readable error for a bad environment."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from pydantic import ValidationError

from visionloop.config import ENV_PREFIX, Settings


def load_settings() -> Settings:
    """Read the settings from the environment; exit with a message naming the bad variable
    (an unknown ``VISIONLOOP_*`` name, a malformed value, a data folder that cannot be used)."""
    try:
        settings = Settings()
    except ValidationError as exc:
        for err in exc.errors():
            cause = (err.get("ctx") or {}).get("error")
            message = str(cause) if isinstance(cause, ValueError) else err["msg"]
            loc = "_".join(str(p) for p in err["loc"]).upper()
            typer.echo(
                f"error: {ENV_PREFIX}{loc}: {message}" if loc else f"error: {message}", err=True
            )
        raise typer.Exit(2) from exc
    problem = unusable_folder(settings.data_dir)
    if problem is not None:
        typer.echo(f"error: {ENV_PREFIX}DATA_DIR: {settings.data_dir} {problem}", err=True)
        raise typer.Exit(2)
    return settings


def unusable_folder(path: Path) -> str | None:
    """None when ``path`` is a writable folder or can be created as one; else why not.

    Nothing is created: commands make the folders they need.
    """
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing != path and not existing.is_dir():
        return f"cannot be created: {existing} is a file, not a folder"
    if existing == path and not path.is_dir():
        return "is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return (
            f"is not writable ({existing})"
            if existing == path
            else f"cannot be created in {existing} (not writable)"
        )
    return None
