"""``python -m visionloop`` runs the CLI."""

from visionloop.cli import app

app()
