"""The eval job's spec: candidates from the registry and from endpoints, the class filter (checked
without importing the evaluator), quick-run limits, and pairwise's exactly-two rule."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from belle_shared.job_types import parse_spec
from belle_shared.specs import EVAL_CLASSES, EvalSpec, canonical_eval_class

JUDGE = {"base_url": "http://127.0.0.1:1/v1", "model": "judge"}
ENDPOINT = {"base_url": "http://127.0.0.1:2/v1", "model": "served"}


def test_defaults():
    spec = parse_spec({"type": "eval", "model_ids": ["m"], "judge": JUDGE})
    assert (spec.candidate_endpoints, spec.classes, spec.max_questions, spec.batch_size) == ([], None, None, 8)


def test_endpoint_candidates_alone_are_enough():
    spec = parse_spec({"type": "eval", "candidate_endpoints": [ENDPOINT], "mode": "reference"})
    assert spec.model_ids == [] and spec.candidate_endpoints[0].model == "served"


def test_no_candidate_at_all_is_refused():
    with pytest.raises(ValidationError, match="at least one model"):
        parse_spec({"type": "eval", "mode": "reference"})
    with pytest.raises(ValidationError, match="at least one model"):
        parse_spec({"type": "eval", "model_ids": [], "candidate_endpoints": [], "mode": "reference"})


@pytest.mark.parametrize("models, endpoints, ok", [
    (["a", "b"], [], True),
    (["a"], [ENDPOINT], True),            # one of each: two in total
    ([], [ENDPOINT, {**ENDPOINT, "model": "other"}], True),
    (["a"], [], False),
    (["a", "b"], [ENDPOINT], False),      # three in total
])
def test_pairwise_needs_exactly_two_candidates_in_total(models, endpoints, ok):
    data = {"type": "eval", "model_ids": models, "candidate_endpoints": endpoints, "mode": "pairwise", "judge": JUDGE}
    if ok:
        assert parse_spec(data).mode == "pairwise"
    else:
        with pytest.raises(ValidationError, match="exactly two"):
            parse_spec(data)


def test_classes_are_canonicalised_and_deduplicated():
    spec = EvalSpec(model_ids=["m"], mode="reference", classes=["Open_QA", "MATH", "open qa", "other", "Others"])
    assert spec.classes == ["open qa", "math", "others"]


def test_unknown_class_is_refused_naming_it():
    with pytest.raises(ValidationError) as info:
        EvalSpec(model_ids=["m"], mode="reference", classes=["math", "poetry"])
    error = info.value.errors()[0]
    assert error["loc"] == ("classes",)
    assert "unknown class 'poetry'" in error["msg"] and "others" in error["msg"]


def test_empty_class_filter_and_bad_limits_are_refused():
    for bad in ({"classes": []}, {"max_questions": 0}, {"batch_size": 0}):
        with pytest.raises(ValidationError):
            EvalSpec(model_ids=["m"], mode="reference", **bad)


def test_twelve_classes_with_others_last():
    assert len(EVAL_CLASSES) == 12 and EVAL_CLASSES[-1] == "others"
    assert canonical_eval_class(" Closed - QA ") == "closed qa"
    assert canonical_eval_class("OTHER") == "others"
    assert canonical_eval_class("others qa") is None
    assert canonical_eval_class(3) is None  # type: ignore[arg-type]


def test_evalset_uses_the_spec_class_list():
    from belle_evaluator import evalset

    assert evalset.CLASSES is EVAL_CLASSES
    assert evalset.canonical_class("Other") == "others"


def test_specs_do_not_import_the_evaluator():
    # The gateway validates specs; it must not need the evaluator package (nor torch through it).
    code = "import sys, belle_shared.specs; print(any(m.startswith('belle_evaluator') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
