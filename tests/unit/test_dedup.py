"""Unit tests for belle_datagen.dedup: the shared tokenization, exact ROUGE-L, and the index.

The index is checked against a plain greedy loop over every kept row with a textbook LCS.
"""

from __future__ import annotations

import random

import pytest

from belle_datagen import dedup
from belle_datagen.dedup import NearDuplicateIndex, rouge_l, tokenize
from helpers import rouge_l_f as rouge_dp

BACKENDS = [False] + ([True] if dedup._HAVE_NUMPY else [])


def greedy_reference(seeds, rows, threshold=0.7) -> list[bool]:
    """Alpaca's rule, the slow way: drop a row if it is above the threshold against any kept row.

    (``rouge_l`` is checked against the textbook LCS below; it is only faster.)
    """
    kept = [tokenize(s) for s in seeds]
    drops = []
    for text in rows:
        tokens = tokenize(text)
        dup = any(rouge_l(tokens, k) > threshold for k in kept)
        drops.append(dup)
        if not dup:
            kept.append(tokens)
    return drops


SUBJECTS = (
    "春天 秋天 大海 故乡 人工智能 垃圾分类 长城 熊猫 围棋 地铁 黄河 书法 月饼 茶叶 "
    "火星 疫苗 芯片 沙漠 京剧 足球 咖啡 高铁 森林 二十四节气 端午节 丝绸之路"
).split()
OPENERS = ["写一首关于", "介绍一下", "分析", "用三句话总结", "给孩子讲讲", "谈谈你对", "列出五个关于"]
LINKS = ["的特点，并联系", "和", "的历史，顺便说说", "对生活的影响，比较", "的优缺点，不要提到"]
CLAUSES = ["结尾写到", "语气轻松，适合", "字数不多，重点是", "最好举例说明", "读者是喜欢"]
ENGLISH = [
    "spring", "the ocean", "machine learning", "recycling", "chess", "pandas", "the subway",
    "black holes", "jazz", "volcanoes", "the Roman empire", "bread baking", "electric cars",
]
VERBS_EN = ["Write a poem about", "Explain", "Summarize the history of", "Compare", "List facts about"]
LINKS_EN = ["and", "with a note on", "for a child who likes", "without mentioning", "in the style of"]
FILLERS = list("请帮我详细地简单说明一下") + ["please", "briefly", "now"]


def generated_rows(n: int, seed: int) -> list[str]:
    """New rows from a few templates, and edited copies of earlier rows (some near the threshold)."""
    rng = random.Random(seed)
    rows: list[str] = []
    while len(rows) < n:
        if rows and rng.random() < 0.35:
            src = rng.choice(rows)
            english = src.isascii()  # edits insert Chinese fillers into English rows too
            units = src.split(" ") if english else list(src)
            for _ in range(rng.randint(1, 6)):  # substitutions, insertions, deletions
                op = rng.random()
                i = rng.randrange(len(units))
                if op < 0.4:
                    units[i] = rng.choice(FILLERS)
                elif op < 0.7:
                    units.insert(i, rng.choice(FILLERS))
                elif len(units) > 3:
                    del units[i]
            rows.append((" " if english else "").join(units))
        elif rng.random() < 0.65:
            s, t, u = rng.sample(SUBJECTS, 3)
            parts = [rng.choice(OPENERS), s, rng.choice(LINKS), t, "，", rng.choice(CLAUSES), u]
            rows.append("".join(parts) + f"，{rng.randint(3, 300)}字")
        else:
            s, t = rng.sample(ENGLISH, 2)
            rows.append(f"{rng.choice(VERBS_EN)} {s} {rng.choice(LINKS_EN)} {t} in {rng.randint(3, 300)} words")
    return rows


# ---------------------------------------------------------------------------------- tokenize


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("写一首关于春天的诗", ["写", "一", "首", "关", "于", "春", "天", "的", "诗"]),
        ("Hello, World!", ["hello", "world"]),
        ("用Python写3个函数", ["用", "python", "写", "3", "个", "函", "数"]),
        ("你好，世界！《三体》", ["你", "好", "世", "界", "三", "体"]),  # CJK punctuation is no token
        ("GPT-4o's  snake_case", ["gpt", "4o", "s", "snake", "case"]),
        ("ＡＢ１２ café", ["caf"]),  # fullwidth letters/digits and é separate tokens
        ("ひらがな 한국 \U00020000", ["ひ", "ら", "が", "な", "한", "국", "\U00020000"]),
        ("", []),
        (" ，。！ ... ", []),
    ],
)
def test_tokenize(text, tokens):
    assert tokenize(text) == tokens


# ---------------------------------------------------------------------------------- rouge_l


def test_rouge_l_hand_checked():
    # LCS("ABCBDAB", "BDCABA") = 4 ("BCBA"): F = 2*4 / (7+6)
    assert rouge_l(list("ABCBDAB"), list("BDCABA")) == pytest.approx(8 / 13)
    # one character changed in nine: LCS 8, F = 16/18
    assert rouge_l(tokenize("写一首关于春天的诗"), tokenize("写一首关于秋天的诗")) == pytest.approx(16 / 18)
    # words: LCS "write a poem" = 3 of 4 and 5 tokens
    assert rouge_l(tokenize("Write a short poem"), tokenize("write a poem about spring")) == pytest.approx(6 / 9)
    assert rouge_l(["a", "b"], ["a", "b"]) == 1.0
    assert rouge_l(["a", "b"], ["c", "d"]) == 0.0
    assert rouge_l([], ["a"]) == 0.0
    assert rouge_l([], []) == 0.0
    # repeats count once per occurrence: LCS("的的的的", "的") = 1
    assert rouge_l(list("的的的的"), ["的"]) == pytest.approx(2 / 5)


def test_rouge_l_matches_textbook_lcs_including_long_rows():
    rng = random.Random(7)
    for _ in range(300):
        # up to 150 tokens, so the bit vectors span several machine words
        a = [rng.choice("abcde") for _ in range(rng.randint(0, 150))]
        b = [rng.choice("abcdef") for _ in range(rng.randint(0, 150))]
        assert rouge_l(a, b) == pytest.approx(rouge_dp(a, b))
        assert rouge_l(a, b) == rouge_l(b, a)


# ---------------------------------------------------------------------------------- the index


@pytest.mark.parametrize("use_numpy", BACKENDS)
def test_drops_a_near_duplicate_and_keeps_a_different_row(use_numpy):
    index = NearDuplicateIndex(use_numpy=use_numpy)
    assert index.add_if_novel("写一首关于春天的诗") == 0
    assert index.add_if_novel("写一首关于秋天的诗。") is None  # 0.89: dropped
    assert index.add_if_novel("解释一下什么是机器学习") == 1
    assert index.add_if_novel("WRITE a poem about the sea!") == 2
    assert index.add_if_novel("Write a poem about the sea") is None  # case and punctuation only
    assert index.add_if_novel("Write a poem about my home town") == 3  # 2*4/(6+7) = 0.62: kept
    assert len(index) == 4
    assert index.stats()["rows"] == 4
    assert index.stats()["dropped"] == 2


@pytest.mark.parametrize("use_numpy", BACKENDS)
def test_add_is_unconditional_and_find_does_not_add(use_numpy):
    index = NearDuplicateIndex(use_numpy=use_numpy)
    assert index.add("写一首关于春天的诗") == 0
    assert index.add("写一首关于春天的诗") == 1  # seeds are kept even when they repeat
    assert index.find("写一首关于夏天的诗") == 0  # the best-matching earlier id first
    assert index.find("介绍一下长城的历史") is None
    assert len(index) == 2


@pytest.mark.parametrize("use_numpy", BACKENDS)
def test_threshold_is_strict(use_numpy):
    # a 10-token and a 10-token row sharing 7: F = 0.7, not above 0.7
    base = "一二三四五六七八九十"
    at = "一二三四五六七甲乙丙"
    assert rouge_l(tokenize(base), tokenize(at)) == pytest.approx(0.7)
    index = NearDuplicateIndex(0.7, use_numpy=use_numpy)
    index.add(base)
    assert index.find(at) is None
    assert index.find("一二三四五六七八甲乙") == 0  # 0.8


@pytest.mark.parametrize("use_numpy", BACKENDS)
def test_empty_rows_are_kept_and_never_match(use_numpy):
    index = NearDuplicateIndex(use_numpy=use_numpy)
    assert index.find("") is None  # empty index
    assert index.add_if_novel("") == 0
    assert index.add_if_novel("，。！？") == 1  # no tokens either
    assert index.add_if_novel("") == 2
    assert index.find("写诗") is None
    assert index.add_if_novel("写诗") == 3
    assert index.find("写诗") == 3


@pytest.mark.parametrize("use_numpy", BACKENDS)
def test_repeated_tokens_are_a_multiset(use_numpy):
    index = NearDuplicateIndex(use_numpy=use_numpy)
    index.add("哈哈哈哈哈哈")
    assert index.find("哈") is None  # 2/7
    assert index.find("哈哈哈哈哈哈哈") == 0  # 12/13


@pytest.mark.parametrize("use_numpy", BACKENDS)
def test_long_rows(use_numpy):
    rng = random.Random(3)
    words = [f"w{i}" for i in range(400)]
    long_row = [rng.choice(words) for _ in range(120)]
    edited = long_row[:50] + ["x", "y", "z"] + long_row[60:]  # LCS 110 of 120 and 113
    index = NearDuplicateIndex(use_numpy=use_numpy)
    index.add(" ".join(long_row))
    assert index.find(" ".join(edited)) == 0
    assert index.find(" ".join(long_row[:70])) == 0  # a prefix: 2*70/190 = 0.737
    assert index.find(" ".join(long_row[:60])) is None  # 2*60/180 = 0.667


def test_thresholds_validated():
    with pytest.raises(ValueError):
        NearDuplicateIndex(0)
    with pytest.raises(ValueError):
        NearDuplicateIndex(1.5)
    index = NearDuplicateIndex(1.0)  # F > 1 never happens: nothing is a duplicate
    index.add("写一首关于春天的诗")
    assert index.add_if_novel("写一首关于春天的诗") == 1


@pytest.mark.parametrize("use_numpy", BACKENDS)
def test_exhaustive_search_is_exact(use_numpy):
    """``find_exhaustive`` answers exactly what a scan with the textbook LCS answers."""
    rows = generated_rows(300, seed=11)
    index = NearDuplicateIndex(use_numpy=use_numpy)
    kept: list[list[str]] = []
    for text in rows:
        tokens = tokenize(text)
        truth = any(rouge_dp(tokens, k) > 0.7 for k in kept)
        found = index.find_exhaustive(text)
        assert (found is not None) == truth, text
        if found is not None:
            assert rouge_dp(tokens, kept[found]) > 0.7  # the id is a real match
        else:
            index.add(text)
            kept.append(tokens)


@pytest.mark.parametrize("use_numpy", BACKENDS)
def test_same_decisions_as_the_greedy_reference_for_short_rows(use_numpy):
    """Rows of at most 19 tokens: the candidate search provably finds every near-duplicate.

    (At 0.7 a row of n <= 19 tokens shares at least n - 8 of them with any near-duplicate, so two
    of the shared ones are among the 10 rarest of both rows: they share a key.)
    """
    rows = [r for r in generated_rows(1500, seed=2) if len(tokenize(r)) <= 19]
    seeds = [r for r in generated_rows(200, seed=1) if len(tokenize(r)) <= 19]
    expected = greedy_reference(seeds, rows)
    index = NearDuplicateIndex(use_numpy=use_numpy)
    for s in seeds:
        index.add(s)
    got = [index.add_if_novel(text) is None for text in rows]
    assert len(rows) > 400 and sum(expected) > 200  # plenty of rows and of near-duplicates
    assert got == expected
    assert index.stats()["recounts"] >= 3  # past three frequency recounts (64, 128, 256 rows)


@pytest.mark.parametrize("use_numpy", BACKENDS)
def test_close_to_the_greedy_reference_for_long_rows(use_numpy):
    """Longer rows: the search is approximate; every drop is still a verified near-duplicate.

    Tolerance: at least 97% of the reference's drops found (the issue's target), at least 99%
    of the index's drops also dropped by the reference (the greedy order can cascade a miss).
    """
    seeds = generated_rows(40, seed=1)
    rows = generated_rows(600, seed=2)
    expected = greedy_reference(seeds, rows)
    index = NearDuplicateIndex(use_numpy=use_numpy)
    kept = {index.add(s): tokenize(s) for s in seeds}
    got = []
    for text in rows:
        match = index.find(text)
        if match is not None:
            assert rouge_l(tokenize(text), kept[match]) > 0.7  # verified, never a guess
        rid = index.add_if_novel(text)
        assert (rid is None) == (match is not None)
        if rid is not None:
            kept[rid] = tokenize(text)
        got.append(rid is None)
    assert sum(expected) > 200 and max(map(len, kept.values())) > 25
    found = sum(g and e for g, e in zip(got, expected))
    assert found / sum(expected) >= 0.97
    assert found / sum(got) >= 0.99


def test_backends_agree_on_ids():
    if not dedup._HAVE_NUMPY:
        pytest.skip("numpy >= 2 not installed")
    rows = generated_rows(400, seed=5)
    a, b = NearDuplicateIndex(use_numpy=True), NearDuplicateIndex(use_numpy=False)
    assert [a.find(t) if a.add_if_novel(t) is None else -1 for t in rows] == [
        b.find(t) if b.add_if_novel(t) is None else -1 for t in rows
    ]
    assert a.stats()["backend"] == "numpy" and b.stats()["backend"] == "python"
