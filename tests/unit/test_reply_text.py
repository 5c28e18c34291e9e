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


def _metaspace_tokenizer():
    """A SentencePiece-style tokenizer (spaces as "▁", the first word's leading space dropped on decode)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    text = ["the quick brown fox jumps over the lazy dog", "a stop string ends the reply", "你好 世界 hello world"]
    tokenizer.train_from_iterator(text * 20, trainers.BpeTrainer(vocab_size=120, special_tokens=["<unk>", "</s>"],
                                                                 show_progress=False))
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>", eos_token="</s>")


@pytest.mark.parametrize("kind", ["byte-level", "metaspace"])
def test_incremental_decoding_gives_the_whole_decode_after_every_token(tokenizer, kind):
    import random

    tok = tokenizer if kind == "byte-level" else _metaspace_tokenizer()
    text = "你好，世界！🙂 the quick brown fox 是一个项目。 jumps over the lazy dog"
    rng = random.Random(0)
    sequences = [tok(text, add_special_tokens=False)["input_ids"]]
    # Random ids too: byte tokens in any order (incomplete and invalid UTF-8 included), special tokens.
    sequences += [[rng.randrange(len(tok)) for _ in range(200)] for _ in range(5)]
    decode = _decode(tok)
    for ids in sequences:
        reply = ReplyText(decode)
        for count, token in enumerate(ids, 1):
            reply.ids.append(token)
            assert reply._text_so_far() == decode(ids[:count]), (kind, count)
        # Each token decoded a short window, never the whole reply.
        assert reply._context > len(ids) - 20


def test_the_templates_reply_prefix_is_not_sent(tokenizer):
    """BELLE's space-in-reply spelling: the model's reply starts with the space after "Assistant:"."""
    text = " 三百零五。 Done"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    reply = ReplyText(_decode(tokenizer), stops=["Done"], prefix=" ")
    pieces = _feed(reply, ids) + [reply.finish()]
    assert "".join(pieces) == "三百零五。 " == reply.text
    # A reply that does not start with the prefix is sent whole; one that is only the prefix is empty.
    other = ReplyText(_decode(tokenizer), prefix=" ")
    assert "".join(_feed(other, tokenizer("no space", add_special_tokens=False)["input_ids"]) + [other.finish()]) == "no space"
    blank = ReplyText(_decode(tokenizer), prefix=" ")
    assert "".join(_feed(blank, tokenizer(" ", add_special_tokens=False)["input_ids"]) + [blank.finish()]) == ""
