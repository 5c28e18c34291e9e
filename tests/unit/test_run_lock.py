"""A new training attempt waits until no process of an earlier one is left in the run folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from belle_trainer.run_lock import RUN_LOCK, wait_until_no_training

HOLD = ("import sys, time; from pathlib import Path; from belle_trainer.run_lock import hold_run_lock; "
        "lock = hold_run_lock(Path(sys.argv[1])); print('held', flush=True); time.sleep(60)")


def _holder(run_dir):
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    return process


def test_waits_while_a_training_process_lives_and_not_after_it_is_killed(tmp_path):
    assert wait_until_no_training(tmp_path, timeout=0.1)  # nothing ever ran here
    first, second = _holder(tmp_path), _holder(tmp_path)  # ranks share the lock
    try:
        assert (tmp_path / RUN_LOCK).exists()
        started = time.monotonic()
        assert not wait_until_no_training(tmp_path, timeout=0.5)
        assert time.monotonic() - started >= 0.5
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        assert not wait_until_no_training(tmp_path, timeout=0.3)  # one rank is still there
        os.kill(second.pid, signal.SIGKILL)  # SIGKILL: nothing unlocks by hand, the kernel does
        second.wait()
        assert wait_until_no_training(tmp_path, timeout=5)
    finally:
        for process in (first, second):
            if process.poll() is None:
                process.kill()
