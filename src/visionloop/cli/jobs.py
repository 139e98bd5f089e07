"""CLI commands of the jobs queue: the worker; queue, list, show and cancel jobs."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from visionloop.cli.settings import load_settings
from visionloop.config import Settings
from visionloop.errors import VisionloopError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from visionloop.server.models import Job

jobs_app = typer.Typer(help="Background jobs: queue, list, show, cancel.", no_args_is_help=True)

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the top-level app."""
    app.command("worker")(worker_command)
    app.add_typer(jobs_app, name="jobs")


def _fail(exc: VisionloopError) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(1)


@contextmanager
def _session(settings: Settings) -> Iterator[Session]:
    """A write transaction over the settings' database (migrated first), committed on success."""
    from sqlalchemy.orm import Session

    from visionloop.server.db import create_db_engine, write_engine
    from visionloop.server.migrate import upgrade

    engine = create_db_engine(settings.database_url, pool_size=1)
    try:
        upgrade(engine)
        with Session(write_engine(engine), expire_on_commit=False) as session, session.begin():
            yield session
    finally:
        engine.dispose()


# --- the worker


def worker_command(
    kinds: Annotated[
        str | None,
        typer.Option(help="Comma-separated job kinds to run (default: every kind)."),
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="Run one queued job (if any), then exit.")
    ] = False,
) -> None:
    """Claim and run queued jobs, each in a subprocess; run periodic tasks.

    Two lanes run side by side, one job at a time each: drift checks and alarm webhooks, and
    the long jobs (train, evaluate, quantize), so monitoring goes on while a model trains.
    Ctrl-C or SIGTERM stops the running jobs' processes and puts the jobs back in the queue.
    Start several workers (on several machines, against the same database) to run more jobs
    side by side.
    """
    import logging

    from visionloop.jobs.kinds import default_kinds, lanes
    from visionloop.jobs.scheduler import Scheduler, default_schedule
    from visionloop.jobs.worker import Worker, run_lanes
    from visionloop.server.db import create_db_engine
    from visionloop.server.migrate import upgrade

    settings = load_settings()
    show_bar = once and sys.stdout.isatty()
    logging.basicConfig(  # a progress bar stands for the worker's own lines
        level=logging.WARNING if show_bar else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    try:
        chosen = default_kinds()
        if kinds:
            chosen = chosen.only([k.strip() for k in kinds.split(",") if k.strip()])
    except VisionloopError as exc:
        raise _fail(exc) from exc
    # Two lanes, each with a read and a write session.
    engine = create_db_engine(settings.database_url, pool_size=4)
    upgrade(engine)
    with _progress_bar(show_bar) as on_progress:
        # One job with --once; else a lane per group of kinds, the scheduler in the first
        # (the monitoring lane, whose jobs take seconds: periodic tasks stay on time).
        workers = [
            Worker(
                engine=engine,
                settings=settings,
                kinds=lane,
                scheduler=Scheduler(default_schedule(settings)) if i == 0 else None,
                on_progress=on_progress,
            )
            for i, lane in enumerate([chosen] if once else lanes(chosen))
        ]

        def stop(signum: int, _frame: FrameType | None) -> None:
            logging.getLogger(__name__).info("%s: stopping", signal.Signals(signum).name)
            for worker in workers:
                worker.stop()

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        for worker in workers:
            typer.echo(f"worker {worker.worker_id}: kinds {', '.join(worker.kinds)}")
        try:
            ran = workers[0].run(once=True) if once else run_lanes(workers)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            engine.dispose()
    if once:
        typer.echo("ran 1 job" if ran else "no job was queued")


@contextmanager
def _progress_bar(enabled: bool) -> Iterator[Any]:
    """A rich progress bar fed by the worker's progress callback (None when disabled)."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("job {task.fields[job]}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
    ) as progress:
        tasks: dict[int, Any] = {}

        def on_progress(job_id: int, fraction: float, message: str) -> None:
            if job_id not in tasks:
                tasks[job_id] = progress.add_task(message, total=1.0, job=job_id)
            progress.update(tasks[job_id], completed=fraction, description=message)

        yield on_progress


# --- jobs add/list/show/cancel


def _parse_params(pairs: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            typer.echo(f"error: parameter {pair!r} is not KEY=VALUE", err=True)
            raise typer.Exit(2)
        params[key] = value
    return params


@jobs_app.command("add")
def jobs_add(
    kind: Annotated[str, typer.Argument(help="Job kind, e.g. evaluate.")],
    params: Annotated[
        list[str] | None,
        typer.Argument(help="Parameters as KEY=VALUE, e.g. model_version=2 dataset=/data/x."),
    ] = None,
    max_attempts: Annotated[
        int | None, typer.Option(min=1, max=20, help="Default VISIONLOOP_JOB_MAX_ATTEMPTS.")
    ] = None,
) -> None:
    """Queue a job; a worker runs it. Prints the job id alone on the last line."""
    from visionloop.jobs.kinds import default_kinds
    from visionloop.server.store import jobs as job_store

    settings = load_settings()
    try:
        job_kind = default_kinds().kind(kind)
        valid = job_kind.validate(_parse_params(params or []))
        with _session(settings) as session:
            job = job_store.enqueue(
                session,
                kind=job_kind.name,
                params=valid,
                created_by="cli",
                max_attempts=max_attempts or settings.job_max_attempts,
            )
    except VisionloopError as exc:
        raise _fail(exc) from exc
    if job.kind == "train":
        _warn_few_labels(settings)
    typer.echo(f"queued {job.kind} job:")
    typer.echo(str(job.id))


def _warn_few_labels(settings: Settings) -> None:
    """A train job queued by hand with fewer labels than the retraining policy's minimum: say
    so, with the numbers, on stderr (the job stays queued)."""
    from visionloop.server.retraining import label_warning, retraining_status
    from visionloop.training.registry import Registry

    production = Registry.from_settings(settings).production()
    with _session(settings) as session:
        warning = label_warning(
            retraining_status(session, settings=settings, production=production)
        )
    if warning is not None:
        typer.echo(f"warning: {warning}", err=True)


def _when(job: Job) -> str:
    return job.created_at.strftime("%Y-%m-%d %H:%M:%S")


@jobs_app.command("list")
def jobs_list(
    kind: Annotated[str | None, typer.Option(help="Only this kind.")] = None,
    status: Annotated[
        str | None, typer.Option(help=f"Only this status: {', '.join(STATUSES)}.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="At most this many.")] = 20,
) -> None:
    """The newest jobs: id, kind, status, progress, created, by whom."""
    from rich.console import Console
    from rich.table import Table

    from visionloop.server.store import jobs as job_store

    if status is not None and status not in STATUSES:
        typer.echo(f"error: --status must be one of {', '.join(STATUSES)}", err=True)
        raise typer.Exit(2)
    settings = load_settings()
    table = Table("id", "kind", "status", "progress", "message", "created (UTC)", "by", "attempts")
    with _session(settings) as session:
        page = job_store.list_jobs(
            session,
            kind=kind,
            status=job_store.JobStatus(status) if status else None,
            limit=limit,
        )
        for job in page.jobs:
            table.add_row(
                str(job.id),
                job.kind,
                job.status,
                f"{job.progress:.0%}",
                job.error or job.message,
                _when(job),
                job.created_by,
                f"{job.attempts}/{job.max_attempts}",
            )
    Console().print(table)


@jobs_app.command("show")
def jobs_show(
    job_id: Annotated[int, typer.Argument(help="Job id.")],
    full_log: Annotated[bool, typer.Option("--log", help="Print the whole log.")] = False,
) -> None:
    """One job: status, progress, result or error, and its log tail (or whole log)."""
    import json

    from visionloop.server.store import jobs as job_store

    settings = load_settings()
    try:
        with _session(settings) as session:
            job = job_store.get_job(session, job_id=job_id)
            log = job_store.job_log(session, job_id=job_id) if full_log else job.log_tail
    except VisionloopError as exc:
        raise _fail(exc) from exc
    typer.echo(f"job {job.id} ({job.kind}) {job.status} {job.progress:.0%} {job.message}")
    typer.echo(f"params: {json.dumps(job.params)}")
    typer.echo(
        f"created {_when(job)} UTC by {job.created_by}; attempts {job.attempts}/"
        f"{job.max_attempts}; worker {job.worker_id or '-'}"
    )
    if job.error:
        typer.echo(f"error: {job.error}")
    if job.result is not None:
        typer.echo(f"result: {json.dumps(job.result, indent=2)}")
    if log:
        typer.echo("log:" if full_log else "log (last lines):")
        typer.echo(log.rstrip("\n"))


@jobs_app.command("cancel")
def jobs_cancel(job_id: Annotated[int, typer.Argument(help="Job id.")]) -> None:
    """Cancel a job: a queued one never starts; a running one is stopped within seconds."""
    from visionloop.server.store import jobs as job_store

    settings = load_settings()
    try:
        with _session(settings) as session:
            job = job_store.request_cancel(session, job_id=job_id)
    except VisionloopError as exc:
        raise _fail(exc) from exc
    if job.status == "cancelled":
        typer.echo(f"job {job.id} cancelled")
    else:
        typer.echo(f"job {job.id} is running: its worker will stop it within seconds")
