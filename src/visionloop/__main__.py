"""``python -m visionloop`` runs the CLI."""

from visionloop.cli import main

main()
