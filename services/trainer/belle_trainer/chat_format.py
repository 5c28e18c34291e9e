"""BELLE's conversation format, as text, as a chat template, and as training ids with label masks.

A conversation renders as (a non-empty system text first, then one block per turn pair)

    {system}\\n\\n
    Human: {human}\\n\\nAssistant: {assistant}{eos}
    Human: {human}\\n\\nAssistant: {assistant}{eos}

with nothing between the pairs: the EOS closes each reply. A prompt for generation ends with an
open `Human: {question}\\n\\nAssistant: ` (one space after the colon; the reply follows it directly).
Every text is stripped of surrounding whitespace first, here and in the Jinja template alike, so
that training, evaluation and chat (which all go through one of the two) see the same text, and so
that every boundary between a masked and a trained piece falls on a pre-tokenizer boundary (see
`tokenize_conversation`).

Standard library only (plus the tokenizer object passed in): the data pipeline and the gateway may
import this without torch.

    >>> render({"conversations": [{"from": "human", "value": "1+1=?"},
    ...                           {"from": "assistant", "value": "2"}]}, "</s>")
    'Human: 1+1=?\\n\\nAssistant: 2</s>'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

IGNORE_INDEX = -100  # the label value PyTorch's cross-entropy (and transformers' loss) skips

HUMAN = "Human: "
ASSISTANT = "Assistant: "
SEPARATOR = "\n\n"  # after the system text and after each human turn

# The same format for transformers' `apply_chat_template` (OpenAI-style roles system/user/assistant).
# transformers renders with trim_blocks/lstrip_blocks; every tag here also strips with `-`, so the
# layout of this string adds no text. A wrong role order raises instead of rendering a malformed prompt.
BELLE_CHAT_TEMPLATE = (
    "{%- set ns = namespace(expect='user') -%}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}"
    "{%- if not loop.first -%}{{ raise_exception('BELLE chat format: a system message may only come first') }}"
    "{%- endif -%}"
    "{%- if message['content'] | trim -%}{{ message['content'] | trim }}{{ '\\n\\n' }}{%- endif -%}"
    "{%- elif message['role'] == ns.expect -%}"
    "{%- if message['role'] == 'user' -%}"
    "{{ 'Human: ' }}{{ message['content'] | trim }}{{ '\\n\\n' }}"
    "{%- set ns.expect = 'assistant' -%}"
    "{%- else -%}"
    "{{ 'Assistant: ' }}{{ message['content'] | trim }}{{ eos_token }}"
    "{%- set ns.expect = 'user' -%}"
    "{%- endif -%}"
    "{%- else -%}"
    "{{ raise_exception('BELLE chat format: expected a ' + ns.expect + ' message, got ' + message['role']) }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ 'Assistant: ' }}{%- endif -%}"
)


class ConversationError(ValueError):
    """A row that is not a conversation in the canonical format."""


@dataclass(frozen=True)
class Sample:
    """One tokenised conversation: `labels` is `input_ids` with IGNORE_INDEX where no loss is taken."""

    input_ids: list[int]
    labels: list[int]
    truncated: bool = False

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def num_trained(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


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


def render(conversation: Mapping[str, Any] | Conversation, eos: str, *, add_generation_prompt: bool = False) -> str:
    """The exact BELLE text of a row (or a parsed Conversation).

    With `add_generation_prompt` the row ends with a human turn and the text with `Assistant: `."""
    if not isinstance(conversation, Conversation):
        conversation = parse(conversation, open_question=add_generation_prompt)
    parts = [conversation.system + SEPARATOR] if conversation.system else []
    for human, assistant in conversation.pairs:
        parts.append(HUMAN + human + SEPARATOR + ASSISTANT + assistant + eos)
    if conversation.question is not None:
        parts.append(HUMAN + conversation.question + SEPARATOR + ASSISTANT)
    return "".join(parts)


def _encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer.encode(text, add_special_tokens=False)) if text else []


def tokenize_conversation(tokenizer: Any, row: Mapping[str, Any], max_length: int) -> Sample | None:
    """Input ids and labels of a training row: the system text, the `Human: ...\\n\\nAssistant: `
    scaffolding and the human text are masked (IGNORE_INDEX); every reply and its EOS are trained.

    Pieces are tokenised one by one so that the mask boundaries are exact. With the tiny model's
    tokenizer the result equals tokenising the whole rendered text: its pre-tokenizer attaches a
    space to the word or punctuation before it (": " is one pre-token), and every piece boundary
    sits after ": ", after "\\n\\n" before a letter, or next to the EOS special token, so no BPE merge
    crosses a boundary (tests check it). With other tokenizers (SentencePiece's leading "▁") the ids
    can differ slightly from whole-text tokenisation; the masks are exact either way, as in BELLE.

    Longer than `max_length`: whole trailing turn pairs are dropped; if the first pair alone is too
    long, the human text is cut from its start (keeping the end next to the answer), then the
    answer's end (a cut answer gets no EOS: it did not end there). None if not even one reply token
    fits next to the system text and scaffolding; never a sample with no trained token.
    """
    if max_length < 1:
        raise ValueError("max_length must be positive")
    conversation = parse(row)
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("the tokenizer has no EOS token")
    system_ids = _encode(tokenizer, conversation.system + SEPARATOR) if conversation.system else []
    head, tail = _encode(tokenizer, HUMAN), _encode(tokenizer, SEPARATOR + ASSISTANT)
    pairs = [(_encode(tokenizer, human), _encode(tokenizer, assistant) + [eos])
             for human, assistant in conversation.pairs]

    input_ids = list(system_ids)
    labels = [IGNORE_INDEX] * len(system_ids)
    truncated = False
    for index, (human_ids, answer_ids) in enumerate(pairs):
        prompt_ids = head + human_ids + tail
        if len(input_ids) + len(prompt_ids) + len(answer_ids) > max_length:
            truncated = True
            if index > 0:
                break  # drop this pair and all after it
            room = max_length - len(system_ids) - len(head) - len(tail)
            if room < 1:
                return None
            if len(answer_ids) <= room:
                keep = room - len(answer_ids)
                human_ids = human_ids[len(human_ids) - keep:] if keep else []
            else:
                # The reply alone is too long: no human text, the reply's start. The EOS is the
                # last id, so the cut drops it: a reply that was cut did not end there.
                human_ids, answer_ids = [], answer_ids[:room]
            prompt_ids = head + human_ids + tail
            input_ids += prompt_ids + answer_ids
            labels += [IGNORE_INDEX] * len(prompt_ids) + answer_ids
            break
        input_ids += prompt_ids + answer_ids
        labels += [IGNORE_INDEX] * len(prompt_ids) + answer_ids
    sample = Sample(input_ids, labels, truncated)
    return sample if sample.num_trained else None
