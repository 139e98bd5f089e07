"""CLI commands of the server: serve, db upgrade, users, devices and the one-command demo.

FastAPI, SQLAlchemy and uvicorn are imported inside the commands so ``visionloop --help`` stays
fast.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterator
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

    from visionloop.server.auth import Role
    from visionloop.server.store.people import Actor


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
    from visionloop.server.model_catalog import catalog_of

    app = create_app(load_settings())
    # Everything imported and built so far lives as long as the process: moving it out of the
    # collector's reach makes each full collection cheap (ingest allocates thousands of objects a
    # batch; without this, collections cost ~1.5 ms of every 100-frame batch).
    gc.collect()
    gc.freeze()
    # MLflow's import and start take seconds: pay them now, beside the server, not in a request.
    catalog_of(app).start_warming()
    return app


def _run_server(
    settings: Settings,
    *,
    host: str,
    port: int,
    workers: int,
    reload: bool,
    access_log: bool = True,
) -> None:
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
        access_log=access_log,
        # The app reads proxy headers itself, from VISIONLOOP_TRUSTED_PROXIES only.
        proxy_headers=False,
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


def _cli_actor() -> Actor:
    """The command line as the audit list names it: ``cli:<login>``."""
    import getpass

    from visionloop.server.store.people import Actor

    try:
        login = getpass.getuser()
    except (OSError, KeyError):  # no login name (a container without a passwd entry)
        login = "unknown"
    return Actor(id=None, name=f"cli:{login}")


def _read_password(*, stdin: bool, prompt: str = "Password") -> str:
    if stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password: str = typer.prompt(prompt, hide_input=True, confirmation_prompt=True)
    return password


def _role(value: str, *, name: str = "--role") -> Role:
    from visionloop.server.auth import Role

    try:
        return Role(value.lower())
    except ValueError:
        typer.echo(f"error: {name} must be admin, reviewer or viewer", err=True)
        raise typer.Exit(2) from None


PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input.")
]
UserRef = Annotated[str, typer.Argument(help="User name (or id).")]


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="User name to sign in with.")],
    role: Annotated[
        str, typer.Option(help="admin, reviewer or viewer.", case_sensitive=False)
    ] = "viewer",
    password_stdin: PasswordStdin = False,
    must_change: Annotated[
        bool, typer.Option(help="Make the person change this password at their first sign-in.")
    ] = False,
) -> None:
    """Add a person. The password is prompted for (twice) unless --password-stdin is given; it
    needs 8 to 1,024 characters and may not be one of the most common passwords."""
    from visionloop.server.store import people

    role_value = _role(role)
    password = _read_password(stdin=password_stdin)
    settings = load_settings()
    _migrate(settings)
    try:
        with _write_session(settings) as session:
            user = people.create_user(
                session,
                name=name,
                role=role_value,
                password=password,
                must_change_password=must_change,
                actor=_cli_actor(),
            )
            typer.echo(f"user {user.name!r} added with role {user.role}")
    except VisionloopError as exc:
        raise _fail(exc) from exc


@users_app.command("list")
def users_list(
    deleted: Annotated[bool, typer.Option("--deleted", help="Include deleted people.")] = False,
) -> None:
    """Every person: id, role, status, last sign-in, live sessions and reviews."""
    from rich.console import Console
    from rich.table import Table

    from visionloop.server.store import people

    settings = load_settings()
    _migrate(settings)
    table = Table("id", "name", "role", "status", "last sign-in (UTC)", "sessions", "reviews")
    for column in table.columns[3:5]:
        column.no_wrap = True
    with _write_session(settings) as session:
        for u in people.list_users(session, include_deleted=deleted):
            status = (
                "deleted"
                if u.deleted_at
                else "disabled"
                if u.disabled
                else "must change pw"
                if u.must_change_password
                else "enabled"
            )
            table.add_row(
                str(u.id),
                u.name,
                u.role.value,
                status,
                u.last_sign_in_at.strftime("%Y-%m-%d %H:%M") if u.last_sign_in_at else "never",
                str(u.sessions),
                str(u.reviews),
            )
    Console().print(table)


def _change_user(ref: str, change: Callable[[Session, int, Actor], str]) -> None:
    """Find the person ``ref`` and apply ``change`` (which returns the line to print)."""
    from visionloop.server.store import people

    settings = load_settings()
    _migrate(settings)
    try:
        with _write_session(settings) as session:
            user = people.find_user(session, ref=ref)
            typer.echo(change(session, user.id, _cli_actor()))
    except VisionloopError as exc:
        raise _fail(exc) from exc


@users_app.command("role")
def users_role(
    ref: UserRef, role: Annotated[str, typer.Argument(help="admin, reviewer or viewer.")]
) -> None:
    """Give a person another role (it applies to their next request)."""
    from visionloop.server.store import people

    role_value = _role(role, name="ROLE")

    def change(session: Session, user_id: int, actor: Actor) -> str:
        user = people.set_role(session, user_id=user_id, role=role_value, actor=actor)
        return f"user {user.name!r} now has role {user.role}"

    _change_user(ref, change)


@users_app.command("disable")
def users_disable(ref: UserRef) -> None:
    """Disable a person: their sessions end at once and sign-in is refused."""
    _switch_user(ref, disabled=True)


@users_app.command("enable")
def users_enable(ref: UserRef) -> None:
    """Enable a disabled person."""
    _switch_user(ref, disabled=False)


def _switch_user(ref: str, *, disabled: bool) -> None:
    from visionloop.server.store import people

    def change(session: Session, user_id: int, actor: Actor) -> str:
        user = people.set_disabled(session, user_id=user_id, disabled=disabled, actor=actor)
        return f"user {user.name!r} {'disabled' if disabled else 'enabled'}"

    _change_user(ref, change)


@users_app.command("reset-password")
def users_reset_password(ref: UserRef, password_stdin: PasswordStdin = False) -> None:
    """Give a person a temporary password, which they must change at their next sign-in; their
    sessions end. Without --password-stdin one is generated and printed once, alone on the last
    line."""
    from visionloop.server.passwords import new_temporary_password
    from visionloop.server.store import login_throttle, people

    given = _read_password(stdin=True) if password_stdin else None
    password = given or new_temporary_password()

    def change(session: Session, user_id: int, actor: Actor) -> str:
        user = people.reset_password(session, user_id=user_id, password=password, actor=actor)
        login_throttle.forget_name(session, name=user.name)
        done = f"user {user.name!r} must change the password at the next sign-in"
        return done if given else f"{done}; the temporary password, shown once:\n{password}"

    _change_user(ref, change)


@users_app.command("sign-out")
def users_sign_out(ref: UserRef) -> None:
    """End every session of a person (sign them out everywhere)."""
    from visionloop.server.store import people

    def change(session: Session, user_id: int, actor: Actor) -> str:
        ended = people.sign_out_everywhere(session, user_id=user_id, actor=actor)
        return f"{ended} session(s) ended"

    _change_user(ref, change)


@users_app.command("delete")
def users_delete(
    ref: UserRef,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a person: their password and sessions go; their reviews keep their name, which
    nobody else can take."""
    from visionloop.server.store import people

    if not yes:
        typer.confirm(f"Delete user {ref!r}?", abort=True)

    def change(session: Session, user_id: int, actor: Actor) -> str:
        user = people.delete_user(session, user_id=user_id, actor=actor)
        return f"user {user.name!r} deleted"

    _change_user(ref, change)


@users_app.command("audit")
def users_audit(
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="How many events.")] = 50,
    user: Annotated[str | None, typer.Option(help="Only events about this person.")] = None,
) -> None:
    """Changes to people's accounts, newest first: when, who, what, to whom."""
    from rich.console import Console
    from rich.table import Table

    from visionloop.server.store import people

    settings = load_settings()
    _migrate(settings)
    table = Table("when (UTC)", "who", "action", "person", "detail")
    table.columns[0].no_wrap = True
    try:
        with _write_session(settings) as session:
            target = people.find_user(session, ref=user).id if user else None
            for e in people.list_audit(session, limit=limit, target_id=target):
                table.add_row(
                    e.at.strftime("%Y-%m-%d %H:%M:%S"),
                    e.actor,
                    e.action,
                    e.target or "-",
                    e.detail or "",
                )
    except VisionloopError as exc:
        raise _fail(exc) from exc
    Console().print(table)


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
    """The demo's credentials, kept in ``<data dir>/demo`` (readable by this user only) so that
    a second ``visionloop demo`` on the same store prints them again and its camera reconnects.
    ``*_created``: made this time. ``admin_password`` is None for an admin made otherwise."""

    admin_password: str | None
    device_token: str
    admin_created: bool
    device_created: bool
    oracle_password: str | None = None


DEMO_ORACLE = "oracle"
"""The reviewer the demo's oracle signs in as (``--demo-oracle``)."""


def _demo_setup(
    settings: Settings, *, oracle: bool = False, golden_images: int = 100
) -> DemoCredentials:
    """Make the store ready for the demo: migrate, create the demo admin and device (and the
    oracle's reviewer) when missing, with their credentials kept in ``<data dir>/demo``; a
    device whose kept token is lost gets a new one. Then the baseline model and the golden set."""
    from visionloop.cli.demo import demo_dir, new_password, read_secret, write_secret
    from visionloop.server.auth import Role
    from visionloop.server.store import devices, people

    _migrate(settings)
    folder = demo_dir(settings)
    admin_file, token_file = folder / "admin-password", folder / "device-token"
    oracle_file = folder / "oracle-password"
    admin_created = device_created = False
    oracle_password: str | None = None
    with _write_session(settings) as session:
        admin_password = read_secret(admin_file)
        if not people.user_exists(session, name=DEMO_ADMIN):
            admin_password = new_password()
            people.create_user(session, name=DEMO_ADMIN, role=Role.ADMIN, password=admin_password)
            write_secret(admin_file, admin_password)
            admin_created = True
        device_token = read_secret(token_file)
        found = next((d for d in devices.list_devices(session) if d.name == DEMO_DEVICE), None)
        if found is None:
            _, device_token = devices.create_device(session, name=DEMO_DEVICE)
            write_secret(token_file, device_token)
            device_created = True
        elif device_token is None:
            _, device_token = devices.rotate_token(session, device_id=found.id)
            write_secret(token_file, device_token)
        if oracle:
            oracle_password = read_secret(oracle_file)
            if not people.user_exists(session, name=DEMO_ORACLE):
                oracle_password = new_password()
                people.create_user(
                    session, name=DEMO_ORACLE, role=Role.REVIEWER, password=oracle_password
                )
                write_secret(oracle_file, oracle_password)
    _demo_baseline(settings)
    _demo_golden_set(settings, n=golden_images)
    return DemoCredentials(
        admin_password=admin_password,
        device_token=device_token,
        admin_created=admin_created,
        device_created=device_created,
        oracle_password=oracle_password,
    )


def _demo_baseline(settings: Settings) -> None:
    """An empty model registry gets the shipped baseline as version 1, alias production."""
    from visionloop.shipped import BASELINE_ONNX
    from visionloop.training.registry import Registry, ensure_baseline

    if not BASELINE_ONNX.is_file():
        typer.echo(f"the shipped baseline {BASELINE_ONNX} is missing: the registry starts empty")
        return
    registry = Registry.from_settings(settings)
    version = ensure_baseline(registry)
    if version is not None:
        typer.echo(f"registered {BASELINE_ONNX} as model version {version.version} (production)")


GOLDEN_SEED = 1
"""The demo's golden set: nominal frames of the synthetic line, not the baseline's seed (0)."""


def _demo_golden_set(settings: Settings, *, n: int) -> None:
    """A missing golden set (VISIONLOOP_GOLDEN_SET) is written from the synthetic line: nominal,
    seed 1, every image in the test split, which the promotion gate evaluates."""
    from visionloop.vision.synthetic.dataset import write_dataset

    path = settings.golden_set_path
    if (path / "data.yaml").is_file():
        return
    write_dataset(path, n=n, scenario="nominal", seed=GOLDEN_SEED, splits=(0, 0, 1))
    typer.echo(f"wrote the golden set ({n} nominal frames, seed {GOLDEN_SEED}) to {path}")


def _print_demo_credentials(creds: DemoCredentials, url: str, folder: Path) -> None:
    typer.echo(f"dashboard: {url}/")
    if creds.admin_password is not None:
        made = "created" if creds.admin_created else "kept"
        typer.echo(f"demo admin {made}: user {DEMO_ADMIN!r}, password {creds.admin_password}")
    else:
        typer.echo(
            f"demo admin {DEMO_ADMIN!r} exists (made before its password was kept in {folder})"
        )
    made = "created" if creds.device_created else "kept"
    typer.echo(f"demo device {DEMO_DEVICE!r} {made}; token: {creds.device_token}")
    typer.echo(f"(kept in {folder}, readable by you only: a second `visionloop demo` resumes)")


def demo(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = DEMO_HOST,
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = DEMO_PORT,
    camera: Annotated[
        bool,
        typer.Option(help="Start the simulated camera: an edge agent on the synthetic line."),
    ] = True,
    drift: Annotated[
        str | None,
        typer.Option(
            help=(
                "The camera's drift schedule, NAME:INTENSITY@START+RAMP in frames (default "
                "blur:0.6@900+300: 3 minutes in at 5 FPS)."
            )
        ),
    ] = None,
    fps: Annotated[
        float | None, typer.Option(min=0.1, max=100, help="The camera's frames per second.")
    ] = None,
    demo_oracle: Annotated[
        bool,
        typer.Option(
            "--demo-oracle",
            help="Label the review queue with the synthetic line's ground truth (a reviewer "
            "called 'oracle').",
        ),
    ] = False,
    fast: Annotated[
        bool,
        typer.Option(
            "--fast",
            help=(
                "Tiny retraining rounds (1 epoch at 96 px, 12 labels, a gate that lets it pass) "
                "and an early drift: the first promotion within minutes, for tests."
            ),
        ),
    ] = False,
) -> None:
    """Start the whole loop on one machine: server and dashboard on :8000, a job worker, a
    simulated camera whose line drifts a few minutes in and, with --demo-oracle, a reviewer
    that labels with the ground truth. Prints the dashboard URL and the credentials (kept in
    <data dir>/demo: a second run resumes on the same store). Ctrl-C (or SIGTERM) stops it all.

    Retraining settings are the demo's (60 labels, a 5-minute cooldown, drift checks every
    minute) wherever VISIONLOOP_* variables do not set them.
    """
    from visionloop.cli.demo import Children, apply_demo_env, demo_camera, demo_dir, run_oracle
    from visionloop.errors import InvalidInputError

    applied = apply_demo_env(fast=fast)
    settings = load_settings()
    cam = demo_camera(fast=fast, schedule=drift, fps=fps)
    try:
        drift_in = cam.drift_starts_s()
    except InvalidInputError as exc:
        typer.echo(f"error: --drift: {exc}", err=True)
        raise typer.Exit(2) from exc
    creds = _demo_setup(settings, oracle=demo_oracle, golden_images=cam.golden_images)
    url = f"http://{host}:{port}"
    folder = demo_dir(settings)
    _print_demo_credentials(creds, url, folder)
    if applied:
        typer.echo("demo settings: " + " ".join(f"{k}={v}" for k, v in sorted(applied.items())))
    _leave_on_signals()
    children = Children(folder / "logs", announce=typer.echo)
    try:
        children.start("job worker", ["worker"])
        if camera:
            typer.echo(
                f"camera {DEMO_DEVICE!r}: the synthetic line at {cam.fps:g} FPS, drift "
                f"{cam.schedule} (begins {drift_in / 60:.1f} min after it starts)"
            )
            args = cam.args(url, folder / "device-token", folder / "edge" / "outbox.db")
            children.when_ready(url, "camera", lambda: children.start("camera", args))
        if demo_oracle and creds.oracle_password is not None:
            password = creds.oracle_password
            children.when_ready(
                url,
                "oracle",
                lambda: run_oracle(
                    url,
                    username=DEMO_ORACLE,
                    password=password,
                    camera=cam,
                    stop=children.closing,
                    announce=typer.echo,
                ),
            )
        # No access log: the camera and the oracle would bury the lines above in requests.
        _run_server(settings, host=host, port=port, workers=1, reload=False, access_log=False)
    finally:
        children.stop_all()


def _leave_on_signals() -> None:
    """Ctrl-C and SIGTERM end the server's block with SystemExit, so the children are stopped.

    uvicorn handles SIGINT and SIGTERM itself, then re-raises them once it has shut down: with
    Python's default SIGTERM action the process would die there, before its children stop.
    """

    def leave(signum: int, _frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGINT, leave)
    signal.signal(signal.SIGTERM, leave)
