"""The evaluator's reference metrics against values worked out by hand (the working is in the comments)."""

from __future__ import annotations

import math
import random

import pytest

from belle_evaluator.metrics import (METRIC_BY_CLASS, bleu, corpus_bleu, exact_match, final_number, math_match,
                                     normalize, reference_score, rouge_l, token_f1, tokenize_zh)
from helpers import lcs_length

# ------------------------------------------------------------------------------ normalize / EM


def test_normalize_folds_width_case_space_and_punctuation():
    assert normalize("  Ｈｅｌｌｏ，世界！ ") == "hello世界"
    assert normalize("《正面》。") == "正面"
    assert normalize("a + b = c?") == "abc"          # ASCII symbols count as punctuation too
    assert normalize("？！。，") == ""


@pytest.mark.parametrize("prediction, reference, expected", [
    ("正面", "正面。", 1.0),
    ("ＰＯＳＩＴＩＶＥ", "positive", 1.0),            # full-width letters fold to ASCII
    ("类别：正面", "正面", 1.0),
    ("答案是：负面。", "负面", 1.0),
    ("属于体育", "体育", 1.0),
    ("The answer is: Positive.", "positive", 1.0),
    ("正面，负面", "正面", 0.0),                      # two labels named: no match
    ("类别：正面，负面", "正面", 0.0),                # the whole rest after the lead must be the label
    ("我觉得是正面", "正面", 0.0),                    # not one of the documented lead-ins
    ("负面", "正面", 0.0),
    ("", "正面", 0.0),
])
def test_exact_match(prediction, reference, expected):
    assert exact_match(prediction, reference) == expected


# ------------------------------------------------------------------------------------- math


@pytest.mark.parametrize("text, expected", [
    ("12", "12"),
    ("12.0", "12"),
    ("1,200", "1200"),
    ("１２３", "123"),                                 # full-width digits
    ("答案是－３", "-3"),                              # full-width minus
    ("答案是-3", "-3"),
    ("x = -3.25", "-3.25"),
    ("-0.50", "-0.5"),
    ("3/4", "0.75"),
    ("３／４", "0.75"),
    ("2/6", "1/3"),                                    # no finite decimal: a reduced fraction
    ("-1/8", "-0.125"),
    ("及格率是 50%", "50%"),
    ("5-3=2", "2"),                                    # "-3" inside 5-3 is no negative number
    ("答案是多少？让我们算一算：3+4=7", "7"),           # the marker is in another sentence than any number
    ("所以答案是 14。检查：2*7=14，14-7=7", "14"),     # a strong marker beats later = signs
    ("3+4=7，7×2=14", "14"),                           # only = markers: the last one
    ("The answer is approximately 1,234.50 dollars.", "1234.5"),
    ("最终 \\boxed{42}", "42"),
    ("答：共 12 个，比昨天多 3 个", "12"),
    ("小明有3，小红有456个", "456"),                   # a full-width comma is no thousands separator
    ("1,2345", "2345"),                                # commas only in groups of three
    ("H2O 里有两个氢原子", None),                       # a digit inside a word is no number
    ("没有数字", None),
    ("", None),
])
def test_final_number(text, expected):
    assert final_number(text) == expected


@pytest.mark.parametrize("prediction, reference, expected", [
    ("答案是12.0", "12", 1.0),
    ("一共 1,200 元", "1200", 1.0),
    ("0.75", "3/4", 1.0),
    ("50%", "0.5", 1.0),                               # a percentage equals its number over 100 ...
    ("50%", "50", 1.0),                                # ... and its own number
    ("50%", "5000%", 0.0),                             # two percentages compare as written
    ("答案是 7", "8", 0.0),
    ("我不知道", "3", 0.0),
    ("3", "三", 0.0),                                  # no number in the reference: never a match
])
def test_math_match(prediction, reference, expected):
    assert math_match(prediction, reference) == expected


# -------------------------------------------------------------------------------------- BLEU


def test_tokenize_zh():
    assert tokenize_zh("I love 北京！") == ["i", "love", "北", "京"]
    assert tokenize_zh("ＡＢＣ１２３，3.14") == ["abc123", "3", "14"]
    assert tokenize_zh("café和naïve") == ["café", "和", "naïve"]
    assert tokenize_zh("，。！？ ...") == []


def test_bleu_by_hand():
    # 今天天气很好 (6 tokens) against 今天的天气很好 (7 tokens), one token per character:
    #   1-grams: all 6 in the reference                     p1 = 6/6
    #   2-grams 今天 天天 天气 气很 很好: 4 of 5 match      p2 = (4+1)/(5+1) = 5/6   (add-one for n > 1)
    #   3-grams 今天天 天天气 天气很 气很好: 2 of 4          p3 = (2+1)/(4+1) = 3/5
    #   4-grams 今天天气 天天气很 天气很好: 1 of 3           p4 = (1+1)/(3+1) = 1/2
    #   geometric mean (1 · 5/6 · 3/5 · 1/2)^(1/4) = (1/4)^(1/4) = sqrt(0.5)
    #   brevity penalty exp(1 - 7/6) = exp(-1/6)
    assert bleu("今天天气很好", "今天的天气很好") == pytest.approx(math.sqrt(0.5) * math.exp(-1 / 6))   # 0.59855
    # max_n=1: p1 = 1, so only the brevity penalty is left.
    assert bleu("今天天气很好", "今天的天气很好", max_n=1) == pytest.approx(math.exp(-1 / 6))         # 0.84648


def test_bleu_clips_repeated_ngrams():
    # the the the cat (4) against the cat sat (3):
    #   1-grams: "the" clipped to 1, "cat" 1                p1 = 2/4
    #   2-grams the-the ×2, the-cat: the-cat matches         p2 = (1+1)/(3+1) = 1/2
    #   3-grams the-the-the, the-the-cat: none               p3 = (0+1)/(2+1) = 1/3
    #   4-gram  the-the-the-cat: none                        p4 = (0+1)/(1+1) = 1/2
    #   c = 4 > r = 3: no brevity penalty.  BLEU = (1/2 · 1/2 · 1/3 · 1/2)^(1/4) = (1/24)^(1/4)
    assert bleu("the the the cat", "the cat sat") == pytest.approx((1 / 24) ** 0.25)                # 0.45180


def test_bleu_edge_cases():
    assert bleu("今天天气很好", "今天天气很好") == 1.0
    # One token: orders 2..4 have no n-grams, smoothed to (0+1)/(0+1) = 1, no division by zero;
    # p1 = 1/1, brevity penalty exp(1 - 2/1) = exp(-1).
    assert bleu("好", "很好") == pytest.approx(math.exp(-1))                                        # 0.36788
    assert bleu("猫", "狗") == 0.0                     # no unigram in common
    assert bleu("", "很好") == 0.0
    assert bleu("", "") == 1.0                         # nothing to compare on either side
    assert bleu("！？", "。") == 1.0                   # punctuation only is empty too
    with pytest.raises(ValueError):
        bleu("a", "a", max_n=0)


def test_corpus_bleu_sums_counts_before_scoring():
    # The two pairs above, counts summed:
    #   c = 6 + 4 = 10, r = 7 + 3 = 10 -> brevity penalty 1
    #   p1 = (6 + 2) / (6 + 4) = 4/5
    #   p2 = (4 + 1 + 1) / (5 + 3 + 1) = 6/9 = 2/3
    #   p3 = (2 + 0 + 1) / (4 + 2 + 1) = 3/7
    #   p4 = (1 + 0 + 1) / (3 + 1 + 1) = 2/5
    #   BLEU = (4/5 · 2/3 · 3/7 · 2/5)^(1/4) = (16/175)^(1/4)
    predictions, references = ["今天天气很好", "the the the cat"], ["今天的天气很好", "the cat sat"]
    assert corpus_bleu(predictions, references) == pytest.approx((16 / 175) ** 0.25)                # 0.54988
    # Not the mean of the sentence scores (0.59855 and 0.45180 average 0.52518).
    assert corpus_bleu(predictions, references) != pytest.approx(sum(map(bleu, predictions, references)) / 2)
    assert corpus_bleu(["今天天气很好"], ["今天的天气很好"]) == bleu("今天天气很好", "今天的天气很好")
    assert corpus_bleu([], []) == 0.0
    with pytest.raises(ValueError):
        corpus_bleu(["a"], [])


# ---------------------------------------------------------------------------------- ROUGE-L


def test_rouge_l_by_hand():
    # Punctuation goes first: 今天天气很好 (6) and 今天的天气很好 (7), LCS 6 -> 2·6 / 13
    assert rouge_l("今天天气很好！", "今天的天气很好。") == pytest.approx(12 / 13)                   # 0.92308
    # The textbook pair ABCBDAB / BDCABA has an LCS of 4 (BCBA) -> 2·4 / (7 + 6)
    assert rouge_l("ABCBDAB", "BDCABA") == pytest.approx(8 / 13)                                     # 0.61538
    assert rouge_l("ＡＢＣ", "a b c") == 1.0
    assert rouge_l("春天", "秋冬") == 0.0


def test_rouge_l_empty_texts():
    assert rouge_l("", "") == 1.0                     # documented: nothing vs nothing agrees
    assert rouge_l("。", "！！") == 1.0
    assert rouge_l("", "答案") == 0.0
    assert rouge_l("答案", "") == 0.0


def test_rouge_l_lcs_agrees_with_the_textbook_table():
    rng = random.Random(11)
    alphabet = "天地人和abc"
    for _ in range(300):
        a = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 90)))
        b = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 140)))
        assert rouge_l(a, b) == pytest.approx(2 * lcs_length(a, b) / (len(a) + len(b)))


# ---------------------------------------------------------------------------------- token F1


def test_token_f1_by_hand():
    # 北京是中国的首都 (8 tokens) vs 首都是北京 (5): 北 京 是 首 都 shared -> P 5/8, R 5/5,
    # F1 = 2 · 5/8 · 1 / (5/8 + 1) = 10/13
    assert token_f1("北京是中国的首都", "首都是北京") == pytest.approx(10 / 13)                       # 0.76923
    # 好好好 vs 好: the bag shares one 好 -> P 1/3, R 1, F1 = 2 · 1/3 / (4/3) = 1/2
    assert token_f1("好好好", "好") == pytest.approx(0.5)
    # [the, eiffel, tower, paris] vs [paris]: P 1/4, R 1, F1 = 2 · 1/4 / (5/4) = 2/5
    assert token_f1("The Eiffel Tower, Paris", "paris") == pytest.approx(0.4)
    assert token_f1("上海", "北京") == 0.0
    assert token_f1("", "") == 1.0
    assert token_f1("", "北京") == 0.0


# ---------------------------------------------------------------------------- per task class


def test_reference_score_per_class():
    assert reference_score("classification", "类别：正面", "正面") == ("exact_match", 1.0)
    assert reference_score("math", "所以答案是 1,200。", "1200") == ("math_match", 1.0)
    name, score = reference_score("translation", "今天天气很好", "今天的天气很好")
    assert name == "bleu" and score == pytest.approx(math.sqrt(0.5) * math.exp(-1 / 6))
    assert reference_score("summarization", "今天天气很好", "今天的天气很好") == ("rouge_l", pytest.approx(12 / 13))
    assert reference_score("rewrite", "好", "好") == ("rouge_l", 1.0)
    # BELLE writes "open QA" / "closed QA"; other spellings mean the same class.
    for cls in ("open qa", "Open QA", "open_qa", "closed QA", "closed-qa"):
        assert reference_score(cls, "北京是中国的首都", "首都是北京") == ("token_f1", pytest.approx(10 / 13))


def test_reference_score_is_none_without_a_metric_or_a_reference():
    for cls in ("brainstorming", "generation", "code", "extract", "unknown"):
        assert reference_score(cls, "答案", "答案") is None
    assert reference_score("classification", "正面", "") is None
    assert reference_score("summarization", "好", " 。！") is None       # punctuation only
    assert reference_score("math", "3", "三") is None                     # a math reference without a number
    assert set(METRIC_BY_CLASS.values()) == {"exact_match", "math_match", "bleu", "rouge_l", "token_f1"}


def test_every_metric_stays_in_the_unit_interval():
    rng = random.Random(5)
    pieces = ["今天", "天气", "很好", "the", "cat", " ", "，", "3", "12.5", "-", "/", "%", "答案是", "=", "ａ"]
    for _ in range(500):
        a = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        b = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        for metric in (exact_match, math_match, bleu, rouge_l, token_f1):
            assert 0.0 <= metric(a, b) <= 1.0, (metric.__name__, a, b)
        assert rouge_l(a, b) == rouge_l(b, a) and token_f1(a, b) == token_f1(b, a)
