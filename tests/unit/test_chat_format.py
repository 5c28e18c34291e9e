"""BELLE's chat format: the tokenizer's chat template renders exactly `Human: ...\\n\\nAssistant: ...</s>`,
labels mask the human side token by token, piecewise ids equal whole-text ids, truncation always
keeps a trained token."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from transformers import AutoTokenizer  # noqa: E402

from belle_trainer.chat_format import (  # noqa: E402
    IGNORE_INDEX, ConversationError, parse, render, to_messages, tokenize_conversation,
)
from belle_trainer.tiny import init_tiny_model  # noqa: E402

SEEDS = Path(__file__).resolve().parents[2] / "services" / "datagen" / "belle_datagen" / "data"


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    folder = init_tiny_model(tmp_path_factory.mktemp("tiny") / "m", hidden_size=32, num_heads=2, num_layers=1)
    return AutoTokenizer.from_pretrained(folder)  # the template as saved and reloaded


def row(*turns: str, system: str | None = None) -> dict:
    out = {"conversations": [{"from": "human" if i % 2 == 0 else "assistant", "value": v} for i, v in enumerate(turns)]}
    if system is not None:
        out["system"] = system
    return out


def chat(tokenizer, r: dict, **kwargs) -> str:
    return tokenizer.apply_chat_template(to_messages(r, open_question=kwargs.get("add_generation_prompt", False)),
                                         tokenize=False, **kwargs)


# ------------------------------------------------------------------------------ rendering


def test_template_renders_exactly_belle_format(tokenizer):
    single = row("把305写成中文数字", "三百零五")
    assert chat(tokenizer, single) == "Human: 把305写成中文数字\n\nAssistant: 三百零五</s>"

    multi = row("你好", "你好！有什么可以帮你？", "What is 2 + 3?", "5")
    assert chat(tokenizer, multi) == ("Human: 你好\n\nAssistant: 你好！有什么可以帮你？</s>"
                                      "Human: What is 2 + 3?\n\nAssistant: 5</s>")

    with_system = row("Hi", "Hello!", system="You are a helpful assistant.")
    assert chat(tokenizer, with_system) == "You are a helpful assistant.\n\nHuman: Hi\n\nAssistant: Hello!</s>"

    prompt = row("你好", "你好！", "1+1=?")
    assert chat(tokenizer, prompt, add_generation_prompt=True) == (
        "Human: 你好\n\nAssistant: 你好！</s>Human: 1+1=?\n\nAssistant: ")
    # The same with a system text and with the plain messages a chat client sends.
    messages = [{"role": "system", "content": "简洁地回答。"}, {"role": "user", "content": "1+1=?"}]
    assert tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == (
        "简洁地回答。\n\nHuman: 1+1=?\n\nAssistant: ")
    for r in (single, multi, with_system):
        assert render(r, "</s>") == chat(tokenizer, r)
    assert render(prompt, "</s>", add_generation_prompt=True) == chat(tokenizer, prompt, add_generation_prompt=True)


def test_whitespace_is_stripped_and_empty_system_omitted(tokenizer):
    r = row("  \n问题  ", "\n回答\n\n", system="  ")
    assert render(r, "</s>") == chat(tokenizer, r) == "Human: 问题\n\nAssistant: 回答</s>"
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
        tokenize_conversation(tokenizer, bad, 64)


def test_generation_prompt_is_a_prefix_of_the_trained_text(tokenizer):
    """What chat feeds the model is token for token what training showed before the reply."""
    history = row("你好", "你好！", "把88写成中文数字")
    prompt_ids = tokenizer.encode(render(history, "</s>", add_generation_prompt=True))
    trained = tokenize_conversation(tokenizer, row("你好", "你好！", "把88写成中文数字", "八十八"), 256)
    assert trained.input_ids[:len(prompt_ids)] == prompt_ids
    reply = trained.input_ids[len(prompt_ids):]
    assert tokenizer.decode(reply) == "八十八</s>"
    assert trained.labels[len(prompt_ids):] == reply


# ------------------------------------------------------------------------------ labels


def test_labels_mask_human_tokens_token_by_token(tokenizer):
    r = row("把305写成中文数字", "三百零五", "What is 2 + 3?", "It is 5.", "谢谢！😊", "不客气。",
            system="你是一个乐于助人的助手。")
    sample = tokenize_conversation(tokenizer, r, 512)
    text = render(r, "</s>")
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    assert sample.input_ids == encoded["input_ids"]
    assert not sample.truncated

    # Independent of the piecewise code: the character spans of the replies (with their EOS).
    spans, start = [], 0
    for reply in ("三百零五</s>", "It is 5.</s>", "不客气。</s>"):
        start = text.index("Assistant: " + reply, start) + len("Assistant: ")
        spans.append((start, start + len(reply)))
    for index, (token, (begin, end)) in enumerate(zip(sample.input_ids, encoded["offset_mapping"])):
        in_reply = any(a <= begin and end <= b for a, b in spans)
        assert sample.labels[index] == (token if in_reply else IGNORE_INDEX), (index, tokenizer.decode([token]))

    # And read back: the trained tokens are exactly the three replies with their EOS.
    trained, current = [], []
    for token, label in zip(sample.input_ids, sample.labels):
        if label == IGNORE_INDEX:
            if current:
                trained.append(tokenizer.decode(current))
            current = []
        else:
            current.append(token)
    trained.append(tokenizer.decode(current))
    assert trained == ["三百零五</s>", "It is 5.</s>", "不客气。</s>"]
    assert sample.num_trained == len(tokenizer.encode("三百零五</s>It is 5.</s>不客气。</s>"))


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


def test_piecewise_ids_equal_whole_text_ids(tokenizer):
    for r in _rows():
        sample = tokenize_conversation(tokenizer, r, 100_000)
        assert sample is not None
        assert sample.input_ids == tokenizer.encode(render(r, "</s>"), add_special_tokens=False), r
        assert sample.input_ids == tokenizer.apply_chat_template(to_messages(r), tokenize=True, return_dict=False)
        assert all(label in (token, IGNORE_INDEX) for token, label in zip(sample.input_ids, sample.labels))


# ------------------------------------------------------------------------------ truncation


def test_trailing_turn_pairs_are_dropped_first(tokenizer):
    r = row("第一问", "第一答", "第二问", "第二答" * 20, "第三问", "第三答")
    full = tokenize_conversation(tokenizer, r, 10_000)
    first = tokenize_conversation(tokenizer, row("第一问", "第一答"), 10_000)
    cut = tokenize_conversation(tokenizer, r, len(first) + 5)
    assert cut.truncated and not full.truncated
    assert (cut.input_ids, cut.labels) == (first.input_ids, first.labels)
    # The third pair would fit after the first, but pairs are kept as a prefix: no gap in the dialogue.
    two = tokenize_conversation(tokenizer, row("第一问", "第一答", "第二问", "第二答" * 20), 10_000)
    assert tokenize_conversation(tokenizer, r, len(two)).input_ids == two.input_ids


def test_long_question_is_cut_from_its_start(tokenizer):
    question = "背景：" + "很长的材料。" * 50 + "问题：答案是什么？"
    r = row(question, "答案是四十二。", system="系统提示")
    full = tokenize_conversation(tokenizer, r, 10_000)
    answer = tokenizer.encode("答案是四十二。") + [tokenizer.eos_token_id]
    max_length = len(full) - 40
    sample = tokenize_conversation(tokenizer, r, max_length)
    assert sample.truncated and len(sample) == max_length
    assert sample.input_ids[-len(answer):] == answer == sample.labels[-len(answer):]   # reply and EOS kept, trained
    assert sample.num_trained == len(answer)
    system = tokenizer.encode("系统提示\n\n")
    head, tail = tokenizer.encode("Human: "), tokenizer.encode("\n\nAssistant: ")
    kept_question = sample.input_ids[len(system) + len(head):-len(answer) - len(tail)]
    assert sample.input_ids[:len(system) + len(head)] == system + head
    assert tokenizer.encode(question)[-len(kept_question):] == kept_question   # the end of the question
    assert tokenizer.decode(kept_question).endswith("问题：答案是什么？")


def test_long_answer_is_cut_at_its_end_without_eos(tokenizer):
    answer_text = "这是一个非常长的回答。" * 40
    r = row("问题", answer_text)
    head, tail = tokenizer.encode("Human: "), tokenizer.encode("\n\nAssistant: ")
    max_length = len(head) + len(tail) + 7
    sample = tokenize_conversation(tokenizer, r, max_length)
    assert sample.truncated and len(sample) == max_length
    assert sample.input_ids == head + tail + tokenizer.encode(answer_text)[:7]   # the question is gone
    assert sample.num_trained == 7 and tokenizer.eos_token_id not in sample.input_ids


def test_nothing_trainable_is_none_never_an_all_masked_sample(tokenizer):
    head, tail = tokenizer.encode("Human: "), tokenizer.encode("\n\nAssistant: ")
    assert tokenize_conversation(tokenizer, row("问题", "回答"), len(head) + len(tail)) is None
    assert tokenize_conversation(tokenizer, row("问题", "回答"), len(head) + len(tail) + 1).num_trained == 1
    rng = random.Random(3)
    rows = _rows()
    for _ in range(300):
        r = rng.choice(rows)
        max_length = rng.randint(1, 80)
        sample = tokenize_conversation(tokenizer, r, max_length)
        if sample is not None:
            assert 1 <= sample.num_trained and len(sample) <= max_length and len(sample.labels) == len(sample)
    with pytest.raises(ValueError):
        tokenize_conversation(tokenizer, row("q", "a"), 0)


def test_parse_reads_the_canonical_format():
    conversation = parse(row(" q1 ", "a1", "q2", "a2", system=" s "))
    assert conversation.system == "s" and conversation.pairs == [("q1", "a1"), ("q2", "a2")]
    assert parse(row("q", "a", "next"), open_question=True).question == "next"
    with pytest.raises(ConversationError):
        parse(row("q", "a"), open_question=True)
