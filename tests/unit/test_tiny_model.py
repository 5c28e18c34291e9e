"""The tiny local model (`belle model init`): saves, reloads with the Auto classes, generates; its
byte-level BPE tokenizer round-trips any text and encodes the teacher's tasks compactly; same seed,
same bytes."""

from __future__ import annotations

import hashlib
import json
import random
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from belle_trainer import tiny  # noqa: E402
from belle_trainer.tiny import init_tiny_model  # noqa: E402


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    return {arch: init_tiny_model(root / arch, arch=arch) for arch in ("llama", "bloom")}


@pytest.mark.parametrize("arch", ["llama", "bloom"])
def test_saves_reloads_and_generates(models, arch):
    folder = models[arch]
    assert (folder / "model.safetensors").is_file()
    assert not list(folder.glob("*.bin"))
    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert model.config.model_type == arch
    assert model.config.vocab_size == len(tokenizer) == 4096
    assert model.config.hidden_size == 128
    # BLOOM ties its output layer to the embeddings; LLaMA does not.
    tied = model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    assert tied is (arch == "bloom")

    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "把305写成中文数字"}],
                                           add_generation_prompt=True, tokenize=False)
    inputs = tokenizer(prompt, return_tensors="pt")
    output = model.generate(**inputs, max_new_tokens=6, min_new_tokens=6, do_sample=False,
                            pad_token_id=tokenizer.pad_token_id)
    assert output.shape[1] == inputs["input_ids"].shape[1] + 6
    assert torch.equal(output[0, :inputs["input_ids"].shape[1]], inputs["input_ids"][0])
    assert int(output.max()) < len(tokenizer)

    metadata = json.loads((folder / "belle_model.json").read_text())
    corpus = (Path(tiny.__file__).parent / "data" / "tokenizer_corpus.txt").read_bytes()
    assert metadata["arch"] == arch and metadata["seed"] == 0 and metadata["num_layers"] == 2
    assert metadata["corpus_sha256"] == hashlib.sha256(corpus).hexdigest()
    assert metadata["parameters"] == sum(p.numel() for p in model.parameters())


ROUND_TRIP = [
    "秋天气温下降，树叶里的叶绿素逐渐分解。",
    "Why is the sky blue? Rayleigh scattering!",
    "0123456789 3.14159 -42 1e-5 ¥128.00 50%",
    "三百零五 壹万贰仟叁佰肆拾伍元整",
    "emoji 😊🎉👍🏽 ❤️ 🇨🇳 and rare 龘靐齉 ꧁꧂ 𠀀",
    "def f(x):\n\treturn x  # tab, two spaces  and a trailing space \r\n",
    "  leading and trailing whitespace  \n\n",
    "Human: hi\n\nAssistant: hello</s>",
]


def test_tokenizer_round_trips_and_special_tokens(models):
    tokenizer = AutoTokenizer.from_pretrained(models["llama"])
    for text in ROUND_TRIP:
        ids = tokenizer.encode(text, add_special_tokens=False)
        assert tokenizer.unk_token_id not in ids
        assert tokenizer.decode(ids) == text
    assert (tokenizer.unk_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (0, 1, 2, 3)
    assert tokenizer.encode("</s>", add_special_tokens=False) == [tokenizer.eos_token_id]
    # Nothing is added around a text: the chat format places the EOS itself, and no BOS.
    assert tokenizer.encode("你好") == tokenizer.encode("你好", add_special_tokens=False)
    assert tokenizer.padding_side == "right"


def test_teacher_and_seed_texts_tokenize_compactly(models):
    """The corpus covers the offline teacher's tasks: far fewer tokens than UTF-8 bytes."""
    from belle_teacher.tasks import generate_task

    tokenizer = AutoTokenizer.from_pretrained(models["llama"])
    for language, limit in (("zh", 0.7), ("en", 0.4)):
        rng = random.Random(7)
        chars = tokens = 0
        for _ in range(200):
            task = generate_task(rng, language)
            text = f"{task.instruction}\n{task.input}\n{task.output}"
            chars += len(text)
            tokens += len(tokenizer.encode(text))
        # Byte level without merges would be ~3 tokens per Chinese character, 1 per English one.
        assert tokens / chars < limit, (language, tokens / chars)


def test_same_seed_same_bytes_other_seed_other_weights(models, tmp_path):
    started = time.perf_counter()
    again = init_tiny_model(tmp_path / "again", arch="llama", seed=0)
    assert time.perf_counter() - started < 30
    for name in ("model.safetensors", "tokenizer.json", "config.json", "belle_model.json"):
        assert (again / name).read_bytes() == (models["llama"] / name).read_bytes(), name
    other = init_tiny_model(tmp_path / "other", arch="llama", seed=1)
    assert (other / "tokenizer.json").read_bytes() == (again / "tokenizer.json").read_bytes()
    assert (other / "model.safetensors").read_bytes() != (again / "model.safetensors").read_bytes()


def test_sizes_and_bad_arguments(tmp_path):
    folder = init_tiny_model(tmp_path / "small", arch="bloom", hidden_size=64, num_layers=1, num_heads=2,
                             vocab_size=1024, max_position=256)
    config = json.loads((folder / "config.json").read_text())
    assert (config["hidden_size"], config["n_layer"], config["n_head"], config["vocab_size"]) == (64, 1, 2, 1024)
    assert AutoTokenizer.from_pretrained(folder).model_max_length == 256
    with pytest.raises(FileExistsError):
        init_tiny_model(folder, arch="bloom")
    init_tiny_model(folder, arch="llama", hidden_size=64, num_heads=2, overwrite=True)
    assert json.loads((folder / "config.json").read_text())["model_type"] == "llama"
    with pytest.raises(ValueError, match="arch"):
        init_tiny_model(tmp_path / "x", arch="gpt2")
    with pytest.raises(ValueError, match="multiple"):
        init_tiny_model(tmp_path / "x", hidden_size=100, num_heads=3)
    assert not (tmp_path / "x").exists()


def test_cli_model_init(tmp_path):
    from typer.testing import CliRunner

    from belle_cli.main import app

    runner = CliRunner()
    out = tmp_path / "cli"
    result = runner.invoke(app, ["model", "init", "--arch", "bloom", "--out", str(out), "--hidden-size", "64",
                                 "--num-heads", "2", "--seed", "5"])
    assert result.exit_code == 0, result.output
    assert str(out) in result.stdout
    metadata = json.loads((out / "belle_model.json").read_text())
    assert (metadata["arch"], metadata["hidden_size"], metadata["seed"]) == ("bloom", 64, 5)
    again = runner.invoke(app, ["model", "init", "--out", str(out)])
    assert again.exit_code == 1 and "not empty" in again.output
    bad = runner.invoke(app, ["model", "init", "--arch", "gpt2", "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 1 and "arch" in bad.output


def test_chars_tokenizer_gives_one_token_per_character_and_exact_reply_masks():
    from belle_trainer.chat_format import IGNORE_INDEX, to_messages, tokenize_conversation
    from belle_trainer.tiny import train_tokenizer

    tokenizer = train_tokenizer(4096, pretokenize="chars")
    for text in ("春天的月亮", "PURPLE violin", "三百零五", "12, 34"):
        pieces = [tokenizer.decode([i]) for i in tokenizer.encode(text, add_special_tokens=False)]
        assert "".join(pieces) == text
        assert all(len(p.strip()) <= 1 or not any(ch.isalnum() for ch in p) for p in pieces), pieces
    row = {"conversations": [{"from": "human", "value": "把“春天的月亮”倒过来写"},
                             {"from": "assistant", "value": "亮月的天春"}]}
    sample = tokenize_conversation(tokenizer, row, 128, end_of_turn=tokenizer.eos_token)
    text = tokenizer.apply_chat_template(to_messages(row), tokenize=False)
    assert text == "Human: 把“春天的月亮”倒过来写\n\nAssistant: 亮月的天春</s>"
    assert sample.input_ids == tokenizer.encode(text, add_special_tokens=False)
    trained = [i for i, label in zip(sample.input_ids, sample.labels) if label != IGNORE_INDEX]
    assert tokenizer.decode(trained) == "亮月的天春" + tokenizer.eos_token
    with pytest.raises(ValueError, match="pretokenize"):
        train_tokenizer(600, pretokenize="bytes")
