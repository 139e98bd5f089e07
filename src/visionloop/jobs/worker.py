"""The worker: claims one job at a time from the jobs table, runs it in a subprocess
(``visionloop.jobs.child``), heartbeats while it runs, and records the outcome.

Per job: the claim (``store.jobs.claim``) commits at once; then every ``job_heartbeat_seconds``
the worker writes the heartbeat, progress, message and new log lines, and reads back whether a
cancel was requested (the subprocess's process group gets SIGTERM, then SIGKILL after
``KILL_GRACE_SECONDS``) or whether the job was taken from it (it stops the subprocess and
forgets the job). Outcomes:

- the job returned a result: ``succeeded``; it raised: ``failed`` with its error, not retried
  (an exception is about the job, and would repeat);
- its process died without an answer (killed, out of memory): queued again while attempts remain,
  else ``failed`` with the reason;
- the worker is asked to stop (``stop()``, SIGINT/SIGTERM in the CLI): the subprocess is stopped
  and the job released, queued again with that attempt not counted.

Between jobs the worker runs the scheduler's due periodic tasks. ``run_lanes`` runs several
workers side by side in one process, one thread each (``visionloop worker`` runs a lane of
monitoring jobs beside the long ones, see ``kinds.lanes``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from visionloop.config import Settings
from visionloop.jobs.child import ChildSpec
from visionloop.jobs.kinds import JobKinds, ref
from visionloop.jobs.scheduler import Scheduler
from visionloop.server.db import write_engine
from visionloop.server.store import jobs as job_store
from visionloop.server.store.jobs import ClaimedJob, JobStatus

log = logging.getLogger(__name__)

LOG_TAIL_LINES = 50
KILL_GRACE_SECONDS = 3.0
TICK_SECONDS = 0.1
MAX_LINE_CHARS = 4000

ProgressCallback = Callable[[int, float, str], None]
"""Called as ``(job_id, fraction, message)`` whenever the running job reports progress."""


def new_worker_id() -> str:
    """``host:pid:random``: unique per worker process, readable in the jobs table."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"


@dataclass
class _Output:
    """What the job's subprocess said: log lines not yet stored, the tail, progress, outcome."""

    tail: deque[str]
    pending: list[str] = field(default_factory=list)
    progress: float = 0.0
    message: str = "running"
    result: dict[str, Any] | None = None
    error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_line(self, line: str) -> None:
        line = line.rstrip("\r\n")[:MAX_LINE_CHARS]
        with self.lock:
            self.pending.append(line)
            self.tail.append(line)

    def peek_log(self) -> tuple[str, str, int]:
        """Log text not yet stored, the current tail, and how many lines the text holds (pass
        it to ``stored`` once the text is in the database)."""
        with self.lock:
            chunk = "".join(f"{line}\n" for line in self.pending)
            return chunk, "\n".join(self.tail), len(self.pending)

    def stored(self, lines: int) -> None:
        with self.lock:
            del self.pending[:lines]


def _read_lines(stream: IO[str], on_line: Callable[[str], None]) -> None:
    with contextlib.suppress(ValueError, OSError):  # closed under us when the child is killed
        for line in stream:
            on_line(line)


def _child_env() -> dict[str, str]:
    """The worker's environment; the child imports from the same paths (a kind may live in a
    module that only this process's ``sys.path`` reaches)."""
    env = dict(os.environ)
    prefixes = (sys.prefix, sys.base_prefix)
    extra = [p for p in sys.path if p and not p.startswith(prefixes) and os.path.isdir(p)]
    env["PYTHONPATH"] = os.pathsep.join(extra + [p for p in [env.get("PYTHONPATH")] if p])
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Worker:
    """Claims and runs jobs of ``kinds`` from the database behind ``engine``."""

    def __init__(
        self,
        *,
        engine: Engine,
        settings: Settings,
        kinds: JobKinds,
        scheduler: Scheduler | None = None,
        worker_id: str | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        if not kinds:
            raise ValueError("a worker needs at least one job kind")
        self.settings = settings
        self.kinds = kinds
        self.scheduler = scheduler
        self.worker_id = worker_id or new_worker_id()
        self.on_progress = on_progress
        self._sessions = sessionmaker(write_engine(engine), expire_on_commit=False)
        self._read_sessions = sessionmaker(engine, expire_on_commit=False)
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask the worker to stop: a running job's subprocess is stopped and the job released."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self, *, once: bool = False) -> int:
        """Work until ``stop()``; with ``once``, run at most one job (none queued: return at
        once). Returns the number of jobs run."""
        ran = 0
        while not self._stop.is_set():
            if self.scheduler is not None and not once:
                self._run_periodic()
            try:
                outcome = self.run_one()
            except Exception:
                log.exception("worker %s: claiming or recording a job failed", self.worker_id)
                outcome = None
            if outcome is not None:
                ran += 1
            if once:
                break
            if outcome is None:
                self._stop.wait(self.settings.job_poll_seconds)
        return ran

    def _run_periodic(self) -> None:
        assert self.scheduler is not None
        try:
            self.scheduler.run_due(self._sessions)
        except Exception:
            log.exception("worker %s: the scheduler failed", self.worker_id)

    def _session(self) -> Session:
        return self._sessions()

    def run_one(self) -> JobStatus | None:
        """Claim one job and run it to its end; None when no job was claimable."""
        with self._read_sessions() as session, session.begin():
            if not job_store.anything_to_claim(
                session, kinds=list(self.kinds), lease_seconds=self.settings.job_lease_seconds
            ):
                return None
        with self._session() as session, session.begin():
            claimed = job_store.claim(
                session,
                worker_id=self.worker_id,
                kinds=list(self.kinds),
                lease_seconds=self.settings.job_lease_seconds,
            )
        if claimed is None:
            return None
        log.info(
            "worker %s: job %d (%s), attempt %d of %d",
            self.worker_id,
            claimed.id,
            claimed.kind,
            claimed.attempt,
            claimed.max_attempts,
        )
        return self._run_claimed(claimed)

    # --- one job ---------------------------------------------------------------------------

    def _spawn(self, claimed: ClaimedJob) -> tuple[subprocess.Popen[str], IO[str]]:
        kind = self.kinds[claimed.kind]
        read_fd, write_fd = os.pipe()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "visionloop.jobs.child"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                pass_fds=(write_fd,),
                start_new_session=True,  # its own process group: stopped as a whole
                env=_child_env(),
                text=True,
                encoding="utf-8",
                errors="replace",
            )
        finally:
            os.close(write_fd)
        control = os.fdopen(read_fd, encoding="utf-8", errors="replace")
        spec = ChildSpec(
            job_id=claimed.id,
            attempt=claimed.attempt,
            run=ref(kind.run),
            params_model=ref(kind.params),
            params=claimed.params,
            control_fd=write_fd,
        )
        assert proc.stdin is not None
        try:
            proc.stdin.write(spec.model_dump_json())
        except BrokenPipeError:
            pass  # it died at once: its exit code says so
        finally:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
        return proc, control

    def _on_control(self, output: _Output, claimed: ClaimedJob, line: str) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            output.add_line(f"[visionloop] unreadable message from the job: {line[:200]}")
            return
        with output.lock:
            if "progress" in message:
                output.progress = min(max(float(message["progress"]), 0.0), 1.0)
                output.message = str(message.get("message", ""))
            elif "result" in message:
                output.result = message["result"]
            elif "error" in message:
                output.error = str(message["error"])
            progress, text = output.progress, output.message
        if "progress" in message and self.on_progress is not None:
            self.on_progress(claimed.id, progress, text)

    def _run_claimed(self, claimed: ClaimedJob) -> JobStatus | None:
        tail = deque(claimed.log_tail.splitlines() if claimed.log_tail else [], LOG_TAIL_LINES)
        output = _Output(tail=tail)
        output.add_line(
            f"[visionloop] attempt {claimed.attempt} of {claimed.max_attempts} "
            f"on worker {self.worker_id}"
        )
        try:
            proc, control = self._spawn(claimed)
        except OSError as exc:
            output.error = f"could not start the job's process: {exc}"
            return self._record_outcome(claimed, output, 1, None)
        assert proc.stdout is not None
        readers = [
            threading.Thread(target=_read_lines, args=(proc.stdout, output.add_line), daemon=True),
            threading.Thread(
                target=_read_lines,
                args=(control, lambda line: self._on_control(output, claimed, line)),
                daemon=True,
            ),
        ]
        for reader in readers:
            reader.start()
        ended_by: str | None = None  # "cancel", "lost" or "stop" when the worker stopped the job
        try:
            ended_by = self._watch(claimed, proc, output)
        finally:
            if ended_by is not None or proc.poll() is None:
                output.add_line(f"[visionloop] stopping the job's process ({ended_by or 'error'})")
                _stop_process(proc)
            returncode = proc.wait()
            for reader in readers:
                reader.join(timeout=5)
            proc.stdout.close()
            control.close()
        return self._record_outcome(claimed, output, returncode, ended_by)

    def _watch(
        self, claimed: ClaimedJob, proc: subprocess.Popen[str], output: _Output
    ) -> str | None:
        """Heartbeat until the job's process exits (None) or must be stopped: "cancel", "lost"
        (taken from this worker, or no heartbeat recorded for a whole lease) or "stop"."""
        next_beat = 0.0
        last_recorded = time.monotonic()
        while proc.poll() is None:
            if self._stop.is_set():
                return "stop"
            now = time.monotonic()
            if now >= next_beat:
                next_beat = now + self.settings.job_heartbeat_seconds
                try:
                    answer = self._heartbeat(claimed, output)
                except Exception as exc:  # the database is away: keep the job while the lease holds
                    log.warning(
                        "worker %s: heartbeat of job %d failed: %s", self.worker_id, claimed.id, exc
                    )
                    if now - last_recorded > self.settings.job_lease_seconds:
                        return "lost"
                else:
                    last_recorded = now
                    if not answer.owned:
                        return "lost"
                    if answer.cancel_requested:
                        return "cancel"
            time.sleep(TICK_SECONDS)
        return None

    def _heartbeat(self, claimed: ClaimedJob, output: _Output) -> job_store.HeartbeatAnswer:
        chunk, tail, lines = output.peek_log()
        with output.lock:
            progress, message = output.progress, output.message
        with self._session() as session, session.begin():
            answer = job_store.heartbeat(
                session,
                claimed=claimed,
                progress=progress,
                message=message,
                log_chunk=chunk,
                log_tail=tail,
            )
        output.stored(lines)
        return answer

    def _record_outcome(
        self, claimed: ClaimedJob, output: _Output, returncode: int, ended_by: str | None
    ) -> JobStatus | None:
        if ended_by == "lost":
            log.warning("worker %s: job %d was taken from it; dropped", self.worker_id, claimed.id)
            return None
        error: str | None = None
        if ended_by == "stop":
            chunk, tail, _ = output.peek_log()
            self._write(
                lambda session: job_store.release(
                    session, claimed=claimed, log_chunk=chunk, log_tail=tail
                )
            )
            return JobStatus.QUEUED
        if ended_by == "cancel":
            status, message = JobStatus.CANCELLED, "cancelled while running"
        elif output.result is not None and returncode == 0:
            status, message = JobStatus.SUCCEEDED, "done"
        elif output.error is not None:
            status, message, error = JobStatus.FAILED, "failed", output.error
        else:
            how = (
                f"killed by signal {signal.Signals(-returncode).name}"
                if returncode < 0
                else f"exit code {returncode}"
            )
            reason = f"the job's process died without an answer ({how})"
            if claimed.attempt < claimed.max_attempts:
                status, message = JobStatus.QUEUED, f"{reason}; queued again"
            else:
                status, message = JobStatus.FAILED, "failed"
                error = f"{reason} in attempt {claimed.attempt} of {claimed.max_attempts}"
        output.add_line(f"[visionloop] {status.value}" + (f": {error}" if error else ""))
        chunk, tail, _ = output.peek_log()
        self._write(
            lambda session: job_store.finish(
                session,
                claimed=claimed,
                status=status,
                message=message,
                result=output.result if status == JobStatus.SUCCEEDED else None,
                error=error,
                log_chunk=chunk,
                log_tail=tail,
            )
        )
        log.info("worker %s: job %d %s", self.worker_id, claimed.id, status.value)
        return status

    def _write(self, write: Callable[[Session], object]) -> None:
        """Record an outcome, retrying while the database is away (up to a lease: after that
        the job is another worker's to take over anyway)."""
        deadline = time.monotonic() + self.settings.job_lease_seconds
        while True:
            try:
                with self._session() as session, session.begin():
                    write(session)
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                log.warning("worker %s: recording a job failed; retrying", self.worker_id)
                time.sleep(self.settings.job_heartbeat_seconds)


def _stop_process(proc: subprocess.Popen[str]) -> None:
    """SIGTERM to the job's process group, SIGKILL after ``KILL_GRACE_SECONDS``."""
    for sig, wait in ((signal.SIGTERM, KILL_GRACE_SECONDS), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    # Anything else left in the group (a dataloader worker that ignored SIGTERM).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def run_lanes(workers: list[Worker]) -> int:
    """Run each worker (a lane) in its own thread until every one has stopped (``stop()`` each:
    the CLI's signal handler does); returns the jobs run in all. A lane that dies of an
    unexpected error stops the others, so the process exits rather than limp on half-working."""
    ran: list[int] = []
    failed: list[BaseException] = []

    def lane(worker: Worker) -> None:
        try:
            ran.append(worker.run())
        except BaseException as exc:
            log.exception("worker %s: stopped by an error", worker.worker_id)
            failed.append(exc)
            for other in workers:
                other.stop()

    threads = [
        threading.Thread(target=lane, args=(w,), name=f"lane-{w.worker_id}") for w in workers
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():  # short joins: the main thread keeps taking signals
            thread.join(0.5)
    if failed:
        raise failed[0]
    return sum(ran)
