"""The training entry point's pieces, in process and fast: run.json and its defaults, the DeepSpeed
config per ZeRO stage and offload, progress events, checkpoint completeness, data loading with
dropped rows and the seeded hold-out, the collator's token counts, LoRA targets and merging.
Real training runs (torchrun subprocesses) are in tests/integration/test_training_runs.py."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config  # noqa: E402

from belle_trainer import checkpoints  # noqa: E402
from belle_trainer.ds_config import build_ds_config  # noqa: E402
from belle_trainer.errors import BadDataError, BadOptionError  # noqa: E402
from belle_trainer.hf_trainer import train_loss_from_history  # noqa: E402
from belle_trainer.lora import DEFAULT_TARGET_MODULES, apply_lora, merge_adapter, target_modules  # noqa: E402
from belle_trainer.packing import pack  # noqa: E402
from belle_trainer.progress import EVENT_FIELDS, ProgressWriter, read_events  # noqa: E402
from belle_trainer.run_config import load_run_config  # noqa: E402
from belle_trainer.tiny import init_tiny_model  # noqa: E402
from belle_trainer.train import _error_message, count_parameters  # noqa: E402
from belle_trainer.train_data import (  # noqa: E402
    NUM_TOKENS, Collator, holdout_size, load_run_data, tokenize_file,
)

SPEC = {"type": "train", "base_model": "tiny", "dataset_id": "00000000-0000-0000-0000-000000000001"}

EOS = {"end_of_turn": "</s>"}  # the tiny model's BELLE template ends each reply with its EOS


def conversation(question: str, answer: str) -> dict:
    return {"conversations": [{"from": "human", "value": question}, {"from": "assistant", "value": answer}]}


def write_jsonl(path, rows) -> str:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row, ensure_ascii=False)) + "\n"
                            for row in rows), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    return init_tiny_model(tmp_path_factory.mktemp("tiny") / "llama", arch="llama")


@pytest.fixture(scope="module")
def tokenizer(llama):
    return AutoTokenizer.from_pretrained(llama)


# ------------------------------------------------------------------------------ run.json


def write_run(tmp_path, **overrides) -> str:
    run = {"spec": SPEC, "base_model_path": "/m", "train_file": "/t.jsonl", "validation_file": None,
           "output_dir": str(tmp_path), "resume": True, **overrides}
    path = tmp_path / "run.json"
    path.write_text(json.dumps(run))
    return str(path)


@pytest.mark.parametrize("method, given, expected", [
    ("full", None, 8e-6), ("lora", None, 3e-4), ("full", 1e-4, 1e-4), ("lora", 5e-5, 5e-5)])
def test_learning_rate_defaults_by_method(tmp_path, method, given, expected):
    spec = {**SPEC, "method": method, "hyperparameters": {"learning_rate": given}}
    config = load_run_config(write_run(tmp_path, spec=spec))
    assert config.learning_rate == expected
    assert config.spec.lora.r == 16 and config.spec.lora.alpha == 32 and config.spec.lora.dropout == 0.05


def test_run_file_errors_are_bad_options(tmp_path):
    with pytest.raises(BadOptionError, match="cannot read"):
        load_run_config(tmp_path / "missing.json")
    with pytest.raises(BadOptionError, match="zero_stage"):
        load_run_config(write_run(tmp_path, spec={**SPEC, "zero_stage": 5}))
    with pytest.raises(BadOptionError, match="surprise"):
        load_run_config(write_run(tmp_path, surprise=1))


# ------------------------------------------------------------------------------ DeepSpeed config


@pytest.mark.parametrize("stage", [0, 1, 2, 3])
def test_ds_config_stage_and_auto_values(stage):
    config = build_ds_config(stage)
    assert config["zero_optimization"]["stage"] == stage
    for key in ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "train_batch_size"):
        assert config[key] == "auto"  # filled from TrainingArguments: one source for the spec's values
    assert "scheduler" not in config and "optimizer" not in config  # the Trainer's AdamW and schedule
    gathers = config["zero_optimization"].get("stage3_gather_16bit_weights_on_model_save")
    assert gathers is (True if stage == 3 else None)


def test_ds_config_offload():
    optimizer = build_ds_config(2, "optimizer")["zero_optimization"]
    assert optimizer["offload_optimizer"]["device"] == "cpu" and "offload_param" not in optimizer
    both = build_ds_config(3, "optimizer_and_parameters")
    assert both["zero_optimization"]["offload_param"]["device"] == "cpu"
    # On CPU torch's AdamW stays (no cpu_adam compile) and DeepSpeed is told that is intended.
    assert "optimizer" not in both and both["zero_force_ds_cpu_optimizer"] is False
    # With a GPU, offload uses DeepSpeed's CPU Adam.
    gpu = build_ds_config(3, "optimizer_and_parameters", on_gpu=True)
    assert gpu["optimizer"]["type"] == "AdamW" and "zero_force_ds_cpu_optimizer" not in gpu
    assert "optimizer" not in build_ds_config(2, on_gpu=True)


@pytest.mark.parametrize("stage, offload", [(0, "optimizer"), (2, "optimizer_and_parameters"), (4, "none"), (1, "disk")])
def test_ds_config_refuses_impossible_combinations(stage, offload):
    with pytest.raises(ValueError):
        build_ds_config(stage, offload)


# ------------------------------------------------------------------------------ progress and checkpoints


def test_progress_lines_parse_and_follow_the_contract(tmp_path):
    writer = ProgressWriter(tmp_path / "progress.jsonl")
    writer.write("step", step=1, epoch=0.5, loss=float("nan"), learning_rate=1e-3, tokens_per_second=10.0,
                 trained_tokens=12)
    writer.write("error", message="bad data: 无可用行")
    lines = (tmp_path / "progress.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])  # strict JSON: NaN became null
    assert first == {"event": "step", "step": 1, "epoch": 0.5, "loss": None, "learning_rate": 1e-3,
                     "tokens_per_second": 10.0, "trained_tokens": 12}
    assert read_events(tmp_path / "progress.jsonl")[1]["message"] == "bad data: 无可用行"
    with pytest.raises(ValueError, match="eval_loss"):
        writer.write("eval", step=3)
    with pytest.raises(ValueError, match="unknown"):
        writer.write("finished")
    assert set(EVENT_FIELDS) == {"start", "step", "eval", "budget", "checkpoint", "done", "error"}


def test_progress_writer_of_other_ranks_writes_nothing(tmp_path):
    ProgressWriter(tmp_path / "progress.jsonl", enabled=False).write("error", message="x")
    assert not (tmp_path / "progress.jsonl").exists()


def test_only_complete_checkpoints_are_resumed(tmp_path):
    for step in (4, 8, 12):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        (folder / checkpoints.TRAINER_STATE).write_text("{}")
    (tmp_path / "not-a-checkpoint").mkdir()
    assert checkpoints.newest_complete(tmp_path) is None
    checkpoints.mark_complete(tmp_path / "checkpoint-4", 4)
    checkpoints.mark_complete(tmp_path / "checkpoint-8", 8)
    # checkpoint-12 has no marker: the run was killed while saving it.
    assert checkpoints.newest_complete(tmp_path) == tmp_path / "checkpoint-8"
    assert checkpoints.remove_incomplete(tmp_path) == [tmp_path / "checkpoint-12"]
    assert [step for step, _ in checkpoints.list_checkpoints(tmp_path)] == [4, 8]
    assert checkpoints.newest_complete(tmp_path / "absent") is None


def test_train_loss_weights_log_lines_by_steps():
    history = [{"loss": 4.0, "step": 2}, {"eval_loss": 9.0, "step": 2}, {"loss": 1.0, "step": 3},
               {"train_loss": 7.0, "step": 3}]
    assert train_loss_from_history(history) == pytest.approx((4.0 * 2 + 1.0) / 3)
    assert train_loss_from_history([]) is None


# ------------------------------------------------------------------------------ data


def test_rows_without_a_sample_are_dropped_and_counted(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "train.jsonl", [
        conversation("1+1=?", "2"),
        "{not json",
        {"conversations": [{"from": "assistant", "value": "wrong order"}]},
        "",
        conversation("长问题" * 50, "好"),  # fits: the human text is cut from its start
        {"system": "系统" * 100, **conversation("q", "a")},  # the system text alone is over max_length
    ])
    result = tokenize_file(tokenizer, path, max_length=32, **EOS)
    assert len(result.samples) == 2 and result.dropped == 3
    assert result.reasons == {"not JSON": 1, "not a conversation": 1, "no reply token fits in max_length": 1}
    assert all(len(sample) <= 32 for sample in result.samples)


def test_no_usable_row_is_a_data_error(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "train.jsonl", ["{not json", {"text": "no conversations"}])
    with pytest.raises(BadDataError, match="no usable training row.*1 not JSON.*1 not a conversation"):
        load_run_data(tokenizer, path, None, max_length=64, validation_split=0.1, seed=1, **EOS)
    with pytest.raises(BadDataError, match="cannot read"):
        load_run_data(tokenizer, tmp_path / "absent.jsonl", None, max_length=64, validation_split=0.1, seed=1, **EOS)


@pytest.mark.parametrize("n, split, expected", [
    (100, 0.1, 10), (100, 0.0, 0), (1, 0.3, 0), (2, 0.02, 1), (10, 0.02, 1), (3, 0.49, 1), (1000, 0.02, 20)])
def test_holdout_size(n, split, expected):
    assert holdout_size(n, split) == expected


def test_holdout_is_seeded(tokenizer, tmp_path):
    rows = [conversation(f"问题{i}", f"答案{i}") for i in range(40)]
    path = write_jsonl(tmp_path / "train.jsonl", rows)
    first = load_run_data(tokenizer, path, None, max_length=64, validation_split=0.1, seed=7, **EOS)
    again = load_run_data(tokenizer, path, None, max_length=64, validation_split=0.1, seed=7, **EOS)
    other = load_run_data(tokenizer, path, None, max_length=64, validation_split=0.1, seed=8, **EOS)
    assert len(first.validation) == 4 and len(first.train) == 36
    assert [s.input_ids for s in first.validation] == [s.input_ids for s in again.validation]
    assert [s.input_ids for s in first.validation] != [s.input_ids for s in other.validation]
    held = {tuple(s.input_ids) for s in first.validation}
    assert not held & {tuple(s.input_ids) for s in first.train}


def test_a_validation_file_replaces_the_holdout(tokenizer, tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", [conversation(f"q{i}", f"a{i}") for i in range(10)])
    validation = write_jsonl(tmp_path / "val.jsonl", [conversation("v", "w"), "{bad"])
    data = load_run_data(tokenizer, train, validation, max_length=64, validation_split=0.3, seed=1, **EOS)
    assert len(data.train) == 10 and len(data.validation) == 1 and data.dropped == 1


def test_collator_counts_non_pad_tokens(tokenizer, tmp_path):
    samples = tokenize_file(tokenizer, write_jsonl(tmp_path / "t.jsonl", [
        conversation("短", "好"), conversation("一个长一点的问题，还有更多的字", "一个长一点的回答")]), 64, **EOS).samples
    lengths = [len(s) for s in samples]
    collator = Collator(tokenizer.pad_token_id)
    padded = collator(samples)
    assert padded["input_ids"].shape == (2, max(lengths)) and padded[NUM_TOKENS] == sum(lengths)
    packed = collator(pack(samples, 64))
    assert packed["input_ids"].shape == (1, sum(lengths)) and packed[NUM_TOKENS] == sum(lengths)
    assert packed["attention_mask"].shape == (1, 1, sum(lengths), sum(lengths))


# ------------------------------------------------------------------------------ LoRA


def test_lora_targets_per_architecture():
    assert target_modules("llama", None) == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert target_modules("qwen2", None) == target_modules("mistral", None) == target_modules("llama", None)
    assert target_modules("bloom", None) == ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"]
    assert target_modules("gpt2", ["c_attn"]) == ["c_attn"]
    with pytest.raises(BadOptionError, match="gpt2.*target_modules"):
        target_modules("gpt2", None)
    assert set(DEFAULT_TARGET_MODULES) == {"llama", "qwen2", "mistral", "bloom"}


def test_unknown_architecture_without_targets_is_refused():
    model = AutoModelForCausalLM.from_config(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=64))
    with pytest.raises(BadOptionError, match="no default LoRA target modules"):
        apply_lora(model, r=4, alpha=8, dropout=0.0, targets=None)
    with pytest.raises(BadOptionError, match="not_a_module"):
        apply_lora(model, r=4, alpha=8, dropout=0.0, targets=["not_a_module"])


def test_lora_trains_only_adapters_and_merges_into_a_plain_model(llama, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(llama)
    base_trainable, base_total = count_parameters(model)
    assert base_trainable == base_total
    lora = apply_lora(model, r=16, alpha=32, dropout=0.05, targets=None)
    trainable, total = count_parameters(lora)
    names = [name for name, p in lora.named_parameters() if p.requires_grad]
    assert names and all("lora_" in name for name in names)
    assert 0 < trainable < total and total == base_total + trainable
    assert {name.split(".")[-4] for name in names} == set(DEFAULT_TARGET_MODULES["llama"])

    # Make the adapter do something (B starts at zero), save it, merge it, compare logits.
    torch.manual_seed(0)
    with torch.no_grad():
        for name, parameter in lora.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.02)
    lora.eval()
    ids = torch.tensor([[5, 17, 300, 42, 9]])
    expected = lora(input_ids=ids).logits
    lora.save_pretrained(tmp_path / "adapter")
    merged_dir = merge_adapter(llama, tmp_path / "adapter", tmp_path / "final")
    merged = AutoModelForCausalLM.from_pretrained(merged_dir)
    assert not any("lora" in name for name, _ in merged.named_parameters())
    assert torch.allclose(merged(input_ids=ids).logits, expected, atol=1e-4)
    base_logits = AutoModelForCausalLM.from_pretrained(llama)(input_ids=ids).logits
    assert not torch.allclose(base_logits, expected, atol=1e-4)


# ------------------------------------------------------------------------------ errors


def test_error_messages():
    assert _error_message(BadDataError("no usable training row in t.jsonl")) == "no usable training row in t.jsonl"
    assert _error_message(MemoryError()) == "out of memory"
    assert _error_message(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried 2 GiB")).startswith("out of memory: CUDA")
    assert _error_message(KeyError("x")) == "KeyError: 'x'"
