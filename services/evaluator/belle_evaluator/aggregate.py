"""Per-question grades to per-class scores: the arithmetic of the eval job, with no I/O.

    cells = summarize(["math", "others", "math"], [1.0, 0.0, None], unparsable=[False, False, True])
    cells["math"]                    # Cell(score=1.0, count=1, unparsable=1, questions=2)
    cells["overall"]                 # Cell(score=0.5, count=2, unparsable=1, questions=3)
    cells["overall_without_others"]  # Cell(score=1.0, count=1, unparsable=1, questions=2)

A score is the mean of the questions that have a value; a question without one (an unparsable judge
reply, a class with no reference metric, a question with no reference) counts in ``questions`` only.
``overall`` is the mean over every scored question of the eval set, ``overall_without_others`` the
same without class ``others`` (BELLE's "score without others"). Both keys are always present; a class
key only for the classes the questions have, in ``CLASSES`` order.

Pairwise outcomes become per-question points for each side (``pairwise_points``): a win 1, a tie
0.5, a loss 0, so the mean is the win rate ``(wins + ties/2) / judged``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

from belle_evaluator.evalset import CLASSES
from belle_shared.judging import Preference

OVERALL = "overall"
OVERALL_WITHOUT_OTHERS = "overall_without_others"
OTHERS = "others"


@dataclass(frozen=True)
class Cell:
    """One model's score on one group of questions (a class, or the whole set)."""

    score: float | None
    count: int          # questions with a value
    unparsable: int     # questions whose judge reply gave no score or verdict
    questions: int      # questions in the group

    def to_dict(self) -> dict:
        return asdict(self)


def _cell(values: list[float | None], unparsable: list[bool]) -> Cell:
    scored = [v for v in values if v is not None]
    return Cell(score=sum(scored) / len(scored) if scored else None, count=len(scored),
                unparsable=sum(unparsable), questions=len(values))


def ordered_classes(classes: Sequence[str]) -> list[str]:
    """The distinct classes of ``classes`` in ``CLASSES`` order (an unknown one last, as first seen)."""
    present = set(classes)
    known = [c for c in CLASSES if c in present]
    return known + [c for c in dict.fromkeys(classes) if c not in CLASSES]


def summarize(classes: Sequence[str], values: Sequence[float | None],
              unparsable: Sequence[bool] | None = None) -> dict[str, Cell]:
    """Per-class, overall and overall-without-others cells of one model's per-question ``values``."""
    if len(values) != len(classes) or (unparsable is not None and len(unparsable) != len(classes)):
        raise ValueError("classes, values and unparsable must have one entry per question")
    flags = list(unparsable) if unparsable is not None else [False] * len(classes)
    cells: dict[str, Cell] = {}
    for name in ordered_classes(classes):
        picked = [i for i, c in enumerate(classes) if c == name]
        cells[name] = _cell([values[i] for i in picked], [flags[i] for i in picked])
    cells[OVERALL] = _cell(list(values), flags)
    rest = [i for i, c in enumerate(classes) if c != OTHERS]
    cells[OVERALL_WITHOUT_OTHERS] = _cell([values[i] for i in rest], [flags[i] for i in rest])
    return cells


def pairwise_points(outcome: Preference | None) -> tuple[float | None, float | None]:
    """(points of the first model, points of the second) for an outcome of ``pairwise_outcome``:
    "A" means the first model won. None for both when the judge gave no verdict."""
    if outcome is None:
        return None, None
    if outcome == "A":
        return 1.0, 0.0
    if outcome == "B":
        return 0.0, 1.0
    return 0.5, 0.5
