"""Real training runs of the entry point (`torchrun ... -m belle_trainer.train --config run.json`) on
the tiny models, on CPU: full fine-tuning under ZeRO-2 and ZeRO-3 with offload, LoRA under ZeRO-3,
in 2 processes over gloo; a run SIGKILLed after its first checkpoint resumes from it and ends
exactly where an uninterrupted run ends; a file with no usable row is an `error` event. DPO
(objective dpo) with LoRA and with full fine-tuning learns to prefer a fixed reply to random ones.

Each run takes 10-25 s on 2 cores; the whole file about 2.5 minutes.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("deepspeed")

from safetensors.torch import load_file  # noqa: E402

from belle_trainer.checkpoints import COMPLETE_MARKER, list_checkpoints  # noqa: E402
from belle_trainer.lora import DEFAULT_TARGET_MODULES  # noqa: E402
from belle_trainer.progress import EVENT_FIELDS, OPTIONAL_FIELDS, read_events  # noqa: E402
from belle_trainer.tiny import init_tiny_model  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]  # beside another test file under `make test`

DIGITS = "零一二三四五六七八九"
RUN_TIMEOUT = 240  # seconds, per run


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {arch: init_tiny_model(root / arch, arch=arch) for arch in ("llama", "bloom")}


@pytest.fixture(scope="module")
def train_file(tmp_path_factory) -> Path:
    """64 conversations a tiny model learns quickly: a number, then its digits in Chinese (every
    fourth one with a second turn)."""
    rng = random.Random(0)
    rows = []
    for index in range(64):
        number = rng.randint(0, 999)
        answer = "".join(DIGITS[int(d)] for d in str(number))
        turns = [{"from": "human", "value": f"把{number}逐位写成中文数字"}, {"from": "assistant", "value": answer}]
        if index % 4 == 0:
            turns += [{"from": "human", "value": "再说一遍"}, {"from": "assistant", "value": answer}]
        rows.append({"conversations": turns})
    path = tmp_path_factory.mktemp("data") / "train.jsonl"
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def write_run(run_dir: Path, base: Path, train_file: Path, *, resume: bool = True, **spec) -> Path:
    hyperparameters = {"epochs": 2, "batch_size": 2, "gradient_accumulation_steps": 2, "max_length": 128,
                       **spec.pop("hyperparameters", {})}
    full_spec = {"type": "train", "base_model": "tiny", "dataset_id": "00000000-0000-0000-0000-000000000001",
                 "validation_split": 0.1, "hyperparameters": hyperparameters, **spec}
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "run.json"
    path.write_text(json.dumps({"spec": full_spec, "base_model_path": str(base), "train_file": str(train_file),
                                "validation_file": None, "output_dir": str(run_dir), "resume": resume}))
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun(run_json: Path, nproc: int) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
            "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
            "-m", "belle_trainer.train", "--config", str(run_json)]


def start(run_json: Path, nproc: int) -> subprocess.Popen:
    """torchrun in its own process group, as the trainer worker starts it."""
    log = (run_json.parent / "stderr.log").open("a")
    return subprocess.Popen(torchrun(run_json, nproc), stdout=subprocess.PIPE, stderr=log, start_new_session=True)


def launch(run_json: Path, nproc: int) -> tuple[int, list[dict], str]:
    """Run to the end: (exit status, progress events, stdout)."""
    process = start(run_json, nproc)
    try:
        stdout, _ = process.communicate(timeout=RUN_TIMEOUT)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    return process.returncode, read_events(run_json.parent / "progress.jsonl"), stdout.decode(errors="replace")


def stderr_tail(run_dir: Path) -> str:
    path = run_dir / "stderr.log"
    return path.read_text(errors="replace")[-3000:] if path.exists() else ""


FRESH_PROCESS = r"""
import json, sys
from transformers import AutoModelForCausalLM, AutoTokenizer
folder = sys.argv[1]
model = AutoModelForCausalLM.from_pretrained(folder)
tokenizer = AutoTokenizer.from_pretrained(folder)
prompt = tokenizer.apply_chat_template([{"role": "user", "content": "把12逐位写成中文数字"}],
                                       add_generation_prompt=True, tokenize=False)
inputs = tokenizer(prompt, return_tensors="pt")
output = model.generate(**inputs, max_new_tokens=4, min_new_tokens=4, do_sample=False,
                        pad_token_id=tokenizer.pad_token_id)
print(json.dumps({"prompt": prompt, "new_tokens": output.shape[1] - inputs["input_ids"].shape[1],
                  "model_type": model.config.model_type}))
"""


def load_in_fresh_process(folder: Path) -> dict:
    """Load a model folder with the Auto classes in a new Python process and generate 4 tokens."""
    result = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(folder)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def check_contract(events: list[dict], *, world_size: int, dpo: bool = False) -> dict[str, list[dict]]:
    """Every event has the contract's fields (and DPO's optional ones exactly when `dpo`); one run from
    start to done; returns events by kind."""
    by_kind: dict[str, list[dict]] = {kind: [] for kind in EVENT_FIELDS}
    for event in events:
        kind = event["event"]
        optional = OPTIONAL_FIELDS.get(kind, ()) if dpo else ()
        assert set(event) == {"event", *EVENT_FIELDS[kind], *optional}, event
        by_kind[kind].append(event)
    assert events[0]["event"] == "start" and events[-1]["event"] == "done"
    (start_event,) = by_kind["start"]
    assert start_event["world_size"] == world_size and start_event["resumed_from_step"] is None
    assert start_event["num_train_samples"] + start_event["num_eval_samples"] == 64
    assert start_event["num_eval_samples"] >= 1 and start_event["dropped_samples"] == 0
    assert 0 < start_event["trainable_parameters"] <= start_event["total_parameters"]
    total = start_event["total_steps"]
    steps = [event["step"] for event in by_kind["step"]]
    assert steps == list(range(1, total + 1))  # every step logged while total_steps <= 50
    tokens = [event["trained_tokens"] for event in by_kind["step"]]
    assert tokens == sorted(tokens) and tokens[0] > 0
    for event in by_kind["step"]:
        assert math.isfinite(event["loss"]) and event["learning_rate"] >= 0 and event["tokens_per_second"] > 0
        assert 0 < event["epoch"] <= 2
    assert by_kind["eval"] and all(math.isfinite(e["eval_loss"]) for e in by_kind["eval"])
    assert by_kind["eval"][-1]["step"] == total
    assert by_kind["checkpoint"] and all(e["path"] == f"checkpoints/checkpoint-{e['step']}" for e in by_kind["checkpoint"])
    done = by_kind["done"][0]
    assert done["step"] == total and done["model_path"] == "final" and done["trained_tokens"] == tokens[-1]
    assert done["eval_loss"] == by_kind["eval"][-1]["eval_loss"] and done["train_seconds"] > 0
    assert done["objective"] == ("dpo" if dpo else "sft")
    assert not by_kind["error"]
    return by_kind


def changed_tensors(folder: Path, base: Path) -> set[str]:
    trained, original = load_file(folder / "model.safetensors"), load_file(base / "model.safetensors")
    assert set(trained) == set(original)
    return {name for name in trained if not torch.equal(trained[name], original[name])}


def test_full_fine_tune_zero2_two_processes(models, train_file, tmp_path):
    run_json = write_run(tmp_path / "run", models["llama"], train_file, method="full", zero_stage=2,
                         num_processes=2, hyperparameters={"learning_rate": 1e-3})
    code, events, stdout = launch(run_json, 2)
    assert code == 0, stderr_tail(run_json.parent)
    assert stdout == ""  # everything but progress.jsonl goes to stderr
    by_kind = check_contract(events, world_size=2)
    assert by_kind["step"][-1]["loss"] < by_kind["step"][0]["loss"]
    assert by_kind["eval"][-1]["eval_loss"] < by_kind["eval"][0]["eval_loss"]
    assert by_kind["done"][0]["adapter_path"] is None

    run_dir, final = run_json.parent, run_json.parent / "final"
    assert len(changed_tensors(final, models["llama"])) == len(load_file(final / "model.safetensors"))
    record = json.loads((final / "belle_training.json").read_text())
    assert record["spec"]["zero_stage"] == 2 and record["metrics"]["step"] == by_kind["done"][0]["step"]
    assert not (final / "training_args.bin").exists()
    # The newest two checkpoints are kept, both complete.
    kept = list_checkpoints(run_dir / "checkpoints")
    assert [step for step, _ in kept] == [e["step"] for e in by_kind["checkpoint"]][-2:]
    assert all((path / COMPLETE_MARKER).is_file() for _, path in kept)
    fresh = load_in_fresh_process(final)
    assert fresh["new_tokens"] == 4 and fresh["prompt"].endswith("Assistant: ")  # the chat template came along


def test_bf16_on_cpu_trains_and_saves_a_bf16_model(models, train_file, tmp_path):
    """precision bf16 without a GPU: DeepSpeed's mixed precision on the CPU (fast where the CPU has
    bf16 instructions; the demo asks for it there). The loss falls and the model folder is bf16."""
    run_json = write_run(tmp_path / "run", models["llama"], train_file, method="full", zero_stage=0,
                         hyperparameters={"learning_rate": 1e-3, "precision": "bf16"})
    code, events, _ = launch(run_json, 1)
    assert code == 0, stderr_tail(run_json.parent)
    by_kind = check_contract(events, world_size=1)
    assert by_kind["eval"][-1]["eval_loss"] < by_kind["eval"][0]["eval_loss"]
    final = run_json.parent / "final"
    assert json.loads((final / "config.json").read_text())["dtype"] == "bfloat16"
    assert json.loads((final / "belle_training.json").read_text())["precision"] == "bf16"
    assert load_in_fresh_process(final)["new_tokens"] == 4


def test_a_time_budget_fits_the_steps_and_the_schedule(models, train_file, tmp_path):
    """max_seconds: the run measures its speed, fits the number of steps to the budget, decays the
    cosine schedule to its end over them, and stops in time."""
    budget = 8.0
    run_json = write_run(tmp_path / "run", models["llama"], train_file, method="full", zero_stage=0,
                         validation_split=0.0, hyperparameters={"epochs": 100, "learning_rate": 1e-3,
                                                                "max_seconds": budget, "warmup_ratio": 0.0})
    code, events, _ = launch(run_json, 1)
    assert code == 0, stderr_tail(run_json.parent)
    (start,) = [e for e in events if e["event"] == "start"]
    fits = [e for e in events if e["event"] == "budget"]  # the first fit, and a refit if the pace changed
    fitted = fits[-1]
    steps = [e for e in events if e["event"] == "step"]
    done = events[-1]
    assert all(fit["planned_steps"] == start["total_steps"] > fit["total_steps"] for fit in fits)
    assert fitted["total_steps"] >= done["step"] > 3
    assert fitted["seconds_per_step"] > 0 and fitted["max_seconds"] == budget
    assert done["train_seconds"] < budget + 3  # stopped at the budget (the last step and the final sync)
    # The schedule is the fitted one, not the planned one: at the last step the learning rate is well below
    # where the planned schedule (~300 steps of cosine) would still be. How far down the fitted schedule
    # the run got depends on the machine keeping its pace to the end (a slowdown after the last refit
    # stops the run at the budget early): tests/unit/test_time_budget.py checks, on a clock it drives,
    # that the refits take the schedule to near zero.
    planned = start["total_steps"]
    last = steps[-1]
    assert last["step"] == done["step"]
    assert last["learning_rate"] < 0.9 * 1e-3 * 0.5 * (1 + math.cos(math.pi * last["step"] / planned)), (fits, last)
    # A short budgeted run reports its steps often enough to follow: every step, or at least 10 (fewer
    # steps fit in the budget on a loaded machine, and then each is reported).
    assert len(steps) >= min(10, done["step"])


def test_lora_zero3_two_processes_merges_into_final(models, train_file, tmp_path):
    run_json = write_run(tmp_path / "run", models["bloom"], train_file, method="lora", zero_stage=3,
                         num_processes=2, hyperparameters={"learning_rate": 3e-3})
    code, events, _ = launch(run_json, 2)
    assert code == 0, stderr_tail(run_json.parent)
    by_kind = check_contract(events, world_size=2)
    assert by_kind["eval"][-1]["eval_loss"] < by_kind["eval"][0]["eval_loss"]
    start_event = by_kind["start"][0]
    assert start_event["trainable_parameters"] < start_event["total_parameters"] / 5

    run_dir = run_json.parent
    assert by_kind["done"][0]["adapter_path"] == "adapter"
    adapter_config = json.loads((run_dir / "adapter" / "adapter_config.json").read_text())
    assert adapter_config["r"] == 16 and adapter_config["lora_alpha"] == 32
    assert set(adapter_config["target_modules"]) == set(DEFAULT_TARGET_MODULES["bloom"])
    adapter = load_file(run_dir / "adapter" / "adapter_model.safetensors")
    lora_b = [tensor for name, tensor in adapter.items() if "lora_B" in name]
    assert lora_b and all(tensor.numel() > 0 for tensor in adapter.values())
    assert all(tensor.abs().sum() > 0 for tensor in lora_b)  # B starts at zero: it was trained

    # The merged model differs from the base exactly in the adapted projections.
    changed = changed_tensors(run_dir / "final", models["bloom"])
    assert changed and {name.split(".")[-2] for name in changed} == set(DEFAULT_TARGET_MODULES["bloom"])
    fresh = load_in_fresh_process(run_dir / "final")
    assert fresh["new_tokens"] == 4 and fresh["model_type"] == "bloom"


def test_full_zero3_with_offload_two_processes(models, train_file, tmp_path):
    run_json = write_run(tmp_path / "run", models["llama"], train_file, method="full", zero_stage=3,
                         offload="optimizer_and_parameters", packing=False, num_processes=2,
                         hyperparameters={"learning_rate": 1e-3, "epochs": 1, "batch_size": 4,
                                          "gradient_accumulation_steps": 1})
    code, events, _ = launch(run_json, 2)
    assert code == 0, stderr_tail(run_json.parent)
    by_kind = check_contract(events, world_size=2)
    assert by_kind["step"][-1]["loss"] < by_kind["step"][0]["loss"]
    final = run_json.parent / "final"
    # ZeRO-3 keeps a shard per process: the final folder has the gathered, full-size weights.
    assert len(changed_tensors(final, models["llama"])) == len(load_file(final / "model.safetensors"))
    assert load_in_fresh_process(final)["new_tokens"] == 4


def training_processes(run_json: Path) -> list[int]:
    """Pids of processes whose command line names this run's run.json."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if str(run_json) in cmdline:
                pids.append(int(entry.name))
    return pids


def test_killed_run_resumes_from_its_checkpoint(models, train_file, tmp_path):
    spec = {"method": "full", "zero_stage": 2, "packing": False,
            "hyperparameters": {"learning_rate": 1e-3, "epochs": 1, "batch_size": 2, "gradient_accumulation_steps": 1}}
    reference = write_run(tmp_path / "reference", models["llama"], train_file, **spec)
    code, reference_events, _ = launch(reference, 1)
    assert code == 0, stderr_tail(reference.parent)
    reference_done = reference_events[-1]

    run_json = write_run(tmp_path / "run", models["llama"], train_file, **spec)
    progress = run_json.parent / "progress.jsonl"
    process = start(run_json, 1)
    deadline = time.monotonic() + RUN_TIMEOUT
    while process.poll() is None and time.monotonic() < deadline:
        if any(event["event"] == "checkpoint" for event in read_events(progress)):
            break
        time.sleep(0.02)
    # What the worker does on cancel: kill torchrun's process group.
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    killed_events = read_events(progress)
    assert not any(event["event"] == "done" for event in killed_events), "the run ended before it was killed"
    saved = [event["step"] for event in killed_events if event["event"] == "checkpoint"]
    assert saved
    # torchrun starts its workers in sessions of their own; they must not outlive it.
    time.sleep(1.0)
    assert training_processes(run_json) == []
    assert len(read_events(progress)) == len(killed_events)

    code, events, _ = launch(run_json, 1)
    assert code == 0, stderr_tail(run_json.parent)
    resumed = events[len(killed_events):]
    assert resumed[0]["event"] == "start" and resumed[0]["resumed_from_step"] == saved[-1] > 0
    assert resumed[0]["total_steps"] == reference_events[0]["total_steps"]
    resumed_steps = [event["step"] for event in resumed if event["event"] == "step"]
    assert resumed_steps[0] == saved[-1] + 1  # the step count goes on
    done = resumed[-1]
    assert done["event"] == "done" and done["step"] == reference_done["step"]
    # Same seed, same data order after the skip, same optimizer state: the same end as without the kill.
    assert done["trained_tokens"] == reference_done["trained_tokens"]
    assert done["eval_loss"] == pytest.approx(reference_done["eval_loss"], rel=1e-5)
    final, reference_final = load_file(run_json.parent / "final" / "model.safetensors"), \
        load_file(reference.parent / "final" / "model.safetensors")
    assert all(torch.allclose(final[name], reference_final[name], atol=1e-5) for name in final)


def test_a_file_without_usable_rows_is_an_error(models, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "not a conversation"}\n{broken\n', encoding="utf-8")
    run_json = write_run(tmp_path / "run", models["llama"], bad, method="full")
    code, events, _ = launch(run_json, 1)
    assert code != 0
    assert [event["event"] for event in events] == ["error"]
    assert "no usable training row" in events[0]["message"] and "bad.jsonl" in events[0]["message"]
    assert not (run_json.parent / "final").exists()


# ------------------------------------------------------------------------------------------------ DPO

PREFERRED = "好的，答案是一二三。"  # every pair prefers this reply to a random string of digits


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory) -> Path:
    """64 canonical preference pairs a tiny model separates quickly: the chosen reply is always the
    same text, the rejected one random digits (every fourth prompt has an earlier exchange and a
    system prompt)."""
    rng = random.Random(1)
    rows = []
    for index in range(64):
        number = rng.randint(0, 999)
        turns = [{"from": "human", "value": f"把{number}逐位写成中文数字"}]
        if index % 4 == 0:
            turns = [{"from": "human", "value": "你好"}, {"from": "assistant", "value": "你好！"}, *turns]
        rejected = "".join(rng.choice(DIGITS) for _ in range(rng.randint(3, 9)))
        rows.append({"conversations": turns, "chosen": PREFERRED, "rejected": rejected,
                     **({"system": "你是一个助手。"} if index % 4 == 0 else {})})
    path = tmp_path_factory.mktemp("data") / "pairs.jsonl"
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def check_dpo_learned(run_dir: Path, by_kind: dict[str, list[dict]]) -> dict:
    """The reward margin grows and the pairs end up told apart, in training and on the held-out
    pairs; done and belle_training.json record the objective and the last reward metrics."""
    steps, evals, done = by_kind["step"], by_kind["eval"], by_kind["done"][0]
    assert all(0 <= e["reward_accuracy"] <= 1 and math.isfinite(e["reward_margin"]) for e in steps + evals)
    assert steps[-1]["reward_margin"] > steps[0]["reward_margin"] and steps[-1]["reward_margin"] > 0
    assert steps[-1]["reward_accuracy"] > 0.5 and evals[-1]["reward_accuracy"] > 0.5
    assert evals[-1]["reward_margin"] > evals[0]["reward_margin"]
    assert done["reward_margin"] == steps[-1]["reward_margin"]
    assert done["reward_accuracy"] == steps[-1]["reward_accuracy"]
    assert done["eval_reward_accuracy"] == evals[-1]["reward_accuracy"]
    record = json.loads((run_dir / "final" / "belle_training.json").read_text())
    assert record["objective"] == "dpo" and record["spec"]["objective"] == "dpo"
    assert record["metrics"]["eval_reward_accuracy"] == done["eval_reward_accuracy"]
    assert not (run_dir / "final" / "training_args.bin").exists()
    fresh = load_in_fresh_process(run_dir / "final")
    assert fresh["new_tokens"] == 4 and fresh["prompt"].endswith("Assistant: ")  # the chat template came along
    return record


def full_stderr(run_dir: Path) -> str:
    return (run_dir / "stderr.log").read_text(errors="replace")


# DPO runs take no packing: a bigger batch keeps the number of steps (and the run's time) small.
DPO_BATCH = {"batch_size": 8, "gradient_accumulation_steps": 1}


def test_dpo_lora_prefers_the_chosen_replies(models, pairs_file, tmp_path):
    run_json = write_run(tmp_path / "run", models["llama"], pairs_file, objective="dpo", method="lora",
                         zero_stage=0, hyperparameters={"learning_rate": 3e-3, **DPO_BATCH})
    code, events, _ = launch(run_json, 1)
    assert code == 0, stderr_tail(run_json.parent)
    by_kind = check_contract(events, world_size=1, dpo=True)
    start_event = by_kind["start"][0]
    assert start_event["trainable_parameters"] < start_event["total_parameters"] / 5
    check_dpo_learned(run_json.parent, by_kind)
    run_dir = run_json.parent
    assert by_kind["done"][0]["adapter_path"] == "adapter"
    # The reference is the base with the adapter disabled: nothing precomputed, and only the trained
    # adapter saved (trl's frozen copy of it, which would be saved as adapter/ref/, was dropped).
    assert "Computing reference log probs" not in full_stderr(run_dir)
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file() and not (run_dir / "adapter" / "ref").exists()
    changed = changed_tensors(run_dir / "final", models["llama"])
    assert changed and {name.split(".")[-2] for name in changed} <= set(DEFAULT_TARGET_MODULES["llama"])


def test_dpo_full_zero3_two_processes_precomputes_the_reference(models, pairs_file, tmp_path):
    run_json = write_run(tmp_path / "run", models["llama"], pairs_file, objective="dpo", method="full",
                         zero_stage=3, num_processes=2, dpo={"beta": 0.1, "loss_type": "sigmoid"},
                         hyperparameters={"learning_rate": 1e-4, "batch_size": 4, "gradient_accumulation_steps": 1})
    code, events, _ = launch(run_json, 2)
    assert code == 0, stderr_tail(run_json.parent)
    by_kind = check_contract(events, world_size=2, dpo=True)
    check_dpo_learned(run_json.parent, by_kind)
    # The reference log-probs of every training and held-out pair, computed once before the first step
    # (no second model held), in a cache both processes read.
    stderr = full_stderr(run_json.parent)
    assert "Computing reference log probs for train dataset" in stderr
    assert "Computing reference log probs for eval dataset" in stderr
    final = run_json.parent / "final"
    # ZeRO-3 keeps a shard per process: the final folder has the gathered, full-size weights, all trained.
    assert len(changed_tensors(final, models["llama"])) == len(load_file(final / "model.safetensors"))
