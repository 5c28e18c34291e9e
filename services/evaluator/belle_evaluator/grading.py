"""Grading the eval job's answers, one grade per (candidate, question).

    grades = grade(spec, ctx, questions, names, answers, judge)   # {candidate id: Grades}

Every mode computes the reference metric of each answer (``metrics.reference_score``: the class's
metric where the question has a reference). Mode ``judge`` asks the judge once per answer with the
class's judge prompt; mode ``pairwise`` asks it twice per question, once with each candidate as
answer A, and only a verdict both orders agree on is a win (``pairwise_outcome``). The judge is
asked in chunks of ``JUDGE_CHUNK`` prompts, with a progress event and a cancel check after each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from belle_evaluator.aggregate import pairwise_points
from belle_evaluator.answer_config import Answer
from belle_evaluator.evalset import EvalQuestion
from belle_shared.judging import load_judge_prompts, render_judge_prompt
from belle_evaluator.judge import Judge, load_pairwise_prompt, pairwise_outcome, render_pairwise_prompt
from belle_evaluator.metrics import reference_score
from belle_shared.errors import JobError
from belle_shared.specs import EvalSpec
from belle_shared.worker import JobContext

# Prompts per judge batch. Big enough to keep `concurrency` requests in flight, small enough that a
# cancel or a progress event waits for at most one batch.
JUDGE_CHUNK = 256

T = TypeVar("T")


@dataclass
class Grades:
    """One candidate's grades, one entry per question. ``score`` is the mode's own value: the judge's
    score, the pairwise points (1 win, 0.5 tie, 0 loss), or in reference mode the reference score."""

    score: list[float | None]
    unparsable: list[bool]
    judge_reply: list[str | None]
    reference_metric: list[str | None]
    reference_score: list[float | None]
    extra: list[dict[str, Any]] = field(default_factory=list)


def reference_grades(questions: Sequence[EvalQuestion], answers: Sequence[Answer]) -> Grades:
    metric: list[str | None] = []
    value: list[float | None] = []
    for q, a in zip(questions, answers, strict=True):
        found = reference_score(q.cls, a.answer, q.std_answer, q.metric)
        metric.append(found[0] if found else None)
        value.append(found[1] if found else None)
    n = len(questions)
    return Grades(score=list(value), unparsable=[False] * n, judge_reply=[None] * n, reference_metric=metric,
                  reference_score=value, extra=[{} for _ in range(n)])


def grade(spec: EvalSpec, ctx: JobContext, questions: Sequence[EvalQuestion], names: dict[str, str],
          answers: dict[str, list[Answer]], judge: Judge | None) -> dict[str, Grades]:
    """Grades per candidate id (``names``: candidate id -> name, in the job's order)."""
    grades = {cid: reference_grades(questions, answers[cid]) for cid in names}
    if spec.mode == "reference":
        return grades
    if judge is None:
        raise JobError("judge_required", f"mode {spec.mode} needs a judge", param="judge")
    if spec.mode == "judge":
        _judge_scores(ctx, questions, names, answers, judge, grades)
    else:
        _pairwise(ctx, questions, names, answers, judge, grades)
    t = judge.totals
    ctx.event(f"judging done: {t.judged} judged ({t.cache_hits} from the cache, {t.sent} sent, {t.unparsable} "
              f"unparsable), {t.prompt_tokens} prompt and {t.completion_tokens} completion tokens "
              f"(${t.cost_usd:.4f})", kind="metrics", judge_totals=t.to_dict())
    return grades


def judge_in_chunks(ask: Callable[[list[str]], Awaitable[list[T]]], prompts: list[str], ctx: JobContext,
                    judge: Judge) -> list[T]:
    """``ask`` (``judge.score`` or ``judge.prefer``) on ``prompts`` in chunks of ``JUDGE_CHUNK``, a cancel
    check before each chunk and a progress event ("judged N/M") after it."""
    out: list[T] = []
    for start in range(0, len(prompts), JUDGE_CHUNK):
        ctx.check_cancelled()
        out += asyncio.run(ask(prompts[start:start + JUDGE_CHUNK]))
        t = judge.totals
        ctx.progress(f"judged {len(out)}/{len(prompts)} ({t.cache_hits} from the cache)", done=len(out),
                     total=len(prompts), cache_hits=t.cache_hits, sent=t.sent)
    return out


def _judge_scores(ctx: JobContext, questions: Sequence[EvalQuestion], names: dict[str, str],
                  answers: dict[str, list[Answer]], judge: Judge, grades: dict[str, Grades]) -> None:
    templates = load_judge_prompts()
    ids = list(names)
    prompts = [render_judge_prompt(templates[q.cls], q, answers[cid][i].answer)
               for cid in ids for i, q in enumerate(questions)]
    judgments = judge_in_chunks(judge.score, prompts, ctx, judge)
    n = len(questions)
    for k, cid in enumerate(ids):
        part = judgments[k * n:(k + 1) * n]
        g = grades[cid]
        g.score = [j.score for j in part]
        g.unparsable = [not j.parsed for j in part]
        g.judge_reply = [j.reply for j in part]


_OUTCOME_WORD = {1.0: "win", 0.5: "tie", 0.0: "loss", None: None}


def _pairwise(ctx: JobContext, questions: Sequence[EvalQuestion], names: dict[str, str],
              answers: dict[str, list[Answer]], judge: Judge, grades: dict[str, Grades]) -> None:
    x, y = list(names)
    template = load_pairwise_prompt()
    firsts = [render_pairwise_prompt(template, q, answers[x][i].answer, answers[y][i].answer)
              for i, q in enumerate(questions)]
    seconds = [render_pairwise_prompt(template, q, answers[y][i].answer, answers[x][i].answer)
               for i, q in enumerate(questions)]
    verdicts = judge_in_chunks(judge.prefer, firsts + seconds, ctx, judge)
    n = len(questions)
    gx, gy = grades[x], grades[y]
    for g in (gx, gy):
        g.score, g.unparsable, g.judge_reply = [None] * n, [False] * n, [None] * n
    for i in range(n):
        first, second = verdicts[i], verdicts[n + i]
        outcome = pairwise_outcome(first.verdict, second.verdict)
        points = pairwise_points(outcome)
        # Both candidates show the same two replies, each under the order it was asked in.
        reply = (f"[A = {names[x]}, B = {names[y]}]\n{first.reply}\n\n"
                 f"[A = {names[y]}, B = {names[x]}]\n{second.reply}")
        for g, own in ((gx, points[0]), (gy, points[1])):
            g.score[i] = own
            g.unparsable[i] = outcome is None
            g.judge_reply[i] = reply
            g.extra[i] = {"verdicts": [first.verdict, second.verdict], "outcome": _OUTCOME_WORD[own]}
