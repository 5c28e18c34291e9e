"""Child processes that die with their parent, and are stopped gently, then firmly."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _die_with_parent(sig: int):
    def preexec() -> None:
        # Linux: the kernel sends `sig` to this child when the process that started it dies, so a
        # `belle up` killed with SIGKILL leaves no orphans. Elsewhere this is a no-op.
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        except OSError:
            pass
        # Own process group, so the whole tree (e.g. a worker's pool) can be stopped together.
        os.setpgrp()

    return preexec


def spawn(argv: list[str], *, env: dict[str, str], log_path: Path, death_signal: int = signal.SIGKILL) -> subprocess.Popen:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab", buffering=0)
    return subprocess.Popen(
        argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        preexec_fn=_die_with_parent(death_signal) if sys.platform.startswith("linux") else None,
    )


def stop(proc: subprocess.Popen, *, timeout: float = 15.0) -> None:
    """SIGTERM the main process only (signalling a Celery pool at the same time can hang it), wait,
    then SIGKILL whatever is left of its process group."""
    stop_all([proc], timeout=timeout)


def stop_all(processes: list[subprocess.Popen], *, timeout: float = 15.0) -> None:
    """``stop`` for several processes at once: all are asked to stop together and share one deadline,
    so a stack of six stops in the time of its slowest process, not the sum of them."""
    for proc in processes:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in processes:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for proc in processes:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()
