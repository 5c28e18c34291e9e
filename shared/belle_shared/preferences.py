"""Convert one preference pair (a prompt, a preferred and a rejected reply) into the canonical pair that
preference tuning (DPO) reads::

    {"conversations": [{"from": "human", "value": ...}, ..., {"from": "human", "value": ...}],
     "system": ...,            # only when the source had a non-empty system prompt
     "chosen": "...", "rejected": "..."}

The prompt is a canonical conversation (belle_shared.formats) that ends with a human turn; the two
replies are the assistant's next turn. Accepted sources (``PREFERENCE_FORMATS``):

- ``openai_preference``: OpenAI's DPO file, ``{"input": {"messages": [...]}, "preferred_output":
  [{"role": "assistant", "content": ...}], "non_preferred_output": [...]}``;
- ``prompt_chosen_rejected``: ``{"prompt", "chosen", "rejected"}`` (trl, BELLE's reward-model data), the
  prompt a string or OpenAI messages, each reply a string or one assistant message in a list;
- ``alpaca_preference``: LLaMA-Factory's ``{"instruction", "input", "chosen", "rejected"}`` (with
  ``system`` and ``history`` as in alpaca);
- ``sharegpt_preference``: LLaMA-Factory's ``{"conversations": [...], "chosen": {"from": "gpt",
  "value"}, "rejected": {...}}``;
- ``implicit_prompt``: trl's ``{"chosen": [messages], "rejected": [messages]}``, two whole conversations
  whose shared beginning is the prompt and whose last turns are the replies.

Errors are ``RowError`` (belle_shared.formats) with a field path into the source row. Standard library
only: the gateway checks a file with it before a job is queued, the importer and the trainer convert.
"""

from __future__ import annotations

from typing import Any

from belle_shared.formats import (
    _OPENAI_ROLES, _SHAREGPT_ROLES, RowError, _conversation_value, _instruction_row, _json_type, _keys,
    _message_content, _nonempty, _object, _show, _string, _turn_list,
)

PREFERENCE_FORMATS: tuple[str, ...] = (
    "openai_preference", "prompt_chosen_rejected", "alpaca_preference", "sharegpt_preference", "implicit_prompt",
)
# Keys whose presence makes a row a preference pair rather than a supervised sample.
PREFERENCE_KEYS = ("preferred_output", "non_preferred_output", "chosen", "rejected")

_SENTINEL = "(reply)"


def is_preference_row(row: Any) -> bool:
    return isinstance(row, dict) and any(key in row for key in PREFERENCE_KEYS)


def _prompt_from_turns(row: dict, *, key: str, role_key: str, text_key: str, roles: dict[str, str],
                       read_text, prefix: str = "") -> dict:
    """A list of role-tagged items that must end with the user's turn, as a canonical prompt."""
    items = row.get(key)
    if not isinstance(items, list) or not items:
        found = "an empty array" if items == [] else _json_type(items)
        raise RowError(f"expected an array of turns ending with the user's, found {found}", prefix + key)
    last = items[-1]
    name = last.get(role_key) if isinstance(last, dict) else None
    if not isinstance(name, str) or roles.get(name.strip().lower()) != "human":
        raise RowError(f"the prompt must end with the user's turn, found {_show(name)}",
                       f"{prefix}{key}[{len(items) - 1}].{role_key}")
    reply_role = "assistant" if role_key == "role" else "gpt"
    try:
        conversation = _turn_list({key: [*items, {role_key: reply_role, text_key: _SENTINEL}]}, key=key,
                                  role_key=role_key, text_key=text_key, roles=roles, read_text=read_text)
    except RowError as exc:
        raise RowError(exc.message, prefix + exc.field if exc.field else exc.field) from None
    conversation["conversations"].pop()
    return conversation


def _reply(row: dict, key: str, *, role_key: str = "role", text_key: str = "content") -> str:
    """One reply: a string, one assistant message, or a list holding exactly one assistant message."""
    if key not in row:
        raise RowError(f"missing required key {_show(key)}", key)
    value = row[key]
    field = key
    if isinstance(value, list):
        if len(value) != 1:
            raise RowError(f"expected one assistant message, found {len(value)}", key)
        value, field = value[0], f"{key}[0]"
    if isinstance(value, dict):
        role = value.get(role_key)
        if not isinstance(role, str) or role.strip().lower() not in ("assistant", "gpt", "model", "chatgpt"):
            raise RowError(f"expected the assistant's message, found role {_show(role)}", f"{field}.{role_key}")
        text = _message_content(value, field) if text_key == "content" else _string(value, text_key, f"{field}.{text_key}")
        return _nonempty(text, f"{field}.{text_key}")
    if not isinstance(value, str):
        raise RowError(f"expected a string or the assistant's message, found {_json_type(value)}", field)
    return _nonempty(value, field)


def _openai(row: dict) -> dict:
    source = _object(row.get("input"), "input", 'an object with "messages"')
    prompt = _prompt_from_turns(source, key="messages", role_key="role", text_key="content", roles=_OPENAI_ROLES,
                                read_text=_message_content, prefix="input.")
    return {**prompt, "chosen": _reply(row, "preferred_output"), "rejected": _reply(row, "non_preferred_output")}


def _prompt_chosen_rejected(row: dict) -> dict:
    prompt = row["prompt"]
    if isinstance(prompt, str):
        conversation = {"conversations": [{"from": "human", "value": _nonempty(prompt, "prompt")}]}
    else:
        conversation = _prompt_from_turns(row, key="prompt", role_key="role", text_key="content",
                                          roles=_OPENAI_ROLES, read_text=_message_content)
    return {**conversation, "chosen": _reply(row, "chosen"), "rejected": _reply(row, "rejected")}


def _alpaca(row: dict) -> dict:
    chosen, rejected = _reply(row, "chosen"), _reply(row, "rejected")
    conversation = _instruction_row({**row, "output": chosen}, allow_history=True)
    conversation["conversations"].pop()
    system = row.get("system")
    if isinstance(system, str) and system.strip():
        conversation["system"] = system
    return {**conversation, "chosen": chosen, "rejected": rejected}


def _sharegpt(row: dict) -> dict:
    prompt = _prompt_from_turns(row, key="conversations", role_key="from", text_key="value", roles=_SHAREGPT_ROLES,
                                read_text=_conversation_value)
    return {**prompt, "chosen": _reply(row, "chosen", role_key="from", text_key="value"),
            "rejected": _reply(row, "rejected", role_key="from", text_key="value")}


def _implicit(row: dict) -> dict:
    chosen, rejected = row.get("chosen"), row.get("rejected")
    for key, value in (("chosen", chosen), ("rejected", rejected)):
        if not isinstance(value, list) or len(value) < 2:
            raise RowError("expected a whole conversation (an array of messages ending with the assistant's), "
                           f"found {_json_type(value) if not isinstance(value, list) else f'{len(value)} message(s)'}",
                           key)
    shared = len(chosen) - 1
    if len(rejected) - 1 != shared or chosen[:shared] != rejected[:shared]:
        raise RowError("the two conversations must be the same up to their last message (the prompt), "
                       "and differ only in the assistant's last reply", "rejected")
    prompt = _prompt_from_turns({"chosen": chosen[:shared]}, key="chosen", role_key="role", text_key="content",
                                roles=_OPENAI_ROLES, read_text=_message_content)
    return {**prompt, "chosen": _reply({"chosen": chosen[-1:]}, "chosen"),
            "rejected": _reply({"rejected": rejected[-1:]}, "rejected")}


def detect_preference_format(row: dict) -> str:
    row = _object(row, None, "a JSON object per row")
    if "preferred_output" in row or "non_preferred_output" in row:
        return "openai_preference"
    if "chosen" not in row and "rejected" not in row:
        raise RowError("not a preference pair: expected OpenAI's input + preferred_output + non_preferred_output, "
                       'or "chosen" and "rejected" with "prompt", "instruction" or "conversations"; found keys '
                       + _keys(row))
    if "conversations" in row:
        return "sharegpt_preference"
    if "instruction" in row:
        return "alpaca_preference"
    if "prompt" in row:
        return "prompt_chosen_rejected"
    if isinstance(row.get("chosen"), list) and len(row["chosen"]) > 1:
        return "implicit_prompt"
    raise RowError('a preference pair needs its prompt: "prompt", "instruction" or "conversations" beside '
                   f'"chosen" and "rejected" (or two whole conversations); found keys {_keys(row)}')


_CONVERTERS = {"openai_preference": _openai, "prompt_chosen_rejected": _prompt_chosen_rejected,
               "alpaca_preference": _alpaca, "sharegpt_preference": _sharegpt, "implicit_prompt": _implicit}
assert tuple(_CONVERTERS) == PREFERENCE_FORMATS


def to_preference(row: Any) -> tuple[dict, str]:
    """Convert ``row`` to the canonical pair; returns (pair, format). A pair whose replies are the same
    text teaches nothing and is refused."""
    fmt = detect_preference_format(row)
    pair = _CONVERTERS[fmt](row)
    if pair["chosen"].strip() == pair["rejected"].strip():
        raise RowError("the preferred and the rejected reply are the same text",
                       "non_preferred_output" if fmt == "openai_preference" else "rejected")
    return pair, fmt


def prompt_messages(pair: dict) -> list[dict[str, str]]:
    """A canonical pair's prompt as chat messages (``role``/``content``), ending with the user's turn."""
    messages = [{"role": "system", "content": pair["system"]}] if pair.get("system") else []
    return messages + [{"role": "user" if turn["from"] == "human" else "assistant", "content": turn["value"]}
                       for turn in pair["conversations"]]
