"""ReplyText: what the client is sent while tokens arrive (real byte-level BPE tokenizer)."""

from __future__ import annotations

import pytest

from belle_gateway.serving.output import REPLACEMENT, ReplyText


@pytest.fixture(scope="module")
def tokenizer():
    from belle_trainer.tiny import train_tokenizer

    return train_tokenizer(600)


def _decode(tokenizer):
    return lambda ids: tokenizer.decode(list(ids), skip_special_tokens=True)


def _feed(reply: ReplyText, ids) -> list[str]:
    return [reply.add(token) for token in ids]


def test_streamed_pieces_add_up_to_the_decoded_text_and_never_split_a_character(tokenizer):
    text = "你好，世界！🙂 BELLE 是一个项目。"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) > len(text) / 2  # small vocabulary: characters span several byte tokens
    reply = ReplyText(_decode(tokenizer))
    pieces = _feed(reply, ids) + [reply.finish()]
    assert "".join(pieces) == text == reply.text
    assert not any(REPLACEMENT in piece for piece in pieces)
    assert sum(1 for piece in pieces if piece) > 5


def test_a_stop_string_ends_the_reply_and_is_never_sent_even_across_tokens(tokenizer):
    text = "第一句。STOP 第二句。"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    reply = ReplyText(_decode(tokenizer), stops=["STOP"])
    sent = ""
    for token in ids:
        sent += reply.add(token)
        assert "S" not in sent  # the stop string's start is held back until it is settled
        if reply.stopped:
            break
    assert reply.stopped and sent == "第一句。" and reply.finish() == ""


def test_a_held_back_prefix_of_a_stop_string_is_sent_once_it_turns_out_not_to_be_one(tokenizer):
    ids = tokenizer("abc abd", add_special_tokens=False)["input_ids"]
    reply = ReplyText(_decode(tokenizer), stops=["abx"])
    pieces = _feed(reply, ids)
    assert not reply.stopped
    assert "".join(pieces) + reply.finish() == "abc abd"


def test_an_incomplete_character_at_the_end_is_given_as_decode_gives_it(tokenizer):
    ids = tokenizer("好", add_special_tokens=False)["input_ids"]
    assert len(ids) > 1
    reply = ReplyText(_decode(tokenizer))
    sent = "".join(_feed(reply, ids[:-1]))
    assert sent == ""  # nothing sent while the character is incomplete
    assert reply.finish() == tokenizer.decode(ids[:-1])
