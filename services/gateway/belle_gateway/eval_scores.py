"""Eval jobs' scores as the gateway shows them.

The evaluator stores one ``EvalResult`` row per (job, model, class, metric); "overall" and
"overall_without_others" are classes of their own. Here those rows become
``{model name: {class: {metric: {"score", "count", "unparsable"}}}}`` (classes in canonical order),
a job's one headline score per class (its primary metric), and the side-by-side table of several
evals. Endpoint candidates have no model row: their rows carry the name in ``details``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from belle_shared.db.models import EvalResult, Job, Model
from belle_shared.specs import EVAL_CLASSES

OVERALL_KEYS: tuple[str, ...] = ("overall", "overall_without_others")
# Metrics that are a judge's; every other metric name is a reference metric (exact_match, bleu, ...).
JUDGE_METRICS: frozenset[str] = frozenset({"judge", "pairwise_win_rate"})
# Shown for a row whose model was deleted after the job ran and that has no name in its details
# (rows written before the evaluator recorded names).
DELETED_MODEL = "(deleted model)"

Cell = dict[str, Any]  # {"score", "count", "unparsable"}


def class_order(names: Iterable[str]) -> list[str]:
    """Canonical classes in canonical order, then any other class (sorted), then the overall keys."""
    present = set(names)
    known = [c for c in EVAL_CLASSES if c in present]
    other = sorted(present - set(EVAL_CLASSES) - set(OVERALL_KEYS))
    return known + other + [k for k in OVERALL_KEYS if k in present]


def model_names(session: Session, *, job: Job, rows: Iterable[EvalResult]) -> dict[str, str]:
    """``{model id: name}`` from the job's result, and from the registry for ids the result lacks."""
    names = {str(m.get("id")): str(m.get("name")) for m in (job.result or {}).get("models") or []}
    missing = {r.model_id for r in rows if r.model_id is not None and str(r.model_id) not in names}
    if missing:
        names.update({str(i): n for i, n in session.execute(select(Model.id, Model.name).where(Model.id.in_(missing)))})
    return names


def row_model(row: EvalResult, names: dict[str, str]) -> str:
    """The name a row's scores are shown under."""
    if row.model_id is not None:
        return names.get(str(row.model_id), str(row.model_id))
    return str((row.details or {}).get("name") or DELETED_MODEL)


def eval_rows(session: Session, *, job_id: uuid.UUID) -> list[EvalResult]:
    return list(session.scalars(select(EvalResult).where(EvalResult.job_id == job_id)))


def group_scores(rows: Iterable[EvalResult], names: dict[str, str], model_order: Iterable[str] = ()) -> dict[str, dict[str, dict[str, Cell]]]:
    """``{model name: {class: {metric: cell}}}``; models in ``model_order`` first, classes in canonical
    order, metrics with the judge's first and then by name."""
    grouped: dict[str, dict[str, dict[str, Cell]]] = {}
    for row in rows:
        cell = {"score": row.score, "count": row.count, "unparsable": int((row.details or {}).get("unparsable") or 0)}
        grouped.setdefault(row_model(row, names), {}).setdefault(row.task_class, {})[row.metric] = cell
    order = [m for m in dict.fromkeys(model_order) if m in grouped] + sorted(set(grouped) - set(model_order))
    return {
        model: {
            cls: dict(sorted(grouped[model][cls].items(), key=lambda kv: (kv[0] not in JUDGE_METRICS, kv[0])))
            for cls in class_order(grouped[model])
        }
        for model in order
    }


def primary_score(metrics: dict[str, Cell], primary: str | None) -> tuple[float | None, int]:
    """(score, count) of one class under the job's primary metric.

    "judge" and "pairwise_win_rate" are metrics of their own. "reference" is the evaluator's row of
    that name where there is one (the overall rows: every answer's reference score, whatever its
    metric), else the class's own reference metric (a class has at most one).
    """
    if primary in JUDGE_METRICS:
        cell = metrics.get(primary) or {}
    else:
        own = [c for m, c in metrics.items() if m not in JUDGE_METRICS]
        cell = metrics.get("reference") or (own[0] if len(own) == 1 else {})
    return cell.get("score"), int(cell.get("count") or 0)


def eval_set_key(job: Job) -> tuple[Any, ...]:
    """What makes two evals' question sets the same: the uploaded file (None: the bundled set) and
    the set's name and size as the job read them (``max_questions`` may cut a set short)."""
    eval_set = (job.result or {}).get("eval_set") or {}
    return (job.spec.get("eval_file_id"), eval_set.get("name"), eval_set.get("questions"))


def eval_set_label(job: Job) -> str:
    eval_set = (job.result or {}).get("eval_set") or {}
    name = eval_set.get("name") or (f"file {job.spec['eval_file_id']}" if job.spec.get("eval_file_id") else "bundled")
    return f"{name} ({eval_set.get('questions', '?')} questions)"


def comparison(evals: list[tuple[Job, dict[str, dict[str, dict[str, Cell]]]]]) -> tuple[list[dict], list[dict], list[str]]:
    """(columns, rows, notes) for evals side by side: a column per (eval, model) scored with that
    eval's primary metric, a row per class (canonical order) and the two overall rows."""
    columns: list[dict[str, Any]] = []
    cells: list[dict[str, dict[str, Cell]]] = []
    for job, grouped in evals:
        result = job.result or {}
        ids = {str(m.get("name")): str(m.get("id")) for m in result.get("models") or []}
        for model, by_class in grouped.items():
            columns.append({"eval_id": job.id, "model": model, "model_id": ids.get(model),
                            "mode": result.get("mode") or job.spec.get("mode"),
                            "metric": result.get("primary_metric") or "reference", "eval_set": result.get("eval_set")})
            cells.append(by_class)
    rows = []
    for cls in class_order({c for by_class in cells for c in by_class}):
        pairs = [primary_score(by_class.get(cls) or {}, column["metric"])
                 for column, by_class in zip(columns, cells, strict=True)]
        rows.append({"cls": cls, "scores": [score for score, _ in pairs], "counts": [count for _, count in pairs]})

    notes = []
    sets = {eval_set_key(job): job for job, _ in evals}
    if len(sets) > 1:
        notes.append("these evals used different eval sets, so their scores are not directly comparable: "
                     + "; ".join(f"{job.id}: {eval_set_label(job)}" for job in sets.values()))
    metrics = {column["metric"] for column in columns}
    if len(metrics) > 1:
        notes.append(f"the columns use different metrics ({', '.join(sorted(metrics))}); each column's metric is "
                     "its eval's primary metric")
    judges = {(j.get("model"), j.get("base_url")) for job, _ in evals if (j := (job.result or {}).get("judge"))}
    if len(judges) > 1:
        notes.append(f"the evals were judged by different judges ({'; '.join(sorted(f'{m} at {u}' for m, u in judges))})")
    return columns, rows, notes
