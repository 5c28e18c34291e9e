"""Training rows as ids and labels through the chat template, on the tiny model's tokenizer (BELLE's
format): the template renders exactly `Human: ...\\n\\nAssistant: ...</s>`, the ids are the rendered
text tokenized whole, labels cover each reply and its EOS, the generation prompt is a token prefix,
and truncation keeps whole replies and never leaves a sample with nothing trained.
(tests/unit/test_chat_template.py checks the same rules on a real tokenizer and its own template.)"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from transformers import AutoTokenizer  # noqa: E402

from helpers import trained_pieces  # noqa: E402

from belle_shared.chat_models import render_chat  # noqa: E402
from belle_shared.chat_template import BELLE_TEMPLATE  # noqa: E402
from belle_trainer.chat_format import (  # noqa: E402
    IGNORE_INDEX, ConversationError, parse, to_messages, tokenize_conversation,
)
from belle_trainer.tiny import init_tiny_model  # noqa: E402

SEEDS = Path(__file__).resolve().parents[2] / "services" / "datagen" / "belle_datagen" / "data"


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    folder = init_tiny_model(tmp_path_factory.mktemp("tiny") / "m", hidden_size=32, num_heads=2, num_layers=1)
    loaded = AutoTokenizer.from_pretrained(folder)  # the template as saved and reloaded
    assert loaded.chat_template == BELLE_TEMPLATE
    return loaded


def row(*turns: str, system: str | None = None) -> dict:
    out = {"conversations": [{"from": "human" if i % 2 == 0 else "assistant", "value": v} for i, v in enumerate(turns)]}
    if system is not None:
        out["system"] = system
    return out


def chat(tokenizer, r: dict, **kwargs) -> str:
    return tokenizer.apply_chat_template(to_messages(r, open_question=kwargs.get("add_generation_prompt", False)),
                                         tokenize=False, **kwargs)


def encode(tokenizer, r: dict, max_length: int = 100_000):
    return tokenize_conversation(tokenizer, r, max_length, end_of_turn=tokenizer.eos_token)


# ------------------------------------------------------------------------------ rendering


def test_template_renders_exactly_belle_format(tokenizer):
    assert chat(tokenizer, row("把305写成中文数字", "三百零五")) == "Human: 把305写成中文数字\n\nAssistant: 三百零五</s>"
    multi = row("你好", "你好！有什么可以帮你？", "What is 2 + 3?", "5")
    assert chat(tokenizer, multi) == ("Human: 你好\n\nAssistant: 你好！有什么可以帮你？</s>"
                                      "Human: What is 2 + 3?\n\nAssistant: 5</s>")
    with_system = row("Hi", "Hello!", system="You are a helpful assistant.")
    assert chat(tokenizer, with_system) == "You are a helpful assistant.\n\nHuman: Hi\n\nAssistant: Hello!</s>"
    prompt = row("你好", "你好！", "1+1=?")
    assert chat(tokenizer, prompt, add_generation_prompt=True) == (
        "Human: 你好\n\nAssistant: 你好！</s>Human: 1+1=?\n\nAssistant: ")
    messages = [{"role": "system", "content": "简洁地回答。"}, {"role": "user", "content": "1+1=?"}]
    assert tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == (
        "简洁地回答。\n\nHuman: 1+1=?\n\nAssistant: ")


def test_whitespace_is_stripped_and_empty_system_omitted(tokenizer):
    assert chat(tokenizer, row("  \n问题  ", "\n回答\n\n", system="  ")) == "Human: 问题\n\nAssistant: 回答</s>"
    assert chat(tokenizer, row("q", "a", system="")) == "Human: q\n\nAssistant: a</s>"


def test_template_refuses_malformed_conversations(tokenizer):
    for messages in ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
                     [{"role": "assistant", "content": "a"}],
                     [{"role": "user", "content": "a"}, {"role": "system", "content": "s"}],
                     [{"role": "tool", "content": "a"}]):
        with pytest.raises(Exception, match="BELLE chat format"):
            tokenizer.apply_chat_template(messages, tokenize=False)


@pytest.mark.parametrize("bad", [
    {},
    {"conversations": []},
    row("only a question"),
    {"conversations": [{"from": "assistant", "value": "a"}, {"from": "human", "value": "q"}]},
    {"conversations": [{"from": "human", "value": "q"}, {"from": "human", "value": "q"}]},
    {"conversations": [{"from": "human", "value": "q"}, {"from": "assistant", "value": None}]},
    {"conversations": [{"from": "human", "value": "q"}, {"from": "assistant", "value": "a"}], "system": 3},
])
def test_malformed_rows_are_errors(tokenizer, bad):
    with pytest.raises(ConversationError):
        encode(tokenizer, bad, 64)


# ------------------------------------------------------------------------------ ids and labels


def test_generation_prompt_is_a_prefix_of_the_trained_ids(tokenizer):
    """What chat feeds the model is token for token what training showed before the reply."""
    history = to_messages(row("你好", "你好！", "把88写成中文数字"), open_question=True)
    prompt = render_chat(tokenizer, history)
    trained = encode(tokenizer, row("你好", "你好！", "把88写成中文数字", "八十八"))
    assert trained.input_ids[:len(prompt)] == prompt
    reply = trained.input_ids[len(prompt):]
    assert tokenizer.decode(reply) == "八十八</s>"
    assert trained.labels[len(prompt):] == reply


def test_labels_cover_each_reply_and_its_eos_token_by_token(tokenizer):
    r = row("把305写成中文数字", "三百零五", "What is 2 + 3?", "It is 5.", "谢谢！😊", "不客气。",
            system="你是一个乐于助人的助手。")
    sample = encode(tokenizer, r, 512)
    text = chat(tokenizer, r)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    assert sample.input_ids == encoded["input_ids"]
    assert not sample.truncated

    # Independent of the encoder: the character spans of the replies (with their EOS).
    spans, start = [], 0
    for reply in ("三百零五</s>", "It is 5.</s>", "不客气。</s>"):
        start = text.index("Assistant: " + reply, start) + len("Assistant: ")
        spans.append((start, start + len(reply)))
    for index, (token, (begin, end)) in enumerate(zip(sample.input_ids, encoded["offset_mapping"])):
        in_reply = any(a <= begin and end <= b for a, b in spans)
        assert sample.labels[index] == (token if in_reply else IGNORE_INDEX), (index, tokenizer.decode([token]))
    assert trained_pieces(tokenizer, sample) == ["三百零五</s>", "It is 5.</s>", "不客气。</s>"]


def _rows() -> list[dict]:
    rows = []
    for name in ("seed_tasks_zh.jsonl", "seed_tasks_en.jsonl"):
        for line in (SEEDS / name).read_text(encoding="utf-8").splitlines():
            task = json.loads(line)
            for instance in task["instances"]:
                question = task["instruction"] + ("\n" + instance["input"] if instance["input"] else "")
                rows.append(row(question, instance["output"]))
    rng = random.Random(0)
    tricky = ["  spaces  ", "\n\nnewlines\n", "Human: inside", "Assistant: inside", "a\tb", "```python\nx = 1\n```",
              "😊", "：全角冒号", ": colon first", "x ", "\u3000全角空格\u3000", "1 2 3", "!", "</s>", "-"]
    for _ in range(200):
        turns = [rng.choice(tricky) + rng.choice(["", " ", "\n"]) + rng.choice(tricky) for _ in range(2 * rng.randint(1, 3))]
        rows.append(row(*turns, system=rng.choice([None, "", "系统：", " sys \n"])))
    return rows


def test_ids_are_the_rendered_text_tokenized_whole(tokenizer):
    for r in _rows():
        sample = encode(tokenizer, r)
        assert sample is not None
        assert sample.input_ids == tokenizer.encode(chat(tokenizer, r), add_special_tokens=False), r
        assert sample.input_ids == tokenizer.apply_chat_template(to_messages(r), tokenize=True, return_dict=False)
        assert all(label in (token, IGNORE_INDEX) for token, label in zip(sample.input_ids, sample.labels))
        replies = [turn["value"].strip() + "</s>" for turn in r["conversations"][1::2]]
        assert "".join(trained_pieces(tokenizer, sample)) == "".join(replies), r


# ------------------------------------------------------------------------------ truncation


def test_truncation_keeps_whole_replies_in_order(tokenizer):
    r = row("第一问", "第一答", "第二问", "第二答" * 20, "第三问", "第三答")
    full = encode(tokenizer, r)
    first = encode(tokenizer, row("第一问", "第一答"))
    cut = encode(tokenizer, r, len(first) + 5)
    assert cut.truncated and not full.truncated
    assert (cut.input_ids, cut.labels) == (first.input_ids, first.labels)
    # The third pair would fit after the first, but the dialogue is kept as a prefix: no gap in it.
    two = encode(tokenizer, row("第一问", "第一答", "第二问", "第二答" * 20))
    assert encode(tokenizer, r, len(two)).input_ids == two.input_ids


def test_a_long_question_is_cut_from_its_start(tokenizer):
    question = "背景：" + "很长的材料。" * 50 + "问题：答案是什么？"
    r = row(question, "答案是四十二。", system="系统提示")
    full = encode(tokenizer, r)
    max_length = len(full) - 40
    sample = encode(tokenizer, r, max_length)
    assert sample.truncated and len(sample) <= max_length and sample.whole_replies == 1
    assert trained_pieces(tokenizer, sample) == ["答案是四十二。</s>"]  # the reply and its EOS, trained
    text = tokenizer.decode(sample.input_ids)
    assert text.startswith("系统提示\n\nHuman: ") and text.endswith("问题：答案是什么？\n\nAssistant: 答案是四十二。</s>")
    kept = text[len("系统提示\n\nHuman: "):text.index("\n\nAssistant: ")]
    assert question.endswith(kept) and len(kept) < len(question)  # the end of the question
    # As much of the question as fits: one more character would not.
    longer = row(question[len(question) - len(kept) - 1:], "答案是四十二。", system="系统提示")
    assert len(encode(tokenizer, longer)) > max_length


def test_a_first_reply_too_long_is_cut_without_its_eos(tokenizer):
    answer_text = "这是一个非常长的回答。" * 40
    prompt = render_chat(tokenizer, [{"role": "user", "content": ""}])  # the question is gone
    sample = encode(tokenizer, row("问题", answer_text), len(prompt) + 7)
    assert sample.truncated and len(sample) == len(prompt) + 7
    assert sample.input_ids == prompt + tokenizer.encode(answer_text)[:7]
    assert sample.num_trained == 7 and tokenizer.eos_token_id not in sample.input_ids


def test_nothing_trainable_is_none_never_an_all_masked_sample(tokenizer):
    prompt = render_chat(tokenizer, [{"role": "user", "content": ""}])
    assert encode(tokenizer, row("问题", "回答"), len(prompt)) is None
    assert encode(tokenizer, row("问题", "回答"), len(prompt) + 1).num_trained == 1
    rng = random.Random(3)
    rows = _rows()
    for _ in range(300):
        r = rng.choice(rows)
        max_length = rng.randint(1, 80)
        sample = encode(tokenizer, r, max_length)
        if sample is not None:
            assert 1 <= sample.num_trained and len(sample) <= max_length and len(sample.labels) == len(sample)
    with pytest.raises(ValueError):
        encode(tokenizer, row("q", "a"), 0)


def test_parse_reads_the_canonical_format():
    conversation = parse(row(" q1 ", "a1", "q2", "a2", system=" s "))
    assert conversation.system == "s" and conversation.pairs == [("q1", "a1"), ("q2", "a2")]
    assert parse(row("q", "a", "next"), open_question=True).question == "next"
    with pytest.raises(ConversationError):
        parse(row("q", "a"), open_question=True)
