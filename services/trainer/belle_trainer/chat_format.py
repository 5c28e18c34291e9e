"""Training rows as ids and labels, through the chat template the run trains with.

A row is the canonical conversation `{"conversations": [{"from": "human"|"assistant", "value": ...},
...], "system"?: ...}`. It is checked (`parse`), turned into OpenAI-style messages and encoded by
`belle_shared.chat_template.encode_chat`: the text the tokenizer's chat template renders, tokenized
whole, with labels on each reply and its end-of-turn token only (every reply of a multi-turn row is
trained). Which template a run uses (the base's own, or BELLE's `Human:` / `Assistant:` format) is
chosen once per run by `belle_shared.chat_template.choose_template`; see that module for why the
prompt chat sends is then token for token what training showed.

Standard library only (plus the tokenizer object passed in).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from belle_shared.chat_template import IGNORE_INDEX, EncodedChat, encode_chat

__all__ = ["IGNORE_INDEX", "ConversationError", "Conversation", "EncodedChat", "parse", "to_messages",
           "tokenize_conversation"]


class ConversationError(ValueError):
    """A row that is not a conversation in the canonical format."""


@dataclass(frozen=True)
class Conversation:
    """A row parsed: the system text ("" for none), the (human, assistant) pairs, and for a
    generation prompt the final open question."""

    system: str
    pairs: list[tuple[str, str]]
    question: str | None = None


def parse(row: Mapping[str, Any], *, open_question: bool = False) -> Conversation:
    """Read `{"conversations": [{"from": "human"|"assistant", "value": ...}, ...], "system"?: ...}`.

    Turns alternate, human first; the last is an assistant turn, or with `open_question` a human turn
    (the question a generation prompt ends with). Values are stripped."""
    turns = row.get("conversations") if isinstance(row, Mapping) else None
    if not isinstance(turns, Sequence) or isinstance(turns, str) or not turns:
        raise ConversationError("a row needs a non-empty list `conversations`")
    system = row.get("system") or ""
    if not isinstance(system, str):
        raise ConversationError("`system` must be a string")
    values = []
    for index, turn in enumerate(turns):
        expected = "human" if index % 2 == 0 else "assistant"
        if not isinstance(turn, Mapping) or turn.get("from") != expected:
            got = turn.get("from") if isinstance(turn, Mapping) else type(turn).__name__
            raise ConversationError(f"turn {index}: expected from={expected!r}, got {got!r}")
        value = turn.get("value")
        if not isinstance(value, str):
            raise ConversationError(f"turn {index}: `value` must be a string")
        values.append(value.strip())
    question = None
    if len(values) % 2:
        if not open_question:
            raise ConversationError("the last turn must be the assistant's")
        question = values.pop()
    elif open_question:
        raise ConversationError("a generation prompt must end with a human turn")
    pairs = list(zip(values[0::2], values[1::2]))
    return Conversation(system.strip(), pairs, question)


def to_messages(row: Mapping[str, Any], *, open_question: bool = False) -> list[dict[str, str]]:
    """The row as OpenAI-style messages, the input of `tokenizer.apply_chat_template`."""
    conversation = parse(row, open_question=open_question)
    messages = [{"role": "system", "content": conversation.system}] if conversation.system else []
    for human, assistant in conversation.pairs:
        messages += [{"role": "user", "content": human}, {"role": "assistant", "content": assistant}]
    if conversation.question is not None:
        messages.append({"role": "user", "content": conversation.question})
    return messages


def tokenize_conversation(tokenizer: Any, row: Mapping[str, Any], max_length: int, *,
                          end_of_turn: str) -> EncodedChat | None:
    """Input ids and labels of a training row under the tokenizer's chat template (`encode_chat`).

    Longer than `max_length`: the row is cut after its last whole reply that fits (no gap in the
    dialogue). If not even the first reply fits whole, the first question is cut from its start
    (keeping its end, next to the answer, as BELLE does) until it does; if it does not fit without
    any question text either, the reply is cut at its end (a cut reply gets no end-of-turn token: it
    did not end there). None when not one reply token fits. ConversationError for a row that is not
    a conversation; `belle_shared.chat_template.BoundaryError` for one whose prompt and reply share
    a token."""
    if max_length < 1:
        raise ValueError("max_length must be positive")
    messages = to_messages(row)
    sample = encode_chat(tokenizer, messages, end_of_turn=end_of_turn, max_length=max_length)
    if sample is not None and sample.whole_replies:
        return sample
    first_reply = next(k for k, m in enumerate(messages) if m["role"] == "assistant")
    pair, question = messages[:first_reply + 1], messages[first_reply - 1]["content"]

    def with_question_end(kept: int) -> EncodedChat | None:
        shorter = [*pair[:first_reply - 1], {"role": "user", "content": question[len(question) - kept:]}, pair[-1]]
        return encode_chat(tokenizer, shorter, end_of_turn=end_of_turn, max_length=max_length)

    # The most question characters (kept from its end) under which the first reply still fits whole.
    low, high, best = 0, len(question) - 1, None
    while low <= high:
        kept = (low + high) // 2
        candidate = with_question_end(kept)
        if candidate is not None and candidate.whole_replies:
            best, low = candidate, kept + 1
        else:
            high = kept - 1
    if best is None:
        best = with_question_end(0)  # no question text, and the reply's start
    if best is None:
        return None
    return EncodedChat(best.input_ids, best.labels, truncated=True, whole_replies=best.whole_replies)
