"""Run a job's heavy step as a subprocess: its own process group, followed through a progress log.

The worker process stays free of torch: the step (``python -m belle_trainer.train``, ``python -m
belle_quantizer.quantize`` ...) runs in a child started in a new session, so a cancel can kill the
whole tree (torchrun and its ranks included) at once. While it runs, every new line of its progress
file goes to ``on_event`` and the job's cancel flag is checked; stdout and stderr go to a log file
whose tail explains a crash.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from belle_shared.errors import JobError
from belle_shared.progress import ProgressTail
from belle_shared.worker import JobContext
from belle_shared.worker_watch import WORKER_PID_ENV

POLL_SECONDS = 0.5


def kill_group(proc: subprocess.Popen) -> None:
    """SIGTERM the child's whole process group, then SIGKILL what is left after a few seconds."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def tail(path: Path, chars: int = 1500) -> str:
    """The end of a log file ('' if it cannot be read)."""
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def run_followed(
    argv: Sequence[str],
    ctx: JobContext,
    *,
    cwd: Path,
    progress_path: Path,
    log_path: Path,
    on_event: Callable[[dict[str, Any]], None],
    start_message: str,
    env: dict[str, str] | None = None,
) -> int:
    """Start `argv`, feed its progress events to `on_event` until it exits; returns its exit code.

    `start_message` becomes a status event carrying the child's pid once it runs.

    A cancelled job kills the process group and raises JobCancelled; the caller decides what a
    non-zero exit code means (the log's tail, ``tail(log_path)``, usually says why). The child learns
    this worker's pid (``BELLE_WORKER_PID``) so that it can die with it (see `worker_watch`).
    """
    progress_path.unlink(missing_ok=True)  # each attempt starts a fresh log
    env = {**(os.environ if env is None else env), WORKER_PID_ENV: str(os.getpid())}
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(list(argv), cwd=cwd, stdout=log_file, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, env=env)
    ctx.on_cancel(lambda: kill_group(proc))
    ctx.event(start_message, kind="status", pid=proc.pid)
    follower = ProgressTail(progress_path)
    try:
        while proc.poll() is None:
            for event in follower.new_events():
                on_event(event)
            ctx.check_cancelled()
            time.sleep(POLL_SECONDS)
        for event in follower.new_events():
            on_event(event)
    finally:
        if proc.poll() is None:
            kill_group(proc)
    ctx.check_cancelled()
    return proc.returncode


def step_failed(code: str, what: str, returncode: int, log_path: Path, error: str | None) -> JobError:
    """The job error for a step that exited badly: its own error message, else the log's tail."""
    return JobError(code, f"{what} exited with code {returncode}: {error or tail(log_path)}",
                    details={"log_tail": tail(log_path, 4000)})
