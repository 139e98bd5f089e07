"""CLI commands of the server: serve, db upgrade, users, devices and the one-command demo.

FastAPI, SQLAlchemy and uvicorn are imported inside the commands so ``visionloop --help`` stays
fast.
"""

from __future__ import annotations

import secrets
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from visionloop.cli.settings import load_settings
from visionloop.config import Settings
from visionloop.errors import VisionloopError

if TYPE_CHECKING:
    from fastapi import FastAPI
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session

    from visionloop.training.registry import Registry

DEMO_ADMIN = "admin"
DEMO_DEVICE = "demo-cam"
DEMO_HOST = "127.0.0.1"
DEMO_PORT = 8000

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
users_app = typer.Typer(help="People who sign in and their roles.", no_args_is_help=True)
devices_app = typer.Typer(help="Edge devices and their tokens.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the top-level app."""
    app.command()(serve)
    app.command()(demo)
    app.add_typer(db_app, name="db")
    app.add_typer(users_app, name="users")
    app.add_typer(devices_app, name="devices")


# --- wiring


def _engine(settings: Settings) -> Engine:
    from visionloop.server.db import create_db_engine

    return create_db_engine(settings.database_url, pool_size=1)


def _migrate(settings: Settings) -> None:
    """Apply pending migrations; a database that cannot be opened is a one-line error."""
    from sqlalchemy.exc import OperationalError

    from visionloop.server.db import connect_error
    from visionloop.server.migrate import upgrade

    engine = _engine(settings)
    try:
        upgrade(engine)
    except OperationalError as exc:
        raise connect_error(settings.database_url, exc) from exc
    finally:
        engine.dispose()


@contextmanager
def _write_session(settings: Settings) -> Iterator[Session]:
    """A session in one transaction (committed on success) over the settings' database."""
    from sqlalchemy.orm import Session

    from visionloop.server.db import write_engine

    engine = _engine(settings)
    try:
        with Session(write_engine(engine), expire_on_commit=False) as session, session.begin():
            yield session
    finally:
        engine.dispose()


def _fail(exc: VisionloopError) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(1)


def app_factory() -> FastAPI:
    """Build the server app from the environment (uvicorn calls this in each worker process)."""
    import gc

    from visionloop.server.app import create_app

    app = create_app(load_settings())
    # Everything imported and built so far lives as long as the process: moving it out of the
    # collector's reach makes each full collection cheap (ingest allocates thousands of objects a
    # batch; without this, collections cost ~1.5 ms of every 100-frame batch).
    gc.collect()
    gc.freeze()
    return app


def _run_server(settings: Settings, *, host: str, port: int, workers: int, reload: bool) -> None:
    import uvicorn

    _migrate(settings)
    typer.echo(f"visionloop server on http://{host}:{port} (database {_safe_url(settings)})")
    uvicorn.run(
        "visionloop.cli.server:app_factory",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        reload=reload,
        log_level="info",
        proxy_headers=True,
    )


def _safe_url(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.database_url).render_as_string(hide_password=True)


# --- serve, db


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Server processes.")] = 1,
    reload: Annotated[bool, typer.Option(help="Restart on code changes (development).")] = False,
) -> None:
    """Migrate the database, then serve the API with uvicorn."""
    settings = load_settings()
    _run_server(settings, host=host, port=port, workers=workers, reload=reload)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration to the configured database (SQLite or PostgreSQL)."""
    from visionloop.server.migrate import current_revision

    settings = load_settings()
    _migrate(settings)
    engine = _engine(settings)
    try:
        typer.echo(f"database {_safe_url(settings)} at revision {current_revision(engine)}")
    finally:
        engine.dispose()


# --- users


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="User name to sign in with.")],
    role: Annotated[
        str, typer.Option(help="admin, reviewer or viewer.", case_sensitive=False)
    ] = "viewer",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Add a person. The password is prompted for (twice) unless --password-stdin is given."""
    from visionloop.server.auth import Role
    from visionloop.server.store import people

    try:
        role_value = Role(role.lower())
    except ValueError:
        typer.echo("error: --role must be admin, reviewer or viewer", err=True)
        raise typer.Exit(2) from None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    settings = load_settings()
    _migrate(settings)
    try:
        with _write_session(settings) as session:
            user = people.create_user(session, name=name, role=role_value, password=password)
            typer.echo(f"user {user.name!r} added with role {user.role}")
    except VisionloopError as exc:
        raise _fail(exc) from exc


# --- devices


@devices_app.command("add")
def devices_add(name: Annotated[str, typer.Argument(help="A unique device name.")]) -> None:
    """Register a device. Its token is printed once, alone on the last line."""
    from visionloop.server.store import devices

    settings = load_settings()
    _migrate(settings)
    try:
        with _write_session(settings) as session:
            device, token = devices.create_device(session, name=name)
            typer.echo(f"device {device.name!r} added (id {device.id}); its token, shown once:")
            typer.echo(token)
    except VisionloopError as exc:
        raise _fail(exc) from exc


@devices_app.command("list")
def devices_list() -> None:
    """Every device: id, status, last seen and model version."""
    from rich.console import Console
    from rich.table import Table

    from visionloop.server.store import devices

    settings = load_settings()
    _migrate(settings)
    table = Table("id", "name", "status", "last seen (UTC)", "model", "fps", "outbox", "clock")
    with _write_session(settings) as session:
        for d in devices.list_devices(session):
            hb = d.heartbeat or {}
            table.add_row(
                str(d.id),
                d.name,
                "disabled" if d.disabled_at else "enabled",
                d.last_seen_at.strftime("%Y-%m-%d %H:%M:%S") if d.last_seen_at else "never",
                d.model_version or "-",
                f"{hb['fps']:.1f}" if "fps" in hb else "-",
                str(hb.get("outbox_backlog", "-")),
                f"{d.clock_offset_s:+.1f} s" if d.clock_offset_s is not None else "-",
            )
    Console().print(table)


@devices_app.command("disable")
def devices_disable(
    device: Annotated[str, typer.Argument(help="Device name or id.")],
) -> None:
    """Disable a device: its tokens are refused (403) from now on."""
    _switch_device(device, enable=False)


@devices_app.command("enable")
def devices_enable(
    device: Annotated[str, typer.Argument(help="Device name or id.")],
) -> None:
    """Enable a disabled device: its current token works again."""
    _switch_device(device, enable=True)


def _switch_device(ref: str, *, enable: bool) -> None:
    from visionloop.server.store import devices

    settings = load_settings()
    _migrate(settings)
    switch = devices.enable_device if enable else devices.disable_device
    try:
        with _write_session(settings) as session:
            found = devices.find_device(session, ref=ref)
            switch(session, device_id=found.id)
            typer.echo(
                f"device {found.name!r} (id {found.id}) {'enabled' if enable else 'disabled'}"
            )
    except VisionloopError as exc:
        raise _fail(exc) from exc


@devices_app.command("rotate")
def devices_rotate(
    device: Annotated[str, typer.Argument(help="Device name or id.")],
) -> None:
    """Give a device a new token and revoke the old one. The new token is printed once, alone on
    the last line; running servers refuse the old one within two seconds."""
    from visionloop.server.store import devices

    settings = load_settings()
    _migrate(settings)
    try:
        with _write_session(settings) as session:
            found = devices.find_device(session, ref=device)
            _, token = devices.rotate_token(session, device_id=found.id)
            typer.echo(f"device {found.name!r} (id {found.id}) has a new token, shown once:")
            typer.echo(token)
    except VisionloopError as exc:
        raise _fail(exc) from exc


# --- demo


@dataclass(frozen=True, slots=True)
class DemoCredentials:
    """What ``_demo_setup`` created this time (None where it already existed)."""

    admin_password: str | None
    device_token: str | None


def _demo_setup(settings: Settings) -> DemoCredentials:
    """Make the store ready for the demo: migrate, then create the demo admin and device when
    they are missing. Later set-up steps (a baseline model in the registry…) go here too."""
    from visionloop.server.auth import Role
    from visionloop.server.store import devices, people

    _migrate(settings)
    admin_password: str | None = None
    device_token: str | None = None
    with _write_session(settings) as session:
        if not people.user_exists(session, name=DEMO_ADMIN):
            admin_password = secrets.token_urlsafe(12)
            people.create_user(session, name=DEMO_ADMIN, role=Role.ADMIN, password=admin_password)
        if not any(d.name == DEMO_DEVICE for d in devices.list_devices(session)):
            _, device_token = devices.create_device(session, name=DEMO_DEVICE)
    _demo_baseline(settings)
    _demo_golden_set(settings)
    return DemoCredentials(admin_password=admin_password, device_token=device_token)


def _demo_baseline(settings: Settings) -> None:
    """An empty model registry gets the shipped baseline as version 1, alias production."""
    from visionloop.training.registry import BASELINE_ONNX, Registry, ensure_baseline

    if not BASELINE_ONNX.is_file():
        typer.echo(f"no {BASELINE_ONNX} here: the registry starts empty")
        return
    registry = Registry.from_settings(settings)
    version = ensure_baseline(registry)
    if version is not None:
        typer.echo(f"registered {BASELINE_ONNX} as model version {version.version} (production)")
    _demo_baseline_profile(registry)


def _demo_baseline_profile(registry: Registry) -> None:
    """The shipped baseline's drift reference profile (``models/baseline/drift_profile.json``:
    nominal frames of the synthetic line it was trained on, run through it), stored with its
    version when that has none yet: a store from before profiles gets one too. Shipped rather
    than computed here, so that the demo starts at once."""
    from visionloop.monitoring.profile import read_profile

    shipped = BASELINE_PROFILE
    baseline = [v for v in registry.versions() if v.tags.get("origin") == "baseline"]
    if not baseline or "drift_profile_sha256" in baseline[0].tags or not shipped.is_file():
        return
    frames = len(read_profile(shipped))
    registry.add_drift_profile(
        baseline[0].version, shipped, frames=frames, source="models/baseline (synthetic line)"
    )
    typer.echo(f"version {baseline[0].version}: drift reference profile of {frames} frames")


BASELINE_PROFILE = Path("models/baseline/drift_profile.json")
"""The baseline's drift profile: ``visionloop models register models/baseline/model.onnx
--reference-data synthetic`` computes the same (500 random nominal frames, seed 0)."""


GOLDEN_IMAGES = 100
GOLDEN_SEED = 1
"""The demo's golden set: nominal frames of the synthetic line, not the baseline's seed (0)."""


def _demo_golden_set(settings: Settings) -> None:
    """A missing golden set (VISIONLOOP_GOLDEN_SET) is written from the synthetic line: nominal,
    seed 1, every image in the test split, which the promotion gate evaluates."""
    from visionloop.vision.synthetic.dataset import write_dataset

    path = settings.golden_set_path
    if (path / "data.yaml").is_file():
        return
    write_dataset(path, n=GOLDEN_IMAGES, scenario="nominal", seed=GOLDEN_SEED, splits=(0, 0, 1))
    typer.echo(
        f"wrote the golden set ({GOLDEN_IMAGES} nominal frames, seed {GOLDEN_SEED}) to {path}"
    )


def _print_demo_credentials(creds: DemoCredentials, url: str) -> None:
    if creds.admin_password is not None:
        typer.echo(f"demo admin created: user {DEMO_ADMIN!r}, password {creds.admin_password}")
    else:
        typer.echo(f"demo admin {DEMO_ADMIN!r} exists (its password was printed when created)")
    if creds.device_token is not None:
        typer.echo(f"demo device {DEMO_DEVICE!r} created; token: {creds.device_token}")
        typer.echo(
            f"  try: visionloop edge --server {url} --token {creds.device_token} "
            "--source synthetic --max-frames 300"
        )
    else:
        typer.echo(
            f"demo device {DEMO_DEVICE!r} exists (its token was printed when created; "
            "`visionloop devices add NAME` makes another)"
        )
    if creds.admin_password is not None or creds.device_token is not None:
        typer.echo("These credentials are shown once: keep them.")


def demo(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = DEMO_HOST,
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = DEMO_PORT,
) -> None:
    """Set up a demo store (admin, device; credentials printed once), start a job worker and serve
    on :8000. Ctrl-C (or SIGTERM) stops the server and the worker."""
    settings = load_settings()
    creds = _demo_setup(settings)
    _print_demo_credentials(creds, f"http://{host}:{port}")
    with _worker_beside():
        _run_server(settings, host=host, port=port, workers=1, reload=False)


@contextmanager
def _worker_beside() -> Iterator[None]:
    """A ``visionloop worker`` process for as long as the block runs (the server, which returns
    on Ctrl-C or SIGTERM); then it is stopped (SIGTERM: its job goes back to the queue) and
    waited for."""
    import subprocess

    # uvicorn handles SIGINT and SIGTERM itself, then re-raises them once it has shut down: with
    # Python's default SIGTERM action the process would die there, before the worker is stopped.
    def leave(signum: int, _frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGINT, leave)
    signal.signal(signal.SIGTERM, leave)
    worker = subprocess.Popen([sys.executable, "-m", "visionloop", "worker"])
    typer.echo(f"job worker started (pid {worker.pid})")
    try:
        yield
    finally:
        if worker.poll() is None:
            worker.terminate()
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
