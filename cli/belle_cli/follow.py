"""Following a job or a pipeline to its end, with a progress bar per running job (`belle_cli.progress`).

    follow_job(client, job_id, console)        # `belle jobs submit --follow`, `belle models import`
    stream_events(client, job_id, console)     # `belle jobs events --follow`: every event, no bar
    watch_pipeline(client, pipeline_id, console)  # `belle pipeline run|retry`, `belle demo`
"""

from __future__ import annotations

import time
from datetime import datetime

from rich.console import Console
from rich.markup import escape

from belle_cli.client import TERMINAL, Client
from belle_cli.progress import JobProgress, ProgressDisplay


def _clock(event: dict) -> str:
    """The event's time on this machine's clock (the step status lines' clock), HH:MM:SS."""
    return datetime.fromisoformat(event["created_at"]).astimezone().strftime("%H:%M:%S")


def _styled(event: dict, line: str) -> str:
    style = {"error": "red", "warning": "yellow"}.get(event["level"], "")
    return f"[{style}]{line}[/{style}]" if style else line


def event_line(event: dict) -> str:
    """`HH:MM:SS kind     message`, as `belle jobs events` prints it."""
    return _styled(event, f"{_clock(event)} {event['kind']:<8} {escape(event['message'])}")


def step_event_line(step: str, event: dict) -> str:
    """`HH:MM:SS step: message`, a pipeline step's event beside its status lines."""
    return _styled(event, f"{_clock(event)} {escape(step)}: {escape(event['message'])}")


def print_event(console: Console, event: dict) -> None:
    console.print(event_line(event), highlight=False)


def stream_events(client: Client, job_id: str, console: Console) -> dict:
    """Print every event of a job as it comes (`belle jobs events --follow`); returns the finished job."""
    last = 0
    while True:
        for event in client.follow(job_id, after=last):
            last = event["id"]
            print_event(console, event)
        job = client.job(job_id)
        if job["status"] in TERMINAL:
            return job


def follow_job(client: Client, job_id: str, console: Console, *, job_type: str | None = None) -> dict:
    """Print a job's events as they come, with a bar for what it counts (rows, steps, layers, answers)
    in place of the events that only move it, and return the finished job."""
    if job_type is None:
        job_type = client.job(job_id)["type"]
    progress = JobProgress(job_type)
    last = 0
    with ProgressDisplay(console) as display:
        while True:
            for event in client.follow(job_id, after=last):
                last = event["id"]
                if not progress.add(event):
                    display.print(event_line(event))
                display.update(job_id, job_type, progress)
            job = client.job(job_id)
            if job["status"] in TERMINAL:
                display.remove(job_id)
                return job
            # The stream ended before the job did (dropped connection): resume after the last event.


def _new_events(client: Client, job_id: str, after: int):
    """The job's events after `after`, every page of them."""
    while True:
        page = client.events(job_id, after=after, limit=1000)
        yield from page["data"]
        if not page.get("has_more") or not page["data"]:
            return
        after = page["data"][-1]["id"]


def watch_pipeline(client: Client, pipeline_id: str, console: Console, *, interval: float = 1.0) -> dict:
    """Print each step's status changes and its running job's events as they happen, with a bar per
    running step in place of the events that only move it, until the pipeline ends; returns it."""
    seen: dict[str, tuple[str | None, str]] = {}
    last_event: dict[str, int] = {}
    progress: dict[str, JobProgress] = {}  # the jobs seen running
    ended: set[str] = set()
    with ProgressDisplay(console) as display:
        while True:
            pipeline = client.pipeline(pipeline_id)
            for step in pipeline["steps"]:
                job_id, status = step["job_id"], step["status"]
                change = None
                if seen.get(step["name"]) != (job_id, status):
                    seen[step["name"]] = (job_id, status)
                    extra = f" (job {job_id})" if job_id else ""
                    why = step.get("reason") or ((step.get("error") or {}).get("message") or "")
                    change = (f"{time.strftime('%H:%M:%S')} step {step['name']}: {status}{extra}"
                              + (f": {escape(why)}" if why else ""))
                if change and status == "running":
                    display.print(change)
                # A running job's new events; once more when a job seen running ends (its last words).
                if job_id and (status == "running" or (job_id in progress and job_id not in ended)):
                    job = progress.setdefault(job_id, JobProgress(step["type"]))
                    for event in _new_events(client, job_id, last_event.get(job_id, 0)):
                        last_event[job_id] = event["id"]
                        counted = job.add(event)
                        # The job's queued/running/ended events repeat the step's status lines.
                        lifecycle = (event.get("data") or {}).get("status") and event["level"] == "info"
                        if not counted and not lifecycle:
                            display.print(step_event_line(step["name"], event))
                if change and status != "running":
                    display.print(change)
                if job_id and status == "running":
                    display.update(job_id, step["name"], progress[job_id])
                elif job_id in progress:
                    ended.add(job_id)
                    display.remove(job_id)
            if pipeline["status"] in TERMINAL:
                return pipeline
            time.sleep(interval)
