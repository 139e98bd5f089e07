"""Loading settings for CLI commands, with a readable error for a bad environment."""

from __future__ import annotations

import typer
from pydantic import ValidationError

from visionloop.config import Settings


def load_settings() -> Settings:
    """Read the settings from the environment; exit with a message naming the bad variable."""
    try:
        return Settings()
    except ValidationError as exc:
        for err in exc.errors():
            loc = "_".join(str(p) for p in err["loc"]).upper()
            typer.echo(f"error: VISIONLOOP_{loc}: {err['msg']}", err=True)
        raise typer.Exit(2) from exc
