"""Reference metrics: the evaluator's scores that need no judge (standard library, and the class names of
belle_shared.specs).

    >>> exact_match("类别：正面。", "正面")
    1.0
    >>> math_match("一共 1,200 元，所以答案是 1,200。", "1200")
    1.0
    >>> reference_score("summarization", "今天天气很好", "今天的天气很好")
    ('rouge_l', 0.9230769230769231)

`METRIC_BY_CLASS` says which metric a task class gets; `reference_score` applies it. Conventions
shared by every metric here:

- the result is a float in [0, 1];
- text is compared after NFKC (full-width letters, digits and punctuation become ASCII) and
  lowercasing;
- two texts with nothing left to compare (empty, whitespace or punctuation only) agree: 1.0, as
  SQuAD's F1 defines it; one empty and the other not: 0.0. `reference_score` never reaches that
  case, because an empty reference has no reference score (None).
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections import Counter
from fractions import Fraction
from typing import Callable, Sequence

from belle_shared.specs import canonical_eval_class

# CJK ideographs (with extension A, compatibility ideographs and the supplementary planes) and kana:
# scripts written without spaces, so each character is one token.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003ffff"
_ZH_TOKEN = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+")
_ASCII_PUNCTUATION = frozenset(string.punctuation)


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).lower()


def _is_punctuation(ch: str) -> bool:
    # Unicode P* covers Chinese punctuation (。，、“”《》…); ASCII adds symbols such as $ + = ~.
    return ch in _ASCII_PUNCTUATION or unicodedata.category(ch).startswith("P")


def normalize(text: str) -> str:
    """NFKC, lowercase, no whitespace, no punctuation: the form `exact_match` and `rouge_l` compare."""
    return "".join(ch for ch in _fold(text) if not ch.isspace() and not _is_punctuation(ch))


# -------------------------------------------------------------------------------- exact match

# Lead-ins a classification answer may put before the label, in normalized form (the colon of
# "类别：" is gone by then). Deliberately few: anything else around the label is no match.
CLASSIFICATION_LEADS = (
    "类别是", "类别为", "类别", "分类结果是", "分类结果为", "分类结果", "分类是", "分类为", "分类",
    "答案是", "答案为", "答案", "属于", "theansweris", "answer", "label", "category",
)


def exact_match(prediction: str, reference: str) -> float:
    """1.0 if the normalized texts are equal, or the prediction is one of `CLASSIFICATION_LEADS`
    followed by exactly the reference ("类别：正面" for 正面). A prediction naming two labels
    ("正面，负面") is no match: the whole remainder must be the label."""
    pred, ref = normalize(prediction), normalize(reference)
    if pred == ref:
        return 1.0
    return 1.0 if any(pred.startswith(lead) and pred[len(lead):] == ref for lead in CLASSIFICATION_LEADS) else 0.0


_TRAILING = "。．.!！?？;；,，、:：~～…"


def normalize_cased(text: str) -> str:
    """NFKC, single spaces, no space next to punctuation or CJK, no trailing punctuation; case and
    inner punctuation kept (the offline teacher's `normalize_answer`)."""
    text = re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text).strip())
    text = re.sub(r" ?([^\w\s]) ?", r"\1", text)
    text = re.sub(rf"(?<=[{_CJK}]) | (?=[{_CJK}])", "", text)
    return text.rstrip(_TRAILING + " ")


def exact_match_cased(prediction: str, reference: str) -> float:
    """1.0 if the texts are equal after `normalize_cased`: an exact answer, where case and the
    separators between items matter ("PURPLE VIOLIN" is no match for "purple violin", "3,12" is for
    "3, 12"). For answers that can be checked exactly (the offline teacher's task family)."""
    return 1.0 if normalize_cased(prediction) == normalize_cased(reference) else 0.0


# -------------------------------------------------------------------------------------- math

# A number: not inside a word, an expression's tail ("5-3" is 5 and 3, not 5 and -3) or a decimal;
# thousands commas only in groups of three; an optional fraction denominator and percent sign.
_NUMBER = re.compile(
    r"(?<![0-9A-Za-z)\].])"
    r"(?P<sign>-?)(?P<int>\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?P<dec>\.\d+)?"
    r"(?:\s*/\s*(?P<den>\d+))?(?P<pct>\s*%)?"
)
# Markers of a final answer. Strong ones name it; `=` / 等于 also end every step of a worked
# solution, so they only count when no strong marker is followed by a number.
_STRONG_MARKER = re.compile(r"答案\s*(?:是|为|:)|答\s*:|结果\s*(?:是|为)|answer\s*(?:is|:)|\\boxed\{", re.IGNORECASE)
_WEAK_MARKER = re.compile(r"等于|=")
_MARKER_GAP = 16                       # at most this many characters between a marker and its number
_SENTENCE_END = re.compile(r"[。！？!?;；\n]")


def _number_value(match: re.Match) -> Fraction | None:
    value = Fraction(match["int"].replace(",", "") + (match["dec"] or ""))
    if match["den"] is not None:
        if int(match["den"]) == 0:
            return None
        value /= int(match["den"])
    return -value if match["sign"] else value


def _canonical(value: Fraction, percent: bool) -> str:
    """12.0 -> "12", 3/4 -> "0.75", 2/6 -> "1/3", 50% -> "50%": one spelling per value."""
    numerator, denominator = value.numerator, value.denominator
    rest, places = denominator, 0
    for prime in (2, 5):
        count = 0
        while rest % prime == 0:
            rest //= prime
            count += 1
        places = max(places, count)
    if denominator == 1:
        text = str(numerator)
    elif rest == 1:
        # A terminating decimal: scale to an integer, then put the point back.
        digits = str(abs(numerator) * 10**places // denominator).rjust(places + 1, "0")
        text = ("-" if numerator < 0 else "") + (digits[:-places] + "." + digits[-places:]).rstrip("0").rstrip(".")
    else:
        text = f"{numerator}/{denominator}"
    return text + ("%" if percent else "")


def _number_after(text: str, marker: re.Match) -> re.Match | None:
    """The number right after a marker: close to it and in the same sentence ("答案是多少？" has none)."""
    for match in _NUMBER.finditer(text, marker.end(), marker.end() + _MARKER_GAP + 40):
        gap = text[marker.end():match.start()]
        if len(gap) > _MARKER_GAP or _SENTENCE_END.search(gap):
            return None
        if _number_value(match) is not None:
            return match
    return None


def final_number(text: str) -> str | None:
    """The final answer of a math answer, canonical (so "12.0" == "12", "1,200" == "1200").

    The number after the last strong marker (答案是 / 答案为 / 答案： / 答： / 结果是 / "answer is" /
    \\boxed{) that has one; else after the last 等于 / =; else the last number in the text. Handles
    negatives, decimals, thousands commas, full-width digits, fractions (3/4 -> "0.75") and percentages
    ("50%", kept with its sign; `math_match` decides what it equals). A full-width comma is read as
    Chinese punctuation, never as a thousands separator ("3，456个" is 3 and 456)."""
    text = unicodedata.normalize("NFKC", text.replace("\uff0c", "、")).replace("\u2212", "-")
    chosen = None
    for markers in (_STRONG_MARKER, _WEAK_MARKER):
        for marker in reversed(list(markers.finditer(text))):
            chosen = _number_after(text, marker)
            if chosen is not None:
                break
        if chosen is not None:
            break
    if chosen is None:
        numbers = [m for m in _NUMBER.finditer(text) if _number_value(m) is not None]
        if not numbers:
            return None
        chosen = numbers[-1]
    value = _number_value(chosen)
    assert value is not None
    return _canonical(value, bool(chosen["pct"]))


def _parse_canonical(text: str) -> tuple[Fraction, bool]:
    percent = text.endswith("%")
    return Fraction(text.rstrip("%")), percent


def math_match(prediction: str, reference: str) -> float:
    """1.0 when both texts have a final number and the numbers are equal, else 0.0. A percentage
    equals its own number and that number over 100 ("50%" matches "50" and "0.5"), because
    references to "what percent" questions are written both ways."""
    pred, ref = final_number(prediction), final_number(reference)
    if pred is None or ref is None:
        return 0.0
    (a, a_pct), (b, b_pct) = _parse_canonical(pred), _parse_canonical(ref)
    if a_pct == b_pct:
        return 1.0 if a == b else 0.0
    percent, other = (a, b) if a_pct else (b, a)
    return 1.0 if other in (percent, percent / 100) else 0.0


# ------------------------------------------------------------------------- token-level metrics


def tokenize_zh(text: str) -> list[str]:
    """BLEU / F1 tokens: each CJK character (or kana) one token, each run of other letters and digits
    one token (lowercased, after NFKC), punctuation and whitespace dropped. Like sacrebleu's `zh`
    idea; runs are not limited to ASCII, so "café" stays one token instead of losing its é."""
    return _ZH_TOKEN.findall(_fold(text))


def _ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def _bleu_stats(prediction: str, reference: str, max_n: int) -> list[int]:
    """[prediction length, reference length, matches_1..max_n, totals_1..max_n] (clipped matches)."""
    pred, ref = tokenize_zh(prediction), tokenize_zh(reference)
    matches, totals = [], []
    for n in range(1, max_n + 1):
        pred_counts, ref_counts = _ngrams(pred, n), _ngrams(ref, n)
        matches.append(sum((pred_counts & ref_counts).values()))
        totals.append(sum(pred_counts.values()))
    return [len(pred), len(ref), *matches, *totals]


def _bleu_from_stats(stats: Sequence[int], max_n: int) -> float:
    """BLEU with add-one smoothing for n > 1 (Lin & Och 2004, "BLEU+1"): p_n = (m_n + 1) / (l_n + 1)
    for n >= 2, p_1 = m_1 / l_1 unsmoothed. So an order with no n-grams at all (a prediction shorter
    than n) counts as 1/1 instead of dividing by zero, and no unigram in common still scores 0."""
    length, ref_length = stats[0], stats[1]
    matches, totals = stats[2:2 + max_n], stats[2 + max_n:]
    if length == 0:
        return 1.0 if ref_length == 0 else 0.0
    if matches[0] == 0:
        return 0.0
    log_precision = math.log(matches[0] / totals[0])
    for n in range(1, max_n):
        log_precision += math.log((matches[n] + 1) / (totals[n] + 1))
    brevity = 1.0 if length > ref_length else math.exp(1 - ref_length / length)
    return brevity * math.exp(log_precision / max_n)


def bleu(prediction: str, reference: str, max_n: int = 4) -> float:
    """Sentence BLEU over `tokenize_zh` tokens: clipped n-gram precisions up to `max_n`, their
    geometric mean (add-one smoothed for n > 1, see `_bleu_from_stats`), times the brevity penalty
    exp(1 - r/c) when the prediction (c tokens) is not longer than the reference (r tokens)."""
    if max_n < 1:
        raise ValueError(f"max_n must be at least 1, not {max_n}")
    return _bleu_from_stats(_bleu_stats(prediction, reference, max_n), max_n)


def corpus_bleu(predictions: Sequence[str], references: Sequence[str], max_n: int = 4) -> float:
    """Corpus BLEU as BLEU defines it: lengths and clipped n-gram counts summed over all pairs first,
    then one score (same smoothing as `bleu`, so a one-pair corpus scores what `bleu` does)."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if max_n < 1:
        raise ValueError(f"max_n must be at least 1, not {max_n}")
    if not predictions:
        return 0.0
    sums = [0] * (2 + 2 * max_n)
    for prediction, reference in zip(predictions, references, strict=True):
        sums = [a + b for a, b in zip(sums, _bleu_stats(prediction, reference, max_n), strict=True)]
    return _bleu_from_stats(sums, max_n)


def _lcs_length(a: str, b: str) -> int:
    """Longest common subsequence length, bit-parallel (Allison-Dix / Hyyrö): one big-integer step
    per character of the shorter text instead of a row of the O(n*m) table."""
    if len(a) < len(b):
        a, b = b, a
    positions: dict[str, int] = {}
    for index, ch in enumerate(a):
        positions[ch] = positions.get(ch, 0) | (1 << index)
    all_ones = (1 << len(a)) - 1
    row = all_ones                      # zero bits mark where the LCS so far has grown
    for ch in b:
        hits = row & positions.get(ch, 0)
        row = ((row + hits) | (row - hits)) & all_ones
    return len(a) - row.bit_count()


def rouge_l(prediction: str, reference: str) -> float:
    """Character ROUGE-L F1 (beta = 1): LCS over the `normalize`d characters (whitespace and
    punctuation removed), 2·LCS / (|prediction| + |reference|). Empty vs empty is 1.0 (see module)."""
    pred, ref = normalize(prediction), normalize(reference)
    if not pred or not ref:
        return 1.0 if pred == ref else 0.0
    return 2 * _lcs_length(pred, ref) / (len(pred) + len(ref))


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD-style F1 of the two bags of `tokenize_zh` tokens."""
    pred, ref = tokenize_zh(prediction), tokenize_zh(reference)
    if not pred or not ref:
        return 1.0 if pred == ref else 0.0
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


# ----------------------------------------------------------------------------- per task class

METRIC_BY_CLASS: dict[str, str] = {
    "classification": "exact_match",
    "math": "math_match",
    "translation": "bleu",
    "summarization": "rouge_l",
    "rewrite": "rouge_l",
    "closed qa": "token_f1",
    "open qa": "token_f1",
}
METRICS: dict[str, Callable[[str, str], float]] = {
    "exact_match": exact_match,
    "exact_match_cased": exact_match_cased,
    "math_match": math_match,
    "bleu": bleu,
    "rouge_l": rouge_l,
    "token_f1": token_f1,
}


def class_metric(cls: str) -> str | None:
    """The reference metric of a class, its name in any spelling ("open QA", "open_qa"); None for the
    classes without one (brainstorming, generation, extract, code, others) and unknown names."""
    return METRIC_BY_CLASS.get(canonical_eval_class(cls) or "")


def reference_score(cls: str, prediction: str, reference: str, metric: str | None = None) -> tuple[str, float] | None:
    """(metric name, score) for a class that has a reference metric, or with the row's own `metric`
    (an eval row's optional "metric"); None for other classes and for a reference with nothing to
    compare against (empty or punctuation only; for math, no number)."""
    name = metric or class_metric(cls)
    if name is None or not (normalize_cased if name == "exact_match_cased" else normalize)(reference):
        return None
    if name == "math_match" and final_number(reference) is None:
        return None
    return name, METRICS[name](prediction, reference)
