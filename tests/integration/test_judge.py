"""The evaluator's judge against the offline teacher (a real OpenAI-compatible server, reached by the
real `openai` client), with its cache in this run's PostgreSQL.

Each test starts its own teacher serving a model name of its own: the cache key holds the judge's
base URL and model, so no test can be answered from another test's cache (the OS may hand a later
teacher the same port)."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid

import pytest
from sqlalchemy import select

from belle_evaluator.evalset import EvalQuestion, bundled_eval_set
from belle_shared.judging import load_judge_prompts, render_judge_prompt
from belle_evaluator.judge import Judge, load_pairwise_prompt, pairwise_outcome, render_pairwise_prompt
from belle_shared.db.models import Judgment as JudgmentRow
from belle_shared.errors import JobError
from belle_shared.specs import TeacherEndpoint
from teacher import start_teacher

pytestmark = pytest.mark.integration

WRONG = "我不知道。"
# Not a judge prompt: the offline teacher answers it with its generic reply, which states no score.
NOT_A_JUDGE_PROMPT = "请写一首关于秋天的诗。"


def _model() -> str:
    return f"judge-{uuid.uuid4().hex[:8]}"


def _endpoint(base_url: str, model: str, **options) -> TeacherEndpoint:
    return TeacherEndpoint(base_url=base_url, model=model, **options)


def _judge(endpoint: TeacherEndpoint, session_factory, *, api_key: str | None = None, concurrency: int = 8) -> Judge:
    return Judge(endpoint, api_key=api_key, session_factory=session_factory, concurrency=concurrency,
                 backoff_base=0.01)


def _questions(n: int) -> list[EvalQuestion]:
    """Open-QA questions with a reference: the offline judge compares their answers with it."""
    return [q for q in bundled_eval_set() if q.cls == "open qa" and q.std_answer][:n]


def _score_prompts(questions: list[EvalQuestion]) -> list[str]:
    """For each question: the reference as the answer (right), then WRONG."""
    templates = load_judge_prompts()
    return [render_judge_prompt(templates[q.cls], q, answer) for q in questions for answer in (q.std_answer, WRONG)]


def _cached_rows(session_factory, keys: list[str]) -> list[JudgmentRow]:
    with session_factory() as session:
        return list(session.scalars(select(JudgmentRow).where(JudgmentRow.key.in_(keys))))


def test_right_and_wrong_answers_score_1_and_0_and_a_rerun_asks_nothing(session_factory):
    model = _model()
    prompts = _score_prompts(_questions(4))
    with start_teacher(seed=0, latency=0.05, model=model) as teacher:
        endpoint = _endpoint(teacher.base_url, model, prompt_price_per_million=2.0, completion_price_per_million=6.0)
        first = _judge(endpoint, session_factory)
        judgments = asyncio.run(first.score(prompts))

        # Right, wrong for each of the 4 questions.
        assert [j.score for j in judgments] == [1.0, 0.0] * 4
        assert all(j.parsed and not j.cached for j in judgments)
        assert judgments[0].reply.startswith("得分: 1") and judgments[1].reply.startswith("得分: 0")
        t = first.totals
        assert (t.judged, t.sent, t.requests, t.cache_hits, t.retries, t.unparsable) == (8, 8, 8, 0, 0, 0)
        assert t.prompt_tokens == sum(j.prompt_tokens for j in judgments) > 0
        assert t.completion_tokens == sum(j.completion_tokens for j in judgments) > 0
        # $2 per million prompt tokens, $6 per million completion tokens.
        assert t.cost_usd == pytest.approx((t.prompt_tokens * 2.0 + t.completion_tokens * 6.0) / 1e6)
        assert t.to_dict()["cost_usd"] == round(t.cost_usd, 6)

        rows = _cached_rows(session_factory, [j.prompt_sha256 for j in judgments])
        assert len(rows) == 8
        assert {(r.kind, r.judge_model, r.base_url, r.parsed) for r in rows} == {
            ("score", model, teacher.base_url, True)}
        assert sorted(r.score for r in rows) == [0.0] * 4 + [1.0] * 4

        second = _judge(endpoint, session_factory)
        again = asyncio.run(second.score(prompts))
        assert [j.score for j in again] == [1.0, 0.0] * 4 and all(j.cached for j in again)
        assert [(j.reply, j.prompt_tokens) for j in again] == [(j.reply, j.prompt_tokens) for j in judgments]
        t = second.totals
        assert (t.judged, t.sent, t.requests, t.cache_hits, t.prompt_tokens, t.cost_usd) == (8, 0, 0, 8, 0, 0.0)

    # The teacher is gone now: a third run that needed any HTTP request (preflight included) would fail.
    third = asyncio.run(_judge(endpoint, session_factory).score(prompts))
    assert [j.score for j in third] == [1.0, 0.0] * 4


def test_an_unparsable_reply_is_recorded_as_such_never_as_0_and_cached(session_factory):
    model = _model()
    prompts = [NOT_A_JUDGE_PROMPT] + _score_prompts(_questions(1))[:1]
    with start_teacher(seed=0, model=model) as teacher:
        endpoint = _endpoint(teacher.base_url, model)
        judge = _judge(endpoint, session_factory)
        unparsable, right = asyncio.run(judge.score(prompts))
        assert unparsable.reply.startswith("抱歉")  # the teacher's generic reply
        assert (unparsable.score, unparsable.parsed) == (None, False)
        assert (right.score, right.parsed) == (1.0, True)
        assert judge.totals.unparsable == 1

        (row,) = _cached_rows(session_factory, [unparsable.prompt_sha256])
        assert (row.parsed, row.score, row.reply) == (False, None, unparsable.reply)

        rerun = _judge(endpoint, session_factory)
        (again,) = asyncio.run(rerun.score([NOT_A_JUDGE_PROMPT]))
        assert (again.score, again.parsed, again.cached) == (None, False, True)
        assert (rerun.totals.requests, rerun.totals.unparsable) == (0, 1)


def test_identical_prompts_in_one_batch_are_sent_once(session_factory):
    model = _model()
    right, wrong = _score_prompts(_questions(1))
    with start_teacher(seed=0, latency=0.2, model=model) as teacher:
        judge = _judge(_endpoint(teacher.base_url, model), session_factory)
        judgments = asyncio.run(judge.score([right] * 5 + [wrong]))
    assert [j.score for j in judgments] == [1.0] * 5 + [0.0]
    assert len({j.prompt_sha256 for j in judgments}) == 2
    assert (judge.totals.judged, judge.totals.sent, judge.totals.requests, judge.totals.cache_hits) == (6, 2, 2, 0)


def test_requests_are_in_flight_together_up_to_the_concurrency(session_factory):
    model = _model()
    prompts = _score_prompts(_questions(16))  # 32 distinct prompts
    assert len(set(prompts)) == 32
    with start_teacher(seed=0, latency=0.5, model=model) as teacher:
        endpoint = _endpoint(teacher.base_url, model)
        started = time.monotonic()
        wide = asyncio.run(_judge(endpoint, session_factory, concurrency=32).score(prompts))
        wide_s = time.monotonic() - started
        # One at a time would take 32 x 0.5 s = 16 s; all at once, about 0.5 s.
        assert wide_s < 4.0, wide_s
        assert [j.score for j in wide] == [1.0, 0.0] * 16

    narrow_model = _model()
    with start_teacher(seed=0, latency=0.5, model=narrow_model) as teacher:
        started = time.monotonic()
        asyncio.run(_judge(_endpoint(teacher.base_url, narrow_model), session_factory, concurrency=4).score(prompts))
        narrow_s = time.monotonic() - started
    # 4 at a time: 32 / 4 = 8 rounds of 0.5 s, at least 4 s.
    assert narrow_s >= 3.9, narrow_s


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_judge_is_a_job_error_naming_the_field(session_factory):
    prompts = _score_prompts(_questions(1))
    endpoint = _endpoint(f"http://127.0.0.1:{_free_port()}/v1", _model(), max_retries=1)
    judge = _judge(endpoint, session_factory)
    started = time.monotonic()
    with pytest.raises(JobError) as caught:
        asyncio.run(judge.score(prompts))
    assert time.monotonic() - started < 10
    assert (caught.value.code, caught.value.param) == ("judge_unreachable", "judge.base_url")
    assert caught.value.message.startswith("the judge at http://127.0.0.1:")
    assert judge.totals.sent == 0


def test_a_wrong_key_or_an_unknown_model_is_a_job_error_naming_the_field(session_factory):
    model = _model()
    prompts = _score_prompts(_questions(2))
    with start_teacher(seed=0, model=model, api_key="sk-right") as teacher:
        refused = _judge(_endpoint(teacher.base_url, model, api_key_secret="JUDGE_KEY"), session_factory,
                         api_key="sk-wrong")
        with pytest.raises(JobError) as caught:
            asyncio.run(refused.score(prompts))
        assert (caught.value.code, caught.value.param) == ("judge_unauthorized", "judge.api_key_secret")
        assert "JUDGE_KEY" in caught.value.message and "sk-wrong" not in caught.value.message

        unknown = _judge(_endpoint(teacher.base_url, "no-such-model"), session_factory, api_key="sk-right")
        with pytest.raises(JobError) as caught:
            asyncio.run(unknown.score(prompts))
        assert (caught.value.code, caught.value.param) == ("judge_model_not_found", "judge.model")
        assert "no-such-model" in caught.value.message
        assert unknown.totals.sent == 0

        # Errors are not cached: the same prompts with the right key and model are all asked.
        good = _judge(_endpoint(teacher.base_url, model), session_factory, api_key="sk-right")
        assert [j.score for j in asyncio.run(good.score(prompts))] == [1.0, 0.0] * 2
        assert good.totals.cache_hits == 0 and good.totals.sent == 4


def test_injected_rate_limits_and_server_errors_are_retried_until_everything_is_scored(session_factory):
    model = _model()
    prompts = _score_prompts(_questions(20))  # 40 prompts
    with start_teacher(seed=0, latency=0.02, error_rate=0.3, model=model) as teacher:
        # 12 retries: a prompt failing 13 times in a row at 30% is a 1-in-6-million event.
        judge = _judge(_endpoint(teacher.base_url, model, max_retries=12), session_factory, concurrency=16)
        judgments = asyncio.run(judge.score(prompts))
    assert [j.score for j in judgments] == [1.0, 0.0] * 20
    t = judge.totals
    assert t.sent == 40 and t.retries > 0
    assert t.requests == t.sent + t.retries  # every failed attempt was retried
    # The teacher alternates its injected errors: 429 first, then 503.
    assert set(t.errors) == {"rate_limited", "http_503"} and sum(t.errors.values()) == t.retries


def _pairwise_prompts(questions, first_right: bool) -> tuple[list[str], list[str]]:
    """(x then y, y then x) for each question; x is the reference if `first_right`, else WRONG."""
    template = load_pairwise_prompt()
    xy, yx = [], []
    for q in questions:
        x, y = (q.std_answer, WRONG) if first_right else (WRONG, q.std_answer)
        xy.append(render_pairwise_prompt(template, q, x, y))
        yx.append(render_pairwise_prompt(template, q, y, x))
    return xy, yx


def test_pairwise_both_orders_cancel_a_judge_that_always_prefers_the_first_answer(session_factory):
    model = _model()
    questions = _questions(4)
    with start_teacher(seed=0, position_bias="first", model=model) as teacher:
        judge = _judge(_endpoint(teacher.base_url, model), session_factory)
        xy, yx = _pairwise_prompts(questions, first_right=True)
        firsts = asyncio.run(judge.prefer(xy))
        seconds = asyncio.run(judge.prefer(yx))
    # The biased judge says A whatever the order, so x "wins" one order and y the other.
    assert [p.verdict for p in firsts] == ["A"] * 4 and [p.verdict for p in seconds] == ["A"] * 4
    assert [pairwise_outcome(f.verdict, s.verdict) for f, s in zip(firsts, seconds, strict=True)] == ["tie"] * 4
    assert judge.totals.sent == 8
    rows = _cached_rows(session_factory, [p.prompt_sha256 for p in firsts + seconds])
    assert {(r.kind, r.score, r.parsed) for r in rows} == {("pairwise", None, True)}


def test_pairwise_with_a_fair_judge_the_right_answer_wins_in_either_position(session_factory):
    model = _model()
    questions = _questions(3)
    with start_teacher(seed=0, position_bias="none", model=model) as teacher:
        judge = _judge(_endpoint(teacher.base_url, model), session_factory)
        xy, yx = _pairwise_prompts(questions, first_right=True)
        firsts, seconds = asyncio.run(judge.prefer(xy)), asyncio.run(judge.prefer(yx))
        assert [p.verdict for p in firsts] == ["A"] * 3 and [p.verdict for p in seconds] == ["B"] * 3
        assert [pairwise_outcome(f.verdict, s.verdict) for f, s in zip(firsts, seconds, strict=True)] == ["A"] * 3

        xy, yx = _pairwise_prompts(questions, first_right=False)
        firsts, seconds = asyncio.run(judge.prefer(xy)), asyncio.run(judge.prefer(yx))
        assert [pairwise_outcome(f.verdict, s.verdict) for f, s in zip(firsts, seconds, strict=True)] == ["B"] * 3

        # Both right: the fair judge says [[C]] both ways.
        both = [render_pairwise_prompt(load_pairwise_prompt(), q, q.std_answer, q.std_answer) for q in questions]
        verdicts = [p.verdict for p in asyncio.run(judge.prefer(both))]
        assert verdicts == ["tie"] * 3 and pairwise_outcome("tie", "tie") == "tie"
        assert judge.totals.unparsable == 0
