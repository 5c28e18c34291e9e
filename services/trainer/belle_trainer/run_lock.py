"""One training at a time in a run folder, even across a killed worker.

Every training process (each rank) holds a shared `flock` on `RUN_LOCK` in its run folder for its
whole life; the kernel drops it when the process dies, SIGKILL included. Before a job touches its
run folder (a retry restoring a checkpoint, say), the worker takes the lock exclusively, which
waits until no training process of an earlier attempt is left there: a worker killed mid-run
leaves its training to die on its own (`belle_shared.worker_watch`), and until it has, it could
still write a checkpoint into the folder the new attempt restores into.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from typing import IO

RUN_LOCK = ".training.lock"


def hold_run_lock(run_dir: Path) -> IO[bytes]:
    """Take the shared lock for this process's life; keep the returned file open (never closed)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    handle = open(run_dir / RUN_LOCK, "ab")
    fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
    return handle


def wait_until_no_training(run_dir: Path, *, timeout: float, poll: float = 0.2) -> bool:
    """Wait until no process holds the run folder's lock; False if one still does after ``timeout``."""
    path = run_dir / RUN_LOCK
    if not path.exists():
        return True
    deadline = time.monotonic() + timeout
    fd = os.open(path, os.O_RDONLY)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(fd, fcntl.LOCK_UN)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(poll)
    finally:
        os.close(fd)
