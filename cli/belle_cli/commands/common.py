"""What every command module shares: the two consoles, the gateway client, the error exits and the
options that many commands take."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn, Optional

import httpx
import typer
from rich.console import Console
from rich.markup import escape

from belle_cli.client import APIError, Client, ClientSettings

# Messages, progress and errors go to stderr; what a script reads (JSON, tables, a key) to stdout.
console = Console(stderr=True)
out = Console()

ApiUrl = typer.Option(None, "--api-url", help="Gateway URL (default $BELLE_API_URL or http://127.0.0.1:8000).")
ApiKey = typer.Option(None, "--api-key", help="Team API key (default $BELLE_API_KEY).")
DataDir = typer.Option(None, "--data-dir", help="Folder of the embedded default (default $BELLE_DATA_DIR or .belle).")


def load_settings(data_dir: Optional[Path]):
    from belle_shared.settings import Settings

    if data_dir is not None:
        os.environ["BELLE_DATA_DIR"] = str(data_dir)
    return Settings()


def make_client(api_url: Optional[str], api_key: Optional[str]) -> Client:
    defaults = ClientSettings()
    with api_errors():
        return Client(api_url or defaults.api_url, api_key or defaults.api_key)


def fail(message: str) -> NoReturn:
    # One line, whatever the terminal's width (a long path must not be cut into two, for a reader or a
    # script that greps it), and the message's own brackets are not markup.
    console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(1)


@contextmanager
def api_errors():
    """An error answer from the gateway, or no answer at all, ends the command with a one-line
    message (exit status 1) instead of a traceback."""
    try:
        yield
    except APIError as exc:
        fail(str(exc))
    except httpx.TransportError as exc:
        fail(f"cannot reach the gateway ({type(exc).__name__}: {exc}); is `belle up` running, and is "
             "--api-url / BELLE_API_URL right?")


def local_or_url(path: str) -> str:
    """An existing local path as an absolute one (the gateway does not share our working folder)."""
    if "://" not in path and Path(path).expanduser().exists():
        return str(Path(path).expanduser().resolve())
    return path


def id_column():
    from rich.table import Column

    # Ids are for copying: never truncated, whatever the terminal width.
    return Column("id", no_wrap=True, min_width=36)
