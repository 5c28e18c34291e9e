"""`belle pipeline ...`: read a pipeline file, submit it, and show every step's progress until it ends.

A pipeline file is YAML (or JSON) in the shape `POST /v1/pipelines` takes::

    name: my-model
    steps:
      - name: data
        spec: {type: datagen, teacher: {base_url: "http://127.0.0.1:8100/v1", model: belle-teacher}}
      - name: train
        spec: {type: train, base_model: tiny-llama, dataset_id: "${data.dataset_id}"}
"""

from __future__ import annotations

import time
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

from belle_cli.client import TERMINAL, Client


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


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class StepProgress:
    """A running job's latest progress as one line, from its events: for training, the step of the
    total (the time-budget fit included), the loss, tokens per second and the time left at the speed
    so far; for other jobs, their latest progress or status message."""

    def __init__(self) -> None:
        self.total: int | None = None
        self.first: tuple[int, float] | None = None  # (step, time) of the first step seen
        self.line = ""

    def add(self, event: dict) -> None:
        from datetime import datetime

        data = event.get("data") or {}
        if isinstance(data.get("total_steps"), int):
            self.total = data["total_steps"]
        if event["kind"] == "metrics" and isinstance(data.get("step"), int) and data.get("loss") is not None:
            step, at = data["step"], datetime.fromisoformat(event["created_at"]).timestamp()
            if self.first is None or step <= self.first[0]:
                self.first = (step, at)
            parts = [f"step {step}" + (f"/{self.total}" if self.total else ""), f"loss {data['loss']:.3f}"]
            if data.get("tokens_per_second"):
                parts.append(f"{data['tokens_per_second']:,.0f} tok/s")
            done_steps, seconds = step - self.first[0], at - self.first[1]
            if self.total and done_steps > 0 and seconds > 0:
                parts.append(f"~{_duration((self.total - step) * seconds / done_steps)} left")
            self.line = ", ".join(parts)
        elif event["kind"] in ("progress", "log", "message", "status"):
            self.line = event["message"]


def watch_pipeline(client: Client, pipeline_id: str, console: Console, *, interval: float = 1.0) -> dict:
    """Print each step's status changes as they happen, with the latest progress message of the steps
    that are running, until the pipeline ends; returns it."""
    seen: dict[str, tuple[str | None, str]] = {}
    last_event: dict[str, int] = {}
    progress: dict[str, StepProgress] = {}
    with console.status(f"pipeline {pipeline_id}") as spinner:
        while True:
            pipeline = client.pipeline(pipeline_id)
            for step in pipeline["steps"]:
                state = (step["job_id"], step["status"])
                if seen.get(step["name"]) != state:
                    seen[step["name"]] = state
                    extra = f" (job {step['job_id']})" if step["job_id"] else ""
                    why = step.get("reason") or ((step.get("error") or {}).get("message") or "")
                    console.print(f"{time.strftime('%H:%M:%S')} step {step['name']}: {step['status']}{extra}"
                                  + (f": {why}" if why else ""), highlight=False)
                if step["status"] == "running" and step["job_id"]:
                    events = client.events(step["job_id"], after=last_event.get(step["job_id"], 0))["data"]
                    for event in events:
                        last_event[step["job_id"]] = event["id"]
                        progress.setdefault(step["job_id"], StepProgress()).add(event)
            running = [(s["name"], progress.get(s["job_id"])) for s in pipeline["steps"] if s["status"] == "running"]
            spinner.update("; ".join(f"{name}: {(p.line if p and p.line else 'running')[:90]}" for name, p in running)
                           or f"pipeline {pipeline_id}: {pipeline['status']}")
            if pipeline["status"] in TERMINAL:
                return pipeline
            time.sleep(interval)
