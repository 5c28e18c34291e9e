"""Held-out eval sets of the teacher's task family and their exact, case-keeping scoring."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from belle_evaluator.metrics import METRICS, exact_match, exact_match_cased, reference_score
from belle_evaluator.record import class_metrics
from belle_shared.eval_sets import REFERENCE_METRICS, EvalRow, EvalSetError, parse_eval_rows
from belle_teacher import evalset, replies, tasks
from belle_teacher.kinds import KINDS


def test_eval_set_rows_are_distinct_balanced_correct_and_valid(tmp_path):
    rows = evalset.make_eval_set(80, seed=3)
    assert len({tasks.question_key(r["question"]) for r in rows}) == 80
    assert Counter(r["kind"] for r in rows) == {kind: 10 for kind in KINDS}
    for row in rows:
        assert tasks.answer_question(row["question"]) == row["std_answer"]   # the teacher's own solver agrees
        assert row["class"] == evalset.CLASS_OF_KIND[row["kind"]] and row["metric"] == "exact_match_cased"
    path = evalset.write_eval_set(rows, tmp_path / "eval.jsonl")
    parsed = parse_eval_rows(path.read_bytes().splitlines())
    assert {r.metric for r in parsed} == {"exact_match_cased"}
    assert evalset.make_eval_set(80, seed=3) == rows and evalset.make_eval_set(80, seed=4) != rows
    with pytest.raises(ValueError, match="unknown kinds"):
        evalset.make_eval_set(5, seed=0, kinds=["poetry"])


def test_generate_task_never_returns_a_held_out_question():
    first = tasks.generate_task(random.Random(11), "zh")
    held = {tasks.question_key(tasks.question_of(first.instruction, first.input))}
    again = tasks.generate_task(random.Random(11), "zh", avoid=held)
    assert tasks.question_key(tasks.question_of(again.instruction, again.input)) not in held
    with pytest.raises(ValueError, match="held-out"):
        tasks.generate_task(random.Random(0), "zh", avoid=_Everything())


class _Everything:
    def __contains__(self, item) -> bool:
        return True


def test_self_instruct_reply_with_a_holdout_skips_exactly_those_questions():
    prompt = replies.SelfInstructPrompt(language="zh", first_index=1, last_index=40)
    plain = replies.self_instruct_reply(prompt, random.Random(5), noise=0.0, completion=False)
    blocks = [b for b in plain.split("\n###\n")]
    # Hold out every question of the plain reply: the same seed must then write none of them.
    held = set()
    for block in blocks:
        lines = block.split("\n")
        instruction = lines[0].split(": ", 1)[1]
        input = lines[2] if lines[2] != replies.NO_INPUT["zh"] else ""
        held.add(tasks.question_key(tasks.question_of(instruction, input)))
    again = replies.self_instruct_reply(prompt, random.Random(5), noise=0.0, completion=False, holdout=frozenset(held))
    for block in again.split("\n###\n"):
        lines = block.split("\n")
        input = lines[2] if lines[2] != replies.NO_INPUT["zh"] else ""
        assert tasks.question_key(tasks.question_of(lines[0].split(": ", 1)[1], input)) not in held


def test_count_overlap_reads_instruction_and_conversation_rows(tmp_path):
    rows = evalset.make_eval_set(8, seed=1)
    eval_path = evalset.write_eval_set(rows, tmp_path / "eval.jsonl")
    inline = next(r for r in rows if "\n" not in r["question"])
    split = next(r for r in rows if "\n" in r["question"])
    instruction, input = split["question"].split("\n", 1)
    data = [
        {"instruction": inline["question"] + "  ", "input": "", "output": "x"},            # whitespace differs only
        {"instruction": instruction, "input": input, "output": "x"},
        {"conversations": [{"from": "human", "value": "你好"}, {"from": "assistant", "value": "好"},
                           {"from": "human", "value": inline["question"]}, {"from": "assistant", "value": "x"}]},
        {"instruction": "把12写成中文数字", "input": "", "output": "十二"},
    ]
    dataset = tmp_path / "data.jsonl"
    dataset.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in data), encoding="utf-8")
    assert evalset.count_overlap(dataset, eval_path) == 3
    assert evalset.main(["--eval", str(eval_path), "--check", str(dataset)]) == 1


def test_exact_match_cased_keeps_case_and_items():
    assert exact_match_cased("PURPLE VIOLIN。", "PURPLE VIOLIN") == 1.0
    assert exact_match_cased("purple violin", "PURPLE VIOLIN") == 0.0
    assert exact_match("purple violin", "PURPLE VIOLIN") == 1.0          # why the family needs its own metric
    assert exact_match_cased("3,12, 45", "3, 12, 45") == 1.0
    assert exact_match_cased("3, 12, 54", "3, 12, 45") == 0.0
    assert exact_match_cased("三百 零五", "三百零五") == 1.0
    assert exact_match_cased("-21", "21") == 0.0
    assert reference_score("rewrite", "abc", "ABC", "exact_match_cased") == ("exact_match_cased", 0.0)
    assert reference_score("rewrite", "abc", "ABC") == ("rouge_l", 1.0)
    assert set(METRICS) == set(REFERENCE_METRICS)


def test_row_metric_is_checked_and_decides_the_class_metric():
    with pytest.raises(EvalSetError) as caught:
        parse_eval_rows(['{"question": "q", "class": "math", "std_answer": "1"}',
                         '{"question": "q", "class": "math", "std_answer": "1", "metric": "exact"}'])
    assert caught.value.line == 2 and "metric" in caught.value.message
    rows = [EvalRow(1, "a", "math", "1", "exact_match_cased"), EvalRow(2, "b", "math", "2", "exact_match_cased"),
            EvalRow(3, "c", "rewrite", "x", "exact_match_cased"), EvalRow(4, "d", "rewrite", "y"),
            EvalRow(5, "e", "brainstorming", "")]
    assert class_metrics(rows) == {"math": "exact_match_cased", "rewrite": "reference", "brainstorming": None}
