"""Templates that cannot mismatch, on a real tokenizer (SmolLM2's 49,152-token byte-level BPE): for its
own ChatML template and for BELLE's (written into it), the ids trained on are the rendered
conversation tokenized whole, the labels cover exactly each reply and its end-of-turn token, and the
prompt chat and the evaluator build (`chat_models.render_chat`) is token for token the training ids up
to the reply. Also: which template a run picks, and the end-of-turn token it stops on."""

from __future__ import annotations

import copy
import random

import pytest

pytest.importorskip("transformers")

from transformers import AutoTokenizer  # noqa: E402

from helpers import trained_pieces  # noqa: E402

from belle_shared.chat_models import render_chat  # noqa: E402
from belle_shared.chat_template import (  # noqa: E402
    BELLE_TEMPLATE, BELLE_TEMPLATE_SPACE_IN_REPLY, IGNORE_INDEX, TemplateError, choose_template, encode_chat,
    end_of_turn_token, reply_text, template_name,
)


@pytest.fixture(scope="module")
def chatml(real_model):
    return AutoTokenizer.from_pretrained(real_model)


@pytest.fixture(scope="module")
def belle(chatml):
    tokenizer = copy.deepcopy(chatml)
    assert choose_template(tokenizer, "belle") == "belle"
    return tokenizer


REPLIES = ["三百零五", "2", "Paris.", "hello world", "(a) first", "-1", "😊 好的", "「是」", "# Title\n\ntext",
           "  padded  ", "```python\nprint(1)\n```", "北京是中国的首都。", "Yes", "12, 34", "<|im_end|> inside"]
QUESTIONS = ["把305写成中文数字", "What is the capital of France?", "计算 23 + 45", "Say hi", "倒过来写：春天", "?"]


def conversations(seed: int = 0, count: int = 150):
    rng = random.Random(seed)
    for _ in range(count):
        messages = []
        if rng.random() < 0.3:
            messages.append({"role": "system", "content": rng.choice(["简洁地回答。", "You are terse."])})
        for _ in range(rng.randint(1, 3)):
            messages += [{"role": "user", "content": rng.choice(QUESTIONS)},
                         {"role": "assistant", "content": rng.choice(REPLIES).strip()}]
        yield messages


def check_three_rules(tokenizer, end_of_turn: str, reply_prefix: str):
    for messages in conversations():
        sample = encode_chat(tokenizer, messages, end_of_turn=end_of_turn)
        text = tokenizer.apply_chat_template(messages, tokenize=False)
        # 1. The ids trained on are the rendered conversation, tokenized whole.
        assert sample.input_ids == tokenizer(text, add_special_tokens=False)["input_ids"]
        # 2. The labels are each reply and its end-of-turn token, nothing else.
        replies = [m["content"] for m in messages if m["role"] == "assistant"]
        assert trained_pieces(tokenizer, sample) == [reply_prefix + r + end_of_turn for r in replies], messages
        # 3. Chat and the evaluator prompt with a token prefix of the training ids, up to each reply.
        for k, message in enumerate(messages):
            if message["role"] == "assistant":
                prompt = render_chat(tokenizer, messages[:k])
                assert sample.input_ids[:len(prompt)] == prompt
                assert sample.labels[len(prompt)] != IGNORE_INDEX  # the reply starts right after it
                assert all(label == IGNORE_INDEX for label in sample.labels[len(prompt) - 1:len(prompt)])


def test_chatml_the_base_models_own_template(chatml):
    assert template_name(chatml.chat_template) == "base"
    assert end_of_turn_token(chatml) == "<|im_end|>" == chatml.eos_token  # the import set the EOS right
    check_three_rules(chatml, "<|im_end|>", "")


def test_belle_template_on_a_byte_level_bpe_puts_the_space_in_the_reply(belle):
    # "Assistant: " would end the prompt in a lone " " token that training never shows before a reply.
    assert belle.chat_template == BELLE_TEMPLATE_SPACE_IN_REPLY
    messages = [{"role": "user", "content": "1+1=?"}]
    assert belle.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == "Human: 1+1=?\n\nAssistant:"
    assert belle.apply_chat_template(messages + [{"role": "assistant", "content": "2"}], tokenize=False) == (
        "Human: 1+1=?\n\nAssistant: 2<|im_end|>")
    check_three_rules(belle, belle.eos_token, " ")
    assert reply_text(belle, " 2") == "2"


def test_the_other_spelling_would_break_the_prompt_prefix(belle):
    tokenizer = copy.deepcopy(belle)
    tokenizer.chat_template = BELLE_TEMPLATE  # "Assistant: " ends the prompt
    messages = [{"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Paris"}]
    from belle_shared.chat_template import BoundaryError

    with pytest.raises(BoundaryError):
        encode_chat(tokenizer, messages, end_of_turn=tokenizer.eos_token)


def test_choosing_a_template(chatml):
    auto = copy.deepcopy(chatml)
    assert choose_template(auto, "auto") == "base" and auto.chat_template == chatml.chat_template
    base = copy.deepcopy(chatml)
    assert choose_template(base, "base") == "base"
    bare = copy.deepcopy(chatml)
    bare.chat_template = None
    assert choose_template(copy.deepcopy(bare), "auto") == "belle"
    with pytest.raises(TemplateError, match="no chat template"):
        choose_template(copy.deepcopy(bare), "base")
    # A model trained here in BELLE's format keeps it under `auto` and `base`.
    trained = copy.deepcopy(bare)
    choose_template(trained, "belle")
    assert choose_template(trained, "base") == "belle"


def test_truncation_on_a_real_tokenizer_keeps_whole_turns(chatml):
    messages = [{"role": "user", "content": "第一问"}, {"role": "assistant", "content": "第一答"},
                {"role": "user", "content": "第二问"}, {"role": "assistant", "content": "第二答" * 30}]
    first = encode_chat(chatml, messages[:2], end_of_turn="<|im_end|>")
    cut = encode_chat(chatml, messages, end_of_turn="<|im_end|>", max_length=len(first) + 10)
    assert cut.truncated and cut.input_ids == first.input_ids[:len(cut)]
    assert trained_pieces(chatml, cut) == ["第一答<|im_end|>"]
