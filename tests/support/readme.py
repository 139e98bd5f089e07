"""Running a Markdown file's ```bash blocks in order, as a reader pasting them would.

The blocks are split into commands (a command may span lines: backslash continuations, quotes,
``$(...)``), and every command runs, in order, in one bash process (``set -eEuo pipefail``), so
a variable set in one block (``TOKEN=...``) is there in the next. What cannot run as written is
declared in tables the caller passes, each entry matched against the commands as the Markdown
writes them and required to match at least one, so a table cannot go stale:

- ``Skip``: not run (a webcam, a GPU, hours of work), with the reason;
- ``Serve``: a long-lived server, started in the background with ``$VL_PORT`` set to a free
  port; the run waits until ``GET http://127.0.0.1:$VL_PORT<ready_path>`` answers, then either
  stops it or (``keep``) leaves it running for the commands after it (``$VL_PORT`` is then that
  server's port for the rest of the script);
- ``Stdin``: input fed to a command that prompts;
- ``Fails``: a command that shows a mistake and must exit non-zero;
- ``Sub``: a regular-expression substitution over every command's text (smaller sizes, ports),
  each required to apply at least once.

``build_script`` returns the bash script (each command preceded by a ``### README:<line>``
marker, so the output says where a failure happened); ``run_script`` runs it in a session of its
own and stops every background server it started, even when a command hangs or the run times
out. ``copy_checkout`` makes the temporary copy of the repository the script runs in.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

_FENCE = re.compile(r"^```(\S*)\s*$")


@dataclass(frozen=True, slots=True)
class Command:
    """One shell command of the Markdown file: ``line`` is the 1-based line it starts on."""

    line: int
    text: str

    @property
    def first_line(self) -> str:
        return self.text.splitlines()[0]


@dataclass(frozen=True, slots=True)
class Skip:
    """Commands matching ``pattern`` (a regex searched in the command as written) are not run."""

    pattern: str
    reason: str


@dataclass(frozen=True, slots=True)
class Serve:
    """Commands matching ``pattern`` are long-lived servers (see the module docstring)."""

    pattern: str
    reason: str
    ready_path: str = "/readyz"
    keep: bool = False


@dataclass(frozen=True, slots=True)
class Stdin:
    """Commands matching ``pattern`` read ``text`` on their standard input."""

    pattern: str
    text: str
    reason: str


@dataclass(frozen=True, slots=True)
class Fails:
    """Commands matching ``pattern`` show a mistake: they must exit non-zero."""

    pattern: str
    reason: str


_R = TypeVar("_R", Skip, Serve, Stdin, Fails)


@dataclass(frozen=True, slots=True)
class Sub:
    """``re.sub(pattern, replacement, text, flags=re.MULTILINE)`` over every command's text."""

    pattern: str
    replacement: str
    reason: str


@dataclass(frozen=True, slots=True)
class Rules:
    skips: Sequence[Skip] = ()
    serves: Sequence[Serve] = ()
    stdins: Sequence[Stdin] = ()
    fails: Sequence[Fails] = ()
    subs: Sequence[Sub] = ()


@dataclass(slots=True)
class Plan:
    """What ``build_script`` made: the script, its input files, and what each rule matched."""

    script: str
    inputs: dict[str, str]
    commands: list[Command]
    matched: dict[object, list[Command]] = field(default_factory=dict)

    def unmatched(self, rules: Rules) -> list[object]:
        """Rules (of every kind) that matched no command: stale entries."""
        every: list[object] = [
            *rules.skips,
            *rules.serves,
            *rules.stdins,
            *rules.fails,
            *rules.subs,
        ]
        return [rule for rule in every if not self.matched.get(rule)]


# --- a fresh clone -------------------------------------------------------------------------------


# Outside git: what a clone does not have (top-level generated folders, caches anywhere).
_GENERATED_TOP = {".git", ".venv", "var", "data", "runs", "mlruns", "mlartifacts", "metrics"}
_CACHES = {".mypy_cache", ".ruff_cache", ".pytest_cache", "__pycache__", "node_modules"}


def repo_files(repo: Path) -> list[Path]:
    """The files a fresh clone of ``repo`` has, plus files not committed yet (so a change is
    tested before its commit), relative to ``repo``. Outside a git checkout: every file but the
    usual generated folders."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=repo,
            capture_output=True,
            check=True,
        ).stdout.decode()
        names = [Path(rel) for rel in listed.split("\0") if rel]
    except (OSError, subprocess.CalledProcessError):
        names = [
            path.relative_to(repo)
            for path in repo.rglob("*")
            if path.relative_to(repo).parts[0] not in _GENERATED_TOP
            and not _CACHES.intersection(path.relative_to(repo).parts)
            and not str(path.relative_to(repo)).startswith((".dvc/cache", ".dvc/tmp"))
        ]
    return [rel for rel in names if (repo / rel).is_file()]  # listed but deleted: gone


def copy_checkout(repo: Path, dest: Path) -> None:
    """Copy ``repo``'s files as a fresh clone has them (``repo_files``), and link
    ``dest/.venv`` to the environment running the tests, which stands for the ``.venv`` that
    ``make test`` makes."""
    for rel in repo_files(repo):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / rel, target)
    (dest / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)


# --- reading the Markdown ------------------------------------------------------------------------


def bash_blocks(markdown: str) -> list[tuple[int, str]]:
    """The ```bash (or ```sh, ```shell) blocks: (1-based line of the block's first line, text)."""
    blocks: list[tuple[int, str]] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if fence is None:
            i += 1
            continue
        lang = fence.group(1).lower()
        start = i + 1
        end = start
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        if lang in ("bash", "sh", "shell"):
            blocks.append((start + 1, "\n".join(lines[start:end])))
        i = end + 1
    return blocks


def split_commands(text: str, first_line: int = 1) -> list[Command]:
    """Split a block into commands; blank and comment-only lines are dropped.

    A command ends at a newline outside quotes, ``$(...)`` and backticks that is not escaped by a
    backslash. Here-documents are refused: this splitter does not follow them.
    """
    commands: list[Command] = []
    contexts: list[str] = []  # "'", '"', "$(", "`"
    current: list[str] = []
    start_line = first_line
    line = first_line
    i = 0
    word_start = True
    while i < len(text):
        ch = text[i]
        top = contexts[-1] if contexts else ""
        if ch == "\n" and top in ("'", '"'):
            line += 1
        if top == "'":
            current.append(ch)
            if ch == "'":
                contexts.pop()
        elif ch == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            if text[i + 1] == "\n":
                line += 1
            i += 2
            word_start = False
            continue
        elif top == '"':
            current.append(ch)
            if ch == '"':
                contexts.pop()
            elif text.startswith("$(", i):
                contexts.append("$(")
                current.append("(")
                i += 1
            elif ch == "`":
                contexts.append("`")
        elif ch == "#" and word_start:
            end = text.find("\n", i)
            end = len(text) if end < 0 else end
            current.append(text[i:end])
            i = end
            continue
        elif ch == "\n":
            line += 1
            if contexts:
                current.append(ch)
            else:
                _flush(commands, current, start_line)
                current = []
                start_line = line
            word_start = True
            i += 1
            continue
        else:
            current.append(ch)
            if ch == "'":
                contexts.append("'")
            elif ch == '"':
                contexts.append('"')
            elif ch == "`":
                if top == "`":
                    contexts.pop()
                else:
                    contexts.append("`")
            elif text.startswith("$(", i):
                contexts.append("$(")
                current.append("(")
                i += 1
            elif ch == ")" and top == "$(":
                contexts.pop()
            elif text.startswith("<<", i) and not text.startswith("<<<", i):
                raise ValueError(f"line {line}: here-documents are not supported by this runner")
        word_start = ch in " \t;|&()"
        i += 1
    if contexts:
        raise ValueError(f"line {start_line}: unterminated {contexts[-1]!r}")
    _flush(commands, current, start_line)
    return commands


def _flush(commands: list[Command], current: list[str], start_line: int) -> None:
    text = "".join(current).rstrip()
    if text.strip() and not text.lstrip().startswith("#"):  # blank and comment lines: none
        commands.append(Command(line=start_line, text=text.strip("\n")))


def commands_of(markdown: str) -> list[Command]:
    """Every command of every bash block, in order."""
    out: list[Command] = []
    for first, block in bash_blocks(markdown):
        out.extend(split_commands(block, first))
    return out


# --- the script ----------------------------------------------------------------------------------

_PRELUDE = r"""
set -eEuo pipefail
set -m   # every background server gets its own process group, stopped as a whole
VL_LINE=0
_vl_pids=()
_vl_at() { VL_LINE=$1; printf '\n### README:%s  %s  [%s s]\n' "$1" "$2" "$SECONDS"; }
_vl_failed() { printf '\n### FAILED: README:%s exited %s\n' "$VL_LINE" "$1" >&2; }
_vl_stop() {
  local pid=$1
  kill -TERM -- "-$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
_vl_cleanup() {
  local pid
  for pid in "${_vl_pids[@]}"; do _vl_stop "$pid"; done
}
_vl_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}
_vl_serving() {  # PID PORT PATH KEEP LOG: wait until the server answers, then stop it unless KEEP
  local pid=$1 port=$2 path=$3 keep=$4 log=$5
  _vl_pids+=("$pid")
  echo "$pid" >> "$VL_PIDS"
  for _ in $(seq 600); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "### server exited before answering; its output:"; cat "$log"; return 1
    fi
    if curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$port$path" 2>/dev/null; then
      echo "### answering on port $port ($path)"
      if [ "$keep" = 0 ]; then _vl_stop "$pid"; echo "### stopped"; fi
      return 0
    fi
    sleep 0.2
  done
  echo "### server did not answer within 120 s; its output:"; cat "$log"; return 1
}
trap '_vl_failed $?' ERR
trap '_vl_cleanup' EXIT
trap 'exit 143' TERM
"""


def build_script(markdown: str, rules: Rules, *, work: Path) -> Plan:
    """The bash script that runs ``markdown``'s commands under ``rules``.

    ``work`` is a folder for the servers' logs and the prompts' input files (the script refers to
    it by absolute path).
    """
    commands = commands_of(markdown)
    plan = Plan(script="", inputs={}, commands=commands)
    out = [_PRELUDE]
    kept = 0
    for cmd in commands:
        skip = _first(rules.skips, cmd, plan)
        serve = _first(rules.serves, cmd, plan)
        stdin = _first(rules.stdins, cmd, plan)
        fails = _first(rules.fails, cmd, plan)
        chosen = [r for r in (skip, serve, stdin, fails) if r is not None]
        if len(chosen) > 1:
            raise ValueError(f"README:{cmd.line}: more than one rule matches: {chosen}")
        text = cmd.text
        for sub in rules.subs:
            text, n = re.subn(sub.pattern, sub.replacement, text, flags=re.MULTILINE)
            if n:
                plan.matched.setdefault(sub, []).append(cmd)
        out.append(f"_vl_at {cmd.line} {shlex.quote(cmd.first_line)}")
        if skip is not None:
            out.append(f"echo {shlex.quote('### skipped: ' + skip.reason)}")
        elif serve is not None:
            if "$VL_PORT" not in text:
                raise ValueError(
                    f"README:{cmd.line}: a server's command must listen on $VL_PORT after the "
                    f"substitutions (add one for its port): {cmd.first_line}"
                )
            log = work / f"server-{cmd.line}.log"
            if serve.keep:
                kept += 1
                out.append("VL_PORT=$(_vl_free_port); export VL_PORT")
                port = "$VL_PORT"
            else:
                out.append("_vl_port=$(_vl_free_port)")
                port = "$_vl_port"
            out.append(f"(\nVL_PORT={port}\n{text}\n) > {shlex.quote(str(log))} 2>&1 &")
            out.append(
                f"_vl_serving $! {port} {shlex.quote(serve.ready_path)} "
                f"{int(serve.keep)} {shlex.quote(str(log))}"
            )
        elif stdin is not None:
            name = f"stdin-{cmd.line}.txt"
            plan.inputs[name] = stdin.text
            out.append(f"{{\n{text}\n}} < {shlex.quote(str(work / name))}")
        elif fails is not None:
            out.append(
                f"if {{\n{text}\n}}; then echo '### expected to fail, but exited 0'; false; "
                "else echo '### failed, as expected'; fi"
            )
        else:
            out.append(text)
    if kept > 1:
        raise ValueError("at most one server may be kept running (they would share $VL_PORT)")
    out.append("_vl_at 0 'end of README'")
    plan.script = "\n".join(out) + "\n"
    return plan


def _first(rules: Sequence[_R], cmd: Command, plan: Plan) -> _R | None:
    found = None
    for rule in rules:
        if re.search(rule.pattern, cmd.text, flags=re.MULTILINE):
            plan.matched.setdefault(rule, []).append(cmd)
            if found is not None:
                raise ValueError(f"README:{cmd.line}: two rules of a kind match: {found}, {rule}")
            found = rule
    return found


@dataclass(frozen=True, slots=True)
class Result:
    returncode: int
    output: str
    seconds: float

    def failure(self) -> str:
        """The end of the output, where the failing command and its error are."""
        tail = "\n".join(self.output.splitlines()[-120:])
        return f"exit {self.returncode} after {self.seconds:.0f} s; output ends:\n{tail}"


_MARKER = re.compile(r"^### README:(\d+) ", re.MULTILINE)


def run_script(
    plan: Plan,
    *,
    work: Path,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    command_timeout: float = 300.0,
) -> Result:
    """Run the plan's script with bash in its own session; stop what it left behind.

    The whole run may take ``timeout`` seconds and one command ``command_timeout``: a command
    that runs longer (a server nobody declared, a prompt nobody answers) stops the run with a
    message naming its line.
    """
    work.mkdir(parents=True, exist_ok=True)
    for name, text in plan.inputs.items():
        (work / name).write_text(text)
    script = work / "readme.sh"
    script.write_text(plan.script)
    pids = work / "pids"
    pids.write_text("")
    log = work / "output.txt"  # written as it runs: `tail -f` it to follow a slow run
    started = time.monotonic()
    problem = ""
    with log.open("w") as out, log.open() as follow:
        proc = subprocess.Popen(
            ["bash", str(script)],
            cwd=cwd,
            env={**env, "VL_PIDS": str(pids)},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # no controlling terminal: prompts read stdin, not /dev/tty
        )
        line, since, seen = "", started, ""
        try:
            while proc.poll() is None:
                time.sleep(0.5)
                seen = (seen + follow.read())[-4096:]
                markers = _MARKER.findall(seen)
                if markers and markers[-1] != line:
                    line, since = markers[-1], time.monotonic()
                now = time.monotonic()
                if now - started > timeout:
                    problem = f"the run took more than {timeout:.0f} s"
                elif now - since > command_timeout:
                    problem = (
                        f"README:{line} ran for more than {command_timeout:.0f} s: a long-lived "
                        "command needs a Serve (or Skip) rule, a prompt a Stdin rule"
                    )
                if problem:
                    _kill_session(proc.pid, signal.SIGTERM)  # bash's EXIT trap stops servers
                    try:
                        proc.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        _kill_session(proc.pid, signal.SIGKILL)
                        proc.wait()
                    break
        finally:
            for pid in pids.read_text().split():  # servers, in process groups of their own
                _kill(-int(pid), signal.SIGKILL)
            _kill_session(proc.pid, signal.SIGKILL)
            proc.wait()
    output = log.read_text(errors="replace")
    if problem:
        output += f"\n### STOPPED: {problem}"
    return Result(returncode=proc.returncode, output=output, seconds=time.monotonic() - started)


def _kill(pid: int, sig: signal.Signals) -> None:
    try:
        if pid < 0:
            os.killpg(-pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_session(sid: int, sig: signal.Signals) -> None:
    """Signal every process of session ``sid`` (the script's: it was started in a new one)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == sid:  # after "pid (comm)": state, ppid, pgrp, session
            _kill(int(stat.parent.name), sig)
