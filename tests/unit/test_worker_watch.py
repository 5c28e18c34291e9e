"""A job's subprocess dies with its worker (belle_shared.worker_watch), real processes throughout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from belle_shared.worker_watch import WORKER_PID_ENV, process_alive

# A stand-in worker: starts the "step" the way run_followed does (new session, worker pid in the
# environment), prints the step's pid, then waits to be killed.
WORKER = f"""
import os, subprocess, sys, time
step = subprocess.Popen([sys.executable, "-c", sys.argv[1]], start_new_session=True,
                        env={{**os.environ, {WORKER_PID_ENV!r}: str(os.getpid())}})
print(step.pid, flush=True)
time.sleep(600)
"""

# The step: watches the worker, starts a grandchild in its own group (like quantize's probe), sleeps.
STEP = """
import os, subprocess, sys, time
from belle_shared.worker_watch import exit_with_worker
exit_with_worker(poll_seconds=0.1)
probe = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
with open(os.environ["PROBE_PID_FILE"], "w") as out:
    out.write(str(probe.pid))
time.sleep(600)
"""


def _wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_alive(pid):
            return True
        time.sleep(0.05)
    return False


def _start_worker(tmp_path):
    probe_file = tmp_path / "probe.pid"
    worker = subprocess.Popen([sys.executable, "-c", WORKER, STEP], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PROBE_PID_FILE": str(probe_file)})
    step_pid = int(worker.stdout.readline())
    deadline = time.monotonic() + 20
    while not probe_file.exists() or not probe_file.read_text():
        assert time.monotonic() < deadline, "the step never started its probe"
        time.sleep(0.05)
    return worker, step_pid, int(probe_file.read_text())


def test_the_step_and_its_children_die_when_the_worker_is_killed(tmp_path):
    worker, step_pid, probe_pid = _start_worker(tmp_path)
    try:
        assert process_alive(step_pid) and process_alive(probe_pid)
        time.sleep(0.5)
        assert process_alive(step_pid), "the step died while its worker was alive"
        worker.kill()  # not reaped yet: the worker is a zombie, which counts as gone
        assert _wait_gone(step_pid), "the step outlived its worker"
        assert _wait_gone(probe_pid), "the step's child outlived the worker"
    finally:
        worker.kill()
        worker.wait()
        for pid in (step_pid, probe_pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_a_step_started_by_hand_is_not_watched():
    env = {k: v for k, v in os.environ.items() if k != WORKER_PID_ENV}
    out = subprocess.run(
        [sys.executable, "-c", "from belle_shared.worker_watch import exit_with_worker; print(exit_with_worker())"],
        env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "None"


def test_process_alive_tells_a_zombie_from_a_running_process():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        assert process_alive(child.pid)
        child.kill()
        assert _wait_gone(child.pid)  # killed, not yet reaped
    finally:
        child.wait()
    assert not process_alive(child.pid)
