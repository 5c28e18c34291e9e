"""Chat templates, and a conversation as training ids: the one place where training, evaluation,
quantization and chat agree on how a conversation becomes tokens.

The rule: a model is trained in the chat template it is served with, and that template is saved
with it. A conversation's training ids are its text as the template renders it, tokenized whole.
The prompt that chat and the evaluator build for the same history (`apply_chat_template(...,
add_generation_prompt=True)`, see `chat_models.render_chat`) is token for token a prefix of those
ids, and the labels cover exactly each assistant reply and the end-of-turn token the template writes
after it (`<|im_end|>` in ChatML, the EOS in BELLE's format); everything else is masked.

Which template (`choose_template`): a base with its own chat template (ChatML in Qwen and SmolLM2,
LLaMA-3's) is trained through it; a base without one gets BELLE's `Human: ... / Assistant: ...`
format, written into its tokenizer; a run may ask for BELLE's explicitly, which replaces the base's.

BELLE's format has a catch with real tokenizers: byte-level BPE (GPT-2, LLaMA-3, Qwen, SmolLM2)
attaches a space to the word after it, so "Assistant: 2" tokenizes as "Assistant", ":", " 2" while a
prompt ending in "Assistant: " ends in a lone " " token that training never showed. So BELLE's
template comes in two spellings of the same text: the space ends the generation prompt (the
project's tiny tokenizers keep ": " together) or starts the reply (byte-level BPE). `belle_template`
probes the tokenizer and picks the spelling under which the prompt is a token prefix; the reply a
model then generates starts with that space, which `reply_text` removes.

Duck-typed on transformers' tokenizers; nothing here imports torch or transformers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

IGNORE_INDEX = -100  # the label value PyTorch's cross-entropy (and transformers' loss) skips

TemplateChoice = Literal["auto", "base", "belle"]


class TemplateError(ValueError):
    """A template or tokenizer that cannot give consistent training ids (the run cannot use it)."""


class BoundaryError(ValueError):
    """One conversation whose prompt and reply share a token under this template and tokenizer."""


def _belle_template(*, space_in_reply: bool) -> str:
    """BELLE's `{system}\\n\\nHuman: {q}\\n\\nAssistant: {a}{eos}` for `apply_chat_template`
    (OpenAI-style roles). Every text is stripped; a wrong role order raises instead of rendering a
    malformed prompt. With `space_in_reply` the generation prompt ends in "Assistant:" and the
    rendered reply starts with the space; the full text is the same either way."""
    prompt, reply = ("Assistant:", " ") if space_in_reply else ("Assistant: ", "")
    return (
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
        f"{{{{ '{prompt}{reply}' }}}}{{{{ message['content'] | trim }}}}{{{{ eos_token }}}}"
        "{%- set ns.expect = 'user' -%}"
        "{%- endif -%}"
        "{%- else -%}"
        "{{ raise_exception('BELLE chat format: expected a ' + ns.expect + ' message, got ' + message['role']) }}"
        "{%- endif -%}"
        "{%- endfor -%}"
        f"{{%- if add_generation_prompt -%}}{{{{ '{prompt}' }}}}{{%- endif -%}}"
    )


BELLE_TEMPLATE = _belle_template(space_in_reply=False)
BELLE_TEMPLATE_SPACE_IN_REPLY = _belle_template(space_in_reply=True)
BELLE_TEMPLATES = (BELLE_TEMPLATE, BELLE_TEMPLATE_SPACE_IN_REPLY)

# Replies the templates are probed with: the first characters a reply starts with in practice.
_PROBE_REPLIES = ("2", "三百零五", "Hello", "hello world", "(a)", "-1", "😊", "「好」", "#", "Yes.")


def template_name(template: str | None) -> str:
    """`belle` for either spelling of BELLE's template, `base` for another, `none` for no template."""
    if not template:
        return "none"
    return "belle" if template in BELLE_TEMPLATES else "base"


# ----------------------------------------------------------------------------------- choosing


def belle_template(tokenizer: Any) -> str:
    """The spelling of BELLE's template under which this tokenizer's generation prompts are token
    prefixes of its training ids (see the module's docstring). TemplateError if neither is."""
    if tokenizer.eos_token is None:
        raise TemplateError("BELLE's chat format ends every reply with the EOS token; this tokenizer has none")
    saved = tokenizer.chat_template
    try:
        for template in BELLE_TEMPLATES:
            tokenizer.chat_template = template
            if _consistent(tokenizer, tokenizer.eos_token):
                return template
    finally:
        tokenizer.chat_template = saved
    raise TemplateError("BELLE's chat format cannot be tokenized consistently by this tokenizer: the generation "
                        "prompt and the reply share a token in both spellings (use the base model's own template)")


def _consistent(tokenizer: Any, end_of_turn: str) -> bool:
    for reply in _PROBE_REPLIES:
        messages = [{"role": "user", "content": "问题 question"}, {"role": "assistant", "content": reply},
                    {"role": "user", "content": "again"}, {"role": "assistant", "content": reply}]
        try:
            encode_chat(tokenizer, messages, end_of_turn=end_of_turn)
        except BoundaryError:
            return False
    return True


def choose_template(tokenizer: Any, choice: TemplateChoice) -> str:
    """Set the chat template a run trains (and its model is served) with on `tokenizer`; returns its
    name (`base` or `belle`). `auto`: the base's own if it has one, else BELLE's. TemplateError when
    `base` is asked of a tokenizer without a template, or the template is unusable."""
    if choice not in ("auto", "base", "belle"):
        raise ValueError(f"chat template choice must be auto, base or belle, not {choice!r}")
    current = template_name(tokenizer.chat_template)
    if choice == "base" and current == "none":
        raise TemplateError("the base model has no chat template of its own (choose `belle` or `auto`)")
    if choice == "belle" or current != "base":
        # No template, or BELLE's already (a model fine-tuned here): BELLE's, spelt for this tokenizer.
        tokenizer.chat_template = belle_template(tokenizer)
        return "belle"
    end_of_turn_token(tokenizer)  # raises when the template ends replies with no special token
    return "base"


def end_of_turn_token(tokenizer: Any) -> str:
    """The special token the chat template writes right after an assistant reply (`<|im_end|>` for
    ChatML, `<|eot_id|>` for LLaMA-3, the EOS for BELLE's): what a reply is trained to end with and
    what generation stops on. TemplateError if the template follows a reply with plain text."""
    marker = "PROBEREPLY"
    text = tokenizer.apply_chat_template([{"role": "user", "content": "Q"}, {"role": "assistant", "content": marker}],
                                         tokenize=False)
    after = text[text.rindex(marker) + len(marker):]
    specials = set(tokenizer.all_special_tokens) | set(getattr(tokenizer, "added_tokens_encoder", {}) or {})
    for token in sorted(specials, key=len, reverse=True):
        if token and after.startswith(token):
            return token
    raise TemplateError(f"the chat template ends a reply with {after[:20]!r}, not with a special token: "
                        "generation would have no token to stop on")


# ----------------------------------------------------------------------------------- encoding


@dataclass(frozen=True)
class EncodedChat:
    """A conversation as training ids: `labels` is `input_ids` with IGNORE_INDEX where no loss is taken."""

    input_ids: list[int]
    labels: list[int]
    truncated: bool = False
    whole_replies: int = 0  # replies kept with their end-of-turn token

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def num_trained(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


def reply_spans(tokenizer: Any, messages: Sequence[dict[str, str]], text: str, end_of_turn: str) -> list[tuple[int, int]]:
    """Character spans of `text` (the rendered conversation) that are trained: each assistant reply
    from where its generation prompt ends to the end of the last end-of-turn token of its turn (a
    reply may itself contain that token's text)."""
    spans = []
    for k, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = tokenizer.apply_chat_template(list(messages[:k]), tokenize=False, add_generation_prompt=True)
        turn = tokenizer.apply_chat_template(list(messages[:k + 1]), tokenize=False)
        if not (text.startswith(before) and text.startswith(turn)):
            raise TemplateError("the chat template renders the start of a conversation differently from the "
                                "whole of it, so the prompt chat sends would not be what training showed")
        end = turn.rfind(end_of_turn, len(before))
        if end < 0:
            raise TemplateError(f"the chat template does not end reply {k} with {end_of_turn!r}")
        spans.append((len(before), end + len(end_of_turn)))
    return spans


def encode_chat(tokenizer: Any, messages: Sequence[dict[str, str]], *, end_of_turn: str,
                max_length: int | None = None) -> EncodedChat | None:
    """The training ids and labels of a conversation (OpenAI-style messages ending with an assistant
    reply) under the tokenizer's chat template; see the module's docstring for the rule.

    BoundaryError when a reply's first token would also hold the end of its prompt (the prompt
    chat sends would then not be a token prefix of what was trained). Longer than `max_length`: cut
    after the last whole reply that fits, else inside the first reply (a cut reply gets no
    end-of-turn token: it did not end there); None when not one reply token fits.
    """
    text = tokenizer.apply_chat_template(list(messages), tokenize=False)
    spans = reply_spans(tokenizer, messages, text, end_of_turn)
    # The template writes the special tokens it wants as text; the tokenizer's own would double them.
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = list(encoded["input_ids"]), encoded["offset_mapping"]
    labels = [IGNORE_INDEX] * len(ids)
    ends = []  # token index just past each reply's end-of-turn token
    for start, end in spans:
        first = next((i for i, (a, b) in enumerate(offsets) if b > start), len(ids))
        if first < len(ids) and offsets[first][0] < start:
            raise BoundaryError(f"the token {tokenizer.decode([ids[first]])!r} holds both the end of the prompt "
                                "and the start of the reply")
        prompt_ids = tokenizer(text[:start], add_special_tokens=False)["input_ids"]
        if list(prompt_ids) != ids[:first]:
            raise BoundaryError("the generation prompt tokenizes differently alone than inside the conversation")
        last = first
        while last < len(ids) and offsets[last][1] <= end:
            labels[last] = ids[last]
            last += 1
        ends.append(last)
    truncated = False
    if max_length is not None and len(ids) > max_length:
        if max_length < 1:
            raise ValueError("max_length must be positive")
        truncated = True
        cut = max((end for end in ends if end <= max_length), default=max_length)
        ids, labels = ids[:cut], labels[:cut]
    sample = EncodedChat(ids, labels, truncated, whole_replies=sum(1 for end in ends if end <= len(ids)))
    return sample if sample.num_trained else None


def reply_prefix(tokenizer: Any) -> str:
    """What the chat template writes at the start of every reply, which is the template's, not the
    model's answer: the space after "Assistant:" in BELLE's space-in-reply spelling, else nothing."""
    return " " if getattr(tokenizer, "chat_template", None) == BELLE_TEMPLATE_SPACE_IN_REPLY else ""


def reply_text(tokenizer: Any, text: str) -> str:
    """A generated reply as the user sees it, without the template's `reply_prefix`."""
    prefix = reply_prefix(tokenizer)
    return text[len(prefix):] if prefix and text.startswith(prefix) else text
