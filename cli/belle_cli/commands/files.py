"""`belle files ...`: upload and list the team's files."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from belle_cli.commands.common import ApiKey, ApiUrl, api_errors, fail, id_column, make_client, out

app = typer.Typer(help="Upload and list files.", no_args_is_help=True)


@app.command("upload")
def files_upload(path: Path, purpose: str = typer.Option("fine-tune"), api_url: Optional[str] = ApiUrl,
                 api_key: Optional[str] = ApiKey):
    """Upload a file (JSONL; plain text for purpose `prompt`); prints the file object."""
    if not path.is_file():
        fail(f"{path}: no such file")
    with api_errors():
        out.print_json(data=make_client(api_url, api_key).upload(path, purpose))


@app.command("list")
def files_list(api_url: Optional[str] = ApiUrl, api_key: Optional[str] = ApiKey):
    """The team's files."""
    with api_errors():
        data = make_client(api_url, api_key).files()["data"]
    table = Table("filename", "purpose", "lines", "bytes")
    table.columns.insert(0, id_column())
    for f in data:
        table.add_row(f["id"], f["filename"], f["purpose"], str(f["lines"]), str(f["bytes"]))
    out.print(table)
