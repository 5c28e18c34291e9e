"""The eval set (questions with a task class and a reference answer) and the per-class judge prompts.

An eval set is JSONL in the shape of BELLE's eval set, one question per line::

    {"question": "...", "class": "math", "std_answer": "……所以答案是 42。"}

``std_answer`` is optional (missing or null means no reference: brainstorming and generation have
none) and extra keys are ignored. Class names are matched leniently (``"Open QA"``, ``"open_qa"`` and
``"OPEN-QA"`` are all ``"open qa"``; ``"other"`` is ``"others"``): BELLE's own scoring notebook loses
rows over "open qa" vs "open QA". A user writes or edits these files by hand, so parsing stops at
the first problem and says on which line it is and what is wrong.

Judge prompts are a JSON object ``{class: template}``, one template per class. Rendering replaces
``{question}``, ``{std_answer}`` and ``{answer}`` in one pass, never with ``str.format``: braces in a
question or a code answer are kept as they are, and a placeholder written inside a question or an
answer is not filled in. An empty reference is shown as ``（无）`` and each template says how to
judge without one.

One thing rendering does change: a line of the question, reference or answer that starts with one of
the section or score labels a judge prompt is split on (``问题:``, ``标准回答:``, ``模型回答:``,
``得分:``, ``评分:``, ``分数:``, ``理由:`` and the English ``Question:``, ``Reference answer:``,
``Model answer:``, ``Score:``, ``Rating:``, ``Reason:``, either colon) gets a zero-width space
(U+200B) in front of the label. The text reads the same to a person or an LLM judge, but a parser that
looks for labels at the start of a line (the project's offline judge, ``belle_teacher.replies``) no
longer mistakes it for a section: an eval set whose question quotes a passage with a ``问题：`` line
keeps its whole question, and a model answer that writes ``标准回答: X`` and ``模型回答: X`` lines
cannot stand in for the real reference. Note that the offline judge still ends a multi-line answer
at its first later line that mentions 得分, 评分, 打分, "score" or "rating" (it reads that as the
template's closing request), so an answer that writes its own ``得分: 1`` line is judged on the text
before that line.

The bundled files (``belle_evaluator/data``) are ``eval_set_zh.jsonl`` and ``judge_prompts.json``.
The bundled set has questions of BELLE's eleven classes; ``others`` (BELLE's catch-all, left out of
its "score without others") is there for a team's own sets and has a generic judge prompt.
Standard library and ``belle_shared`` (the class list and the row rules, ``belle_shared.eval_sets``) only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from importlib import resources
from typing import Any

from belle_shared.eval_sets import EvalRow, EvalSetError, parse_eval_rows
from belle_shared.specs import EVAL_CLASSES, canonical_eval_class

__all__ = ["CLASSES", "EvalQuestion", "EvalSetError", "bundled_eval_set", "canonical_class", "load_judge_prompts",
           "parse_eval_set", "render_judge_prompt"]

# BELLE's eleven task classes, spelled as in its eval set, then "others". The list lives with the job
# spec (belle_shared.specs), which checks a spec's class filter without importing the evaluator.
CLASSES: tuple[str, ...] = EVAL_CLASSES

PLACEHOLDERS: tuple[str, ...] = ("{question}", "{std_answer}", "{answer}")

# What the judge sees where the eval set has no reference answer.
NO_REFERENCE = "（无）"

EVAL_SET_FILE = "eval_set_zh.jsonl"
JUDGE_PROMPTS_FILE = "judge_prompts.json"

_PLACEHOLDER = re.compile(r"\{(question|std_answer|answer)\}")
# A line that a label-based parser of judge prompts would read as a section or score label (the
# labels of belle_teacher.replies.parse_judge, which the evaluator does not import: it is a tool).
_LABEL_LINE = re.compile(
    r"^([ \t]*)(?=(?:问题|标准回答|模型回答|得分|评分|分数|理由|question|reference answer|model answer"
    r"|score|rating|reason)[ \t]*[:：])",
    re.MULTILINE | re.IGNORECASE,
)
_ZERO_WIDTH_SPACE = "\u200b"


def canonical_class(name: str) -> str | None:
    """The canonical class name for ``name`` (any case, ``_``/``-`` for spaces, ``other`` for
    ``others``), or None if unknown."""
    return canonical_eval_class(name)


def _quoted(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


# The row rules live in shared (the gateway checks uploads with them before queueing an eval job);
# an eval question is one checked row.
EvalQuestion = EvalRow


def parse_eval_set(lines: Iterable[bytes | str], *, source: str = "eval set") -> list[EvalQuestion]:
    """Parse JSONL eval-set lines (an open file, text or binary, or a list of lines).

    Blank lines are skipped, a UTF-8 BOM is tolerated, and the first problem raises EvalSetError.
    """
    return parse_eval_rows(lines, source=source)


def bundled_eval_set() -> list[EvalQuestion]:
    """The eval set shipped with the evaluator (``belle_evaluator/data/eval_set_zh.jsonl``)."""
    with (resources.files("belle_evaluator") / "data" / EVAL_SET_FILE).open("rb") as handle:
        return parse_eval_set(handle, source=EVAL_SET_FILE)


# --------------------------------------------------------------------------------- judge prompts


def load_judge_prompts(data: dict[str, Any] | None = None) -> dict[str, str]:
    """``{canonical class: template}`` for every class of ``CLASSES``, from ``data`` or the bundled file.

    Raises ValueError naming the class when one is missing, unknown, given twice, or its template is
    not a string holding all of ``{question}``, ``{std_answer}`` and ``{answer}``.
    """
    if data is None:
        text = (resources.files("belle_evaluator") / "data" / JUDGE_PROMPTS_FILE).read_text(encoding="utf-8")
        data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("judge prompts must be a JSON object {class: template}")
    prompts: dict[str, str] = {}
    for name, template in data.items():
        cls = canonical_class(name)
        if cls is None:
            raise ValueError(f"judge prompts: unknown class {_quoted(name)} (known: {', '.join(CLASSES)})")
        if cls in prompts:
            raise ValueError(f"judge prompts: class {_quoted(cls)} is given twice (as {_quoted(name)} too)")
        if not isinstance(template, str):
            raise ValueError(f"judge prompts: the template for {_quoted(cls)} must be a string")
        missing = [p for p in PLACEHOLDERS if p not in template]
        if missing:
            raise ValueError(f"judge prompts: the template for {_quoted(cls)} lacks {', '.join(missing)}")
        prompts[cls] = template
    absent = [cls for cls in CLASSES if cls not in prompts]
    if absent:
        raise ValueError(f"judge prompts: no template for class {', '.join(_quoted(c) for c in absent)}")
    return {cls: prompts[cls] for cls in CLASSES}


def _neutralise_labels(text: str) -> str:
    """Put a zero-width space before a label at the start of a line (see the module docstring)."""
    return _LABEL_LINE.sub(lambda m: m.group(1) + _ZERO_WIDTH_SPACE, text)


def render_judge_prompt(template: str, q: EvalQuestion, answer: str) -> str:
    """The judge prompt for the model's ``answer`` to ``q``: the placeholders filled in one pass."""
    values = {
        "question": _neutralise_labels(q.question),
        "std_answer": _neutralise_labels(q.std_answer) if q.std_answer.strip() else NO_REFERENCE,
        "answer": _neutralise_labels(answer.strip()),
    }
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)
