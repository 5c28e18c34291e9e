"""The preference_pairs job's pairing rule (`belle_evaluator.pairs.pick_pair`): the best and the worst
scored answer of one prompt, ties, the score gap, identical texts, empty and unscored answers."""

from __future__ import annotations

import pytest

from belle_evaluator.pairs import DROP_REASONS, Pick, pick_pair


def test_the_best_answer_is_chosen_and_the_worst_rejected():
    pick = pick_pair(["a", "b", "c", "d"], [0.5, 1.0, 0.0, 0.25])
    assert pick == Pick("pair", chosen=1, rejected=2, best=1.0, worst=0.0)
    assert pick.gap == 1.0


def test_equal_scores_are_the_earlier_sample():
    # Two answers share the best score and two the worst: the first of each, so a rerun picks the same.
    assert pick_pair(["a", "b", "c", "d"], [0.0, 1.0, 0.0, 1.0]) == Pick("pair", chosen=1, rejected=0, best=1.0,
                                                                         worst=0.0)


def test_different_answers_with_one_score_are_a_tie():
    assert pick_pair(["a", "b", "c"], [1.0, 1.0, 1.0]) == Pick("tie", best=1.0, worst=1.0)
    assert pick_pair(["a", "b"], [0.0, 0.0]).outcome == "tie"


def test_the_gap_must_exceed_min_score_gap():
    assert pick_pair(["a", "b"], [0.75, 0.5], min_gap=0.25) == Pick("below_gap", best=0.75, worst=0.5)
    assert pick_pair(["a", "b"], [0.8, 0.5], min_gap=0.25).outcome == "pair"
    # min_score_gap 0 keeps any difference.
    assert pick_pair(["a", "b"], [0.5, 0.49]).outcome == "pair"


def test_identical_texts_are_never_a_pair():
    assert pick_pair(["奇数", "奇数 ", " 奇数"], [1.0, 1.0, 1.0]) == Pick("identical", best=1.0, worst=1.0)
    # Whatever their scores say: the rejected answer is the worst one whose text differs from the chosen one.
    pick = pick_pair(["x", "x", "y", "z"], [1.0, 0.0, 0.5, 0.75])
    assert (pick.outcome, pick.chosen, pick.rejected, pick.gap) == ("pair", 0, 2, 0.5)
    assert pick_pair(["x", "x"], [1.0, 0.0]).outcome == "identical"
    # The only differing answer scores as high as the chosen one: a tie.
    assert pick_pair(["x", "x", "y"], [1.0, 0.0, 1.0]).outcome == "tie"


def test_empty_and_unscored_answers_take_no_part():
    assert pick_pair(["a", "", "b"], [1.0, 0.0, 0.5]) == Pick("pair", chosen=0, rejected=2, best=1.0, worst=0.5)
    assert pick_pair(["a", "  ", "b"], [1.0, 0.0, None]) == Pick("unscored")
    assert pick_pair(["a", "b"], [None, None]).outcome == "unscored"
    assert pick_pair([], []).outcome == "unscored"
    assert Pick("unscored").gap is None


def test_every_outcome_but_a_pair_is_a_drop_reason():
    assert set(DROP_REASONS) == {"tie", "below_gap", "identical", "unscored"}
    with pytest.raises(ValueError):
        pick_pair(["a"], [1.0, 0.0])
