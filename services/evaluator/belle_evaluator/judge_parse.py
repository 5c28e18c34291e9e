"""Reading an LLM judge's reply: a 0..1 score (single-answer grading) or a preference (pairwise).

    >>> parse_score("得分: 0.8分。模型回答基本正确，但漏了第3点。")
    0.8
    >>> parse_score("8分（满分10分）")
    0.8
    >>> parse_preference("回答A算错了，回答B正确。\\n[[B]]")
    'B'

Both return None when the reply does not say clearly: the caller records the item as unparsable,
never as a score of 0 or a tie. Standard library only.
"""

from __future__ import annotations

import re
import unicodedata
from fractions import Fraction
from typing import Literal

Preference = Literal["A", "B", "tie"]

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
