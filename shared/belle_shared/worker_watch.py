"""A job's subprocess dies with the worker that started it.

`run_followed` starts the heavy step (torchrun, a quantization, local generation) in its own
session so that a cancel can kill the whole tree. The other side of that coin: when the worker
itself is killed (SIGKILL, OOM killer, a node drain that only reaches the worker), nothing kills the
step. It would train on as an orphan, holding the accelerator and writing into the run folder that
the job's next attempt, on a new worker, resumes from. The worker therefore passes its pid in
``BELLE_WORKER_PID`` and each step's entry point calls `exit_with_worker()`: a daemon thread that
kills the step's process group once that pid is gone. Standard library only (Linux /proc aware).
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

WORKER_PID_ENV = "BELLE_WORKER_PID"
POLL_SECONDS = 0.5


def process_alive(pid: int) -> bool:
    """Whether `pid` runs. A zombie (killed, not yet reaped by its parent) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        # /proc/<pid>/stat: "pid (comm) state ..."; comm may hold spaces and parentheses.
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (not Linux): os.kill's answer is all there is
    return state not in ("Z", "X")


def exit_with_worker(poll_seconds: float = POLL_SECONDS) -> threading.Thread | None:
    """Watch the worker named in the environment; SIGKILL this process group when it is gone.

    Does nothing (returns None) when the step was started by hand, without ``BELLE_WORKER_PID``."""
    value = os.environ.get(WORKER_PID_ENV)
    if not value:
        return None
    worker_pid = int(value)
    try:
        # Started in the worker's own group (not through run_followed): killing the group would
        # take the worker's siblings along, so only this process goes.
        shares_group = os.getpgid(worker_pid) == os.getpgrp()
    except ProcessLookupError:
        shares_group = False

    def watch() -> None:
        stop = threading.Event()
        while process_alive(worker_pid):
            stop.wait(poll_seconds)
        if shares_group:
            os.kill(os.getpid(), signal.SIGKILL)
        # The whole group: torchrun and every rank, or a quantization and its measuring probe.
        os.killpg(os.getpgrp(), signal.SIGKILL)

    thread = threading.Thread(target=watch, name="exit-with-worker", daemon=True)
    thread.start()
    return thread
