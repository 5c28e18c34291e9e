"""Eval-set rows: the checks every question of an eval set must pass, without the evaluator.

An eval set is JSONL in the shape of BELLE's eval set, one question per line::

    {"question": "...", "class": "math", "std_answer": "……所以答案是 42。"}

The gateway checks an uploaded eval set with these before it queues an eval job, and it may not
import the evaluator (a service never imports another), so the row rules live here: a JSON object,
a non-empty ``"question"`` string, a known ``"class"`` (matched leniently by
``belle_shared.specs.canonical_eval_class``: ``"Open QA"``, ``"open_qa"`` and ``"OPEN-QA"`` are all
``"open qa"``), and ``"std_answer"`` a string, missing or null (no reference), and an optional ``"metric"``, one of
``REFERENCE_METRICS``, that scores the row instead of its class's metric (the offline teacher's
family questions use ``"exact_match_cased"``: exact, case kept). Other extra keys are ignored. Checking stops at the first problem, which names its
line (1-based). Blank lines are skipped and a UTF-8 BOM on the first line is tolerated.

Standard library only (plus the class list in belle_shared.specs).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from belle_shared.jsonl import JsonlLineError, iter_json_lines
from belle_shared.specs import EVAL_CLASSES, canonical_eval_class


# The evaluator's reference metrics (belle_evaluator.metrics.METRICS has one function per name).
REFERENCE_METRICS: tuple[str, ...] = ("exact_match", "exact_match_cased", "math_match", "bleu", "rouge_l", "token_f1")


@dataclass(frozen=True)
class EvalRow:
    """One eval-set question; ``line`` is its 1-based line, ``cls`` a canonical class name, ``metric``
    the row's own reference metric (None: its class's)."""

    line: int
    question: str
    cls: str
    std_answer: str
    metric: str | None = None


class EvalSetError(ValueError):
    """An eval set that cannot be used: ``line`` (1-based, None for the whole file) and what is wrong."""

    def __init__(self, message: str, *, line: int | None = None, source: str = "eval set"):
        self.message = message
        self.line = line
        self.source = source
        super().__init__(str(self))

    def __str__(self) -> str:
        # A whole-file message names the source itself ("eval set has no questions").
        if self.line is None:
            return self.message
        return f"{self.source}: line {self.line}: {self.message}"


def _quoted(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def check_eval_row(obj: Any) -> tuple[str, str, str]:
    """(question, canonical class, std_answer) of one parsed JSON line; ValueError says what is wrong."""
    if not isinstance(obj, dict):
        found = "an array" if isinstance(obj, list) else "a string" if isinstance(obj, str) else _quoted(obj)
        raise ValueError(f"not a JSON object (found {found})")
    question = obj.get("question")
    if question is not None and not isinstance(question, str):
        raise ValueError('"question" must be a string')
    if not question or not question.strip():
        raise ValueError('"question" is missing or empty')
    name = obj.get("class")
    if name is not None and not isinstance(name, str):
        raise ValueError('"class" must be a string')
    if not name or not name.strip():
        raise ValueError('"class" is missing or empty')
    cls = canonical_eval_class(name)
    if cls is None:
        raise ValueError(f"unknown class {_quoted(name)} (known: {', '.join(EVAL_CLASSES)})")
    std_answer = obj.get("std_answer")
    if std_answer is None:
        std_answer = ""  # JSON writers often emit null for "no reference"
    if not isinstance(std_answer, str):
        raise ValueError('"std_answer" must be a string')
    # Whitespace around a question or a reference means nothing; a judge sees them stripped.
    return question.strip(), cls, std_answer.strip()


def row_metric(obj: dict) -> str | None:
    """The row's optional ``"metric"``; ValueError if it is not one of ``REFERENCE_METRICS``."""
    metric = obj.get("metric")
    if metric is None:
        return None
    if not isinstance(metric, str) or metric not in REFERENCE_METRICS:
        raise ValueError(f'unknown "metric" {_quoted(metric)} (known: {", ".join(REFERENCE_METRICS)})')
    return metric


def iter_eval_rows(lines: Iterable[bytes | str], *, source: str = "eval set") -> Iterator[EvalRow]:
    """The rows of JSONL eval-set lines (an open file, text or binary, or a list of lines), one at a
    time; the first bad line raises EvalSetError. Zero rows is not checked here (see parse_eval_rows)."""
    try:
        for number, obj in iter_json_lines(lines):
            try:
                question, cls, std_answer = check_eval_row(obj)
                metric = row_metric(obj)
            except ValueError as exc:
                raise EvalSetError(str(exc), line=number, source=source) from None
            yield EvalRow(line=number, question=question, cls=cls, std_answer=std_answer, metric=metric)
    except JsonlLineError as exc:
        raise EvalSetError(exc.message, line=exc.line, source=source) from None


def parse_eval_rows(lines: Iterable[bytes | str], *, source: str = "eval set") -> list[EvalRow]:
    """Every row of an eval set; EvalSetError for the first bad line, or (line None) for no rows at all."""
    rows = list(iter_eval_rows(lines, source=source))
    if not rows:
        raise EvalSetError(f"{source} has no questions (every line is blank)", source=source)
    return rows
