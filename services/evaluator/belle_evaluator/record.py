"""What an eval job leaves behind: `EvalResult` rows, two artifacts and the job's result.

    result = record_results(spec, ctx, run_dir=..., eval_name=..., questions=..., candidates=...,
                            answers=..., grades=..., judge=judge)
    recorded_result(ctx)     # the same result on a redelivery, or None if nothing was recorded yet

Rows, one per (model, task class, metric), ``task_class`` a class, ``overall`` or
``overall_without_others`` (see ``aggregate``):

- the mode's own metric, ``judge`` or ``pairwise_win_rate``, for every class of the eval set and both
  overall rows (modes judge and pairwise);
- the class's reference metric (``exact_match``, ``math_match``, ``bleu``, ``rouge_l``,
  ``token_f1``) for every class that has one, in every mode; where questions name their own metric
  (an eval row's ``"metric"``, e.g. ``exact_match_cased``) the metric they name, or ``reference`` for
  a class whose questions use several;
- ``reference`` for both overall rows, in every mode: the mean of every answer's reference score,
  whatever its metric (reference mode's overall score).

``score`` is None when nothing in the group could be scored; ``details`` is ``{"unparsable",
"questions", "name"}``, and for an endpoint candidate (``model_id`` NULL) also ``"endpoint"``.

The summary (kind ``eval_summary``, JSON, the shape ``report.render_report`` documents) and the
report (kind ``eval_report``, HTML) are stored under ``teams/<team>/jobs/<job>/eval/``. The rows and
both artifact rows are written in one transaction, so a redelivered job finds all or none of them;
the summary artifact's details keep the job's result for that case.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from belle_evaluator.aggregate import OVERALL, OVERALL_WITHOUT_OTHERS, Cell, ordered_classes, summarize
from belle_evaluator.answer_config import Answer
from belle_evaluator.evalset import EvalQuestion
from belle_evaluator.grading import Grades
from belle_evaluator.judge import Judge
from belle_evaluator.metrics import class_metric
from belle_evaluator.report import render_report
from belle_shared.db.models import Artifact, EvalResult, Job
from belle_shared.specs import EvalSpec
from belle_shared.worker import JobContext

if TYPE_CHECKING:
    from belle_evaluator.job import Candidate

SUMMARY_KIND = "eval_summary"
REPORT_KIND = "eval_report"
PRIMARY_METRIC = {"judge": "judge", "pairwise": "pairwise_win_rate", "reference": "reference"}
# The overall rows of the reference metrics: every answer's reference score, whatever the metric.
REFERENCE_OVERALL = "reference"
OVERALL_KEYS = (OVERALL, OVERALL_WITHOUT_OTHERS)


def recorded_result(ctx: JobContext) -> dict[str, Any] | None:
    """The result of an earlier attempt that recorded everything, or None."""
    with ctx.session_factory() as session:
        summary = session.scalar(select(Artifact).where(Artifact.job_id == ctx.job_id, Artifact.kind == SUMMARY_KIND))
        if summary is None:
            return None
        job = session.get(Job, ctx.job_id)
        return dict((job.result if job is not None else None) or (summary.details or {}).get("result") or {})


def model_cells(mode: str, classes: Sequence[str], grades: Grades) -> tuple[dict[str, Cell], dict[str, Cell]]:
    """(cells of the mode's own metric, cells of the reference metrics) of one candidate."""
    reference = summarize(classes, grades.reference_score)
    if mode == "reference":
        return reference, reference
    return summarize(classes, grades.score, grades.unparsable), reference


def class_metrics(questions: Sequence[EvalQuestion]) -> dict[str, str | None]:
    """The reference metric of each class of the questions: the one metric its questions are scored
    with (a row's own, else the class's), ``reference`` if they use several, None if none has one."""
    used: dict[str, set[str]] = {}
    for q in questions:
        name = q.metric or class_metric(q.cls)
        used.setdefault(q.cls, set()).update([name] if name else [])
    return {cls: (next(iter(names)) if len(names) == 1 else REFERENCE_OVERALL if names else None)
            for cls, names in used.items()}


def _metric_of(key: str, metrics: dict[str, str | None] | None) -> str | None:
    return metrics[key] if metrics is not None and key in metrics else class_metric(key)


def score_table(mode: str, cells: dict[str, Cell], metrics: dict[str, str | None] | None = None) -> dict[str, dict[str, Any]]:
    """The summary's ``scores`` entry of one candidate: the mode's metric per class and overall
    (``metrics``: each class's reference metric, `class_metrics`; unset: the class's own)."""
    table = {}
    for key, cell in cells.items():
        if mode != "reference":
            metric = PRIMARY_METRIC[mode]
        else:
            metric = REFERENCE_OVERALL if key in OVERALL_KEYS else _metric_of(key, metrics)
        table[key] = {"score": cell.score, "count": cell.count, "unparsable": cell.unparsable, "metric": metric}
    return table


def result_rows(mode: str, primary: dict[str, Cell], reference: dict[str, Cell],
                metrics: dict[str, str | None] | None = None) -> list[tuple[str, str, Cell]]:
    """(task class, metric, cell) of every EvalResult row of one candidate (see the module docstring)."""
    rows: list[tuple[str, str, Cell]] = []
    if mode != "reference":
        rows += [(key, PRIMARY_METRIC[mode], cell) for key, cell in primary.items()]
    for key, cell in reference.items():
        if key in OVERALL_KEYS:
            rows.append((key, REFERENCE_OVERALL, cell))
        elif _metric_of(key, metrics) is not None:
            rows.append((key, _metric_of(key, metrics), cell))
    return rows


def build_summary(*, job_id: str, created_at: str | None, spec: EvalSpec, eval_name: str,
                  questions: Sequence[EvalQuestion], candidates: Sequence[Candidate],
                  answers: dict[str, list[Answer]], grades: dict[str, Grades],
                  tables: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    items = []
    for i, q in enumerate(questions):
        per_model = {}
        for c in candidates:
            a, g = answers[c.id][i], grades[c.id]
            per_model[c.id] = {"answer": a.answer, "judge_reply": g.judge_reply[i], "score": g.score[i],
                               "reference_metric": g.reference_metric[i], "reference_score": g.reference_score[i],
                               "warning": a.warning, **g.extra[i]}
        items.append({"index": i, "line": q.line, "class": q.cls, "question": q.question,
                      "std_answer": q.std_answer, "answers": per_model})
    return {"job_id": job_id, "created_at": created_at, "mode": spec.mode,
            "eval_set": {"name": eval_name, "questions": len(questions)},
            "judge": {"model": spec.judge.model, "base_url": spec.judge.base_url}
            if spec.judge is not None and spec.mode != "reference" else None,
            "models": [{"id": c.id, "name": c.name} for c in candidates],
            "classes": ordered_classes([q.cls for q in questions]),
            "scores": tables, "items": items}


def record_results(spec: EvalSpec, ctx: JobContext, *, run_dir: Path, eval_name: str,
                   questions: Sequence[EvalQuestion], candidates: Sequence[Candidate],
                   answers: dict[str, list[Answer]], grades: dict[str, Grades], judge: Judge | None) -> dict[str, Any]:
    classes = [q.cls for q in questions]
    cells = {c.id: model_cells(spec.mode, classes, grades[c.id]) for c in candidates}
    metrics = class_metrics(questions)
    tables = {cid: score_table(spec.mode, primary, metrics) for cid, (primary, _) in cells.items()}
    with ctx.session_factory() as session:
        job = session.get(Job, ctx.job_id)
        created_at = job.created_at.isoformat() if job is not None and job.created_at else None
    summary = build_summary(job_id=str(ctx.job_id), created_at=created_at, spec=spec, eval_name=eval_name,
                            questions=questions, candidates=candidates, answers=answers, grades=grades,
                            tables=tables)

    summary_path, report_path = run_dir / "summary.json", run_dir / "report.html"
    summary_path.write_text(json.dumps(summary, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    report_path.write_text(render_report(summary), encoding="utf-8")
    prefix = f"teams/{ctx.team_id}/jobs/{ctx.job_id}/eval"
    stored_summary = ctx.store.put_file(summary_path, f"{prefix}/summary.json")
    stored_report = ctx.store.put_file(report_path, f"{prefix}/report.html")

    result = {"mode": spec.mode, "eval_set": summary["eval_set"], "models": summary["models"],
              "primary_metric": PRIMARY_METRIC[spec.mode],
              "overall": {c.name: tables[c.id][OVERALL]["score"] for c in candidates},
              "judge": summary["judge"], "judge_totals": judge.totals.to_dict() if judge is not None else None,
              "summary_uri": stored_summary.uri, "report_uri": stored_report.uri}
    with ctx.session_factory() as session, session.begin():
        for c in candidates:
            primary, reference = cells[c.id]
            for task_class, metric, cell in result_rows(spec.mode, primary, reference, metrics):
                # The name too: an endpoint has no model row, and a deleted model's row loses its id.
                details: dict[str, Any] = {"unparsable": cell.unparsable, "questions": cell.questions, "name": c.name}
                if c.endpoint is not None:
                    details["endpoint"] = c.endpoint.base_url
                session.add(EvalResult(job_id=ctx.job_id, model_id=c.model_id, task_class=task_class, metric=metric,
                                       score=cell.score, count=cell.count, details=details))
        session.add(Artifact(team_id=ctx.team_id, job_id=ctx.job_id, kind=SUMMARY_KIND, uri=stored_summary.uri,
                             sha256=stored_summary.sha256, bytes=stored_summary.bytes, details={"result": result}))
        session.add(Artifact(team_id=ctx.team_id, job_id=ctx.job_id, kind=REPORT_KIND, uri=stored_report.uri,
                             sha256=stored_report.sha256, bytes=stored_report.bytes))
    overall = ", ".join(f"{name} {_percent(score)}" for name, score in result["overall"].items())
    ctx.event(f"scores recorded ({result['primary_metric']}, overall): {overall}", kind="metrics",
              overall=result["overall"], summary_uri=result["summary_uri"], report_uri=result["report_uri"])
    return result


def _percent(score: float | None) -> str:
    return "—" if score is None else f"{score * 100:.1f}"
