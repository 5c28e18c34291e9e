"""The embedded default as a user runs it: `belle up` with no servers, then HTTP, then kills."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from helpers import big_import_rows, jsonl, wait_for

pytestmark = [pytest.mark.embedded, pytest.mark.slow]

BELLE = [sys.executable, "-m", "belle_cli.main"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BELLE_")}
    env.update(BELLE_DATA_DIR=str(data_dir), BELLE_HEARTBEAT_INTERVAL="0.5", BELLE_LEASE_TIMEOUT="3",
               BELLE_SWEEP_INTERVAL="0.5", PYTHONUNBUFFERED="1")
    return env


def _start_stack(folder: Path):
    """`belle up` in a fresh data folder (its output in ``folder / "up.log"``); yields (process, url,
    headers, data folder), and stops it with Ctrl-C unless a test already ended it."""
    data_dir = folder / "belle"
    port = _free_port()
    env = _env(data_dir)
    log = open(folder / "up.log", "wb")
    proc = subprocess.Popen([*BELLE, "up", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def ready():
        if proc.poll() is not None:
            raise AssertionError(f"belle up exited: {(folder / 'up.log').read_text()}")
        try:
            return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(ready, timeout=90, message="belle up to be ready")
    created = subprocess.run([*BELLE, "admin", "create-team", "alpha"], env=env, capture_output=True, text=True,
                             check=True)
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("belle-")
    yield proc, url, {"Authorization": f"Bearer {key}"}, data_dir
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    log.close()


@pytest.fixture
def stack(tmp_path):
    """A stack of the test's own: for a test that kills it."""
    yield from _start_stack(tmp_path)


@pytest.fixture(scope="module")
def shared_stack(tmp_path_factory):
    """One stack for the module's tests (each start costs ~10 s, each stop as much); the last test stops it."""
    yield from _start_stack(tmp_path_factory.mktemp("shared-stack"))


def _import(url, headers, content: bytes) -> str:
    file = httpx.post(f"{url}/v1/files", headers=headers, files={"file": ("d.jsonl", content)}, timeout=60).json()
    job = httpx.post(f"{url}/v1/jobs", headers=headers, json={"type": "import", "file_id": file["id"]}).json()
    return job["id"]


def _job(url, headers, job_id):
    return httpx.get(f"{url}/v1/jobs/{job_id}", headers=headers).json()


def _worker_main(up_pid: int) -> psutil.Process:
    children = psutil.Process(up_pid).children()
    return next(p for p in children if "belle_datagen.worker" in " ".join(p.cmdline()))


def test_cli_uploads_submits_and_follows_a_job(shared_stack, tmp_path):
    proc, url, headers, data_dir = shared_stack
    env = {**_env(data_dir), "BELLE_API_URL": url, "BELLE_API_KEY": headers["Authorization"].split()[1]}
    data = tmp_path / "rows.jsonl"
    data.write_bytes(jsonl([{"instruction": "1+1", "output": "2"}, {"instruction": "2+2", "output": "4"}]))
    uploaded = subprocess.run([*BELLE, "files", "upload", str(data), "--purpose", "import"], env=env,
                              capture_output=True, text=True)
    assert uploaded.returncode == 0, uploaded.stderr
    file_id = json.loads(uploaded.stdout)["id"]
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"type": "import", "file_id": file_id, "name": "cli-data"}))
    submitted = subprocess.run([*BELLE, "jobs", "submit", str(spec), "--follow"], env=env, capture_output=True,
                               text=True, timeout=60)
    assert submitted.returncode == 0, submitted.stderr
    job = json.loads(submitted.stdout)
    assert job["status"] == "succeeded" and job["result"]["rows"] == 2
    assert "job succeeded" in submitted.stderr  # the followed events
    listed = subprocess.run([*BELLE, "jobs", "list"], env=env, capture_output=True, text=True)
    assert job["id"] in listed.stdout
    # A bad spec is refused with the gateway's message and a non-zero exit.
    spec.write_text(json.dumps({"type": "import", "file_id": "nope"}))
    refused = subprocess.run([*BELLE, "jobs", "submit", str(spec)], env=env, capture_output=True, text=True)
    assert refused.returncode == 1 and "file_id" in refused.stderr


def test_killed_worker_in_embedded_stack_is_restarted_and_its_job_finishes(shared_stack):
    proc, url, headers, _ = shared_stack
    job_id = _import(url, headers, jsonl(big_import_rows(300_000)))
    wait_for(lambda: _job(url, headers, job_id)["status"] == "running", timeout=30, message="job running")

    worker = _worker_main(proc.pid)
    for p in [worker, *worker.children(recursive=True)]:
        p.kill()  # SIGKILL the worker and its pool
    job = wait_for(lambda: (j := _job(url, headers, job_id))["status"] in ("succeeded", "failed") and j,
                   timeout=120, message="job to finish after the worker was killed")
    assert job["status"] == "succeeded", job["error"]
    assert job["attempts"] == 2 and job["result"]["rows"] == 300_000
    assert _worker_main(proc.pid).pid != worker.pid  # the supervisor restarted it


def test_sigkilled_belle_up_leaves_no_orphans(stack):
    proc, _, _, _ = stack
    tree = psutil.Process(proc.pid).children(recursive=True)
    assert tree
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    gone, alive = psutil.wait_procs(tree, timeout=20)
    assert alive == [], f"orphans after SIGKILL of belle up: {[p.cmdline() for p in alive]}"


def test_belle_up_serves_the_tiny_model_on_v1_models(shared_stack):
    pytest.importorskip("belle_trainer.tiny")
    _, url, headers, data_dir = shared_stack
    models = httpx.get(f"{url}/v1/models", headers=headers).json()["data"]
    assert [(m["id"], m["owned_by"], m["kind"]) for m in models] == [("belle-tiny-llama", "belle", "base")]
    assert (data_dir / "models" / "belle-tiny-llama" / "model.safetensors").is_file()
    assert "registered the shared base model belle-tiny-llama" in (data_dir.parent / "up.log").read_text()


def _redis(up_pid: int, killed: list[int]) -> psutil.Process | None:
    """The embedded Redis that `belle up` runs now (not one of those already killed), or None."""
    for child in psutil.Process(up_pid).children():
        try:
            if child.pid not in killed and "redis-server" in " ".join(child.cmdline()):
                return child
        except psutil.Error:  # gone, or a zombie not yet reaped
            continue
    return None


def test_a_broker_that_keeps_crashing_degrades_the_stack_instead_of_stopping_it(shared_stack):
    """Six Redis crashes in a row (the supervisor once gave up after five a minute and stopped everything):
    `belle up` keeps restarting it with a growing wait and says why; meanwhile the gateway answers, says
    what is down, and takes a job into its outbox, which runs once Redis is back."""
    proc, url, headers, data_dir = shared_stack
    file = httpx.post(f"{url}/v1/files", headers=headers, files={"file": ("d.jsonl", jsonl([{"instruction": "a",
                      "output": "b"}]))}, timeout=60).json()
    killed = []
    for _ in range(6):
        redis = wait_for(lambda: _redis(proc.pid, killed), timeout=30, message="the supervisor to start Redis again")
        redis.kill()
        redis.wait(timeout=10)
        killed.append(redis.pid)
    assert proc.poll() is None, "belle up stopped after its broker crashed"
    ready = httpx.get(f"{url}/readyz", timeout=10)
    assert ready.status_code == 200 and ready.json()["status"] == "degraded", ready.text
    assert ready.json()["checks"]["broker"] != "ok" and ready.json()["checks"]["database"] == "ok"
    submitted = httpx.post(f"{url}/v1/jobs", headers=headers, json={"type": "import", "file_id": file["id"]}, timeout=30)
    assert submitted.status_code == 201, submitted.text
    job = wait_for(lambda: (j := _job(url, headers, submitted.json()["id"]))["status"] in ("succeeded", "failed") and j,
                   timeout=90, message="the job taken while Redis was down to run once it is back")
    assert job["status"] == "succeeded", job["error"]
    assert httpx.get(f"{url}/readyz", timeout=10).json()["status"] == "ok"
    log = " ".join((data_dir.parent / "up.log").read_text().split())  # (its lines are wrapped)
    assert "redis was killed by SIGKILL" in log and "6 crashes in a row" in log and "restarting in 16s" in log, log
    assert "redis started again" in log
    assert len(set(killed)) == 6


def test_embedded_stack_runs_an_import_and_stops_cleanly(shared_stack):
    """Last in the file: it stops the stack the tests above shared."""
    proc, url, headers, data_dir = shared_stack
    assert (data_dir / "belle.db").exists()
    job_id = _import(url, headers, jsonl([{"instruction": "你好", "output": "你好！"}]))
    job = wait_for(lambda: (j := _job(url, headers, job_id))["status"] in ("succeeded", "failed") and j,
                   timeout=30, message="import to finish")
    assert job["status"] == "succeeded" and job["result"]["rows"] == 1

    tree = psutil.Process(proc.pid).children(recursive=True)
    assert len(tree) >= 3  # redis, gateway, datagen worker (+ its pool)
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    try:
        # Seconds alone; it has taken over 60 in full-suite runs (cause not found yet): say what was left.
        code = proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        left = [p.cmdline() for p in tree if p.is_running()]
        # Its signal masks (a blocked or ignored SIGINT is inherited from whoever started it) and, through
        # the SIGUSR1 handler `belle up` registers, the stack of each of its threads.
        signals = [line for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines() if line.startswith("Sig")]
        proc.send_signal(signal.SIGUSR1)
        time.sleep(2)
        raise AssertionError(f"belle up still running 120 s after Ctrl-C; children left: {left}; {signals}; its log: "
                             f"{(data_dir.parent / 'up.log').read_text()[-6000:]}") from None
    assert code == 0
    gone, alive = psutil.wait_procs(tree, timeout=10)
    assert alive == [], f"left running after Ctrl-C: {[p.cmdline() for p in alive]}"
