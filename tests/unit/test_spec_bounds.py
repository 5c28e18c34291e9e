"""Spec values pydantic used to accept that a worker then refused (or PostgreSQL could not store): each is
now a validation error naming the field, at submit time."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from belle_shared.job_types import parse_spec
from belle_shared.specs import MAX_EVAL_CANDIDATES, PENDING_OUTPUT

TEACHER = {"base_url": "http://127.0.0.1:1/v1", "model": "teacher"}
TRAIN = {"type": "train", "base_model": "tiny", "dataset_id": "00000000-0000-0000-0000-000000000001"}


def _refused(spec: dict, loc: tuple, fragment: str = "") -> None:
    with pytest.raises(ValidationError) as info:
        parse_spec(spec)
    error = info.value.errors()[0]
    assert tuple(error["loc"])[-len(loc):] == loc, info.value
    assert fragment in str(info.value)


@pytest.mark.parametrize("seed", [-1, 2**31, 10**30, 1e30])
def test_train_seed_is_what_numpy_and_the_fine_tuning_api_take(seed):
    _refused({**TRAIN, "hyperparameters": {"seed": seed}}, ("hyperparameters", "seed"))


def test_train_seed_bounds_themselves_are_fine():
    for seed in (0, 2**31 - 1):
        assert parse_spec({**TRAIN, "hyperparameters": {"seed": seed}}).hyperparameters.seed == seed


def test_lora_alpha_has_a_bound():
    _refused({**TRAIN, "method": "lora", "lora": {"alpha": 10**400}}, ("lora", "alpha"))


@pytest.mark.parametrize("raw", ["Infinity", "NaN", "-Infinity"])
def test_infinity_and_nan_are_refused_everywhere(raw):
    # Python's JSON reader takes these; PostgreSQL's jsonb, where specs are stored, does not.
    teacher = {**TEACHER, "prompt_price_per_million": json.loads(raw)}
    _refused({"type": "datagen", "teacher": teacher}, ("teacher", "prompt_price_per_million"), "finite")
    _refused({"type": "datagen", "teacher": TEACHER, "max_cost_usd": json.loads(raw)}, ("max_cost_usd",))


@pytest.mark.parametrize("url", ["u", "ftp://example/v1", "http://", "127.0.0.1:8000/v1", "http://[::1/v1"])
def test_teacher_base_url_is_an_http_url(url):
    _refused({"type": "datagen", "teacher": {**TEACHER, "base_url": url}}, ("teacher", "base_url"))


def test_eval_names_each_model_once():
    base = {"type": "eval", "mode": "reference"}
    _refused({**base, "model_ids": ["a", "b", "a"]}, ("model_ids",), "named twice")
    _refused({**base, "candidate_endpoints": [TEACHER, {**TEACHER, "base_url": "http://other/v1"}]},
             ("candidate_endpoints",), "endpoint:teacher")
    # Two pipeline references are both the stand-in while the pipeline is checked: not a duplicate.
    assert parse_spec({**base, "model_ids": [PENDING_OUTPUT, PENDING_OUTPUT]}).model_ids == [PENDING_OUTPUT] * 2


def test_eval_candidates_are_capped():
    base = {"type": "eval", "mode": "reference"}
    many = [{**TEACHER, "model": f"m{i}"} for i in range(MAX_EVAL_CANDIDATES + 1)]
    _refused({**base, "candidate_endpoints": many}, ("candidate_endpoints",), f"at most {MAX_EVAL_CANDIDATES}")
    _refused({**base, "model_ids": [f"m{i}" for i in range(MAX_EVAL_CANDIDATES + 1)]}, ("model_ids",))
    assert len(parse_spec({**base, "candidate_endpoints": many[:-1]}).candidate_endpoints) == MAX_EVAL_CANDIDATES


def test_requests_per_minute_has_a_bound():
    # The client spaces requests 60.0 / N seconds apart: a huge N cannot be made a float.
    _refused({"type": "datagen", "teacher": TEACHER, "requests_per_minute": 10**400}, ("requests_per_minute",))
    assert parse_spec({"type": "datagen", "teacher": TEACHER, "requests_per_minute": 10**6}).requests_per_minute
