"""The README's shell examples run, top to bottom, as a newcomer on a fresh clone would paste them.

Every ```bash block of README.md is run in order in one bash process (``tests/support/readme.py``),
in a temporary copy of the repository whose ``.venv`` is the interpreter running the tests, with
the default relative data dir (``./var`` of that copy, as a user gets it). Every command runs and
must succeed, except the ones the tables below name, each with its reason:

- ``SKIPS``: commands that cannot run here (a webcam, an RTSP camera, a GPU, hours of training)
  or that other tests run;
- ``SERVES``: long-lived servers, started in the background and checked to answer; the demo
  server (``make demo``) stays up for the examples that talk to it on :8000;
- ``STDINS``: answers to prompts;
- ``FAILS``: commands that show a mistake, which must exit non-zero;
- ``SUBS``: substitutions that shrink sizes (images, frames, epochs) and move ports and the
  PostgreSQL database name to free ones.

Every entry must match a README command (``test_every_rule_matches_a_readme_command``), so the
tables cannot go stale. A block added to the README runs by default. When you add one:

- write it to run on a fresh clone after the blocks above it (make what it uses, in a folder
  of its own; a server on :8000 is the demo's, whose store is ``./var``);
- a command that cannot run here gets a ``SKIPS`` entry with its reason, a server a ``SERVES``
  entry, a prompt a ``STDINS`` entry, a mistake shown on purpose a ``FAILS`` entry; a size that
  takes more than a few seconds a ``SUBS`` entry (patterns match the README as written);
- example output goes in a plain ``` block, not ```bash (a bash block is run).

A command that runs for more than ``command_timeout`` (300 s) stops the run with its line.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

import visionloop
from support.db import PG_ADMIN_URL, _postgres_reachable
from support.readme import (
    Command,
    Fails,
    Plan,
    Rules,
    Serve,
    Skip,
    Stdin,
    Sub,
    build_script,
    commands_of,
    copy_checkout,
    run_script,
    split_commands,
)

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
SRC = Path(visionloop.__file__).resolve().parents[1]  # the code under test

_PG = make_url(PG_ADMIN_URL)
PG_HOST = _PG.host or "127.0.0.1"
PG_PORT = _PG.port or 5432
PG_USER = _PG.username or "postgres"

SKIPS = [
    Skip(r"^make test\b", "the test suite itself, of which this test is a part"),
    Skip(r"^dvc repro\b", "hours on 2 cores: tests/docs/test_dvc.py runs it with tiny parameters"),
    Skip(r"^dvc exp run .*train\.device=0", "needs a CUDA GPU"),
    Skip(r"^dvc metrics show\b", "needs a finished `dvc repro`: tests/docs/test_dvc.py checks it"),
    Skip(r"^visionloop train .*--device 0", "needs a CUDA GPU"),
    Skip(r"--source webcam:", "needs a webcam"),
    Skip(r"--source rtsp://", "needs an RTSP camera"),
]

SERVES = [
    # make would (re)install into .venv first; `visionloop demo` is what it then runs.
    Serve(r"^make demo\b", "the demo server the later examples talk to on :8000", keep=True),
    Serve(r"^visionloop serve --host 0\.0\.0\.0", "serves until Ctrl-C"),
    Serve(r"^VISIONLOOP_DATABASE_URL=postgresql\S* visionloop serve", "serves until Ctrl-C"),
    Serve(r"^visionloop serve --host 127\.0\.0\.1", "serves until Ctrl-C"),
    Serve(r"^visionloop demo --port", "serves until Ctrl-C"),
    Serve(r"^visionloop mlflow-ui\b", "MLflow's server, until Ctrl-C", ready_path="/health"),
]

TEST_PASSWORD = "correct-horse-battery"
STDINS = [
    Stdin(
        r"^visionloop users add ada --role admin",
        f"{TEST_PASSWORD}\n{TEST_PASSWORD}\n",
        "the password prompt, answered twice",
    ),
]

SUBS = [
    Sub(r"^make demo\b", "visionloop demo", "what `make demo` runs once .venv is installed"),
    Sub(
        r"^visionloop demo\b",
        "visionloop demo --no-camera",
        "no simulated camera: the examples count the frames they send themselves",
    ),
    # ports: the servers listen on a free port, $VL_PORT, and the clients talk to it
    Sub(r"127\.0\.0\.1:8000\b", "127.0.0.1:$VL_PORT", "the demo server's free port"),
    Sub(r"--port 8000\b", "--port $VL_PORT", "a free port"),
    Sub(
        r"(visionloop (?:serve|demo|mlflow-ui))(?![^#\n]*--port)",
        r"\1 --port $VL_PORT",
        "a free port instead of the default",
    ),
    # PostgreSQL: a database of this run's own, on the test server
    Sub(
        r"-h 127\.0\.0\.1 -U postgres visionloop\b",
        f"-h {PG_HOST} -p {PG_PORT} -U {PG_USER} $VL_PGDB",
        "this run's own database",
    ),
    Sub(
        r"postgres@127\.0\.0\.1/visionloop\b",
        f"{PG_USER}@{PG_HOST}:{PG_PORT}/$VL_PGDB",
        "this run's own database",
    ),
    # sizes: seconds, not minutes
    Sub(r"--n \d{3,}\b", "--n 20", "20 images (train 16, val 2, test 2 by default)"),
    Sub(r"--frames 900\b", "--frames 30", "30 frames"),
    Sub(r"(?<![\w-])--frames 300\b", "--frames 20", "20 frames"),
    Sub(r"--max-frames 300\b", "--max-frames 20", "20 frames"),
    Sub(r"--epochs \d+", "--epochs 1 --imgsz 160 --batch 8", "one small epoch"),
]

FAILS: list[Fails] = []

RULES = Rules(skips=SKIPS, serves=SERVES, stdins=STDINS, fails=FAILS, subs=SUBS)


# --- the runner's own pieces ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        pytest.param("a\nb  # note\n", [(1, "a"), (2, "b  # note")], id="lines"),
        pytest.param("# only a comment\n\na", [(3, "a")], id="comments-and-blanks"),
        pytest.param("a \\\n  --x\nb", [(1, "a \\\n  --x"), (3, "b")], id="continuation"),
        pytest.param("c -d '{\"a\":\n 1}'\nd", [(1, "c -d '{\"a\":\n 1}'"), (3, "d")], id="sq"),
        pytest.param('e "x\ny"\nf', [(1, 'e "x\ny"'), (3, "f")], id="dq"),
        pytest.param(
            'T=$(g | tail -n 1)\nh "$T"', [(1, "T=$(g | tail -n 1)"), (2, 'h "$T"')], id="subst"
        ),
        pytest.param("i 'it''s # not'\n", [(1, "i 'it''s # not'")], id="hash-in-quotes"),
        pytest.param("j x#y\n", [(1, "j x#y")], id="hash-inside-a-word"),
    ],
)
def test_split_commands(block: str, expected: list[tuple[int, str]]) -> None:
    assert [(c.line, c.text) for c in split_commands(block)] == expected


@pytest.mark.parametrize(
    "block",
    [
        pytest.param("cat <<EOF\nx\nEOF\n", id="heredoc"),
        pytest.param("echo 'open\n", id="unterminated-quote"),
    ],
)
def test_split_commands_refuses_what_it_cannot_follow(block: str) -> None:
    with pytest.raises(ValueError):
        split_commands(block)


def test_expected_failures_must_fail(tmp_path: Path) -> None:
    markdown = "```bash\nfalse  # a mistake\ntrue   # not one\necho after\n```\n"
    rules = Rules(fails=[Fails(r"^false", "shows an error"), Fails(r"^true", "wrongly listed")])
    plan = build_script(markdown, rules, work=tmp_path)
    result = run_script(plan, work=tmp_path, cwd=tmp_path, env=dict(os.environ), timeout=30)
    assert result.returncode != 0
    assert "### failed, as expected" in result.output
    assert "### expected to fail, but exited 0" in result.output
    assert "### FAILED: README:3" in result.output
    assert "### README:4" not in result.output  # the run stops at the first failure


def test_a_command_that_does_not_return_stops_the_run_with_its_line(tmp_path: Path) -> None:
    markdown = "```bash\necho first\nsleep 600   # a server nobody declared\necho never\n```\n"
    plan = build_script(markdown, Rules(), work=tmp_path)
    result = run_script(
        plan, work=tmp_path, cwd=tmp_path, env=dict(os.environ), timeout=60, command_timeout=2
    )
    assert result.returncode != 0
    assert "### STOPPED: README:3 ran for more than 2 s" in result.output
    assert "### README:4" not in result.output
    assert result.seconds < 30


def test_only_bash_blocks_are_commands() -> None:
    markdown = "x\n```bash\na\n```\n```\nsummary: not a command\n```\n```python\nb\n```\n"
    assert commands_of(markdown) == [Command(line=3, text="a")]


def _plan(tmp_path: Path) -> Plan:
    return build_script(README.read_text(), RULES, work=tmp_path)


def test_every_rule_matches_a_readme_command(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    assert plan.unmatched(RULES) == [], "stale entries: no README command matches them"


# --- the README, run ----------------------------------------------------------------------------


def _environment(copy: Path, tmp_path: Path, pg_db: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VISIONLOOP_", "MLFLOW_", "YOLO_", "PYTEST_"))
    }
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(SRC),  # the code under test, also for `.venv/bin/visionloop`
        VL_PGDB=pg_db,
        YOLO_CONFIG_DIR=str(tmp_path / "ultralytics"),  # not the user's ~/.config
        YOLO_OFFLINE="1",  # what the Makefile exports
        DVC_NO_ANALYTICS="1",
        DO_NOT_TRACK="1",
        NO_COLOR="1",
    )
    return env


@pytest.fixture
def pg_database_name() -> Iterator[str]:
    """A name for the database the README's `createdb` makes; dropped afterwards."""
    problem = _postgres_reachable()
    if problem is not None:
        message = f"the README's PostgreSQL example needs {PG_ADMIN_URL} ({problem})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    name = f"visionloop_readme_{uuid.uuid4().hex[:10]}"
    yield name
    import psycopg

    with psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=_PG.database, autocommit=True
    ) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.slow
@pytest.mark.train
@pytest.mark.postgres
@pytest.mark.timeout(900)
def test_readme_shell_examples_run_in_order(tmp_path: Path, pg_database_name: str) -> None:
    pytest.importorskip("ultralytics", reason="the README trains: needs the train extra")
    copy = tmp_path / "visionloop"
    copy_checkout(REPO, copy)
    work = tmp_path / "run"
    work.mkdir()
    plan = build_script(README.read_text(), RULES, work=work)
    assert plan.unmatched(RULES) == []
    result = run_script(
        plan,
        work=work,
        cwd=copy,
        env=_environment(copy, tmp_path, pg_database_name),
        timeout=780,
    )
    assert result.returncode == 0, result.failure()
    assert "### README:0  end of README" in result.output, result.failure()
    # A few outcomes the README promises, beyond exit codes.
    assert '{"accepted":1,"duplicates":0}' in result.output
    assert "production rolled back to version 2" in result.output
    assert (copy / "line.avi").is_file() and (copy / "eval.json").is_file()
