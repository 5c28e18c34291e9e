"""Chinese vocabulary expansion (belle_trainer.vocab) on the real SmolLM2 tokenizer and model: tokens
learned from the shipped corpus make held-out Chinese text at least 1.5x shorter, the expanded
tokenizer round-trips what the base round-tripped and keeps its special tokens and chat template, new
embedding rows start as the mean of their base pieces (tied and untied models), and an expanded folder
loads and answers English exactly as the base did."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM  # noqa: E402

from belle_trainer.vocab import (  # noqa: E402
    expand_folder, expand_model, expand_tokenizer, learn_new_tokens, tokens_per_char,
)

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "services/trainer/belle_trainer/data/tokenizer_corpus.txt"
EVAL_SET = ROOT / "services/evaluator/belle_evaluator/data/eval_set_zh.jsonl"
MAX_NEW = 4000
MIXED_LINES = [
    "北京是中国的首都。",
    "SmolLM2 是一个小模型 (135M parameters)，支持 English 和中文。",
    "def add(a, b):\n    return a + b  # 加法，返回两数之和 😀",
    "价格：¥18.5/碗 🍜 — 营业时间 9:00–21:00, open daily!",
    "  多个  空格\t和制表符\n\n换行  ",
    "emoji 👨‍👩‍👧 混合 𠀀 罕见字，還有繁體字和ｆｕｌｌｗｉｄｔｈ",
    '{"question": "为什么天空是蓝色的？", "answer": null}',
    "<|im_start|>user\n你好，请介绍一下你自己<|im_end|>",
]
ENGLISH_PROMPT = "The capital of France is"


def _is_cjk(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf" or "\U00020000" <= ch <= "\U0003134f"


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return [doc.strip() for doc in CORPUS.read_text(encoding="utf-8").split("\n\n\n") if doc.strip()]


@pytest.fixture(scope="module")
def heldout() -> list[str]:
    texts = []
    for line in EVAL_SET.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            texts += [record[key] for key in ("question", "std_answer") if isinstance(record.get(key), str)]
    assert len(texts) > 200
    return texts


@pytest.fixture(scope="module")
def base_tokenizer(real_model):
    return AutoTokenizer.from_pretrained(real_model)


@pytest.fixture(scope="module")
def new_tokens(corpus, base_tokenizer) -> list[str]:
    return learn_new_tokens(corpus, base_tokenizer, max_new_tokens=MAX_NEW)


@pytest.fixture(scope="module")
def new_tokenizer(base_tokenizer, new_tokens):
    return expand_tokenizer(base_tokenizer, new_tokens)


@pytest.fixture(scope="module")
def base_model(real_model):
    return AutoModelForCausalLM.from_pretrained(real_model, dtype="auto").eval()


# ------------------------------------------------------------------------------------- tokenizer


def test_learned_tokens_are_new_chinese_tokens_most_useful_first(corpus, base_tokenizer, new_tokens):
    assert 1000 <= len(new_tokens) <= MAX_NEW
    assert len(set(new_tokens)) == len(new_tokens)
    assert all(any(_is_cjk(ch) for ch in token) for token in new_tokens)
    lengths = [len(ids) for ids in base_tokenizer(new_tokens, add_special_tokens=False)["input_ids"]]
    assert min(lengths) >= 2  # none is already a single base token
    # Single characters the base splits into byte tokens are learned too.
    singles = [token for token in new_tokens if len(token) == 1]
    assert len(singles) >= 100 and "把" in singles[:50]
    # Deterministic, and a smaller budget is the head of the same ranking.
    assert learn_new_tokens(corpus, base_tokenizer, max_new_tokens=MAX_NEW) == new_tokens
    assert learn_new_tokens(corpus, base_tokenizer, max_new_tokens=50) == new_tokens[:50]
    assert learn_new_tokens(corpus, base_tokenizer, max_new_tokens=0) == []


def test_held_out_chinese_needs_at_least_1_5x_fewer_tokens(base_tokenizer, new_tokenizer, heldout):
    before = tokens_per_char(base_tokenizer, heldout)
    after = tokens_per_char(new_tokenizer, heldout)
    print(f"\nheld-out tokens per CJK char: base {before:.3f}, expanded {after:.3f}, ratio {before / after:.2f}x")
    assert before / after >= 1.5
    sentence = "北京是中国的首都。"
    assert len(base_tokenizer.encode(sentence, add_special_tokens=False)) == 15
    assert len(new_tokenizer.encode(sentence, add_special_tokens=False)) < 9


def test_expanded_tokenizer_round_trips_and_keeps_other_text(base_tokenizer, new_tokenizer, heldout):
    texts = heldout + MIXED_LINES
    checked = 0
    for text in texts:
        base_ids = base_tokenizer.encode(text, add_special_tokens=False)
        if base_tokenizer.decode(base_ids) != text:
            continue
        checked += 1
        assert new_tokenizer.decode(new_tokenizer.encode(text, add_special_tokens=False)) == text
    assert checked >= len(texts) - 5
    for text in MIXED_LINES:  # every mixed line round-trips through the base, so it is checked above
        assert base_tokenizer.decode(base_tokenizer.encode(text, add_special_tokens=False)) == text
    # Text without Chinese is tokenized exactly as before.
    for text in [ENGLISH_PROMPT, "def add(a, b):\n    return a + b  # 😀", "¥18.5 — 9:00–21:00, ｆｕｌｌｗｉｄｔｈ"]:
        assert new_tokenizer.encode(text) == base_tokenizer.encode(text)
    # The base is not changed by expanding a copy of it.
    assert len(base_tokenizer) == 49152


def test_special_tokens_and_chat_template_unchanged(base_tokenizer, new_tokenizer):
    assert len(new_tokenizer) == len(base_tokenizer) + len(new_tokenizer.get_added_vocab()) - len(
        base_tokenizer.get_added_vocab())
    assert new_tokenizer.all_special_tokens == base_tokenizer.all_special_tokens
    assert new_tokenizer.all_special_ids == base_tokenizer.all_special_ids
    assert (new_tokenizer.eos_token, new_tokenizer.pad_token, new_tokenizer.bos_token) == (
        base_tokenizer.eos_token, base_tokenizer.pad_token, base_tokenizer.bos_token)
    assert new_tokenizer.chat_template == base_tokenizer.chat_template
    added = new_tokenizer.added_tokens_decoder
    new_ids = range(len(base_tokenizer), len(new_tokenizer))
    assert all(not added[i].special and not added[i].normalized and not added[i].single_word for i in new_ids)

    conversation = [
        {"role": "system", "content": "你是一个乐于助人的助手。"},
        {"role": "user", "content": "请用一句话介绍北京。Answer in Chinese, please."},
        {"role": "assistant", "content": "北京是中国的首都，有三千多年的历史。"},
    ]
    base_text = base_tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    new_text = new_tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    assert new_text == base_text
    base_ids = base_tokenizer(base_text, add_special_tokens=False)["input_ids"]
    new_ids_ = new_tokenizer(new_text, add_special_tokens=False)["input_ids"]
    assert len(new_ids_) < len(base_ids)
    assert new_tokenizer.decode(new_ids_) == base_tokenizer.decode(base_ids) == base_text
    im_start, im_end = base_tokenizer.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"])
    assert new_ids_.count(im_start) == base_ids.count(im_start) == 4
    assert new_ids_.count(im_end) == base_ids.count(im_end) == 3


# ----------------------------------------------------------------------------------------- model


def _check_new_rows(weight, base_weight, tokenizer, base_tokenizer, token_ids):
    for token_id in token_ids:
        text = tokenizer.convert_ids_to_tokens(token_id)
        pieces = base_tokenizer.encode(text, add_special_tokens=False)
        assert len(pieces) >= 2
        assert torch.equal(weight[token_id], base_weight[pieces].mean(dim=0)), text


def _sample_ids(base_tokenizer, new_tokenizer) -> list[int]:
    first, last = len(base_tokenizer), len(new_tokenizer) - 1
    single = next(i for i in range(first, last + 1) if len(new_tokenizer.convert_ids_to_tokens(i)) == 1)
    return sorted({first, first + 1, first + 2, single, (first + last) // 2, last})


def test_expand_model_tied_embeddings(base_model, base_tokenizer, new_tokenizer):
    model = copy.deepcopy(base_model)
    assert model.config.tie_word_embeddings
    base_weight = model.get_input_embeddings().weight.detach().clone()
    added = expand_model(model, base_tokenizer, new_tokenizer)

    assert added == len(new_tokenizer) - len(base_tokenizer)
    weight = model.get_input_embeddings().weight
    assert weight.shape == (len(new_tokenizer), base_weight.shape[1])
    assert model.config.vocab_size == len(new_tokenizer)
    assert model.get_output_embeddings().weight.data_ptr() == weight.data_ptr()  # still tied
    assert torch.equal(weight[: len(base_tokenizer)], base_weight)
    _check_new_rows(weight, base_weight, new_tokenizer, base_tokenizer, _sample_ids(base_tokenizer, new_tokenizer))


def test_expand_model_untied_embeddings(base_tokenizer, new_tokenizer):
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(base_tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=False)
    model = LlamaForCausalLM(config)
    base_in = model.get_input_embeddings().weight.detach().clone()
    base_out = model.get_output_embeddings().weight.detach().clone()
    assert not torch.equal(base_in, base_out)

    added = expand_model(model, base_tokenizer, new_tokenizer)

    assert added == len(new_tokenizer) - len(base_tokenizer)
    assert model.config.vocab_size == len(new_tokenizer)
    new_in, new_out = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    assert new_in.shape == new_out.shape == (len(new_tokenizer), 16)
    assert new_in.data_ptr() != new_out.data_ptr()
    assert torch.equal(new_in[: len(base_tokenizer)], base_in)
    assert torch.equal(new_out[: len(base_tokenizer)], base_out)
    sample = _sample_ids(base_tokenizer, new_tokenizer)
    _check_new_rows(new_in, base_in, new_tokenizer, base_tokenizer, sample)
    _check_new_rows(new_out, base_out, new_tokenizer, base_tokenizer, sample)
    assert not torch.equal(new_in[sample[0]], new_out[sample[0]])


# ---------------------------------------------------------------------------------------- folder


def test_expand_folder_loads_and_keeps_english_behaviour(real_model, tmp_path, corpus, base_tokenizer,
                                                         base_model, new_tokens):
    destination = tmp_path / "expanded"
    report = expand_folder(real_model, destination, corpus, max_new_tokens=MAX_NEW)

    assert report["added_tokens"] == len(new_tokens)
    assert report["examples"] == new_tokens[:20]
    assert report["vocab_size_before"] == 49152
    assert report["vocab_size_after"] == 49152 + len(new_tokens)
    assert report["tokens_per_char_after"] * 1.5 <= report["tokens_per_char_before"]
    assert list(destination.glob("*.safetensors"))

    tokenizer = AutoTokenizer.from_pretrained(destination)
    model = AutoModelForCausalLM.from_pretrained(destination).eval()
    assert len(tokenizer) == report["vocab_size_after"]
    assert model.get_input_embeddings().weight.shape[0] == report["vocab_size_after"]
    assert model.dtype == base_model.dtype
    assert tokenizer.chat_template == base_tokenizer.chat_template
    for text in MIXED_LINES:
        assert tokenizer.decode(tokenizer.encode(text, add_special_tokens=False)) == text

    ids = base_tokenizer(ENGLISH_PROMPT, return_tensors="pt")["input_ids"]
    assert torch.equal(tokenizer(ENGLISH_PROMPT, return_tensors="pt")["input_ids"], ids)
    with torch.no_grad():
        base_logits = base_model(ids).logits
        logits = model(ids).logits
        assert torch.equal(logits[..., :49152], base_logits)
        base_out = base_model.generate(ids, max_new_tokens=12, do_sample=False)
        out = model.generate(ids, max_new_tokens=12, do_sample=False)
    assert torch.equal(out, base_out)
    print(f"\nexpanded folder report: {json.dumps({k: v for k, v in report.items() if k != 'examples'})}"
          f"\nfirst added tokens: {' '.join(report['examples'])}\ngreedy: {tokenizer.decode(out[0])!r}")
