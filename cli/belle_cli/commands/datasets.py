"""`belle datasets ...`: list the team's datasets and download their rows."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from belle_cli.client import APIError
from belle_cli.commands.common import ApiKey, ApiUrl, api_errors, console, fail, id_column, make_client, out

app = typer.Typer(help="List and download datasets.", no_args_is_help=True)


@app.command("list")
def datasets_list(api_url: Optional[str] = ApiUrl, api_key: Optional[str] = ApiKey):
    """The team's datasets."""
    with api_errors():
        data = make_client(api_url, api_key).datasets()["data"]
    table = Table(id_column(), "name", "rows", "dropped", "created")
    for d in data:
        table.add_row(d["id"], d["name"], str(d["rows"]), str(d["stats"].get("dropped_total", 0)), d["created_at"][:19])
    out.print(table)


@app.command("download")
def datasets_download(dataset_id: str, output: Path = typer.Option(..., "--output", "-o", help="File to write."),
                      format: str = typer.Option("conversations", help="conversations | instructions"),
                      api_url: Optional[str] = ApiUrl, api_key: Optional[str] = ApiKey):
    """Download a dataset's rows as JSONL."""
    try:
        with open(output, "wb") as f:
            make_client(api_url, api_key).download_dataset(dataset_id, f, format=format)
    except APIError as exc:
        output.unlink(missing_ok=True)
        fail(str(exc))
    console.print(f"wrote {output}")
