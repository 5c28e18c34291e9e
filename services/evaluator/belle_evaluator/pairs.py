"""The `preference_pairs` job: a model answers each prompt several times, every answer is scored (its
reference metric or the judge), and each prompt's best and worst answer become a preference pair for
DPO, recorded as a dataset of format ``preferences``.

    result = run_pairs(spec, ctx, work_root=Path("/scratch/belle/evaluator"))

1. The prompts: the team's eval-set file (`prompt_file_id`, the eval job's format: `question`, `class`,
   `std_answer`, an optional `metric`), its first `max_prompts`; a bad row fails the job naming its line.
2. The answers: the model (fetched as the eval job fetches it) answers in the eval job's generation
   subprocess (`belle_evaluator.generate`). Its questions file holds each prompt `samples_per_prompt`
   times in a row, so one run samples every answer, the copies of a prompt side by side in a batch,
   each row drawing its own tokens (`generation`, temperature above 0, the sampling seeded with
   `seed`). The same model, prompts, generation options, batch size and seed give the same answers
   (the batch size counts: the rows of a batch draw from one random stream).
3. The scores (`score_answers`), per prompt by `scoring`: `reference` the row's reference metric
   (`metrics.reference_score`: the row's `metric`, else its class's), `judge` the judge's score with
   the class's judge prompt (`belle_shared.judging`, cached as the eval job's judgments are), `auto`
   the reference metric where the row names a `metric`, the judge elsewhere. An empty answer is not
   scored (a pair never holds one); a judge reply without a score, or a row whose reference leaves
   nothing to compare, leaves the answer unscored.
4. The pair (`pick_pair`): the highest scored answer is chosen, the lowest scored answer whose text
   differs from it is rejected, when the gap is above `min_score_gap`; otherwise the prompt gives no
   pair, for one of `DROP_REASONS`. Among equal scores the earlier sample wins, so the rule is
   deterministic.
5. The record (`record_pairs`): the canonical pairs (`belle_shared.preferences`) as a JSONL artifact,
   a Dataset of format ``preferences`` (job_id this job, source file the prompt file, the statistics
   with the model and the judge that made it) and an artifact of kind ``preference_samples`` with every
   answer, its score and each prompt's outcome, in one transaction. A redelivered job whose dataset
   was recorded returns it; a run with no pair at all fails (`no_pairs`) with the statistics.

The answers are kept in `WORK_ROOT/<job id>/samples/`, so a job retried after a failed judge does
not sample them again.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from belle_evaluator.answer_config import Answer
from belle_evaluator.evalset import EvalQuestion
from belle_evaluator.grading import judge_in_chunks
from belle_evaluator.job import Candidate, local_answers, open_judge, team_eval_set
from belle_evaluator.judge import Judge
from belle_evaluator.metrics import reference_score
from belle_shared.db.models import Artifact, Dataset, File
from belle_shared.errors import JobError
from belle_shared.formats import RowError
from belle_shared.judging import load_judge_prompts, render_judge_prompt
from belle_shared.models import find_model
from belle_shared.preferences import to_preference
from belle_shared.specs import PreferencePairsSpec
from belle_shared.worker import JobContext

SAMPLES_KIND = "preference_samples"
DATASET_FORMAT = "preferences"
SAMPLES_FOLDER = "samples"

# Why a prompt gave no pair (the dataset's stats["dropped"] counts each; the lineage shows them).
DROP_REASONS: dict[str, str] = {
    "tie": "the answers differ but every scored answer got the same score",
    "below_gap": "the best and the worst score differ by min_score_gap or less",
    "identical": "every scored answer is the same text",
    "unscored": "fewer than two answers could be scored (empty answers, judge replies without a score, "
                "no reference to compare with)",
}


# ----------------------------------------------------------------------------- the pairing rule


@dataclass(frozen=True)
class Pick:
    """One prompt's outcome: ``pair`` with the chosen and the rejected sample's index, or a key of
    ``DROP_REASONS``. ``best`` is the highest score of the prompt's answers; ``worst`` the rejected
    answer's score (a pair) or the lowest score (no pair); both None with fewer than two scores."""

    outcome: str
    chosen: int | None = None
    rejected: int | None = None
    best: float | None = None
    worst: float | None = None

    @property
    def gap(self) -> float | None:
        return None if self.best is None or self.worst is None else self.best - self.worst


def pick_pair(texts: Sequence[str], scores: Sequence[float | None], *, min_gap: float = 0.0) -> Pick:
    """The pair of one prompt's answers: the highest scored one chosen, the lowest scored one whose text
    differs from it rejected, kept when the gap is above ``min_gap`` (equal scores are a tie, never a
    pair). Empty answers and answers without a score take no part; identical texts are never a pair."""
    if len(texts) != len(scores):
        raise ValueError("one score per answer")
    scored = [i for i, (text, score) in enumerate(zip(texts, scores)) if score is not None and text.strip()]
    if len(scored) < 2:
        return Pick("unscored")
    best = max(scores[i] for i in scored)
    lowest = min(scores[i] for i in scored)
    chosen = next(i for i in scored if scores[i] == best)
    others = [i for i in scored if texts[i].strip() != texts[chosen].strip()]
    if not others:
        return Pick("identical", best=best, worst=lowest)
    worst = min(scores[i] for i in others)
    rejected = next(i for i in others if scores[i] == worst)
    if best == worst:
        return Pick("tie", best=best, worst=worst)
    if best - worst <= min_gap:
        return Pick("below_gap", best=best, worst=worst)
    return Pick("pair", chosen=chosen, rejected=rejected, best=best, worst=worst)


# ----------------------------------------------------------------------------------- the job


def run_pairs(spec: PreferencePairsSpec, ctx: JobContext, *, work_root: Path) -> dict[str, Any]:
    with ctx.session_factory() as session:
        existing = session.scalar(select(Dataset).where(Dataset.job_id == ctx.job_id))
        if existing is not None:
            ctx.event("dataset already recorded by an earlier attempt", kind="status", dataset_id=str(existing.id))
            return pairs_result(existing)

    file, file_name, questions = team_eval_set(ctx, spec.prompt_file_id, param="prompt_file_id")
    if spec.max_prompts is not None:
        questions = questions[:spec.max_prompts]
    candidate = _candidate(spec, ctx)
    methods = [scoring_method(spec.scoring, q) for q in questions]
    judge = None
    if "judge" in methods:
        if spec.judge is None:
            line = questions[methods.index("judge")].line
            raise JobError("judge_required", f"line {line} of {file_name!r} is scored by the judge (scoring "
                           f"{spec.scoring}) and the spec names none", param="judge")
        judge = open_judge(spec.judge, ctx, concurrency=spec.concurrency)
    k = spec.samples_per_prompt
    ctx.event(f"sampling {k} answers from {candidate.name} to each of {len(questions)} prompts of {file_name} "
              f"(scoring {spec.scoring})", kind="status", questions=len(questions), prompts=len(questions),
              samples_per_prompt=k, models=[candidate.name], scoring=spec.scoring)

    run_dir = work_root / str(ctx.job_id)
    repeated = [q for q in questions for _ in range(k)]
    answers = local_answers(candidate, repeated, spec, ctx, run_dir / SAMPLES_FOLDER, work_root, seed=spec.seed)
    ctx.check_cancelled()
    scored = score_answers(questions, answers, methods, k, ctx, judge)
    ctx.check_cancelled()
    return record_pairs(spec, ctx, run_dir=run_dir, file=file, candidate=candidate, questions=questions,
                        answers=answers, scored=scored, judge=judge)


def _candidate(spec: PreferencePairsSpec, ctx: JobContext) -> Candidate:
    with ctx.session_factory() as session:
        model = find_model(session, ctx.team_id, spec.model_id)
        if model is None:
            raise JobError("model_not_found", f"no model {spec.model_id!r}", param="model_id")
        return Candidate(str(model.id), model.name, "model_id", model_id=model.id, uri=model.uri)


def scoring_method(scoring: str, q: EvalQuestion) -> str:
    """``reference`` or ``judge``: how the answers to ``q`` are scored under the spec's ``scoring``."""
    if scoring == "auto":
        return "reference" if q.metric is not None else "judge"
    return scoring


@dataclass
class Scored:
    """The scores of every answer (prompt i's sample j at ``i * k + j``)."""

    score: list[float | None]
    metric: list[str | None]          # the reference metric, or "judge"
    judge_reply: list[str | None]
    unparsable: int = 0


def score_answers(questions: Sequence[EvalQuestion], answers: Sequence[Answer], methods: Sequence[str], k: int,
                  ctx: JobContext, judge: Judge | None) -> Scored:
    n = len(answers)
    out = Scored([None] * n, [None] * n, [None] * n)
    asked: list[tuple[int, str]] = []  # (answer index, judge prompt)
    templates = load_judge_prompts() if "judge" in methods else {}
    for i, q in enumerate(questions):
        for index in range(i * k, (i + 1) * k):
            text = answers[index].answer
            if not text.strip():
                continue
            if methods[i] == "judge":
                asked.append((index, render_judge_prompt(templates[q.cls], q, text)))
                continue
            found = reference_score(q.cls, text, q.std_answer, q.metric)
            if found is not None:
                out.metric[index], out.score[index] = found
    if asked:
        assert judge is not None
        judgments = judge_in_chunks(judge.score, [prompt for _, prompt in asked], ctx, judge)
        for (index, _), judgment in zip(asked, judgments, strict=True):
            out.score[index], out.metric[index], out.judge_reply[index] = judgment.score, "judge", judgment.reply
            out.unparsable += not judgment.parsed
        t = judge.totals
        ctx.event(f"judging done: {t.judged} judged ({t.cache_hits} from the cache, {t.sent} sent, {t.unparsable} "
                  f"unparsable), {t.prompt_tokens} prompt and {t.completion_tokens} completion tokens "
                  f"(${t.cost_usd:.4f})", kind="metrics", judge_totals=t.to_dict())
    return out


# ---------------------------------------------------------------------------------- the record


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def record_pairs(spec: PreferencePairsSpec, ctx: JobContext, *, run_dir: Path, file: File, candidate: Candidate,
                 questions: Sequence[EvalQuestion], answers: Sequence[Answer], scored: Scored,
                 judge: Judge | None) -> dict[str, Any]:
    k = spec.samples_per_prompt
    pairs: list[dict[str, Any]] = []
    picks: list[Pick] = []
    samples: list[dict[str, Any]] = []
    for i, q in enumerate(questions):
        span = range(i * k, (i + 1) * k)
        texts = [answers[n].answer for n in span]
        pick = pick_pair(texts, [scored.score[n] for n in span], min_gap=spec.min_score_gap)
        if pick.outcome == "pair":
            try:
                pair, _ = to_preference({"prompt": q.question, "chosen": texts[pick.chosen],
                                         "rejected": texts[pick.rejected]})
            except RowError as exc:  # pick_pair keeps empty and identical texts out: a bug if reached
                raise JobError("invalid_pair", f"line {q.line}: {exc.message}") from None
            pairs.append(pair)
        picks.append(pick)
        samples.append({"line": q.line, "class": q.cls, "question": q.question, "std_answer": q.std_answer,
                        "outcome": pick.outcome, "chosen": pick.chosen, "rejected": pick.rejected,
                        "answers": [{"answer": answers[n].answer, "score": scored.score[n], "scored_by": scored.metric[n],
                                     "judge_reply": scored.judge_reply[n], "warning": answers[n].warning}
                                    for n in span]})

    kept = [p for p in picks if p.outcome == "pair"]
    gaps = [p.gap for p in kept]
    dropped = {reason: sum(p.outcome == reason for p in picks) for reason in DROP_REASONS}
    empty = sum(not a.answer.strip() for a in answers)
    scored_by = Counter(m for m in scored.metric if m is not None)
    stats: dict[str, Any] = {
        "prompts": len(questions), "samples_per_prompt": k, "answers": len(answers), "empty_answers": empty,
        "scored_answers": sum(scored_by.values()), "scored_by": dict(sorted(scored_by.items())),
        "unparsable": scored.unparsable,
        "pairs": len(pairs), "ties_dropped": dropped["tie"], "dropped": dropped,
        "dropped_total": sum(dropped.values()), "drop_reasons": dict(DROP_REASONS),
        "score_gap": {"mean": _mean(gaps), "min": min(gaps) if gaps else None},
        "best_score_mean": _mean([p.best for p in kept]), "worst_score_mean": _mean([p.worst for p in kept]),
        "scoring": spec.scoring, "min_score_gap": spec.min_score_gap,
        "model": {"id": candidate.id, "name": candidate.name},
        "judge": {"model": judge.endpoint.model, "base_url": judge.endpoint.base_url} if judge is not None else None,
        "judge_totals": judge.totals.to_dict() if judge is not None else None,
        "generation": spec.generation.model_dump(), "batch_size": spec.batch_size, "seed": spec.seed,
        "prompt_file": {"id": str(file.id), "name": file.filename},
    }
    if not pairs:
        reasons = ", ".join(f"{count} {reason.replace('_', ' ')}" for reason, count in dropped.items() if count)
        raise JobError("no_pairs", f"none of the {len(questions)} prompts gave a pair ({reasons}): sample more "
                       "answers per prompt (samples_per_prompt), sample more freely (generation.temperature), "
                       "or lower min_score_gap", details=stats)

    run_dir.mkdir(parents=True, exist_ok=True)
    pairs_path, samples_path = run_dir / "pairs.jsonl", run_dir / "samples.jsonl"
    for path, rows in ((pairs_path, pairs), (samples_path, samples)):
        with path.open("w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    stored = ctx.store.put_file(pairs_path, f"teams/{ctx.team_id}/datasets/{ctx.job_id}.jsonl")
    stored_samples = ctx.store.put_file(samples_path, f"teams/{ctx.team_id}/jobs/{ctx.job_id}/pairs/samples.jsonl")
    stats["samples_uri"] = stored_samples.uri
    name = f"pairs-{candidate.name}"[:255]  # the column's width (a model name may take all of it)
    with ctx.session_factory() as session, session.begin():
        artifact = Artifact(team_id=ctx.team_id, job_id=ctx.job_id, kind="dataset", uri=stored.uri,
                            sha256=stored.sha256, bytes=stored.bytes)
        session.add(artifact)
        session.add(Artifact(team_id=ctx.team_id, job_id=ctx.job_id, kind=SAMPLES_KIND, uri=stored_samples.uri,
                             sha256=stored_samples.sha256, bytes=stored_samples.bytes))
        session.flush()
        dataset = Dataset(team_id=ctx.team_id, name=name, format=DATASET_FORMAT, rows=len(pairs), stats=stats,
                          artifact_id=artifact.id, source_file_id=file.id, job_id=ctx.job_id)
        session.add(dataset)
    gap = stats["score_gap"]
    ctx.event(f"dataset {name!r}: {len(pairs)} pairs from {len(questions)} prompts ({stats['dropped_total']} without "
              f"a pair: {dropped['tie']} ties), mean score gap {gap['mean']:.3f}", kind="metrics",
              dataset_id=str(dataset.id), rows=len(pairs), pairs=len(pairs), dropped=dropped,
              score_gap=gap)
    return pairs_result(dataset)


def pairs_result(dataset: Dataset) -> dict[str, Any]:
    """The job's result, from the recorded dataset (the same on a redelivery)."""
    stats = dataset.stats or {}
    return {"dataset_id": str(dataset.id), "name": dataset.name, "rows": dataset.rows, "pairs": dataset.rows,
            "ties_dropped": stats.get("ties_dropped", 0), "dropped": stats.get("dropped", {}),
            "prompts": stats.get("prompts"), "answers": stats.get("answers"), "score_gap": stats.get("score_gap"),
            "scoring": stats.get("scoring"), "model": stats.get("model"), "judge": stats.get("judge"),
            "judge_totals": stats.get("judge_totals"), "samples_uri": stats.get("samples_uri")}
