"""`belle secrets ...`: team secrets (teacher and judge API keys) that job specs name."""

from __future__ import annotations

import sys
from typing import Optional

import typer

from belle_cli.commands.common import ApiKey, ApiUrl, api_errors, console, fail, make_client, out

app = typer.Typer(help="Team secrets (teacher/judge API keys) that job specs name.", no_args_is_help=True)


@app.command("set")
def secrets_set(name: str, api_url: Optional[str] = ApiUrl, api_key: Optional[str] = ApiKey):
    """Set a team secret; the value is read from stdin (or asked for), never from the command line."""
    value = sys.stdin.readline().rstrip("\n") if not sys.stdin.isatty() else typer.prompt(name, hide_input=True)
    if not value:
        fail("empty secret value")
    with api_errors():
        make_client(api_url, api_key).set_secret(name, value)
    console.print(f"secret {name} set")


@app.command("list")
def secrets_list(api_url: Optional[str] = ApiUrl, api_key: Optional[str] = ApiKey):
    """The team's secret names (values are never shown)."""
    with api_errors():
        data = make_client(api_url, api_key).secrets()["data"]
    for secret in data:
        out.print(f"{secret['name']}  (updated {secret['updated_at'][:19]})")


@app.command("delete")
def secrets_delete(name: str, api_url: Optional[str] = ApiUrl, api_key: Optional[str] = ApiKey):
    """Delete a team secret."""
    with api_errors():
        make_client(api_url, api_key).delete_secret(name)
    console.print(f"secret {name} deleted")
