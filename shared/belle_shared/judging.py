"""Single-answer LLM judging without the evaluator: the per-class judge prompts, rendering one for a
question and an answer, and reading the judge's reply.

    templates = load_judge_prompts()                       # {class: template}, the bundled file
    prompt = render_judge_prompt(templates["math"], row, "答案是 42。")
    parse_score("得分: 0.8\\n理由: ……")                      # 0.8 (None when the reply states no score)

    >>> parse_score("得分: 0.8分。模型回答基本正确，但漏了第3点。")
    0.8
    >>> parse_score("8分（满分10分）")
    0.8
    >>> parse_preference("回答A算错了，回答B正确。\\n[[B]]")
    'B'

The evaluator grades whole eval sets with these, and the gateway scores one question on demand
(`POST /v1/evals/judge`); a service never imports another, so what both need lives here.

Judge prompts are a JSON object ``{class: template}``, one template per class
(``belle_shared/data/judge_prompts.json``). Rendering replaces ``{question}``, ``{std_answer}`` and
``{answer}`` in one pass, never with ``str.format``: braces in a question or a code answer are kept as
they are, and a placeholder written inside a question or an answer is not filled in. An empty
reference is shown as ``（无）`` and each template says how to judge without one. A line of the
question, reference or answer that starts with one of the labels a judge prompt is split on
(``问题:``, ``标准回答:``, ``模型回答:``, ``得分:``, ``评分:``, ``分数:``, ``理由:`` and the English
``Question:``, ``Reference answer:``, ``Model answer:``, ``Score:``, ``Rating:``, ``Reason:``, either
colon) gets a zero-width space (U+200B) in front of the label: it reads the same to a person or an
LLM judge, but a label-based parser (the offline judge) no longer mistakes it for a section.

Reading replies: ``parse_score`` (single-answer grading, 0..1) and ``parse_preference`` (pairwise:
"A", "B" or "tie") return None when the reply does not say clearly, and the caller records the item
as unparsable, never as a score of 0 or a tie. Standard library only (plus the class list in
``belle_shared.specs``).
"""

from __future__ import annotations

import json
import re
import unicodedata
from fractions import Fraction
from importlib import resources
from typing import Any, Literal, Protocol

from belle_shared.specs import EVAL_CLASSES, canonical_eval_class

Preference = Literal["A", "B", "tie"]

PLACEHOLDERS: tuple[str, ...] = ("{question}", "{std_answer}", "{answer}")
# What the judge sees where there is no reference answer.
NO_REFERENCE = "（无）"
JUDGE_PROMPTS_FILE = "judge_prompts.json"

_PLACEHOLDER = re.compile(r"\{(question|std_answer|answer)\}")
# A line that a label-based parser of judge prompts would read as a section or score label (the
# labels of belle_teacher.replies.parse_judge).
_LABEL_LINE = re.compile(
    r"^([ \t]*)(?=(?:问题|标准回答|模型回答|得分|评分|分数|理由|question|reference answer|model answer"
    r"|score|rating|reason)[ \t]*[:：])",
    re.MULTILINE | re.IGNORECASE,
)
_ZERO_WIDTH_SPACE = "\u200b"


class JudgedQuestion(Protocol):
    """What rendering reads from a question (``belle_shared.eval_sets.EvalRow`` has it)."""

    question: str
    std_answer: str


def _quoted(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def load_judge_prompts(data: dict[str, Any] | None = None) -> dict[str, str]:
    """``{canonical class: template}`` for every class of ``EVAL_CLASSES``, from ``data`` or the bundled file.

    Raises ValueError naming the class when one is missing, unknown, given twice, or its template is
    not a string holding all of ``{question}``, ``{std_answer}`` and ``{answer}``.
    """
    if data is None:
        text = (resources.files("belle_shared") / "data" / JUDGE_PROMPTS_FILE).read_text(encoding="utf-8")
        data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("judge prompts must be a JSON object {class: template}")
    prompts: dict[str, str] = {}
    for name, template in data.items():
        cls = canonical_eval_class(name)
        if cls is None:
            raise ValueError(f"judge prompts: unknown class {_quoted(name)} (known: {', '.join(EVAL_CLASSES)})")
        if cls in prompts:
            raise ValueError(f"judge prompts: class {_quoted(cls)} is given twice (as {_quoted(name)} too)")
        if not isinstance(template, str):
            raise ValueError(f"judge prompts: the template for {_quoted(cls)} must be a string")
        missing = [p for p in PLACEHOLDERS if p not in template]
        if missing:
            raise ValueError(f"judge prompts: the template for {_quoted(cls)} lacks {', '.join(missing)}")
        prompts[cls] = template
    absent = [cls for cls in EVAL_CLASSES if cls not in prompts]
    if absent:
        raise ValueError(f"judge prompts: no template for class {', '.join(_quoted(c) for c in absent)}")
    return {cls: prompts[cls] for cls in EVAL_CLASSES}


def neutralise_labels(text: str) -> str:
    """Put a zero-width space before a label at the start of a line (see the module docstring)."""
    return _LABEL_LINE.sub(lambda m: m.group(1) + _ZERO_WIDTH_SPACE, text)


def render_judge_prompt(template: str, q: JudgedQuestion, answer: str) -> str:
    """The judge prompt for the model's ``answer`` to ``q``: the placeholders filled in one pass."""
    values = {
        "question": neutralise_labels(q.question),
        "std_answer": neutralise_labels(q.std_answer) if q.std_answer.strip() else NO_REFERENCE,
        "answer": neutralise_labels(answer.strip()),
    }
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


# ------------------------------------------------------------------------------ reading scores

# Replies are NFKC-folded first, so "：" "（" "／" "％" and full-width digits are ASCII here.
_NUM = r"(?P<num>-?\d+(?:\.\d+)?)"
# A stated scale after the number: 8/10, 85%, 8分(满分10分), 0.8, 满分1分, 8 out of 10.
_TAIL = (r"(?:\s*分)?(?:\s*/\s*(?P<den>\d+(?:\.\d+)?)|(?P<pct>\s*%)"
         r"|\s*[,(]?\s*(?:满分|out\s+of)\s*(?:为|是)?\s*(?P<full>\d+(?:\.\d+)?)(?:\s*分)?\s*\)?)?")
# A score label, with markdown bold around it and an optional scale before the separator
# (评分(满分10分): 8, Score (out of 10): 8). 为/是 and is/of only after labels that always mean a
# score: 分数 is also "a fraction", as in "分数是3/4", so it needs a colon or =.
_LABELLED = re.compile(
    r"(?:(?:得分|评分|打分)\**\s*(?:[(]\s*(?:满分)\s*(?:为|是)?\s*(?P<pre_zh>\d+)\s*分?\s*[)]\s*)?(?:[:=]|为|是)"
    r"|分数\**\s*(?:[(]\s*满分\s*(?:为|是)?\s*(?P<pre_fs>\d+)\s*分?\s*[)]\s*)?[:=]"
    r"|(?<![a-z])(?:scores?|rating)\**\s*(?:[(]\s*out\s+of\s*(?P<pre_en>\d+)\s*[)]\s*)?(?:[:=]|is\b|of\b))"
    r"\s*\**\s*" + _NUM + _TAIL,
    re.IGNORECASE,
)
# A first line that is only a score: "0.9", "**1**", "8/10", "85/100", "1分".
_LONE = re.compile(r"\**\s*" + _NUM + _TAIL + r"\s*分?\s*\**\s*[.。]?")


def _value(match: re.Match) -> Fraction | None:
    """The score a match states, on a 0..1 scale; None if it lies outside [0, 1] (never clamped)."""
    groups = match.groupdict()
    value = Fraction(match["num"])
    scale = next((groups[name] for name in ("den", "full", "pre_zh", "pre_fs", "pre_en") if groups.get(name)), None)
    if groups.get("pct"):
        scale = "100"
    if scale is not None:
        if Fraction(scale) <= 0:
            return None
        value /= Fraction(scale)
    return value if 0 <= value <= 1 else None


def parse_score(reply: str) -> float | None:
    """The judge's score in [0, 1], or None.

    Labelled scores (得分 / 评分 / 打分 / 分数 / Score / Rating, with : ： = 为 是 is of, markdown bold
    allowed) win over any other number in the reply; several labelled scores must agree. Without a
    label, a first line that is only a number counts. A stated scale is applied (8/10, 85/100,
    8分（满分10分）, 80%); a number outside [0, 1] with no scale, or outside its scale, is None."""
    text = unicodedata.normalize("NFKC", reply)
    matches = list(_LABELLED.finditer(text))
    if not matches:
        first = next((line.strip() for line in text.splitlines() if line.strip()), "")
        lone = _LONE.fullmatch(first)
        matches = [lone] if lone else []
    values = {_value(match) for match in matches}
    if len(values) != 1 or None in values:
        return None
    return float(values.pop())


_REASON = re.compile(r"^[ \t*]*(?:理由|reason)[ \t*]*[:：][ \t]*(?P<reason>.+)", re.IGNORECASE | re.MULTILINE | re.DOTALL)


def reply_reason(reply: str) -> str:
    """The judge's explanation: the text after its ``理由:`` / ``Reason:`` label, else the whole reply."""
    match = _REASON.search(reply)
    return (match["reason"] if match else reply).strip()


# --------------------------------------------------------------------------------- pairwise

_VERDICTS: dict[str, Preference] = {"a": "A", "b": "B", "c": "tie", "tie": "tie", "平局": "tie"}
# FastChat's pairwise format: the reply ends with [[A]], [[B]] or [[C]] (a tie).
_BRACKETED = re.compile(r"\[\[\s*(A|B|C|tie|平局)\s*\]\]", re.IGNORECASE)
# A named winner: 更好的回答: A, 更好的回答是回答B, 胜者: B, Winner: Answer A, Better answer: tie.
# The letter itself is case-sensitive, so "winner: a tie" does not read as A.
_NAMED = re.compile(
    r"(?:更好的(?:回答|答案)?|胜者|获胜者|胜出者|获胜方|winner|better\s+answer)\s*(?:是|为|is\b)?\s*:?\s*"
    r"(?:回答|答案|answer\s*)?\s*((?-i:[AB])(?![A-Za-z])|平局|tie\b)",
    re.IGNORECASE,
)
# 平局 said on its own, unless negated (不是平局, 并非平局, 不算平局).
_TIE_WORD = re.compile(r"(?<!不是)(?<!并非)(?<!不算)平局")


def parse_preference(reply: str) -> Preference | None:
    """"A", "B" or "tie" from a pairwise judge's reply; None without a verdict or with conflicting
    ones (a reply that says [[A]] and 胜者: B, or echoes all three bracketed choices)."""
    text = unicodedata.normalize("NFKC", reply)
    found = {m.group(1) for m in _BRACKETED.finditer(text)} | {m.group(1) for m in _NAMED.finditer(text)}
    verdicts = {_VERDICTS[word.lower()] for word in found}
    if _TIE_WORD.search(text):
        verdicts.add("tie")
    return verdicts.pop() if len(verdicts) == 1 else None
