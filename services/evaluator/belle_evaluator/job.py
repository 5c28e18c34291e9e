"""The `eval` job: answers from every candidate model, graded per question, scored per class.

    result = run_eval(spec, ctx, work_root=Path("/scratch/belle/evaluator"))

1. The eval set: the team's uploaded file (`eval_file_id`) or the bundled one, then the class filter
   and `max_questions`. A bad row fails the job naming its line (`invalid_eval_set`, `eval_file_id`).
2. The candidates: registered models (`model_ids`, answered here by `python -m
   belle_evaluator.generate`, one model after another, in its own process group) and models behind
   an OpenAI-compatible endpoint (`candidate_endpoints`). Keys come from the team's secrets, as for a
   datagen teacher; the judge is checked to answer before any answer is generated.
3. Grading (`grading.py`): reference metrics always; the judge's score per answer (mode `judge`) or
   its preference in both orders (mode `pairwise`). Judge replies are cached, so a re-run of the
   same eval asks the judge nothing.
4. The record (`record.py`): `EvalResult` rows, the summary JSON and the HTML report as artifacts,
   and the job's result. A redelivered job whose results were recorded returns them.

The preference_pairs job (`pairs.py`) reads its prompts, opens its judge and samples its answers
with the same functions: `team_eval_set`, `open_judge`, `local_answers`.

Answers are kept in `WORK_ROOT/<job id>/candidate-<n>/` (`answers.jsonl` beside the `answers.json`
it came from), so a job that is retried after a failed judge does not generate them again.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from belle_evaluator.answer_config import (
    ANSWER_CONFIG_FILE,
    ANSWER_PROGRESS_FILE,
    Answer,
    AnswerConfig,
    read_answers,
    write_answer_config,
    write_answers,
    write_questions,
)
from belle_evaluator.endpoint_answers import endpoint_answers
from belle_evaluator.evalset import EVAL_SET_FILE, EvalQuestion, EvalSetError, bundled_eval_set, parse_eval_set
from belle_evaluator.grading import grade
from belle_evaluator.judge import Judge
from belle_evaluator.record import record_results, recorded_result
from belle_shared.db.models import File
from belle_shared.errors import JobError
from belle_shared.models import find_model
from belle_shared.secrets import resolve_secret
from belle_shared.specs import EvalSpec, PreferencePairsSpec, TeacherEndpoint
from belle_shared.subprocess_run import run_followed, step_failed
from belle_shared.worker import JobContext

QUESTIONS_FILE = "questions.jsonl"
ANSWERS_FILE = "answers.jsonl"
GENERATE_LOG = "generate.log"
ANSWER_EVENT_EVERY_SECONDS = 1.0  # an endpoint candidate's "N/M answers" events: at most one a second


@dataclass(frozen=True)
class Candidate:
    """A model being evaluated. ``id`` is what the summary and the result call it: the model row's
    UUID, or ``endpoint:<model>`` for an endpoint; ``param`` is the spec field that names it."""

    id: str
    name: str
    param: str
    model_id: uuid.UUID | None = None
    uri: str | None = None
    endpoint: TeacherEndpoint | None = None
    api_key: str | None = field(default=None, repr=False)


def run_eval(spec: EvalSpec, ctx: JobContext, *, work_root: Path) -> dict[str, Any]:
    done = recorded_result(ctx)
    if done is not None:
        ctx.event("results already recorded by an earlier attempt", kind="status")
        return done
    eval_name, questions = load_questions(spec, ctx)
    candidates = resolve_candidates(spec, ctx)
    judge = _judge(spec, ctx)
    ctx.event(f"evaluating {', '.join(c.name for c in candidates)} on {len(questions)} questions of {eval_name} "
              f"(mode {spec.mode})", kind="status", questions=len(questions), mode=spec.mode,
              models=[c.name for c in candidates])

    run_dir = work_root / str(ctx.job_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    answers: dict[str, list[Answer]] = {}
    # Endpoints first: one that refuses the key fails the job before any local generation is spent.
    order = sorted(range(len(candidates)), key=lambda i: candidates[i].endpoint is None)
    for index in order:
        ctx.check_cancelled()
        candidate = candidates[index]
        folder = run_dir / f"candidate-{index}"
        if candidate.endpoint is not None:
            answers[candidate.id] = _endpoint_answers(candidate, questions, spec, ctx, folder)
        else:
            answers[candidate.id] = local_answers(candidate, questions, spec, ctx, folder, work_root)

    ctx.check_cancelled()
    grades = grade(spec, ctx, questions, {c.id: c.name for c in candidates}, answers, judge)
    return record_results(spec, ctx, run_dir=run_dir, eval_name=eval_name, questions=questions,
                          candidates=candidates, answers=answers, grades=grades, judge=judge)


# ---------------------------------------------------------------------------------- the inputs


def load_questions(spec: EvalSpec, ctx: JobContext) -> tuple[str, list[EvalQuestion]]:
    """(eval set name, its questions after the class filter and `max_questions`)."""
    if spec.eval_file_id is None:
        name, questions = EVAL_SET_FILE, bundled_eval_set()
    else:
        _, name, questions = team_eval_set(ctx, spec.eval_file_id, param="eval_file_id")
    if spec.classes is not None:
        questions = [q for q in questions if q.cls in spec.classes]
        if not questions:
            raise JobError("no_questions", f"{name} has no questions of class {', '.join(spec.classes)}",
                           param="classes")
    if spec.max_questions is not None:
        questions = questions[:spec.max_questions]
    return name, questions


def team_eval_set(ctx: JobContext, file_id: uuid.UUID, *, param: str) -> tuple[File, str, list[EvalQuestion]]:
    """(file row, file name, questions) of a team's uploaded eval set; a bad row is a JobError naming
    its line (`invalid_eval_set`, ``param``)."""
    file = ctx.team_file(file_id, param=param)
    try:
        with ctx.store.open(file.uri, "rb") as handle:
            questions = parse_eval_set(handle, source=file.filename)
    except EvalSetError as exc:
        raise JobError("invalid_eval_set", str(exc), param=param, details={"line": exc.line}) from None
    return file, file.filename, questions


def resolve_candidates(spec: EvalSpec, ctx: JobContext) -> list[Candidate]:
    """The registered models and the endpoints, with their keys; JobError naming the field at fault."""
    candidates: list[Candidate] = []
    seen: dict[str, str] = {}  # candidate id -> the field that named it first

    def add(candidate: Candidate, code: str) -> None:
        if candidate.id in seen:
            raise JobError(code, f"{candidate.name!r} is named twice ({seen[candidate.id]} and {candidate.param}); "
                           "each model is evaluated once", param=candidate.param)
        seen[candidate.id] = candidate.param
        candidates.append(candidate)

    with ctx.session_factory() as session:
        for i, ref in enumerate(spec.model_ids):
            model = find_model(session, ctx.team_id, ref)
            if model is None:
                raise JobError("model_not_found", f"no model {ref!r}", param=f"model_ids[{i}]")
            add(Candidate(str(model.id), model.name, f"model_ids[{i}]", model_id=model.id, uri=model.uri),
                "duplicate_model")
    for i, endpoint in enumerate(spec.candidate_endpoints):
        param = f"candidate_endpoints[{i}]"
        key = resolve_secret(endpoint.api_key_secret, param=f"{param}.api_key_secret", settings=ctx.settings,
                             session_factory=ctx.session_factory, team_id=ctx.team_id)
        name = f"endpoint:{endpoint.model}"
        add(Candidate(name, name, f"{param}.model", endpoint=endpoint, api_key=key), "duplicate_candidate")
    return candidates


def _judge(spec: EvalSpec, ctx: JobContext) -> Judge | None:
    """The judge (None in reference mode), after checking that it answers and takes the key."""
    if spec.mode == "reference" or spec.judge is None:
        return None
    return open_judge(spec.judge, ctx, concurrency=spec.concurrency)


def open_judge(endpoint: TeacherEndpoint, ctx: JobContext, *, concurrency: int) -> Judge:
    """A judge on ``endpoint`` (spec field `judge`) with the team's key, checked to answer and to take
    the key: before minutes or hours of answer generation that an unreachable judge would waste."""
    key = resolve_secret(endpoint.api_key_secret, param="judge.api_key_secret", settings=ctx.settings,
                         session_factory=ctx.session_factory, team_id=ctx.team_id)
    judge = Judge(endpoint, api_key=key, session_factory=ctx.session_factory, concurrency=concurrency)
    asyncio.run(judge.check())
    return judge


# ---------------------------------------------------------------------------------- the answers


def _prepare(folder: Path, questions: list[EvalQuestion]) -> list[Answer] | None:
    """Write the questions file; return the answers an earlier attempt left for the same questions."""
    folder.mkdir(parents=True, exist_ok=True)
    fresh = folder / (QUESTIONS_FILE + ".new")
    write_questions((q.question for q in questions), fresh)
    current = folder / QUESTIONS_FILE
    same = current.exists() and current.read_bytes() == fresh.read_bytes()
    os.replace(fresh, current)
    answers_file = folder / ANSWERS_FILE
    if same and answers_file.exists():
        earlier = read_answers(answers_file)  # written whole or not at all (write_answers renames)
        if [a.id for a in earlier] == list(range(len(questions))):
            return earlier
    answers_file.unlink(missing_ok=True)
    return None


def _endpoint_answers(candidate: Candidate, questions: list[EvalQuestion], spec: EvalSpec, ctx: JobContext,
                      folder: Path) -> list[Answer]:
    earlier = _prepare(folder, questions)
    if earlier is not None:
        ctx.event(f"{candidate.name}: {len(earlier)} answers kept from an earlier attempt", kind="status")
        return earlier
    endpoint = candidate.endpoint
    assert endpoint is not None
    ctx.event(f"{candidate.name}: asking {endpoint.base_url} for {len(questions)} answers", kind="status")
    last_event = 0.0

    def answered(done: int) -> None:  # the same progress events as local generation's, at most one a second
        nonlocal last_event
        if time.monotonic() - last_event >= ANSWER_EVENT_EVERY_SECONDS or done == len(questions):
            last_event = time.monotonic()
            ctx.event(f"{candidate.name}: {done}/{len(questions)} answers", kind="progress", model=candidate.name,
                      done=done, total=len(questions))

    # Errors name the list element: candidate_endpoints[i].model, ... (codes stay candidate_*).
    answers = asyncio.run(endpoint_answers(endpoint, candidate.api_key, [q.question for q in questions],
                                           spec.generation, spec.concurrency, field="candidate",
                                           param_prefix=candidate.param.rsplit(".", 1)[0], on_answer=answered))
    write_answers(answers, folder / ANSWERS_FILE)
    prompt_tokens = sum(a.prompt_tokens for a in answers)
    completion_tokens = sum(a.completion_tokens for a in answers)
    cost = (prompt_tokens * endpoint.prompt_price_per_million
            + completion_tokens * endpoint.completion_price_per_million) / 1_000_000
    ctx.event(f"{candidate.name}: {len(answers)} answers, {prompt_tokens} prompt and {completion_tokens} completion "
              f"tokens (${cost:.4f})", kind="metrics", model=candidate.name, answers=len(answers),
              prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, cost_usd=round(cost, 6))
    return answers


def local_answers(candidate: Candidate, questions: list[EvalQuestion], spec: EvalSpec | PreferencePairsSpec,
                  ctx: JobContext, folder: Path, work_root: Path, *, seed: int = 0) -> list[Answer]:
    """A registered model's answer to each question, generated in a subprocess with ``spec.generation``
    in batches of ``spec.batch_size`` (sampling seeded with ``seed``); an earlier attempt's answers to
    the same questions in ``folder`` are kept."""
    earlier = _prepare(folder, questions)
    if earlier is not None:
        ctx.event(f"{candidate.name}: {len(earlier)} answers kept from an earlier attempt", kind="status")
        return earlier
    assert candidate.uri is not None
    model_folder, downloaded = ctx.store.local_folder(candidate.uri, work_root / "models" / str(candidate.model_id))
    if downloaded:
        ctx.event(f"downloaded {candidate.name} from {candidate.uri}")
    config = AnswerConfig(model_path=Path(model_folder).resolve(), questions_file=folder / QUESTIONS_FILE,
                          output_file=folder / ANSWERS_FILE, generation=spec.generation, batch_size=spec.batch_size,
                          seed=seed)
    config_path = write_answer_config(config, folder / ANSWER_CONFIG_FILE)
    env = dict(os.environ)
    # Loading a GPTQ folder on CPU sizes a worker pool from this; on 2 cores it fails without it (FACTS.md).
    env.setdefault("GPTQMODEL_CPU_WORKERS", str(max(2, os.cpu_count() or 2)))
    follower = _AnswerFollower(ctx, candidate.name)
    log_path = folder / GENERATE_LOG
    returncode = run_followed(
        [sys.executable, "-m", "belle_evaluator.generate", "--config", str(config_path)], ctx, cwd=folder,
        progress_path=folder / ANSWER_PROGRESS_FILE, log_path=log_path, on_event=follower.handle, env=env,
        start_message=f"{candidate.name}: generating {len(questions)} answers (batch size {spec.batch_size})")
    if returncode != 0 or not follower.done:
        error = step_failed("generation_failed", f"answer generation for {candidate.name}", returncode, log_path,
                            follower.error)
        error.param = candidate.param
        raise error
    answers = read_answers(folder / ANSWERS_FILE)
    if [a.id for a in answers] != list(range(len(questions))):
        raise JobError("generation_failed", f"answer generation for {candidate.name} wrote {len(answers)} answers "
                       f"for {len(questions)} questions", param=candidate.param)
    return answers


class _AnswerFollower:
    """Turns the generation subprocess's progress events into job events."""

    def __init__(self, ctx: JobContext, name: str):
        self.ctx = ctx
        self.name = name
        self.done = False
        self.error: str | None = None

    def handle(self, record: dict[str, Any]) -> None:
        kind = record["event"]
        if kind == "start":
            self.ctx.event(f"{self.name}: answering {record['total']} questions on {record['device']} "
                           f"({record['model_type']})", kind="status", model=self.name, total=record["total"],
                           device=record["device"])
        elif kind == "progress":
            self.ctx.progress(f"{self.name}: {record['done']}/{record['total']} answers", model=self.name,
                              done=record["done"], total=record["total"])
        elif kind == "done":
            self.done = True
            self.ctx.event(f"{self.name}: {record['answers']} answers in {record['seconds']:.1f}s, "
                           f"{record['completion_tokens']} tokens generated", kind="metrics", model=self.name,
                           answers=record["answers"], seconds=record["seconds"],
                           completion_tokens=record["completion_tokens"])
        elif kind == "error":
            self.error = record["message"]
            self.ctx.event(f"{self.name}: answer generation error: {record['message']}", level="error")

