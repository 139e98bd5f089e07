"""CLI commands of drift monitoring: queue a check now, show each device's drift status."""

from __future__ import annotations

from typing import Annotated

import typer

from visionloop.cli.jobs import _fail, _session
from visionloop.cli.settings import load_settings
from visionloop.errors import NotFoundError, VisionloopError

drift_app = typer.Typer(help="Drift monitoring: checks and alarms.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the top-level app."""
    app.add_typer(drift_app, name="drift")


@drift_app.command("check")
def drift_check(
    device: Annotated[
        str | None, typer.Option(help="Device name (default: every enabled device).")
    ] = None,
) -> None:
    """Queue a drift check now; a worker runs it. Prints the job id alone on the last line."""
    from visionloop.monitoring.jobs import queue_check
    from visionloop.server.store import devices as device_store

    settings = load_settings()
    try:
        with _session(settings) as session:
            devices = [d for d in device_store.list_devices(session) if d.disabled_at is None]
            if device is not None:
                devices = [d for d in devices if d.name == device]
                if not devices:
                    raise NotFoundError(f"no enabled device named {device!r}")
            job_id = queue_check(
                session, settings=settings, device_ids=[d.id for d in devices], created_by="cli"
            )
    except VisionloopError as exc:
        raise _fail(exc) from exc
    if job_id is None:
        raise _fail(NotFoundError("no enabled device to check"))
    typer.echo(f"queued a drift_check job for {', '.join(d.name for d in devices)}:")
    typer.echo(str(job_id))


STATE_WORDS = {
    "alarm": "ALARM",
    "drifted": "drifted (no alarm yet)",
    "inconclusive": "inconclusive",
    "clean": "no drift",
    "not_checked": "not checked yet",
}
"""The words for ``store.drift.device_state``: the same as the dashboard's."""


@drift_app.command("status")
def drift_status() -> None:
    """Each device: its drift state (alarm open since when, drifted, inconclusive and why, no
    drift), latest check, its share and drifted features, and why the last alarm closed."""
    from rich.console import Console
    from rich.table import Table

    from visionloop.server.store import drift as drift_store

    settings = load_settings()
    table = Table("device", "drift", "since (UTC)", "last check (UTC)", "drifted", "features")
    notes: list[str] = []
    with _session(settings) as session:
        for s in drift_store.statuses(session):
            state = drift_store.device_state(s)
            since = s.alarm.opened_at if state == "alarm" and s.alarm else None
            last = s.last_check
            counted = last is not None and last.verdict != drift_store.Verdict.INCONCLUSIVE
            table.add_row(
                s.device.name,
                STATE_WORDS.get(state, state),
                since.strftime("%Y-%m-%d %H:%M") if since else "",
                last.checked_at.strftime("%Y-%m-%d %H:%M:%S") if last else "never",
                f"{last.drifted_features}/{len(last.features)}" if last and counted else "",
                ", ".join(f["feature"] for f in last.features if f["drifted"])
                if last and counted
                else "",
            )
            if last is not None and last.verdict_reason:
                notes.append(f"{s.device.name}: latest check {last.verdict}: {last.verdict_reason}")
            if s.alarm is not None and not s.alarm.is_open and s.alarm.close_reason:
                notes.append(f"{s.device.name}: alarm closed: {s.alarm.close_reason}")
    console = Console()
    console.print(table)
    for note in notes:
        console.print(note, markup=False)
