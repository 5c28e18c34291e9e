"""The eval job's arithmetic: per-question grades to per-class cells, pairwise points, and which
EvalResult rows and summary scores a model gets in each mode (hand-computed values beside each)."""

from __future__ import annotations

import pytest

from belle_evaluator.aggregate import Cell, ordered_classes, pairwise_points, summarize
from belle_evaluator.grading import Grades
from belle_evaluator.record import model_cells, result_rows, score_table

CLASSES = ["math", "others", "math", "classification", "others", "brainstorming"]


def test_summarize_means_counts_and_unparsable():
    values = [1.0, 0.0, None, 0.5, 1.0, 0.25]
    unparsable = [False, False, True, False, False, False]
    cells = summarize(CLASSES, values, unparsable)
    # Class keys in the canonical order (classification before math), then the two overall keys.
    assert list(cells) == ["brainstorming", "classification", "math", "others", "overall", "overall_without_others"]
    assert cells["math"] == Cell(score=1.0, count=1, unparsable=1, questions=2)          # (1.0) / 1
    assert cells["others"] == Cell(score=0.5, count=2, unparsable=0, questions=2)        # (0 + 1) / 2
    # overall: (1 + 0 + 0.5 + 1 + 0.25) / 5 = 2.75 / 5 = 0.55
    assert cells["overall"] == Cell(score=pytest.approx(0.55), count=5, unparsable=1, questions=6)
    # without others: (1 + 0.5 + 0.25) / 3 = 1.75 / 3
    assert cells["overall_without_others"] == Cell(score=pytest.approx(1.75 / 3), count=3, unparsable=1,
                                                   questions=4)


def test_summarize_nothing_scorable_is_none_not_zero():
    cells = summarize(["others", "math"], [None, None])
    assert cells["math"] == Cell(None, 0, 0, 1)
    assert cells["overall"] == Cell(None, 0, 0, 2)
    # Only "others" questions: the score without others has no questions at all.
    assert summarize(["others"], [1.0])["overall_without_others"] == Cell(None, 0, 0, 0)


def test_summarize_refuses_mismatched_lengths():
    with pytest.raises(ValueError):
        summarize(["math"], [1.0, 0.0])


def test_ordered_classes_canonical_then_unknown():
    assert ordered_classes(["others", "math", "x", "open qa", "math"]) == ["open qa", "math", "others", "x"]


@pytest.mark.parametrize("outcome, points", [("A", (1.0, 0.0)), ("B", (0.0, 1.0)), ("tie", (0.5, 0.5)),
                                             (None, (None, None))])
def test_pairwise_points(outcome, points):
    assert pairwise_points(outcome) == points


def _grades(score, unparsable, ref_metric, ref_score) -> Grades:
    n = len(score)
    return Grades(score=score, unparsable=unparsable, judge_reply=[None] * n, reference_metric=ref_metric,
                  reference_score=ref_score, extra=[{}] * n)


# math (math_match, reference 1), others (no metric), classification (exact_match, reference 0)
Q_CLASSES = ["math", "others", "classification"]


def test_judge_mode_rows_and_scores():
    g = _grades([1.0, 0.0, None], [False, False, True], ["math_match", None, "exact_match"], [1.0, None, 0.0])
    primary, reference = model_cells("judge", Q_CLASSES, g)
    rows = {(task, metric): (cell.score, cell.count, cell.unparsable, cell.questions)
            for task, metric, cell in result_rows("judge", primary, reference)}
    assert rows == {
        ("classification", "judge"): (None, 0, 1, 1),
        ("math", "judge"): (1.0, 1, 0, 1),
        ("others", "judge"): (0.0, 1, 0, 1),
        ("overall", "judge"): (0.5, 2, 1, 3),                      # (1 + 0) / 2
        ("overall_without_others", "judge"): (1.0, 1, 1, 2),       # (1) / 1
        ("classification", "exact_match"): (0.0, 1, 0, 1),
        ("math", "math_match"): (1.0, 1, 0, 1),
        ("overall", "reference"): (0.5, 2, 0, 3),                  # (1 + 0) / 2; "others" has no metric
        ("overall_without_others", "reference"): (0.5, 2, 0, 2),
    }
    table = score_table("judge", primary)
    assert table["math"] == {"score": 1.0, "count": 1, "unparsable": 0, "metric": "judge"}
    assert table["overall"]["score"] == 0.5


def test_reference_mode_scores_use_each_class_metric():
    g = _grades([1.0, None, 0.0], [False] * 3, ["math_match", None, "exact_match"], [1.0, None, 0.0])
    primary, reference = model_cells("reference", Q_CLASSES, g)
    table = score_table("reference", primary)
    assert table["math"]["metric"] == "math_match" and table["classification"]["metric"] == "exact_match"
    assert table["others"] == {"score": None, "count": 0, "unparsable": 0, "metric": None}
    assert table["overall"] == {"score": 0.5, "count": 2, "unparsable": 0, "metric": "reference"}
    # No judge rows; the reference rows are the same as in judge mode.
    assert {(t, m) for t, m, _ in result_rows("reference", primary, reference)} == {
        ("classification", "exact_match"), ("math", "math_match"), ("overall", "reference"),
        ("overall_without_others", "reference")}


def test_pairwise_mode_rows_are_win_rates():
    # Points 1 (win), 0.5 (tie), None (no verdict): win rate (1 + 0.5) / 2 = 0.75.
    g = _grades([1.0, 0.5, None], [False, False, True], [None, None, None], [None, None, None])
    primary, reference = model_cells("pairwise", Q_CLASSES, g)
    rows = {(t, m): c.score for t, m, c in result_rows("pairwise", primary, reference)}
    assert rows[("overall", "pairwise_win_rate")] == 0.75
    assert rows[("overall_without_others", "pairwise_win_rate")] == 1.0   # math only: (1) / 1
    assert rows[("classification", "pairwise_win_rate")] is None
    assert score_table("pairwise", primary)["others"]["metric"] == "pairwise_win_rate"
