"""`belle jobs ...`: submit a job from a JSON spec and follow it, list, show, read its events, cancel."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from belle_cli.commands.common import ApiKey, ApiUrl, api_errors, console, fail, id_column, make_client, out

app = typer.Typer(help="Submit and follow jobs.", no_args_is_help=True)


@app.command("submit")
def jobs_submit(spec_file: Path = typer.Argument(..., help="JSON job spec with a `type`; - reads stdin."),
                follow: bool = typer.Option(False, "--follow", "-f", help="Show events until the job ends."),
                api_url: Optional[str] = ApiUrl, api_key: Optional[str] = ApiKey):
    """Submit a job from a JSON spec."""
    from belle_cli.follow import follow_job

    text = sys.stdin.read() if str(spec_file) == "-" else spec_file.read_text(encoding="utf-8")
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"{spec_file}: not valid JSON: {exc}")
    client = make_client(api_url, api_key)
    with api_errors():
        job = client.submit(spec)
    if not follow:
        out.print_json(data=job)
        return
    console.print(f"job {job['id']} queued")
    with api_errors():
        final = follow_job(client, job["id"], console, job_type=job["type"])
    out.print_json(data=final)
    raise typer.Exit(0 if final["status"] == "succeeded" else 1)


@app.command("list")
def jobs_list(type: Optional[str] = None, status: Optional[str] = None, limit: int = 20,
              api_url: Optional[str] = ApiUrl, api_key: Optional[str] = ApiKey):
    """The team's jobs, newest first."""
    with api_errors():
        page = make_client(api_url, api_key).jobs(type=type, status=status, limit=limit)
    table = Table("type", "status", "created", "finished", title=f"{page['count']} jobs")
    table.columns.insert(0, id_column())
    for j in page["data"]:
        table.add_row(j["id"], j["type"], j["status"], j["created_at"][:19], (j["finished_at"] or "")[:19])
    out.print(table)


@app.command("show")
def jobs_show(job_id: str, api_url: Optional[str] = ApiUrl, api_key: Optional[str] = ApiKey):
    """One job as JSON."""
    with api_errors():
        out.print_json(data=make_client(api_url, api_key).job(job_id))


@app.command("events")
def jobs_events(job_id: str, follow: bool = typer.Option(False, "--follow", "-f"),
                api_url: Optional[str] = ApiUrl, api_key: Optional[str] = ApiKey):
    """A job's events; --follow streams them until the job ends."""
    from belle_cli.follow import print_event, stream_events

    client = make_client(api_url, api_key)
    with api_errors():
        if follow:
            stream_events(client, job_id, console)
            return
        for event in client.events(job_id)["data"]:
            print_event(console, event)


@app.command("cancel")
def jobs_cancel(job_id: str, api_url: Optional[str] = ApiUrl, api_key: Optional[str] = ApiKey):
    """Cancel a queued or running job."""
    with api_errors():
        job = make_client(api_url, api_key).cancel(job_id)
    out.print(f"{job['id']}: {job['status']}" + (" (cancellation requested)" if job["status"] == "running" else ""))
