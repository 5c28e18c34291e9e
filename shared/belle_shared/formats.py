"""Convert one instruction-data row into BELLE's canonical conversation format.

The canonical row that every later stage (dedup, training, evaluation) reads is::

    {"conversations": [{"from": "human", "value": ...}, {"from": "assistant", "value": ...}, ...],
     "system": ...}   # "system" only when the source had a non-empty system prompt

Turns alternate human/assistant, start with human and end with assistant, and no value is blank.
Text is kept exactly as written; whitespace is stripped only to decide whether a value is empty.

Supported source formats (the names are the public strings of the import job spec): see
``FORMATS``. ``to_conversation(row)`` detects the format from the row's keys; passing ``fmt``
skips detection and checks that the row fits the named format instead.

Errors are ``RowError`` with an English message saying what was expected and what was found, plus
a JSON-path-like ``field`` (``"conversations[3].value"``), so the import report can point users at
the exact spot in a row of a million-line file. Standard library only. It lives in shared because the
importer, the trainer (which reads fine-tuning files directly) and the gateway all read these rows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, get_args

from belle_shared.specs import ImportFormat

# The names are part of the job contract (ImportSpec.format); "auto" is detection, not a format.
FORMATS: tuple[str, ...] = tuple(name for name in get_args(ImportFormat) if name != "auto")


class RowError(ValueError):
    """A row that cannot become a training sample; ``field`` locates the problem in the row."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


# ---------------------------------------------------------------------------------- small helpers


def _json_type(value: Any) -> str:
    """Name a value's JSON type: users wrote JSON, so "number" reads better than "int"."""
    if value is None:
        return "null"
    if isinstance(value, bool):  # before int: bool is an int subclass
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _show(value: Any, limit: int = 40) -> str:
    """Quote a found value for a message, short enough that a huge bad value cannot flood a report."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _keys(row: dict, limit: int = 20) -> str:
    names = [_show(str(key)) for key in list(row)[:limit]]
    more = f", ... ({len(row) - limit} more)" if len(row) > limit else ""
    return "[" + ", ".join(names) + more + "]"


def _string(obj: dict, key: str, field: str, *, required: bool = True) -> str:
    """Read ``obj[key]`` as a string; a missing or null optional value reads as ""."""
    if key not in obj:
        if required:
            raise RowError(f"missing required key {_show(key)}", field)
        return ""
    value = obj[key]
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise RowError(f"expected a string, found {_json_type(value)}", field)
    return value


def _nonempty(text: str, field: str) -> str:
    if not text.strip():
        found = "an empty string" if text == "" else "only whitespace"
        raise RowError(f"expected non-empty text, found {found}", field)
    return text


def _object(value: Any, field: str | None, what: str) -> dict:
    if not isinstance(value, dict):
        raise RowError(f"expected {what}, found {_json_type(value)}", field)
    return value


# A turn before assembly: (role, text, field of the item that gave the role, for error messages).
_Turn = tuple[str, str, str]


def _assemble(turns: list[_Turn], system: str | None, container: str) -> dict:
    """Check the turn order every format must end up with and build the canonical row."""
    if not turns:
        raise RowError("expected a human turn followed by an assistant reply, found no turns", container)
    expected = "human"
    for index, (role, _text, field) in enumerate(turns):
        if role != expected:
            if index == 0:
                raise RowError(f"a conversation must start with a human turn, found {role}", field)
            raise RowError(
                f"turns must alternate: expected {expected} after {turns[index - 1][0]}, found {role}", field
            )
        expected = "assistant" if role == "human" else "human"
    if turns[-1][0] == "human":
        raise RowError(
            "last turn is from human; a training sample must end with an assistant reply", turns[-1][2]
        )
    out: dict = {"conversations": [{"from": role, "value": text} for role, text, _ in turns]}
    # An empty system prompt carries no information; leaving the key out keeps rows uniform.
    if system is not None and system.strip():
        out["system"] = system
    return out


# ---------------------------------------------------------------------------- instruction formats


def _instruction_row(row: dict, *, allow_history: bool) -> dict:
    """belle_instruction and alpaca: identical except that alpaca may carry earlier turns."""
    history = row.get("history")
    if history is None:  # null history is as common as a missing one in real exports
        history = []
    if not isinstance(history, list):
        raise RowError(f"expected an array of [query, response] pairs, found {_json_type(history)}", "history")
    if history and not allow_history:
        raise RowError(
            f'format "belle_instruction" has no history, found {len(history)} earlier turn(s); '
            'use format "alpaca"',
            "history",
        )
    turns: list[_Turn] = []
    for i, pair in enumerate(history):
        if not isinstance(pair, list) or len(pair) != 2:
            found = f"an array of {len(pair)} items" if isinstance(pair, list) else _json_type(pair)
            raise RowError(f"expected a [query, response] pair of strings, found {found}", f"history[{i}]")
        for j, role in enumerate(("human", "assistant")):
            field = f"history[{i}][{j}]"
            if not isinstance(pair[j], str):
                raise RowError(f"expected a [query, response] pair of strings, found {_json_type(pair[j])}", field)
            turns.append((role, _nonempty(pair[j], field), field))

    instruction = _nonempty(_string(row, "instruction", "instruction"), "instruction")
    extra = _string(row, "input", "input", required=False)
    human = instruction + "\n" + extra if extra.strip() else instruction
    output = _nonempty(_string(row, "output", "output"), "output")
    turns += [("human", human, "instruction"), ("assistant", output, "output")]
    return _assemble(turns, None, "instruction")


# BELLE's Hugging Face exports wrap the prompt as "Human: ...\n\nAssistant: "; the markers belong
# to BELLE's old prompt template, not to the question, and the trainer adds its own template.
_HF_PREFIX = re.compile(r"\A\s*Human\s*[:：]\s*")
_HF_SUFFIX = re.compile(r"\s*Assistant\s*[:：]\s*\Z")


def _belle_hf_row(row: dict) -> dict:
    raw = _nonempty(_string(row, "input", "input"), "input")
    human = _HF_SUFFIX.sub("", _HF_PREFIX.sub("", raw, count=1), count=1)
    if not human.strip():
        raise RowError('expected a question between the "Human:" and "Assistant:" markers, found none', "input")
    target = _nonempty(_string(row, "target", "target"), "target")
    return _assemble([("human", human, "input"), ("assistant", target, "target")], None, "input")


# ---------------------------------------------------------------------------- turn-list formats

# Source role name (lower-cased) -> canonical role. "system" is only accepted as the first item.
_BELLE_ROLES = {"human": "human", "assistant": "assistant"}
_SHAREGPT_ROLES = {
    "human": "human",
    "user": "human",
    "assistant": "assistant",
    "gpt": "assistant",
    "chatgpt": "assistant",
    "bing": "assistant",
    "bard": "assistant",
    "model": "assistant",
    "system": "system",
}
# "developer" is what OpenAI's newer APIs call the system message; exports already contain it.
_OPENAI_ROLES = {"user": "human", "assistant": "assistant", "system": "system", "developer": "system"}


def _turn_list(
    row: dict,
    *,
    key: str,
    role_key: str,
    text_key: str,
    roles: dict[str, str],
    read_text: Callable[[dict, str], str],
) -> dict:
    """Shared walk over a list of role-tagged items (conversations / messages)."""
    if key not in row:
        raise RowError(f"missing required key {_show(key)}", key)
    items = row[key]
    if not isinstance(items, list):
        raise RowError(f"expected an array of turns, found {_json_type(items)}", key)
    allowed = ", ".join(_show(name) for name in roles)
    system: str | None = None
    turns: list[_Turn] = []
    for i, item in enumerate(items):
        where = f"{key}[{i}]"
        item = _object(item, where, f'an object with "{role_key}" and "{text_key}"')
        role_field = f"{where}.{role_key}"
        name = _string(item, role_key, role_field)
        role = roles.get(name.strip().lower())  # real data mixes "Human", "GPT", "user "
        if role is None:
            raise RowError(f"expected one of {allowed} (case-insensitive), found {_show(name)}", role_field)
        text = read_text(item, where)
        if role == "system":
            if i != 0:
                raise RowError(f"a system turn is only allowed first, found one at position {i}", role_field)
            system = text
            continue
        turns.append((role, _nonempty(text, f"{where}.{text_key}"), role_field))
    return _assemble(turns, system, key)


def _conversation_value(item: dict, where: str) -> str:
    return _string(item, "value", f"{where}.value")


def _message_content(item: dict, where: str) -> str:
    """OpenAI content: a string, or a list of parts of which only text parts are supported."""
    field = f"{where}.content"
    if "content" not in item:
        raise RowError('missing required key "content"', field)
    content = item["content"]
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise RowError(f"expected a string or an array of content parts, found {_json_type(content)}", field)
    pieces = []
    for j, part in enumerate(content):
        part_field = f"{field}[{j}]"
        part = _object(part, part_field, 'a content part object with "type"')
        kind = part.get("type")
        if kind != "text":
            raise RowError(f'only "text" content parts are supported, found {_show(kind)}', f"{part_field}.type")
        pieces.append(_string(part, "text", f"{part_field}.text"))
    # Joined with a newline, as vLLM does when it flattens text parts for a chat template.
    return "\n".join(pieces)


def _belle_conversations_row(row: dict) -> dict:
    return _turn_list(
        row, key="conversations", role_key="from", text_key="value", roles=_BELLE_ROLES, read_text=_conversation_value
    )


def _sharegpt_row(row: dict) -> dict:
    return _turn_list(
        row,
        key="conversations",
        role_key="from",
        text_key="value",
        roles=_SHAREGPT_ROLES,
        read_text=_conversation_value,
    )


def _openai_row(row: dict) -> dict:
    return _turn_list(
        row, key="messages", role_key="role", text_key="content", roles=_OPENAI_ROLES, read_text=_message_content
    )


# ------------------------------------------------------------------------------------ registry

# format -> (key the row must have to be in that format, converter)
_CONVERTERS: dict[str, tuple[str, Callable[[dict], dict]]] = {
    "belle_instruction": ("instruction", lambda row: _instruction_row(row, allow_history=False)),
    "alpaca": ("instruction", lambda row: _instruction_row(row, allow_history=True)),
    "belle_hf": ("target", _belle_hf_row),
    "belle_conversations": ("conversations", _belle_conversations_row),
    "sharegpt": ("conversations", _sharegpt_row),
    "openai_messages": ("messages", _openai_row),
}
assert tuple(_CONVERTERS) == FORMATS

_EXPECTED = (
    '"instruction" + "output" (belle_instruction, alpaca), "input" + "target" (belle_hf), '
    '"conversations" (belle_conversations, sharegpt), "messages" (openai_messages)'
)


def _require_row(row: Any) -> dict:
    return _object(row, None, "a JSON object per row")


def detect_format(row: dict) -> str:
    """Name the format of ``row`` from its keys; only the deciding keys are looked at."""
    row = _require_row(row)
    markers = [key for key in ("instruction", "target", "conversations", "messages") if key in row]
    if not markers:
        raise RowError(f"row matches no known format: expected one of {_EXPECTED}; found keys {_keys(row)}")
    if len(markers) > 1:
        # Guessing would silently train on half of the row; the user can name the format instead.
        raise RowError(
            "row matches more than one format: found keys "
            + " and ".join(_show(key) for key in markers)
            + '; set "format" in the import spec to choose one'
        )
    marker = markers[0]
    if marker == "instruction":
        history = row.get("history")
        # Anything but a missing/null/empty history is alpaca, so a malformed one gets reported.
        return "belle_instruction" if history is None or history == [] else "alpaca"
    if marker == "target":
        return "belle_hf"
    if marker == "messages":
        return "openai_messages"
    items = row["conversations"]
    if isinstance(items, list):
        for item in items:
            name = item.get("from") if isinstance(item, dict) else None
            if isinstance(name, str) and name.strip().lower() not in _BELLE_ROLES:
                return "sharegpt"
    return "belle_conversations"


def to_conversation(row: dict, fmt: str = "auto") -> tuple[dict, str]:
    """Convert ``row`` to the canonical format; returns (canonical_row, format used)."""
    if fmt != "auto" and fmt not in _CONVERTERS:
        # A bad name is the caller's bug, not the row's, so it is not a RowError.
        raise ValueError(f"unknown format {fmt!r}: expected 'auto' or one of {', '.join(FORMATS)}")
    row = _require_row(row)
    if fmt == "auto":
        fmt = detect_format(row)
    else:
        marker, _ = _CONVERTERS[fmt]
        if marker not in row:
            raise RowError(
                f"row does not match format {_show(fmt)}: expected key {_show(marker)}, found keys {_keys(row)}",
                marker,
            )
    return _CONVERTERS[fmt][1](row), fmt


_ROLES = {"human": "user", "assistant": "assistant"}


def to_messages(conversation: dict) -> list[dict[str, str]]:
    """A canonical conversation row as chat messages (``role``/``content``), for a chat template."""
    messages = [{"role": "system", "content": conversation["system"]}] if conversation.get("system") else []
    messages += [{"role": _ROLES[turn["from"]], "content": turn["value"]} for turn in conversation["conversations"]]
    return messages
