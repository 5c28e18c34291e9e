"""The eval set (questions with a task class and a reference answer) and the per-class judge prompts.

An eval set is JSONL in the shape of BELLE's eval set, one question per line::

    {"question": "...", "class": "math", "std_answer": "……所以答案是 42。"}

``std_answer`` is optional (missing or null means no reference: brainstorming and generation have
none) and extra keys are ignored. Class names are matched leniently (``"Open QA"``, ``"open_qa"`` and
``"OPEN-QA"`` are all ``"open qa"``; ``"other"`` is ``"others"``): BELLE's own scoring notebook loses
rows over "open qa" vs "open QA". A user writes or edits these files by hand, so parsing stops at
the first problem and says on which line it is and what is wrong.

Judge prompts, their rendering and the reading of replies are in ``belle_shared.judging`` (the
gateway scores single questions with them too).

The bundled eval set is ``belle_evaluator/data/eval_set_zh.jsonl``; the judge prompts are
``belle_shared/data/judge_prompts.json``.
The bundled set has questions of BELLE's eleven classes; ``others`` (BELLE's catch-all, left out of
its "score without others") is there for a team's own sets and has a generic judge prompt.
Standard library and ``belle_shared`` (the class list and the row rules, ``belle_shared.eval_sets``) only.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources

from belle_shared.eval_sets import EvalRow, EvalSetError, parse_eval_rows
from belle_shared.specs import EVAL_CLASSES, canonical_eval_class

__all__ = ["CLASSES", "EvalQuestion", "EvalSetError", "bundled_eval_set", "canonical_class", "parse_eval_set"]

# BELLE's eleven task classes, spelled as in its eval set, then "others". The list lives with the job
# spec (belle_shared.specs), which checks a spec's class filter without importing the evaluator.
CLASSES: tuple[str, ...] = EVAL_CLASSES

EVAL_SET_FILE = "eval_set_zh.jsonl"


def canonical_class(name: str) -> str | None:
    """The canonical class name for ``name`` (any case, ``_``/``-`` for spaces, ``other`` for
    ``others``), or None if unknown."""
    return canonical_eval_class(name)


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
