"""`belle pipeline ...`: submit a pipeline file and follow every step to the end; show, list, retry, cancel."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from belle_cli.client import Client
from belle_cli.commands.common import ApiKey, ApiUrl, api_errors, console, fail, id_column, make_client, out

app = typer.Typer(help="Pipelines: several jobs in one file, each step started when its inputs exist.",
                  no_args_is_help=True)


def _finish(client: Client, pipeline: dict, follow: bool) -> None:
    from belle_cli.follow import watch_pipeline
    from belle_cli.pipelines import steps_table

    if not follow:
        out.print(steps_table(pipeline))
        return
    with api_errors():
        final = watch_pipeline(client, pipeline["id"], console)
    out.print(steps_table(final))
    if final["error"]:
        console.print(f"[red]{escape(final['error']['message'])}[/red]", highlight=False)
        console.print(f"re-run from the failed step with: belle pipeline retry {final['id']}")
    raise typer.Exit(0 if final["status"] == "succeeded" else 1)


@app.command("run")
def pipeline_run(spec_file: Path = typer.Argument(..., help="Pipeline file (YAML or JSON): `name` and `steps`."),
                 follow: bool = typer.Option(True, "--follow/--no-follow", help="Show progress until it ends."),
                 api_url: Optional[str] = ApiUrl, api_key: Optional[str] = ApiKey):
    """Submit a pipeline and show every step's progress until it ends (exit status 1 if it fails)."""
    from belle_cli.pipelines import PipelineFileError, load_pipeline_file

    try:
        spec = load_pipeline_file(spec_file)
    except PipelineFileError as exc:
        fail(str(exc))
    client = make_client(api_url, api_key)
    with api_errors():
        pipeline = client.submit_pipeline(spec)
    console.print(f"pipeline {pipeline['id']} submitted ({len(pipeline['steps'])} steps)")
    _finish(client, pipeline, follow)


@app.command("show")
def pipeline_show(pipeline_id: str, api_url: Optional[str] = ApiUrl, api_key: Optional[str] = ApiKey):
    """One pipeline's steps: status, job, time, and why a step has not run."""
    from belle_cli.pipelines import steps_table

    with api_errors():
        out.print(steps_table(make_client(api_url, api_key).pipeline(pipeline_id)))


@app.command("list")
def pipeline_list(limit: int = 20, api_url: Optional[str] = ApiUrl, api_key: Optional[str] = ApiKey):
    """The team's pipelines, newest first."""
    with api_errors():
        page = make_client(api_url, api_key).pipelines(limit=limit)
    table = Table("name", "status", "steps", "created", title=f"{page['count']} pipelines")
    table.columns.insert(0, id_column())
    for p in page["data"]:
        done = sum(s["status"] == "succeeded" for s in p["steps"])
        table.add_row(p["id"], p["name"] or "", p["status"], f"{done}/{len(p['steps'])} done", p["created_at"][:19])
    out.print(table)


@app.command("retry")
def pipeline_retry(pipeline_id: str,
                   follow: bool = typer.Option(True, "--follow/--no-follow", help="Show progress until it ends."),
                   api_url: Optional[str] = ApiUrl, api_key: Optional[str] = ApiKey):
    """Re-run a failed or cancelled pipeline from its failed steps (succeeded steps are kept)."""
    client = make_client(api_url, api_key)
    with api_errors():
        pipeline = client.retry_pipeline(pipeline_id)
    _finish(client, pipeline, follow)


@app.command("cancel")
def pipeline_cancel(pipeline_id: str, api_url: Optional[str] = ApiUrl, api_key: Optional[str] = ApiKey):
    """Cancel a running pipeline: its running steps stop, no more start."""
    with api_errors():
        pipeline = make_client(api_url, api_key).cancel_pipeline(pipeline_id)
    waiting = " (cancellation requested)" if pipeline["status"] == "running" else ""
    out.print(f"{pipeline['id']}: {pipeline['status']}{waiting}")
