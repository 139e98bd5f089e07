"""The ``visionloop`` command: the only place that reads settings and wires objects together.

Each area registers its commands from its own module; heavy libraries are imported inside the
commands so that ``visionloop --help`` stays fast.
"""

from __future__ import annotations

import typer

from visionloop.cli import datasets, edge, jobs, models, server, train, vision

app = typer.Typer(
    name="visionloop",
    help="Closed-loop computer vision: edge detection, monitoring, labeling and retraining.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

server.register(app)
vision.register(app)
models.register(app)
edge.register(app)
train.register(app)
datasets.register(app)
jobs.register(app)
