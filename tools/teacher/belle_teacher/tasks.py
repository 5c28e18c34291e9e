"""The teacher's task family: small tasks whose answers can be computed and checked exactly.

Standard library only (no FastAPI), so tests and the evaluator can import it alone:

    >>> import random
    >>> task = generate_task(random.Random(0), "zh")
    >>> solve(task.instruction, task.input) == task.output
    True
    >>> check("把305写成中文数字", "三百零五。")
    True

Kinds: numeral (305 -> 三百零五), reverse, sort, arithmetic, count (characters / words), case
(upper/lower), extreme (max/min), parity. Each kind generates data with a seeded `random.Random`,
words it with one of several phrasings (`kinds.py`, `wording.py`), and has a parser that recognises an
instruction of its kind (wherever the data sits: inline, after a colon, in the input field) and
recomputes the answer. Answers have one fixed format per kind (a tiny model should learn them from
a few hundred examples) and have at least two letters or digits (the generator's filters drop
shorter outputs).
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Container
from dataclasses import dataclass

from belle_teacher.kinds import KINDS, language_of

LANGUAGES = ("zh", "en")


@dataclass(frozen=True)
class Task:
    kind: str
    instruction: str
    input: str
    output: str



def question_of(instruction: str, input: str = "") -> str:
    """The question a model sees for a task: the instruction, then the input on its own line (how a
    dataset row becomes a human turn)."""
    instruction, input = instruction.strip(), (input or "").strip()
    return f"{instruction}\n{input}" if input else instruction


def question_key(text: str) -> str:
    """What two questions must share to be the same question: stripped, whitespace runs as one space."""
    return re.sub(r"\s+", " ", text).strip()


# Tries before `generate_task` gives up finding a task outside `avoid` (a held-out set that covers
# nearly every task of a kind is a mistake, not something to loop on forever).
MAX_AVOID_TRIES = 1000


def generate_task(rng: random.Random, language: str = "zh", kind: str | None = None, *,
                  avoid: Container[str] = ()) -> Task:
    """A new random task of the family (a random kind unless `kind` is given), worded in `language`;
    never one whose question (`question_key(question_of(...))`) is in `avoid` (held-out eval questions)."""
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {LANGUAGES}, not {language!r}")
    for _ in range(MAX_AVOID_TRIES):
        chosen = KINDS[kind] if kind is not None else rng.choice(list(KINDS.values()))
        task = Task(chosen.name, *chosen.generate(rng, language))
        if not avoid or question_key(question_of(task.instruction, task.input)) not in avoid:
            return task
    raise ValueError(f"no task outside the held-out questions after {MAX_AVOID_TRIES} tries")


def solve(instruction: str, input: str = "", language: str | None = None) -> str | None:
    """The exact answer if `instruction` (+ `input`) is a task of the family, else None.

    `language` only picks the answer's language where it has one (奇数 / odd); by default it is the
    instruction's (Chinese if it has any CJK character)."""
    instruction, input = instruction.strip(), (input or "").strip()
    if not instruction:
        return None
    lang = language or language_of(instruction)
    for kind in KINDS.values():
        answer = kind.parse(instruction, input, lang)
        if answer is not None:
            return answer
    return None


def kind_of(instruction: str, input: str = "") -> str | None:
    """Which kind of the family recognises this instruction, if any."""
    for kind in KINDS.values():
        if kind.parse(instruction.strip(), (input or "").strip(), language_of(instruction)) is not None:
            return kind.name
    return None


_TRAILING = "。．.!！?？;；,，、:：~～…"


def normalize_answer(text: str) -> str:
    """What two answers must share to be equal: NFKC (full-width -> ASCII), single spaces, no space
    next to punctuation or CJK, no trailing punctuation. Case is kept (the case task needs it)."""
    text = unicodedata.normalize("NFKC", text).strip()
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r" ?([^\w\s]) ?", r"\1", text)
    text = re.sub(r"(?<=[\u3400-\u9fff]) | (?=[\u3400-\u9fff])", "", text)
    return text.rstrip(_TRAILING + " ")


def _split_question(question: str) -> list[tuple[str, str]]:
    """Ways to read a question as (instruction, input): split at a blank line, at the first line
    break, or all of it as the instruction."""
    question = question.strip()
    readings = []
    if "\n\n" in question:
        head, rest = question.split("\n\n", 1)
        readings.append((head, rest))
    if "\n" in question:
        head, rest = question.split("\n", 1)
        readings.append((head, rest))
    readings.append((question, ""))
    return readings


def answer_question(question: str, language: str | None = None) -> str | None:
    """`solve` for a question given as one text (instruction, optionally its input on later lines)."""
    for instruction, input in _split_question(question):
        answer = solve(instruction, input, language)
        if answer is not None:
            return answer
    return None


def check(question_text: str, answer_text: str) -> bool | None:
    """Whether `answer_text` is the exact answer to `question_text` (after `normalize_answer`);
    None if the question is not a task of the family."""
    expected = answer_question(question_text)
    if expected is None:
        return None
    if normalize_answer(answer_text) == normalize_answer(expected):
        return True
    # Parity is the one kind with a worded answer: accept it in either language.
    other = answer_question(question_text, "en" if language_of(question_text) == "zh" else "zh")
    return other is not None and normalize_answer(answer_text) == normalize_answer(other)
