"""Render self-instruct and dialogue prompts, and parse a teacher's reply back into samples.

The self-instruct prompt lists k example tasks as numbered blocks and ends with the opener of
block k+1, so the teacher continues the list (BELLE's and Alpaca's format)::

    ###
    1. 指令: <instruction>
    1. 输入:
    <input, or <无输入> when there is none>
    1. 输出:
    <output>
    ###
    2. 指令:

English uses ``Instruction`` / ``Input`` / ``Output`` and ``<noinput>``. A chat teacher answers with
blocks k+1..N (optionally after a ``###`` line); a completion teacher answers with the text that
follows the prompt's last ``{k+1}. 指令:``, so the parser puts that opener back first.

Teacher replies are untrusted text. ``parse_self_instruct_reply`` and ``parse_dialogue_reply``
never raise on any reply: they return what they could parse and say why the rest was dropped.
Standard library and the job contract (belle_shared.specs) only.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from belle_shared.specs import PROMPT_PLACEHOLDERS

LANGUAGES = ("zh", "en")

# Field names in block order; the labels a teacher writes for them, per language.
_FIELDS = ("instruction", "input", "output")
_LABELS = {
    "zh": {"instruction": "指令", "input": "输入", "output": "输出"},
    "en": {"instruction": "Instruction", "input": "Input", "output": "Output"},
}
_NO_INPUT = {"zh": "<无输入>", "en": "<noinput>"}

# Placeholders a template must contain; rendering replaces exactly these tokens in one pass, so
# braces elsewhere in a template (or a "{num_tasks}" inside an example's text) are left alone.
_SELF_INSTRUCT_PLACEHOLDERS = PROMPT_PLACEHOLDERS["self_instruct"]
_DIALOGUE_PLACEHOLDERS = PROMPT_PLACEHOLDERS["dialogue"]

_FULL_WIDTH_DIGITS = str.maketrans("０１２３４５６７８９", "0123456789")
_NEWLINE = re.compile(r"\r\n|\r|\n")
_SEPARATOR = re.compile(r"^\s*#{3,}\s*$")
# Optional markdown decoration ("### 5. 指令:", "**5. 指令:**"), an optional number with an ASCII
# or full-width period, the label, optional spaces, an ASCII or full-width colon, then the value.
_LABEL_TEMPLATE = (
    r"^\s*(?:#+\s*)?(?:\*\*\s*)?"
    r"(?:(?P<num>[0-9０-９]+)\s*[.．、]\s*)?(?:\*\*\s*)?"
    r"(?P<label>{labels})\s*(?:\*\*)?\s*[:：]\s*(?:\*\*)?\s*(?P<rest>.*)$"
)
_LABEL_LINE = {
    "zh": re.compile(_LABEL_TEMPLATE.format(labels="指令|输入|输出")),
    "en": re.compile(_LABEL_TEMPLATE.format(labels="instruction|input|output"), re.IGNORECASE),
}
_LABEL_TO_FIELD = {
    "指令": "instruction",
    "输入": "input",
    "输出": "output",
    "instruction": "instruction",
    "input": "input",
    "output": "output",
}
# The ways teachers write "no input", compared after dropping brackets, spaces, case and a final
# full stop: <无输入>, ＜无输入＞, 无输入, <noinput>, <no input>, <no_input>, and a bare 无.
_NO_INPUT_WORDS = {"无输入", "noinput", "无"}
_NO_INPUT_STRIP = re.compile(r"[<>＜＞()（）\[\]【】\s_\-]")

_DIALOGUE_LABEL = re.compile(
    r"^\s*(?:\*\*\s*)?(?P<who>human|assistant)\s*(?:\*\*)?\s*[:：]\s*(?:\*\*)?\s*(?P<rest>.*)$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Task:
    """One instruction sample; ``input`` is "" when the task has none."""

    instruction: str
    input: str
    output: str


@dataclass
class ParsedReply:
    """The tasks parsed from one reply, and how many blocks were dropped for each reason."""

    tasks: list[Task] = field(default_factory=list)
    dropped: collections.Counter[str] = field(default_factory=collections.Counter)


def _check_language(language: str) -> None:
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {LANGUAGES}, got {language!r}")


def _replace_placeholders(template: str, values: dict[str, str], what: str) -> str:
    """Replace each ``{name}`` token by its value in a single pass (never ``str.format``)."""
    missing = [token for token in values if token not in template]
    if missing:
        raise ValueError(f"{what} template lacks the placeholder(s) {', '.join(missing)}")
    pattern = re.compile("|".join(re.escape(token) for token in values))
    return pattern.sub(lambda match: values[match.group(0)], template)


# --------------------------------------------------------------------------------- rendering


def next_block_opener(index: int, language: str) -> str:
    """The label that opens block ``index``: ``"5. 指令:"`` (zh) or ``"5. Instruction:"`` (en)."""
    _check_language(language)
    return f"{index}. {_LABELS[language]['instruction']}:"


def _render_block(index: int, task: Task, language: str) -> str:
    labels = _LABELS[language]
    return "\n".join(
        [
            "###",
            f"{index}. {labels['instruction']}: {task.instruction}",
            f"{index}. {labels['input']}:",
            task.input if task.input.strip() else _NO_INPUT[language],
            f"{index}. {labels['output']}:",
            task.output,
        ]
    )


def render_self_instruct_prompt(
    template: str, examples: Sequence[Task], *, num_tasks: int, language: str
) -> str:
    """Fill ``{examples}`` with the numbered example blocks plus the next opener, and ``{num_tasks}``.

    ``num_tasks`` counts the whole list the teacher is asked to complete, examples included, so
    it must leave room for at least one new task.
    """
    _check_language(language)
    if num_tasks <= len(examples):
        raise ValueError(
            f"num_tasks ({num_tasks}) must exceed the number of examples ({len(examples)})"
        )
    parts = [_render_block(i, task, language) for i, task in enumerate(examples, start=1)]
    # The prompt ends on the bare opener: the teacher's next tokens are the new instruction.
    parts.append("###\n" + next_block_opener(len(examples) + 1, language))
    return _replace_placeholders(
        template,
        {"{examples}": "\n".join(parts), "{num_tasks}": str(num_tasks)},
        "self-instruct",
    )


def render_dialogue_prompt(template: str, *, topic: str, turns: int) -> str:
    """Fill ``{topic}`` and ``{turns}`` (the number of human turns) in a dialogue template."""
    if turns < 1:
        raise ValueError(f"turns must be at least 1, got {turns}")
    return _replace_placeholders(template, {"{topic}": topic, "{turns}": str(turns)}, "dialogue")


# ----------------------------------------------------------------------- self-instruct parsing


@dataclass
class _Block:
    """Fields of one block as lines, in the order their labels appeared."""

    number: str | None
    fields: dict[str, list[str]]
    last: str
    closed_by_separator: bool = False


def _is_no_input(value: str) -> bool:
    word = _NO_INPUT_STRIP.sub("", value.strip().rstrip("。.")).lower()
    return word in _NO_INPUT_WORDS


def _block_to_task(block: _Block) -> Task | None:
    """The block's task, or None when a field is missing or the instruction/output is empty."""
    if any(name not in block.fields for name in _FIELDS):
        return None
    values = {name: "\n".join(lines).strip() for name, lines in block.fields.items()}
    if not values["instruction"] or not values["output"]:
        return None
    if _is_no_input(values["input"]):
        values["input"] = ""
    return Task(values["instruction"], values["input"], values["output"])


def _split_blocks(lines: list[str], language: str) -> list[_Block]:
    """Group lines into blocks at ``###`` lines and at labels that must open a new block.

    A numbered label always counts as a label. An unnumbered one counts only where it is the next
    field expected, so "输入:"/"Output:" lines inside an output (worked examples, code) stay
    text. In a reply with no numbered instruction label at all (the forgiving bare format), an
    unnumbered instruction label also opens a new block.
    """
    label_line = _LABEL_LINE[language]
    matches = [label_line.match(line) for line in lines]
    bare = not any(
        m and m.group("num") and _LABEL_TO_FIELD[m.group("label").lower()] == "instruction"
        for m in matches
    )
    blocks: list[_Block] = []
    current: _Block | None = None

    def open_block(number: str | None, name: str, rest: str) -> _Block:
        block = _Block(number=number, fields={name: [rest]}, last=name)
        blocks.append(block)
        return block

    for line, match in zip(lines, matches):
        if _SEPARATOR.match(line):
            if current is not None:
                current.closed_by_separator = True
            current = None
            continue
        if match is None:
            if current is not None:
                current.fields[current.last].append(line)
            continue  # text before the first label, or between blocks: chatter
        name = _LABEL_TO_FIELD[match.group("label").lower()]
        number = match.group("num")
        number = number.translate(_FULL_WIDTH_DIGITS) if number else None
        rest = match.group("rest")
        if current is None:
            current = open_block(number, name, rest)
        elif number is not None:
            starts_new = (
                name == "instruction"
                or name in current.fields
                or (current.number is not None and number != current.number)
            )
            if starts_new:
                current = open_block(number, name, rest)
            else:
                current.fields[name] = [rest]
                current.last = name
        elif name == "instruction" and bare:
            current = open_block(None, name, rest)
        elif name not in current.fields and _FIELDS.index(name) > _FIELDS.index(current.last):
            current.fields[name] = [rest]
            current.last = name
        else:
            current.fields[current.last].append(line)
    return blocks


def parse_self_instruct_reply(
    text: str, *, first_index: int, language: str, truncated: bool, completion: bool
) -> ParsedReply:
    """Parse a teacher's reply into tasks; count dropped blocks by reason.

    ``completion``: the text continues the prompt right after ``{first_index}. 指令:``.
    ``truncated``: the reply was cut off (finish_reason "length"), so its last block is dropped
    as ``truncated`` unless a ``###`` line closed it. Blocks missing a field or with an empty
    instruction/output are ``incomplete``; a reply with no label at all is ``unparseable``.
    """
    _check_language(language)
    result = ParsedReply()
    if not isinstance(text, str):  # untrusted: a client may hand over None for an empty reply
        text = ""
    if completion:
        text = next_block_opener(first_index, language) + text
    blocks = _split_blocks(_NEWLINE.split(text), language)
    if not blocks:
        result.dropped["unparseable"] += 1
        return result
    if truncated and not blocks[-1].closed_by_separator:
        blocks.pop()
        result.dropped["truncated"] += 1
    for block in blocks:
        task = _block_to_task(block)
        if task is None:
            result.dropped["incomplete"] += 1
        else:
            result.tasks.append(task)
    return result


# ---------------------------------------------------------------------------- dialogue parsing


def parse_dialogue_reply(text: str, *, truncated: bool) -> tuple[list[dict] | None, str | None]:
    """Parse ``Human:`` / ``Assistant:`` lines into alternating turns.

    Returns ``(turns, None)`` with turns as ``{"from": "human"|"assistant", "value": ...}``,
    starting with human and ending with assistant, or ``(None, "unparseable_dialogue")``.
    Text before the first Human label is ignored; consecutive turns of one speaker are merged.
    A cut-off reply loses its last assistant turn (it was cut mid-answer) and then any trailing
    human turn; a trailing human or empty turn is dropped the same way when the teacher simply
    stopped there.
    """
    if not isinstance(text, str):
        text = ""
    turns: list[dict] = []
    parts: list[list[str]] = []  # lines of each turn, parallel to ``turns``
    for line in _NEWLINE.split(text):
        match = _DIALOGUE_LABEL.match(line)
        if match is None:
            if parts:
                parts[-1].append(line)
            continue
        who = match.group("who").lower()
        if not turns and who != "human":
            continue  # preamble, or an assistant line before the dialogue starts
        if turns and turns[-1]["from"] == who:
            parts[-1].append(match.group("rest"))  # same speaker twice: one turn
            continue
        turns.append({"from": who, "value": ""})
        parts.append([match.group("rest")])
    for turn, lines in zip(turns, parts):
        turn["value"] = "\n".join(lines).strip()

    if truncated and turns and turns[-1]["from"] == "assistant":
        turns.pop()
    # Trailing empty turns and a trailing question without an answer are not a usable ending.
    while turns and (not turns[-1]["value"] or turns[-1]["from"] == "human"):
        turns.pop()
    if len(turns) < 2 or any(not turn["value"] for turn in turns):
        return None, "unparseable_dialogue"
    return turns, None
