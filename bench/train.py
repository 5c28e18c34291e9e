"""Fine-tuning throughput: the project's trainer (packing) vs a plain Hugging Face Trainer (padding).

    .venv/bin/python bench/train.py                       # ~4 min on 2 CPU cores
    .venv/bin/python bench/train.py --rows 2000 --hidden-size 384 --max-length 1024
    .venv/bin/python bench/train.py --group-by-length     # a stronger baseline: HF's length grouping
    .venv/bin/python bench/train.py --preset 1b           # on a GPU: a 1B-class model, tokens/s per GPU and MFU
    .venv/bin/python bench/train.py --model smollm2 --rows 200 --max-length 256 --lr 2e-5   # the real 135M model

Both sides fine-tune the same random-init local LLaMA (`belle_trainer.tiny.init_tiny_model`, built
once in a temporary folder, so both start from the same weights), or with `--model smollm2` the bundled
real model (SmolLM2-135M-Instruct, in its own ChatML template; bench/real_model.py), for one epoch on the same rows,
with the same learning rate, cosine schedule, warmup, weight decay, clipping, AdamW and seed:

- project: `python -m belle_trainer.train --config RUN/run.json` in a child process, `packing: true`,
  method full, ZeRO stage 0 (one process has nothing to partition; measured on 400 rows: stage 0
  2143, stage 1 2095, stage 2 1582 tokens/s);
- baseline: the `transformers.Trainer` a user would write, in this process: rows tokenised with the
  same chat format and label masks (`chat_format.tokenize_conversation`, so both train on the same
  tokens and labels), `DataCollatorForSeq2Seq` padding each batch to its longest sample, no DeepSpeed.

Samples per optimizer step are matched: the baseline takes `--batch-size` x `--grad-accum` samples
per step (8 x 3); the project takes, in one micro-batch, the number of packed rows that holds as many
samples on average, so both make about the same number of optimizer steps.

Data (seeded, BELLE-like length mix): 60% short single-turn tasks from the offline teacher
(`belle_teacher.tasks.generate_task`), 30% medium (one bundled seed task, or 2-4 teacher tasks as a
conversation), 10% long multi-turn conversations of 4-12 seed tasks (cut to `--max-length` by whole
turns). The held-out rows are drawn the same way from a disjoint fifth of the seed tasks.

Measured:
- trained tokens: non-pad input tokens (every sample once; the same total on both sides);
- tokens/s: trained tokens / training time, where training time is the wall time of the optimizer
  steps (from the Trainer's `on_step_begin` to `on_step_end`: forward, backward, clipping, update),
  the clock the project's trainer reports `tokens_per_second` with. It leaves out model loading,
  tokenisation, the project's checkpoint saves and batch collation on both sides. The project's time
  is summed from its progress events (tokens of each log interval / its tokens_per_second); the
  end-to-end `trainer.train()` times are printed too (the project's includes its checkpoint saves);
- held-out loss: both final models loaded from disk and evaluated by the same function here: mean
  cross-entropy over assistant tokens, padded batches, no packing;
- peak memory, LoRA vs full: the project's trainer run twice more on the first `--memory-rows` rows,
  method lora and full, one packed row per step (BELLE's micro-batch of 1), by default on a wider
  model of the same shape (`--memory-hidden-size 1024`, 59M parameters: at 5M the 12 bytes per
  parameter that LoRA saves are lost among the runtime and activations); each child's RSS polled
  from /proc (Linux), the peak of each phase: training steps, checkpoint saves, the final save (and
  for LoRA the merge into the base model), and overall. With `--model smollm2` the memory runs use the
  real model itself, and print each method's tokens/s.

The two sides run one after the other in one invocation (`--rounds N` alternates their order and
reports the median). Each side uses `--threads` CPU threads, 1 by default: on a 2-core machine shared
with other work, 2 OpenMP threads per process stall at every parallel region whenever another
process holds one of the cores (measured: the same baseline ran at 650 tokens/s with 1 thread and
155 with 2, alternating runs, load average ~3); 1 thread is slower than 2 on an idle machine but
stable on a busy one. Times still vary by 10-30% from run to run. Last line: `ratio: X`, the project's
tokens/s over the baseline's.

A benchmark is one self-contained script (the project, the baseline, the table and the targets in
one file), so it can be read and run alone; hence over 400 lines.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from importlib import resources
from pathlib import Path
from typing import Any

from belle_shared.chat_template import end_of_turn_token
from belle_teacher.tasks import generate_task
from belle_trainer.chat_format import IGNORE_INDEX, tokenize_conversation
from belle_trainer.progress import PROGRESS_FILE, read_events

SHORT_SHARE, MEDIUM_SHARE = 0.6, 0.3  # the rest (10%) is the long multi-turn tail
HELD_OUT_SEED_SHARE = 0.2             # seed tasks kept out of the training rows
# Model shapes: the CPU default (compute dominates, a few minutes on 2 cores) and a 1B-class LLaMA
# for an accelerator (20 layers x 12 x 2048^2 + embeddings = ~1.0B parameters).
PRESETS = {"cpu": {"hidden_size": 256, "num_layers": 4, "num_heads": 4},
           "1b": {"hidden_size": 2048, "num_layers": 20, "num_heads": 16}}
# Dense bf16 peak of the accelerators MFU is computed against (FLOP/s); --peak-tflops overrides.
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}


# ---------------------------------------------------------------------------------------- data


def _seed_tasks() -> list[tuple[str, str]]:
    """(human, assistant) of every bundled Chinese seed task (first instance)."""
    text = resources.files("belle_datagen").joinpath("data/seed_tasks_zh.jsonl").read_text(encoding="utf-8")
    pairs = []
    for line in text.splitlines():
        if line.strip():
            task = json.loads(line)
            instance = task["instances"][0]
            pairs.append((_human(task["instruction"], instance.get("input", "")), instance["output"]))
    return pairs


def _human(instruction: str, input_text: str) -> str:
    return instruction + ("\n" + input_text if input_text else "")


def _teacher_pair(rng: random.Random) -> tuple[str, str]:
    task = generate_task(rng, "zh")
    return _human(task.instruction, task.input), task.output


def make_row(rng: random.Random, seeds: list[tuple[str, str]]) -> dict[str, Any]:
    """One canonical conversation row of the BELLE-like length mix."""
    draw = rng.random()
    if draw < SHORT_SHARE:
        pairs = [_teacher_pair(rng)]
    elif draw < SHORT_SHARE + MEDIUM_SHARE:
        pairs = [rng.choice(seeds)] if rng.random() < 0.5 else [_teacher_pair(rng) for _ in range(rng.randint(2, 4))]
    else:
        pairs = [rng.choice(seeds) for _ in range(rng.randint(4, 12))]
    turns = []
    for human, assistant in pairs:
        turns += [{"from": "human", "value": human}, {"from": "assistant", "value": assistant}]
    return {"conversations": turns}


def make_rows(count: int, held_out: int, seed: int) -> tuple[list[dict], list[dict]]:
    """(train rows, held-out rows), deterministic for a seed; they share no seed task."""
    seeds = _seed_tasks()
    random.Random(seed).shuffle(seeds)
    cut = round(len(seeds) * HELD_OUT_SEED_SHARE)
    train_rng, held_rng = random.Random(seed + 1), random.Random(seed + 2)
    return ([make_row(train_rng, seeds[cut:]) for _ in range(count)],
            [make_row(held_rng, seeds[:cut]) for _ in range(held_out)])


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------ project


class PeakMemory:
    """A child's resident memory (RSS), read from /proc every 50 ms until it exits (Linux; None
    elsewhere), each reading filed under what the child did then: the progress event that came next
    tells (`step`: training steps, `checkpoint`: a checkpoint save, `done`: the final save and, for
    LoRA, the merge of the adapter into a fresh copy of the base model; `start`: loading).
    Not ru_maxrss: on Linux that also counts this process's RSS at the fork, larger by then."""

    def __init__(self, pid: int, progress: Path):
        self.status = Path(f"/proc/{pid}/status")
        self.progress = progress
        self._readings: list[tuple[int, int]] = []  # (RSS bytes, events written by then)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stopped.wait(0.05):
            try:
                text = self.status.read_text()
                events = len(read_events(self.progress))
            except (OSError, ValueError):  # gone, or a line being written
                continue
            rss = next((line.split()[1] for line in text.splitlines() if line.startswith("VmRSS:")), None)
            if rss is None:  # a zombie: its memory is gone
                return
            self._readings.append((int(rss) * 1024, events))

    def stop(self) -> dict[str, int | None]:
        """Peak RSS by phase: "steps", "checkpoints", "final", and "run" (all readings)."""
        self._stopped.set()
        self._thread.join()
        kinds = [event["event"] for event in read_events(self.progress)]
        peaks: dict[str, int | None] = {"steps": None, "checkpoints": None, "final": None, "run": None}
        phase_of = {"step": "steps", "checkpoint": "checkpoints", "done": "final", "error": "final"}
        for rss, seen in self._readings:
            phase = phase_of.get(kinds[seen]) if seen < len(kinds) else "final"
            for key in (phase, "run"):
                if key:
                    peaks[key] = max(peaks[key] or 0, rss)
        return peaks


def run_project(work: Path, name: str, *, model: Path, train_file: Path, method: str, batch_size: int,
                lr: float, max_length: int, seed: int, zero_stage: int) -> dict[str, Any]:
    """Run the project's trainer in a child process; its done event, training time and peak RSS."""
    run_dir = work / name
    run_dir.mkdir()
    spec = {"base_model": "bench-llama", "training_file_id": str(uuid.uuid4()), "validation_split": 0,
            "method": method, "packing": True, "zero_stage": zero_stage, "num_processes": 1,
            "hyperparameters": {"learning_rate": lr, "epochs": 1, "batch_size": batch_size,
                                "gradient_accumulation_steps": 1, "warmup_ratio": 0.05, "weight_decay": 1e-5,
                                "lr_scheduler": "cosine", "max_length": max_length, "seed": seed}}
    config = {"spec": spec, "base_model_path": str(model), "train_file": str(train_file),
              "validation_file": None, "output_dir": str(run_dir), "resume": False}
    (run_dir / "run.json").write_text(json.dumps(config), encoding="utf-8")
    log_path = run_dir / "train.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "belle_trainer.train", "--config", str(run_dir / "run.json")],
                                stdout=log, stderr=subprocess.STDOUT)
        memory = PeakMemory(proc.pid, run_dir / PROGRESS_FILE)
        proc.wait()
        peaks = memory.stop()
    events = read_events(run_dir / PROGRESS_FILE)
    done = next((e for e in events if e["event"] == "done"), None)
    if proc.returncode != 0 or done is None:
        tail = log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise SystemExit(f"the project's trainer ({name}) failed, exit {proc.returncode}:\n{tail}")
    # Each step event's tokens_per_second covers the tokens since the previous one over the optimizer
    # steps' wall time; summing tokens / rate gives the steps' time for every logged token.
    logged_tokens, step_seconds, previous = 0, 0.0, 0
    for event in events:
        if event["event"] == "step" and event["tokens_per_second"]:
            delta = event["trained_tokens"] - previous
            previous = event["trained_tokens"]
            logged_tokens += delta
            step_seconds += delta / event["tokens_per_second"]
    start = next(e for e in events if e["event"] == "start")
    return {"done": done, "start": start, "tokens": done["trained_tokens"], "samples": start["num_train_samples"],
            "tokens_per_second": logged_tokens / step_seconds if step_seconds else 0.0,
            "step_seconds": step_seconds * done["trained_tokens"] / logged_tokens if logged_tokens else 0.0,
            "train_seconds": done["train_seconds"], "peak_rss": peaks, "final": run_dir / done["model_path"]}


# ----------------------------------------------------------------------------------- baseline


def run_baseline(work: Path, name: str, *, model_path: Path, samples: list, batch_size: int, grad_accum: int,
                 lr: float, seed: int, group_by_length: bool, on_gpu: bool) -> dict[str, Any]:
    """A plain HF Trainer run in this process: padded batches, no DeepSpeed; returns its timings."""
    import torch
    from transformers import (AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, Trainer,
                              TrainerCallback, TrainingArguments)

    class StepClock(TrainerCallback):
        """The optimizer steps' wall time (the same span the project's trainer times)."""

        seconds, _started = 0.0, None

        def on_step_begin(self, args, state, control, **kwargs):
            if on_gpu:
                torch.cuda.synchronize()
            self._started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if on_gpu:
                torch.cuda.synchronize()
            self.seconds += time.perf_counter() - self._started

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    model.config.use_cache = False
    dataset = [{"input_ids": s.input_ids, "attention_mask": [1] * len(s), "labels": s.labels} for s in samples]
    out_dir = work / name
    bf16 = on_gpu and torch.cuda.is_bf16_supported()
    args = TrainingArguments(
        output_dir=str(out_dir), per_device_train_batch_size=batch_size, gradient_accumulation_steps=grad_accum,
        num_train_epochs=1, learning_rate=lr, lr_scheduler_type="cosine", warmup_steps=0.05, weight_decay=1e-5,
        seed=seed, data_seed=seed, bf16=bf16, use_cpu=not on_gpu,
        train_sampling_strategy="group_by_length" if group_by_length else "random", logging_steps=10,
        save_strategy="no", report_to="none", disable_tqdm=True, dataloader_num_workers=0)
    clock = StepClock()
    collator = DataCollatorForSeq2Seq(tokenizer, padding="longest", label_pad_token_id=IGNORE_INDEX)
    padded = 0

    def counting_collator(features):  # measurement only: the tokens computed on, padding included
        nonlocal padded
        batch = collator(features)
        padded += batch["input_ids"].numel()
        return batch

    trainer = Trainer(model=model, args=args, train_dataset=dataset, callbacks=[clock],
                      data_collator=counting_collator)
    started = time.perf_counter()
    trainer.train()
    train_seconds = time.perf_counter() - started
    trainer.save_model(str(out_dir / "final"))
    tokens = sum(len(s) for s in samples)
    return {"tokens": tokens, "samples": len(samples), "tokens_per_second": tokens / clock.seconds,
            "step_seconds": clock.seconds,
            "train_seconds": train_seconds, "steps": trainer.state.global_step, "padded_tokens": padded,
            "final": out_dir / "final"}


# --------------------------------------------------------------------------------------- eval


def held_out_loss(model_path: Path, samples: list, *, batch_size: int, device: str) -> float:
    """Mean token cross-entropy over the assistant tokens of `samples` (padded batches, no packing)."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).to(device).eval()
    loss_sum, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(samples), batch_size):
            batch = samples[start:start + batch_size]
            length = max(len(s) for s in batch)
            ids = torch.zeros((len(batch), length), dtype=torch.long)
            labels = torch.full((len(batch), length), IGNORE_INDEX, dtype=torch.long)
            mask = torch.zeros((len(batch), length), dtype=torch.long)
            for row, sample in enumerate(batch):
                ids[row, :len(sample)] = torch.tensor(sample.input_ids)
                labels[row, :len(sample)] = torch.tensor(sample.labels)
                mask[row, :len(sample)] = 1
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
            target = labels[:, 1:].to(device)
            loss_sum += float(torch.nn.functional.cross_entropy(
                logits[:, :-1].reshape(-1, logits.size(-1)), target.reshape(-1),
                ignore_index=IGNORE_INDEX, reduction="sum"))
            count += int((target != IGNORE_INDEX).sum())
    return loss_sum / count


# --------------------------------------------------------------------------------------- main


def model_parameters(folder: Path) -> int:
    """Parameters of a tiny model (`belle_model.json`) or an imported one (`belle_import.json`)."""
    for name in ("belle_model.json", "belle_import.json"):
        if (folder / name).exists():
            return json.loads((folder / name).read_text())["parameters"]
    raise SystemExit(f"{folder}: no belle_model.json or belle_import.json")


def _mib(n: int | None) -> str:
    return "n/a" if n is None else f"{n / 2**20:.0f} MiB"


def _accelerator() -> tuple[bool, str]:
    import torch

    return (True, torch.cuda.get_device_name(0)) if torch.cuda.is_available() else (False, "none")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1000, help="training rows")
    parser.add_argument("--held-out-rows", type=int, default=200)
    parser.add_argument("--model", choices=("tiny", "smollm2"), default="tiny",
                        help="a random-init LLaMA of --preset's shape, or the bundled real model (135M)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu", help="model shape")
    parser.add_argument("--hidden-size", type=int, help="overrides the preset")
    parser.add_argument("--layers", type=int, help="overrides the preset")
    parser.add_argument("--heads", type=int, help="overrides the preset")
    parser.add_argument("--vocab-size", type=int, default=4096)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=8, help="baseline samples per micro-batch")
    parser.add_argument("--grad-accum", type=int, default=3, help="baseline micro-batches per optimizer step")
    parser.add_argument("--lr", type=float, default=1e-3,
                        help="peak learning rate, both sides (a random-init model needs more than BELLE's 8e-6)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--zero-stage", type=int, default=0, choices=(0, 1, 2, 3), help="project's ZeRO stage")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each side, alternating which goes first")
    parser.add_argument("--group-by-length", action="store_true", help="baseline: HF's group_by_length sampler")
    parser.add_argument("--memory-rows", type=int, default=32, help="rows of the LoRA/full memory runs (0: skip)")
    parser.add_argument("--memory-hidden-size", type=int, default=1024,
                        help="width of the memory runs' model (same layers and heads; 0: the benchmark's model)")
    parser.add_argument("--peak-tflops", type=float, help="accelerator peak for MFU (default: by device name)")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads per side (torch/OpenMP); see the docstring before raising it")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and print its path")
    options = parser.parse_args(argv)
    # Before torch is imported, for this process and the trainer's (accelerate only sets it when unset).
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(options.threads)

    import torch

    torch.set_num_threads(options.threads)
    from transformers import AutoTokenizer

    from belle_trainer.packing import pack
    from belle_trainer.tiny import init_tiny_model

    shape = {**PRESETS[options.preset]}
    for key, value in (("hidden_size", options.hidden_size), ("num_layers", options.layers),
                       ("num_heads", options.heads)):
        if value is not None:
            shape[key] = value
    on_gpu, device_name = _accelerator()
    work = Path(tempfile.mkdtemp(prefix="belle-bench-train-"))
    if options.model == "smollm2":
        from real_model import bundled_model

        model_path, record = bundled_model()
        shape = {"hidden_size": 576, "num_layers": 30, "num_heads": 9}
        options.vocab_size, options.memory_hidden_size = 49152, 0  # the memory runs use it too
    else:
        model_path = init_tiny_model(work / "model", vocab_size=options.vocab_size, seed=options.seed,
                                     max_position=max(2048, options.max_length), **shape)
    parameters = model_parameters(model_path)

    train_rows, held_rows = make_rows(options.rows, options.held_out_rows, options.seed)
    train_file = write_jsonl(work / "train.jsonl", train_rows)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    end_of_turn = end_of_turn_token(tokenizer)  # the template the project's trainer trains in ("auto")

    def encode(rows):
        return [s for s in (tokenize_conversation(tokenizer, r, options.max_length, end_of_turn=end_of_turn)
                            for r in rows) if s]

    samples, held = encode(train_rows), encode(held_rows)
    packed = pack(samples, options.max_length)
    # Packed rows per step holding about as many samples as the baseline's batch.
    per_step = options.batch_size * options.grad_accum
    rows_per_step = max(1, round(per_step * len(packed) / len(samples)))
    lengths = sorted(len(s) for s in samples)

    print(f"model: {'SmolLM2-135M-Instruct' if options.model == 'smollm2' else 'random-init'} LLaMA, hidden "
          f"{shape['hidden_size']}, {shape['num_layers']} layers, {shape['num_heads']} heads, "
          f"vocab {options.vocab_size}: {parameters / 1e6:.2f}M parameters, fp32 weights, "
          f"{'GPU ' + device_name if on_gpu else f'CPU ({torch.get_num_threads()} threads)'}")
    print(f"data: {len(samples)} training samples ({len(train_rows) - len(samples)} dropped), "
          f"{sum(lengths)} tokens, length mean {sum(lengths) / len(lengths):.0f} / median {lengths[len(lengths) // 2]}"
          f" / max {lengths[-1]} (max_length {options.max_length}); {len(held)} held-out samples")
    print(f"steps: baseline {options.batch_size} x {options.grad_accum} = {per_step} samples per step; project "
          f"{len(packed)} packed rows ({len(samples) / len(packed):.1f} samples each), {rows_per_step} rows per step; "
          f"lr {options.lr:g} cosine, warmup 5%, 1 epoch, seed {options.seed}")

    common = {"lr": options.lr, "seed": options.seed, "max_length": options.max_length,
              "zero_stage": options.zero_stage}
    project_runs, baseline_runs = [], []
    for round_index in range(options.rounds):
        order = ("project", "baseline") if round_index % 2 == 0 else ("baseline", "project")
        for side in order:
            if side == "project":
                project_runs.append(run_project(work, f"project-{round_index}", model=model_path, train_file=train_file,
                                                method="full", batch_size=rows_per_step, **common))
            else:
                baseline_runs.append(run_baseline(
                    work, f"baseline-{round_index}", model_path=model_path, samples=samples, lr=options.lr,
                    seed=options.seed, batch_size=options.batch_size, grad_accum=options.grad_accum,
                    group_by_length=options.group_by_length, on_gpu=on_gpu))
    project_tps = statistics.median(r["tokens_per_second"] for r in project_runs)
    baseline_tps = statistics.median(r["tokens_per_second"] for r in baseline_runs)
    report_throughput(project_runs, baseline_runs, held, project_tps=project_tps, baseline_tps=baseline_tps,
                      packed_tokens=sum(len(p) for p in packed), parameters=parameters, on_gpu=on_gpu,
                      device_name=device_name, peak_tflops=options.peak_tflops, batch_size=options.batch_size)

    if options.memory_rows > 0:
        memory_model = model_path
        if options.memory_hidden_size:
            memory_model = init_tiny_model(work / "memory-model", vocab_size=options.vocab_size, seed=options.seed,
                                           max_position=max(2048, options.max_length),
                                           **{**shape, "hidden_size": options.memory_hidden_size})
        memory_file = write_jsonl(work / "memory.jsonl", train_rows[:options.memory_rows])
        report_memory(work, memory_model, memory_file, rows=options.memory_rows, **common)

    if options.keep:
        print(f"kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    ratio = project_tps / baseline_tps
    print(f"tokens/s: project {project_tps:.0f}, baseline {baseline_tps:.0f} "
          f"(target >= 1.8x: {'PASS' if ratio >= 1.8 else 'FAIL'})")
    print(f"ratio: {ratio:.2f}")
    return 0


def report_throughput(project_runs: list[dict], baseline_runs: list[dict], held: list, *, project_tps: float,
                      baseline_tps: float, packed_tokens: int, parameters: int, on_gpu: bool, device_name: str,
                      peak_tflops: float | None, batch_size: int) -> None:
    """Print the table of both sides (the last round's runs, the median tokens/s), the held-out
    losses of their final models, and on a GPU tokens/s per GPU and MFU."""
    project, baseline = project_runs[-1], baseline_runs[-1]
    device = "cuda" if on_gpu else "cpu"
    project_loss = held_out_loss(project["final"], held, batch_size=batch_size, device=device)
    baseline_loss = held_out_loss(baseline["final"], held, batch_size=batch_size, device=device)
    relative = (project_loss - baseline_loss) / baseline_loss

    print(f"{'side':<9}{'steps':>6}{'samples/step':>13}{'tokens':>8}{'computed':>9}{'step s':>8}{'train() s':>10}"
          f"{'tokens/s':>9}{'6N GFLOP/s':>11}{'held-out loss':>14}")
    for name, result, steps, computed, tps, loss in (
            ("baseline", baseline, baseline["steps"], baseline["padded_tokens"], baseline_tps, baseline_loss),
            ("project", project, project["done"]["step"], packed_tokens, project_tps, project_loss)):
        samples_per_step = result["samples"] / steps
        print(f"{name:<9}{steps:>6}{samples_per_step:>13.1f}{result['tokens']:>8}{computed:>9}"
              f"{result['step_seconds']:>8.1f}{result['train_seconds']:>10.1f}{tps:>9.0f}"
              f"{6 * parameters * tps / 1e9:>11.1f}{loss:>14.4f}")
    if len(project_runs) > 1:
        print("tokens/s of each round: project " + ", ".join(f"{r['tokens_per_second']:.0f}" for r in project_runs)
              + "; baseline " + ", ".join(f"{r['tokens_per_second']:.0f}" for r in baseline_runs) + " (median above)")
    print(f"computed tokens (padding included) per trained token: baseline "
          f"{baseline['padded_tokens'] / baseline['tokens']:.2f}, project {packed_tokens / project['tokens']:.2f} "
          f"(not counting the padding of packed rows to the longest row of a batch)")
    print(f"held-out loss: project {project_loss:.4f}, baseline {baseline_loss:.4f}, "
          f"difference {relative * 100:+.2f}% (target within 2%: {'PASS' if abs(relative) <= 0.02 else 'FAIL'})")
    if on_gpu:
        peak = peak_tflops or next((v for k, v in PEAK_TFLOPS.items() if k in device_name), None)
        for name, tps in (("baseline", baseline_tps), ("project", project_tps)):
            mfu = f", MFU {6 * parameters * tps / (peak * 1e12) * 100:.1f}% of {peak:g} TFLOP/s" if peak else ""
            print(f"{name}: {tps:.0f} tokens/s per GPU (1 GPU){mfu} (6N FLOPs per token, N = {parameters / 1e9:.2f}B)")
    else:
        print("accelerator: none (tokens/s per GPU and MFU: --preset 1b on a GPU machine)")
    print(f"peak RSS of the project's run: {_phases(project['peak_rss'])}")


def _phases(peaks: dict[str, int | None]) -> str:
    return (f"{_mib(peaks['steps'])} in training steps, {_mib(peaks['checkpoints'])} saving checkpoints, "
            f"{_mib(peaks['final'])} in the final save, {_mib(peaks['run'])} overall")


def report_memory(work: Path, model: Path, train_file: Path, *, rows: int, **common: Any) -> None:
    """Run the project's trainer with LoRA and with full fine-tuning on the same rows, one packed row
    per step (BELLE's micro-batch of 1), and print their peak RSS."""
    parameters = model_parameters(model)
    runs = {method: run_project(work, f"memory-{method}", model=model, train_file=train_file, method=method,
                                batch_size=1, **common) for method in ("lora", "full")}
    print(f"memory runs: {parameters / 1e6:.2f}M-parameter model, {rows} rows, 1 packed row per step")
    for method, run in runs.items():
        print(f"peak RSS {method} ({run['start']['trainable_parameters'] / 1e6:.2f}M trainable, {run['done']['step']} "
              f"steps, {run['tokens_per_second']:.0f} tokens/s): {_phases(run['peak_rss'])}")
    full, lora = runs["full"]["peak_rss"]["steps"], runs["lora"]["peak_rss"]["steps"]
    if full and lora:
        print(f"LoRA vs full in training steps: {_mib(lora)} vs {_mib(full)} ({(lora - full) / full * 100:+.0f}%); "
              f"full fine-tuning's gradients + AdamW states: 12 bytes x {parameters / 1e6:.2f}M "
              f"= {_mib(12 * parameters)}")


if __name__ == "__main__":
    sys.exit(main())
