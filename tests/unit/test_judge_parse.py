"""Reading judge replies: scores for single-answer grading, verdicts for pairwise judging."""

from __future__ import annotations

import doctest

import pytest

from belle_evaluator import metrics
from belle_shared import judging
from belle_shared.judging import parse_preference, parse_score


@pytest.mark.parametrize("reply, expected", [
    # The plain forms judges use.
    ("得分: 0.8", 0.8),
    ("得分：1", 1.0),
    ("分数: 0.5分", 0.5),
    ("评分：0.75", 0.75),
    ("Score: 1", 1.0),
    ("score = 0.7", 0.7),
    ("得分为0.8分", 0.8),
    ("I would give this answer a score of 0.8.", 0.8),
    ("得分：０.５", 0.5),                                          # full-width digits
    # Markdown around label or number.
    ("**得分**: 0.6", 0.6),
    ("**得分：0.6**\n理由：基本正确。", 0.6),
    ("得分：**1**", 1.0),
    ("### 评分\nScore: 0.9", 0.9),
    # A first line that is only the score.
    ("0.9", 0.9),
    ("0.9\n理由：回答准确，但不够简洁。", 0.9),
    ("**1**\n完全正确。", 1.0),
    # Stated scales are applied: 8/10 = 0.8, 85/100 = 0.85, 8 of a full 10 = 0.8, 80% = 0.8.
    ("8/10", 0.8),
    ("85/100", 0.85),
    ("8分（满分10分）", 0.8),
    ("得分: 8/10，思路对，但结果有误。", 0.8),
    ("评分（满分10分）：7", 0.7),
    ("Score (out of 10): 7", 0.7),
    ("Score: 8 out of 10", 0.8),
    ("得分: 80%", 0.8),
    ("得分: 1/1", 1.0),                                            # a scale of 1 is still a scale
    ("得分: 0.8（满分1分）", 0.8),
    # A labelled score wins over numbers in the reason.
    ("得分: 0.5\n理由: 标准答案是3，模型回答是5，第2步算错了。", 0.5),
    ("模型把 12 写成了 21。\n得分: 0\n满分为1分。", 0.0),
    ("这个分数是3/4，模型却写成了0.75以外的值。得分: 0", 0.0),      # 分数 (a fraction) needs a colon to be a label
    ("3\n得分: 0.5", 0.5),                                         # a labelled score beats a lone first line
    ("得分: 1分。模型回答与标准答案完全一致，翻译准确无误。", 1.0),  # BELLE's own demo output
    ("得分: 1\n理由: 正确。\n最终得分: 1", 1.0),                   # labelled twice, agreeing
    ("得分: 8/10\n综合得分：0.8", 0.8),                            # 8/10 and 0.8 agree
    ("得分点: 三个要点都答到了。", None),                            # 得分点 is no label
])
def test_parse_score(reply, expected):
    assert parse_score(reply) == expected


@pytest.mark.parametrize("reply", [
    "得分: 1\n最终得分: 0",                 # labelled scores disagree
    "Score: 0.9 ... on reflection, Score: 0.4",
    "得分: 8",                              # outside [0, 1] and no scale: never guessed as 8/10
    "得分: -1",                             # never clamped to 0
    "得分: 11/10",                          # outside its own scale
    "得分: 1.5分",
    "85",                                   # a lone number outside [0, 1]
    "Score: <number between 0 and 1>",
    "得分: 无法判断",
    "这个回答还可以。",                      # nothing parsable: None, never 0
    "理由：第1步对，第2步错，共3步。",         # numbers, but none is a score
    "",
])
def test_parse_score_is_none_when_unclear(reply):
    assert parse_score(reply) is None


@pytest.mark.parametrize("reply, expected", [
    ("[[A]]", "A"),
    ("回答B的计算是对的，回答A算错了。\n[[B]]", "B"),
    ("两个回答都正确。[[C]]", "tie"),
    ("Both are equally good. [[tie]]", "tie"),
    ("[[ A ]]", "A"),
    ("更好的回答: A", "A"),
    ("更好的回答是回答B。", "B"),
    ("胜者：B", "B"),
    ("Winner: Answer A", "A"),
    ("平局", "tie"),
    ("两个回答一样好，平局。\n[[C]]", "tie"),       # two ways of saying tie agree
    ("不是平局，更好的回答: A", "A"),                # a negated 平局 is no verdict
    ("**更好的回答：A**\n\n理由：A 给出了正确答案 12。\n[[A]]", "A"),
    ("［［Ｂ］］", "B"),                              # full-width brackets and letter
])
def test_parse_preference(reply, expected):
    assert parse_preference(reply) == expected


@pytest.mark.parametrize("reply", [
    "[[A]]\n胜者: B",                                 # conflicting verdicts
    "[[A]] [[B]]",
    "请在最后输出[[A]]、[[B]]或[[C]]。",              # the rubric echoed back: all three choices
    "两个回答各有千秋。",                              # no verdict
    "winner: a tie",                                  # "a" is an article, not answer A; no tie keyword either
    "[A]",                                            # single brackets are not FastChat's format
    "",
])
def test_parse_preference_is_none_when_unclear(reply):
    assert parse_preference(reply) is None


def test_module_examples_hold():
    for module in (judging, metrics):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__
