"""The offline demo (`belle demo`): the platform end to end on the embedded default.

Starts the stack, creates a team, starts the offline teacher (`belle teacher`, in this process) and
generates a Chinese instruction dataset from it with a `datagen` job (self-instruct: prompts from the
bundled seed tasks, parsing, BELLE's filters, ROUGE-L de-duplication); then uploads the bundled
sample dataset (BELLE, Alpaca, ShareGPT and OpenAI formats mixed, with a few rows that must be
dropped) and imports it. Both go through the real queue and worker; the demo prints what was
recorded. Later pipeline steps join here as their services land.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path

from rich.console import Console
from rich.table import Table

from belle_cli.client import Client
from belle_cli.stack import Stack, StackError
from belle_cli.admin import new_team
from belle_shared.settings import Settings

SAMPLE = "sample_instructions.jsonl"
DEMO_ROWS = 200  # generated instructions: enough to see every filter at work, done in seconds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_demo(settings: Settings, *, port: int, console: Console, out: Console) -> int:
    from belle_cli.main import follow_job

    timings: dict[str, float] = {}
    stack = Stack(settings, port=port or free_port(), log=lambda m: console.print(f"[dim]{m}[/dim]"))
    t0 = time.perf_counter()
    try:
        with console.status("starting the embedded stack (SQLite, Redis, gateway, workers)"):
            stack.start()
    except StackError as exc:
        stack.stop()
        console.print(f"[red]error:[/red] {exc}")
        return 1
    timings["start stack"] = time.perf_counter() - t0
    try:
        console.print(f"stack up at {stack.url} (data in {stack.data_dir}, logs in {stack.log_dir})")
        team, key = new_team(settings, f"demo-{uuid.uuid4().hex[:8]}")
        console.print(f"created team {team.name}")
        client = Client(stack.url, key)

        t0 = time.perf_counter()
        with offline_teacher(seed=0) as teacher_url:
            console.print(f"offline teacher at {teacher_url}")
            job = client.submit({
                "type": "datagen", "name": "demo-generated", "target_count": DEMO_ROWS, "concurrency": 16,
                "seed": 0, "teacher": {"base_url": teacher_url, "model": "belle-teacher"},
            })
            job = follow_job(client, job["id"])
        timings["generate dataset"] = time.perf_counter() - t0
        if job["status"] != "succeeded":
            console.print(f"[red]datagen job {job['status']}:[/red] {job['error']}")
            return 1
        _print_generated(out, client.dataset(job["result"]["dataset_id"]))

        t0 = time.perf_counter()
        sample = Path(str(files("belle_cli") / "data" / SAMPLE))
        uploaded = client.upload(sample, purpose="import")
        console.print(f"uploaded {uploaded['filename']}: {uploaded['lines']} lines")
        job = client.submit({"type": "import", "file_id": uploaded["id"], "name": "demo-sample"})
        job = follow_job(client, job["id"])
        timings["import dataset"] = time.perf_counter() - t0
        if job["status"] != "succeeded":
            console.print(f"[red]import job {job['status']}:[/red] {job['error']}")
            return 1
        dataset = client.dataset(job["result"]["dataset_id"])
        _print_summary(out, dataset, timings)
        return 0
    finally:
        with console.status("stopping the stack"):
            stack.stop()


@contextmanager
def offline_teacher(**options):
    """Serve the offline teacher on a free port in a background thread; yields its base URL."""
    import uvicorn
    from belle_teacher.options import TeacherOptions
    from belle_teacher.server import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(TeacherOptions(port=port, **options)), host="127.0.0.1",
                                           port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, name="offline-teacher", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise StackError(f"the offline teacher did not start on port {port}")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _print_generated(out: Console, dataset: dict) -> None:
    stats = dataset["stats"]
    generation = stats["generation"]
    table = Table(title=f"generated dataset {dataset['name']} ({dataset['id']})", show_header=False)
    table.add_row("rows", str(dataset["rows"]))
    table.add_row("teacher replies", f"{generation['replies']} ({generation['retries']} retries)")
    table.add_row("tokens", f"{generation['total_tokens']} (${generation['cost_usd']:.4f})")
    table.add_row("Chinese share", f"{stats['chinese_share']:.0%}")
    table.add_row("dropped", ", ".join(f"{k}: {v}" for k, v in sorted(stats["dropped"].items())) or "none")
    for drop in stats["drop_examples"][:6]:
        table.add_row(f"  {drop['reason']}", drop["message"][:60])
    out.print(table)


def _print_summary(out: Console, dataset: dict, timings: dict[str, float]) -> None:
    stats = dataset["stats"]
    table = Table(title=f"dataset {dataset['name']} ({dataset['id']})", show_header=False)
    table.add_row("rows", str(dataset["rows"]))
    table.add_row("turns", str(stats["turns"]))
    table.add_row("multi-turn rows", str(stats["multi_turn_rows"]))
    table.add_row("Chinese share", f"{stats['chinese_share']:.0%}")
    table.add_row("source formats", ", ".join(f"{k}: {v}" for k, v in sorted(stats["formats"].items())))
    table.add_row("dropped", ", ".join(f"{k}: {v}" for k, v in sorted(stats["dropped"].items())) or "none")
    for drop in stats["drop_examples"]:
        where = f"{drop['field']}: " if drop.get("field") else ""
        table.add_row(f"  line {drop['line']}", f"{drop['reason']}: {where}{drop['message']}")
    for step, seconds in timings.items():
        table.add_row(f"time: {step}", f"{seconds:.1f}s")
    out.print(table)
