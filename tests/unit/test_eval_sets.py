"""Unit tests for belle_shared.eval_sets: the eval-set row checks the gateway runs at submit time."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from belle_shared.eval_sets import EvalRow, EvalSetError, check_eval_row, iter_eval_rows, parse_eval_rows
from belle_shared.specs import EVAL_CLASSES


def line(**fields) -> str:
    base = {"question": "1+1 等于几？", "class": "math", "std_answer": "2"}
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not ...}, ensure_ascii=False)


def error_of(lines) -> EvalSetError:
    with pytest.raises(EvalSetError) as info:
        parse_eval_rows(lines)
    return info.value


def test_rows_with_lenient_classes_and_optional_reference():
    rows = parse_eval_rows([
        "\ufeff" + line(**{"class": "Open_QA", "question": "  天空是什么颜色？ "}),
        "",
        line(**{"class": "CLOSED-qa", "std_answer": None}),
        line(**{"class": "other", "std_answer": ...}),
        line(extra="ignored"),
    ])
    # Line 2 is blank: the rows are lines 1, 3, 4 and 5; "other" is "others"; strings are stripped.
    assert rows == [EvalRow(1, "天空是什么颜色？", "open qa", "2"), EvalRow(3, "1+1 等于几？", "closed qa", ""),
                    EvalRow(4, "1+1 等于几？", "others", ""), EvalRow(5, "1+1 等于几？", "math", "2")]


def test_whole_text_is_split_on_newlines_only():
    # U+2028 inside a JSON string is not a line break: two rows, not three.
    text = line(question="第一行\u2028第二行") + "\n" + line() + "\n"
    rows = parse_eval_rows(text)
    assert [r.line for r in rows] == [1, 2] and rows[0].question == "第一行\u2028第二行"
    assert [r.line for r in parse_eval_rows(text.encode("utf-8"))] == [1, 2]


@pytest.mark.parametrize(("bad", "message"), [
    (line(**{"class": "opne qa"}), f'unknown class "opne qa" (known: {", ".join(EVAL_CLASSES)})'),
    (line(question=...), '"question" is missing or empty'),
    (line(question="   "), '"question" is missing or empty'),
    (line(question=3), '"question" must be a string'),
    (line(**{"class": ...}), '"class" is missing or empty'),
    (line(**{"class": ["math"]}), '"class" must be a string'),
    (line(std_answer=2), '"std_answer" must be a string'),
    ("[1, 2]", "not a JSON object (found an array)"),
    ('"text"', "not a JSON object (found a string)"),
    ("42", "not a JSON object (found 42)"),
    ('{"question": "x",', "not valid JSON (Expecting property name enclosed in double quotes at column 18)"),
])
def test_bad_row_names_its_line(bad, message):
    error = error_of([line(), "   ", bad, line()])
    assert (error.line, error.message) == (3, message)
    assert str(error) == f"eval set: line 3: {message}"


def test_bad_utf8_names_line_and_byte():
    error = error_of([line().encode(), b'{"question": "\xff"}'])
    assert (error.line, error.message) == (2, "not valid UTF-8 (byte 0xff at position 15)")


def test_zero_rows_is_an_error_of_the_whole_file():
    error = error_of(["", "  ", "\n"])
    assert error.line is None and str(error) == "eval set has no questions (every line is blank)"
    # The lazy form leaves that to its caller: it just yields nothing.
    assert list(iter_eval_rows(["", " "])) == []


def test_check_eval_row_alone():
    assert check_eval_row({"question": "q", "class": "Math", "std_answer": " 4 "}) == ("q", "math", "4")
    with pytest.raises(ValueError, match="unknown class"):
        check_eval_row({"question": "q", "class": "poetry"})


def test_agrees_with_the_evaluator_on_the_bundled_set():
    # The evaluator's parser and this one read the same files; they must agree row for row.
    from belle_evaluator.evalset import EVAL_SET_FILE, parse_eval_set

    data = (resources.files("belle_evaluator") / "data" / EVAL_SET_FILE).read_bytes()
    ours = [(r.line, r.question, r.cls, r.std_answer) for r in parse_eval_rows(data)]
    theirs = [(q.line, q.question, q.cls, q.std_answer) for q in parse_eval_set(data)]
    assert ours == theirs and len(ours) >= 200
