"""Seed tasks and prompt templates for self-instruct generation, bundled or uploaded.

A seed file is JSONL, one task per line, in the shape of BELLE's ``zh_seed_tasks.json``::

    {"id": "seed_task_0", "name": "why_leaves_turn_yellow", "category": "open_qa",
     "instruction": "...", "instances": [{"input": "", "output": "..."}], "is_classification": false}

``id``, ``name``, ``category`` and ``is_classification`` are optional and extra keys are ignored, so
a hand-written file needs only ``instruction`` and ``instances``. Flat BELLE/Alpaca rows
(``{"instruction", "input", "output"}``) are accepted too, as a task with one instance.

The file is small and a user wrote it by hand, so parsing stops at the first problem and says where
it is (line, field) and what was found; the job fails before any teacher call is paid for.

Prompt templates are plain text files; rendering replaces the placeholders in
``REQUIRED_PLACEHOLDERS`` with ``str.replace`` (never ``str.format``), so ``check_template`` only has
to make sure each placeholder is present. The bundled files live in ``belle_datagen/data``.

Standard library and the job contract (belle_shared.specs) only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from belle_shared.jsonl import JsonlLineError, iter_json_lines
from belle_shared.specs import PROMPT_PLACEHOLDERS

LANGUAGES: tuple[str, ...] = ("zh", "en")

# BELLE's task classes; the bundled seed files cover each of them.
CATEGORIES: tuple[str, ...] = (
    "open_qa", "closed_qa", "brainstorming", "classification", "extraction", "generation",
    "rewriting", "summarization", "translation", "math", "code",
)

# A seed file is sampled a few tasks at a time; far more than this is a mistake (a dataset uploaded
# as seeds), and parsing it all would only delay the error the user gets anyway.
MAX_SEED_TASKS = 100_000

# Part of the job contract (the gateway checks uploaded templates against it too).
REQUIRED_PLACEHOLDERS = PROMPT_PLACEHOLDERS


@dataclass(frozen=True)
class SeedTask:
    """One seed task; ``input``/``output`` are its first instance (the one shown to the teacher)."""

    id: str
    name: str
    instruction: str
    input: str
    output: str
    is_classification: bool
    category: str | None


class SeedFileError(ValueError):
    """A seed file that cannot be used: where (``line``, ``field``) and what is wrong (``message``)."""

    def __init__(self, message: str, *, line: int | None = None, field: str | None = None,
                 source: str = "seed file"):
        self.message = message
        self.line = line
        self.field = field
        self.source = source
        super().__init__(str(self))

    def __str__(self) -> str:
        where = [self.source]
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.field:
            where.append(self.field)
        return ": ".join([*where, self.message])


class PromptTemplateError(ValueError):
    """A prompt template without a placeholder its renderer needs; ``missing`` names them."""

    def __init__(self, message: str, missing: tuple[str, ...] = ()):
        super().__init__(message)
        self.missing = missing


# ------------------------------------------------------------------------------------ seed files


def _found(value: Any) -> str:
    """Describe a JSON value for an error message: users wrote JSON, so say it in JSON's words."""
    if value is None:
        return "null"
    if isinstance(value, bool):  # before int: bool is an int subclass
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    if isinstance(value, str):
        return "an empty string" if value == "" else "a blank string" if not value.strip() else "a string"
    if isinstance(value, list):
        return "an empty array" if not value else "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


_MISSING = object()


def _text(obj: dict, key: str, field: str, *, blank_ok: bool) -> str:
    """Read a required string field; whitespace around it carries no meaning in a prompt."""
    value = obj.get(key, _MISSING)
    if isinstance(value, str) and (blank_ok or value.strip()):
        return value.strip()
    expected = "a string" if blank_ok else "a non-empty string"
    found = "nothing (the key is missing)" if value is _MISSING else _found(value)
    raise _FieldError(field, f"expected {expected}, found {found}")


def _optional(obj: dict, key: str, kind: type, default: Any) -> Any:
    """Read an optional field; null counts as absent because JSON writers often emit it."""
    value = obj.get(key)
    if value is None:
        return default
    if kind is str and isinstance(value, str):
        return value.strip() or default
    if kind is bool and isinstance(value, bool):
        return value
    raise _FieldError(key, f"expected {'a string' if kind is str else 'true or false'}, found {_found(value)}")


class _FieldError(Exception):
    """Internal: a field problem, turned into SeedFileError once the line number is known."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def _task(obj: Any, line: int) -> SeedTask:
    if not isinstance(obj, dict):
        raise _FieldError("", f"expected a JSON object, found {_found(obj)}")
    instruction = _text(obj, "instruction", "instruction", blank_ok=False)
    if "instances" in obj:
        instances = obj["instances"]
        if not isinstance(instances, list) or not instances:
            raise _FieldError("instances", f"expected a non-empty array of {{input, output}} objects, "
                                           f"found {_found(instances)}")
        for i, instance in enumerate(instances):
            if not isinstance(instance, dict):
                raise _FieldError(f"instances[{i}]", f"expected an object with input and output, "
                                                     f"found {_found(instance)}")
            # Every instance is checked, not only the first: a later one may be shown some day.
            _text(instance, "input", f"instances[{i}].input", blank_ok=True)
            _text(instance, "output", f"instances[{i}].output", blank_ok=False)
        first = instances[0]
    elif "output" in obj or "input" in obj:
        first = obj  # a flat BELLE/Alpaca row: the row is its own single instance
    else:
        raise _FieldError("instances", "expected a non-empty array of {input, output} objects (or flat "
                                       "input and output fields), found nothing (the key is missing)")
    prefix = "instances[0]." if first is not obj else ""
    return SeedTask(
        id=_optional(obj, "id", str, f"seed_task_{line}"),
        name=_optional(obj, "name", str, ""),
        instruction=instruction,
        input=_text(first, "input", f"{prefix}input", blank_ok=True),
        output=_text(first, "output", f"{prefix}output", blank_ok=False),
        is_classification=_optional(obj, "is_classification", bool, False),
        category=_optional(obj, "category", str, None),
    )


def parse_seed_tasks(lines: Iterable[bytes | str], *, source: str = "seed file") -> list[SeedTask]:
    """Parse JSONL seed tasks (an open binary file, or text lines); raise SeedFileError on the first problem."""
    tasks: list[SeedTask] = []
    try:
        for number, obj in iter_json_lines(lines):
            if len(tasks) == MAX_SEED_TASKS:
                raise SeedFileError(f"more than {MAX_SEED_TASKS:,} tasks; a seed file holds a few hundred "
                                    f"hand-written examples, not a dataset", line=number, source=source)
            try:
                tasks.append(_task(obj, number))
            except _FieldError as exc:
                raise SeedFileError(exc.message, line=number, field=exc.field or None, source=source) from None
    except JsonlLineError as exc:
        raise SeedFileError(exc.message, line=exc.line, source=source) from None
    if not tasks:
        raise SeedFileError("no tasks (the file is empty or has only blank lines)", source=source)
    return tasks


# ------------------------------------------------------------------------------- bundled data


def _language(language: str) -> str:
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}; expected one of {', '.join(LANGUAGES)}")
    return language


@lru_cache(maxsize=None)
def bundled_text(name: str) -> str:
    """Read a file shipped in ``belle_datagen/data`` (a bare file name, e.g. ``self_instruct_zh.txt``)."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"expected a bare file name in belle_datagen/data, got {name!r}")
    return resources.files("belle_datagen").joinpath("data", name).read_text(encoding="utf-8")


@lru_cache(maxsize=None)
def _bundled_seed_tasks(language: str) -> tuple[SeedTask, ...]:
    name = f"seed_tasks_{language}.jsonl"
    return tuple(parse_seed_tasks(bundled_text(name).splitlines(), source=f"bundled {name}"))


def bundled_seed_tasks(language: str) -> list[SeedTask]:
    """The seed tasks shipped with the service for ``language`` ("zh" or "en")."""
    return list(_bundled_seed_tasks(_language(language)))


# ------------------------------------------------------------------------------ prompt templates


def check_template(text: str, kind: str) -> str:
    """Return ``text`` if it holds every placeholder a ``kind`` template needs, else raise naming the missing ones."""
    if kind not in REQUIRED_PLACEHOLDERS:
        raise ValueError(f"unknown template kind {kind!r}; expected one of {', '.join(REQUIRED_PLACEHOLDERS)}")
    missing = tuple(p for p in REQUIRED_PLACEHOLDERS[kind] if p not in text)
    if missing:
        raise PromptTemplateError(
            f"{kind} prompt template lacks the placeholder{'s' if len(missing) > 1 else ''} "
            f"{' and '.join(missing)} (it needs {' and '.join(REQUIRED_PLACEHOLDERS[kind])})",
            missing,
        )
    return text


def bundled_template(kind: str, language: str) -> str:
    """The shipped ``kind`` ("self_instruct" or "dialogue") prompt template for ``language``."""
    if kind not in REQUIRED_PLACEHOLDERS:
        raise ValueError(f"unknown template kind {kind!r}; expected one of {', '.join(REQUIRED_PLACEHOLDERS)}")
    return check_template(bundled_text(f"{kind}_{_language(language)}.txt"), kind)


def bundled_topics(language: str) -> list[str]:
    """The shipped default topics for multi-turn dialogue generation, one per line of the data file."""
    text = bundled_text(f"dialogue_topics_{_language(language)}.txt")
    return [line.strip() for line in text.splitlines() if line.strip()]
