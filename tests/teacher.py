"""Start the offline teacher (`python -m belle_teacher`) as a real process for a test.

    with start_teacher(seed=0, api_key="sk-test", latency=0.1) as teacher:
        client = OpenAI(base_url=teacher.base_url, api_key="sk-test")

Options are the CLI flags with underscores (error_rate=0.5 -> --error-rate 0.5); the port is always 0
(any free port), read back from the line the server prints once it accepts connections. The process
runs in its own session and is killed when the block ends.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

_LISTENING = re.compile(r"belle teacher listening on (http://\S+/v1)")


@dataclass
class TeacherProcess:
    base_url: str                     # "http://127.0.0.1:PORT/v1"
    process: subprocess.Popen
    output: list[str] = field(default_factory=list)   # stdout and stderr lines so far

    def log(self) -> str:
        return "".join(self.output)


def _command(options: dict) -> list[str]:
    args = [sys.executable, "-m", "belle_teacher", "--port", "0"]
    for name, value in options.items():
        if value is None:
            continue
        args += ["--" + name.replace("_", "-"), str(value)]
    return args


@contextmanager
def start_teacher(*, startup_timeout: float = 30.0, **options) -> Iterator[TeacherProcess]:
    """A running teacher; raises RuntimeError with its output if it does not come up in time."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(_command(options), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=env, start_new_session=True)
    output: list[str] = []
    found: dict[str, str] = {}
    ready = threading.Event()

    def drain() -> None:
        # Keep reading for the whole life of the process, so a full pipe never blocks the server.
        for line in process.stdout:
            output.append(line)
            match = _LISTENING.search(line)
            if match and not ready.is_set():
                found["url"] = match.group(1)
                ready.set()
        ready.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        if not ready.wait(startup_timeout) or "url" not in found:
            raise RuntimeError(f"the teacher did not start within {startup_timeout}s "
                               f"(exit code {process.poll()}):\n{''.join(output)[-3000:]}")
        yield TeacherProcess(found["url"], process, output)
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=10)
        reader.join(timeout=5)
