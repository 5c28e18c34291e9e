"""Pipeline files and the steps table of `belle pipeline ...` (following one: `belle_cli.follow`).

A pipeline file is YAML (or JSON) in the shape `POST /v1/pipelines` takes::

    name: my-model
    steps:
      - name: data
        spec: {type: datagen, teacher: {base_url: "http://127.0.0.1:8100/v1", model: belle-teacher}}
      - name: train
        spec: {type: train, base_model: tiny-llama, dataset_id: "${data.dataset_id}"}
"""

from __future__ import annotations

from pathlib import Path

import yaml
from rich.table import Table


class PipelineFileError(ValueError):
    pass


def load_pipeline_file(path: Path) -> dict:
    """The pipeline spec in a YAML or JSON file (JSON is YAML), or PipelineFileError saying why not."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PipelineFileError(f"{path}: {exc.strerror or exc}") from None
    try:
        spec = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1}, column {where.column + 1})" if where else ""
        raise PipelineFileError(f"{path}: not valid YAML{at}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(spec, dict):
        raise PipelineFileError(f"{path}: a pipeline file holds a mapping with `steps`, not {type(spec).__name__}")
    return spec


def _elapsed(step: dict) -> str:
    from datetime import datetime, timezone

    if not step.get("started_at"):
        return ""
    start = datetime.fromisoformat(step["started_at"])
    end = datetime.fromisoformat(step["finished_at"]) if step.get("finished_at") else datetime.now(timezone.utc)
    return f"{(end - start).total_seconds():.0f}s"


def steps_table(pipeline: dict) -> Table:
    """The steps at a glance; job ids are cut to 8 characters here (the progress lines and
    `belle pipeline show` give them whole)."""
    from rich.table import Column

    table = Table(Column("step", no_wrap=True), Column("type", no_wrap=True), Column("status", no_wrap=True),
                  Column("job", no_wrap=True), Column("time", no_wrap=True, justify="right"), "note",
                  title=f"pipeline {pipeline.get('name') or ''} {pipeline['id']}: {pipeline['status']}")
    for step in pipeline["steps"]:
        note = step.get("reason") or ((step.get("error") or {}).get("message") or "")
        table.add_row(step["name"], step["type"] or "", step["status"], (step["job_id"] or "")[:8],
                      _elapsed(step), note[:160])
    return table
