"""The `belle` command.

    belle up [--port 8000] [--data-dir .belle]      start the embedded stack (gateway + workers)
    belle demo                                      run the offline demo end to end
    belle teacher [--port 8100] [--latency 0.2]     the offline teacher/judge (OpenAI-compatible)
    belle admin create-team NAME                    print a new team's API key (last line)
    belle files upload PATH [--purpose P]           upload a JSONL file (text for --purpose prompt)
    belle datasets list | download ID -o FILE       the team's datasets
    belle secrets set NAME < key.txt                a team secret (e.g. a teacher API key)
    belle jobs submit SPEC.json [--follow]          submit a job; list | show | events | cancel
    belle pipeline run FILE.yaml                    submit a pipeline, follow every step; show | list | retry | cancel
    belle model init --arch llama --out DIR         a tiny random-init model + BELLE tokenizer, offline
    belle models import PATH | --bundled smollm2     import real weights (GGUF or HF folder) as a base model
    belle models register PATH --name NAME          register a team base model folder in place; list | delete
    belle admin register-model PATH --name NAME     register a shared base model (operators)
"""

from __future__ import annotations

import json
import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import httpx
import typer
from rich.console import Console
from rich.table import Table

from belle_cli.client import APIError, Client, ClientSettings, TERMINAL

app = typer.Typer(help="BELLE: your own instruction-tuned chat model.", no_args_is_help=True)
admin_app = typer.Typer(help="Administration (talks to the database directly).", no_args_is_help=True)
jobs_app = typer.Typer(help="Submit and follow jobs.", no_args_is_help=True)
files_app = typer.Typer(help="Upload and list files.", no_args_is_help=True)
datasets_app = typer.Typer(help="List and download datasets.", no_args_is_help=True)
secrets_app = typer.Typer(help="Team secrets (teacher/judge API keys) that job specs name.", no_args_is_help=True)
model_app = typer.Typer(help="Local model folders (needs the trainer installed).", no_args_is_help=True)
models_app = typer.Typer(help="The model registry: list and register models.", no_args_is_help=True)
pipeline_app = typer.Typer(help="Pipelines: several jobs in one file, each step started when its inputs exist.",
                           no_args_is_help=True)
app.add_typer(admin_app, name="admin")
app.add_typer(jobs_app, name="jobs")
app.add_typer(files_app, name="files")
app.add_typer(datasets_app, name="datasets")
app.add_typer(secrets_app, name="secrets")
app.add_typer(model_app, name="model")
app.add_typer(models_app, name="models")
app.add_typer(pipeline_app, name="pipeline")

console = Console(stderr=True)
out = Console()


def _settings(data_dir: Optional[Path]):
    from belle_shared.settings import Settings

    if data_dir is not None:
        os.environ["BELLE_DATA_DIR"] = str(data_dir)
    return Settings()


def _client(api_url: Optional[str], api_key: Optional[str]) -> Client:
    settings = ClientSettings()
    with _api_errors():
        return Client(api_url or settings.api_url, api_key or settings.api_key)


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(1)


@contextmanager
def _api_errors():
    """An error answer from the gateway, or no answer at all, ends the command with a one-line
    message (exit status 1) instead of a traceback."""
    try:
        yield
    except APIError as exc:
        _fail(str(exc))
    except httpx.TransportError as exc:
        _fail(f"cannot reach the gateway ({type(exc).__name__}: {exc}); is `belle up` running, and is "
              "--api-url / BELLE_API_URL right?")


ApiUrl = typer.Option(None, "--api-url", help="Gateway URL (default $BELLE_API_URL or http://127.0.0.1:8000).")
ApiKey = typer.Option(None, "--api-key", help="Team API key (default $BELLE_API_KEY).")
DataDir = typer.Option(None, "--data-dir", help="Folder of the embedded default (default $BELLE_DATA_DIR or .belle).")


# ------------------------------------------------------------------------------------------ up


@app.command()
def up(port: int = typer.Option(8000, help="Gateway port."), host: str = typer.Option("127.0.0.1"),
       data_dir: Optional[Path] = DataDir):
    """Start the gateway and one worker per installed service; Ctrl-C stops everything."""
    from belle_cli.stack import Stack, StackError

    stack = Stack(_settings(data_dir), host=host, port=port, log=lambda m: console.print(f"[dim]{m}[/dim]"))

    def _terminate(signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    try:
        with console.status("starting the stack"):
            stack.start()
        console.print(f"logs in {stack.log_dir}; Ctrl-C stops the stack")
        out.print(f"BELLE gateway: {stack.url}")
        stack.run_forever()
    except StackError as exc:
        stack.stop()
        _fail(str(exc))
    except KeyboardInterrupt:
        console.print("stopping")
        stack.stop()


@app.command()
def demo(data_dir: Optional[Path] = DataDir, port: int = typer.Option(0, help="Gateway port (0: any free port)."),
         model: str = typer.Option("smollm2", help="Base model: `smollm2` (the bundled real SmolLM2-135M-Instruct, "
                                   "fetched with pip once) or `tiny` (built here, random weights: quicker, learns "
                                   "less)."),
         rows: Optional[int] = typer.Option(None, help="Rows to generate (default: the demo pipeline's)."),
         epochs: Optional[float] = typer.Option(None, help="Training epochs at most (default: the demo pipeline's)."),
         train_seconds: Optional[float] = typer.Option(None, help="Training time in seconds (default: the demo "
                                                       "pipeline's; the schedule is fitted to it)."),
         eval_questions: Optional[int] = typer.Option(None, help="Held-out questions the three models answer "
                                                      "(default: 60 for smollm2, 240 for tiny)."),
         exit_after: bool = typer.Option(False, "--exit", help="Stop after the summary instead of serving chat.")):
    """The offline demo: teacher -> dataset -> fine-tune -> 4-bit GPTQ -> evaluation as one pipeline, then chat."""
    from belle_cli.demo import PIPELINE_FILES, DemoOptions, run_demo

    if model not in PIPELINE_FILES:
        _fail(f"--model must be one of {', '.join(PIPELINE_FILES)}, not {model!r}")
    options = DemoOptions(model=model, rows=rows, epochs=epochs, train_seconds=train_seconds,
                          eval_questions=eval_questions, serve=not exit_after)
    raise typer.Exit(run_demo(_settings(data_dir), port=port, console=console, out=out, options=options))


@app.command()
def teacher(host: str = typer.Option("127.0.0.1"), port: int = typer.Option(8100, help="0 picks a free port."),
            model: str = typer.Option("belle-teacher", help="Model name served."),
            api_key: Optional[str] = typer.Option(None, "--api-key", help="Require `Authorization: Bearer KEY`."),
            latency: float = typer.Option(0.0, help="Seconds of delay per request."),
            jitter: float = typer.Option(0.0, help="Extra random delay, up to this many seconds."),
            error_rate: float = typer.Option(0.0, help="Share of requests failing with 429 / 503, alternating."),
            noise: float = typer.Option(0.05, help="Share of self-instruct blocks made deliberately bad."),
            seed: Optional[int] = typer.Option(None, help="Seed of the random choices."),
            holdout: Optional[Path] = typer.Option(None, help="Eval-set JSONL whose questions are never generated.")):
    """The offline teacher and judge: an OpenAI-compatible server whose tasks are checked exactly."""
    from belle_teacher.options import TeacherOptions
    from belle_teacher.server import serve

    try:
        options = TeacherOptions(host=host, port=port, model=model, api_key=api_key, latency=latency, jitter=jitter,
                                 error_rate=error_rate, noise=noise, seed=seed, holdout=holdout)
    except ValueError as exc:
        _fail(str(exc))
    serve(options)


# --------------------------------------------------------------------------------------- model


@model_app.command("init")
def model_init(out_dir: Path = typer.Option(..., "--out", help="Folder to write (new or empty)."),
               arch: str = typer.Option("llama", "--arch", help="llama or bloom."),
               hidden_size: int = typer.Option(128, "--hidden-size"),
               num_layers: int = typer.Option(2, "--num-layers"),
               num_heads: int = typer.Option(4, "--num-heads"),
               vocab_size: int = typer.Option(4096, "--vocab-size", help="Tokenizer vocabulary (byte-level BPE)."),
               max_position: int = typer.Option(2048, "--max-position", help="Longest sequence (LLaMA)."),
               seed: int = typer.Option(0, "--seed", help="Same seed, same weights."),
               force: bool = typer.Option(False, "--force", help="Write into a folder that is not empty.")):
    """Build a tiny random-init LLaMA or BLOOM with a BELLE chat tokenizer, without downloads."""
    import importlib.util

    if importlib.util.find_spec("belle_trainer") is None:
        _fail("`belle model init` needs the trainer: pip install -c constraints.txt -e services/trainer")
    try:
        from belle_trainer.tiny import init_tiny_model

        with console.status(f"building a tiny {arch} model"):
            path = init_tiny_model(out_dir, arch=arch, hidden_size=hidden_size, num_layers=num_layers,
                                   num_heads=num_heads, vocab_size=vocab_size, seed=seed,
                                   max_position=max_position, overwrite=force)
    except ImportError as exc:
        _fail(f"the trainer's dependencies are missing ({exc}): pip install -c constraints.txt -e services/trainer")
    except (ValueError, FileExistsError) as exc:
        _fail(str(exc))
    out.print(str(path))


# --------------------------------------------------------------------------------------- admin


@admin_app.command("create-team")
def create_team(name: str, data_dir: Optional[Path] = DataDir):
    """Create a team; its API key is printed as the last line (shown once)."""
    from belle_cli.admin import new_team
    from belle_shared.db.migrate import upgrade
    from belle_shared.teams import TeamExists

    settings = _settings(data_dir)
    upgrade(settings)
    try:
        team, key = new_team(settings, name)
    except TeamExists as exc:
        _fail(str(exc))
    console.print(f"team {name!r} created ({team.id}); its API key (store it, it is not shown again):")
    out.print(key, soft_wrap=True)


@admin_app.command("register-model")
def admin_register_model(path: str = typer.Argument(..., help="Model folder (or fsspec URL) the workers can read."),
                         name: str = typer.Option(..., "--name", help="Name teams use for it."),
                         data_dir: Optional[Path] = DataDir):
    """Register a shared base model that every team sees (no model-root restriction)."""
    from belle_shared.db.engine import make_engine, make_session_factory
    from belle_shared.db.migrate import upgrade
    from belle_shared.models import ModelExists, register_model

    settings = _settings(data_dir)
    upgrade(settings)
    uri = _local_or_url(path)
    engine = make_engine(settings)
    try:
        with make_session_factory(engine)() as session:
            model = register_model(session, team_id=None, name=name, uri=uri)
            session.commit()
    except (ModelExists, ValueError) as exc:
        _fail(str(exc))
    finally:
        engine.dispose()
    console.print(f"shared base model {name!r} registered ({model.id}) from {uri}")
    out.print(str(model.id))


def _local_or_url(path: str) -> str:
    """An existing local path as an absolute one (the gateway does not share our working folder)."""
    if "://" not in path and Path(path).expanduser().exists():
        return str(Path(path).expanduser().resolve())
    return path


@admin_app.command("migrate")
def migrate(data_dir: Optional[Path] = DataDir):
    """Bring the database schema up to date."""
    from belle_shared.db.migrate import upgrade

    upgrade(_settings(data_dir))
    console.print("database is up to date")


# -------------------------------------------------------------------------------------- models


@models_app.command("register")
def models_register(path: str = typer.Argument(..., help="Model folder under one of the gateway's model roots, "
                                                "or an artifact-store URI of the team's."),
                    name: str = typer.Option(..., "--name", help="Name to register it under."),
                    api_url: Optional[str] = ApiUrl, api_key: Optional[str] = ApiKey):
    """Register a base model folder for the team; prints the model object."""
    with _api_errors():
        out.print_json(data=_client(api_url, api_key).register_model(_local_or_url(path), name))


@models_app.command("import")
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
    if (path is None) == (bundled is None):
        _fail("give a PATH or --bundled NAME (one of them)")
    spec = {"type": "model_import", "name": name, "dtype": dtype,
            **({"bundled": bundled} if bundled else {"path": _local_or_url(path)})}
    client = _client(api_url, api_key)
    with _api_errors():
        job = client.submit(spec)
        console.print(f"job {job['id']} queued")
        final = follow_job(client, job["id"])
    if final["status"] != "succeeded":
        _fail(f"the import {final['status']}: {(final.get('error') or {}).get('message', '')}")
    out.print(final["result"]["model"])


@models_app.command("list")
def models_list(api_url: Optional[str] = ApiUrl, api_key: Optional[str] = ApiKey):
    """The team's models and the shared base models."""
    with _api_errors():
        data = _client(api_url, api_key).models()["data"]
    table = Table("name", "kind", "owner", "architecture", "parent")
    table.columns.insert(0, _id_column())
    for m in data:
        details = m.get("details") or {}
        table.add_row(m["belle_id"], m["id"], m["kind"], m["owned_by"],
                      str(details.get("model_type") or details.get("base_model") or ""), m.get("parent") or "")
    out.print(table)


@models_app.command("delete")
def models_delete(model: str, api_url: Optional[str] = ApiUrl, api_key: Optional[str] = ApiKey):
    """Remove one of the team's models from the registry (its files are left in place)."""
    with _api_errors():
        _client(api_url, api_key).delete_model(model)
    console.print(f"model {model} deleted")


# ------------------------------------------------------------------------------------ datasets


@datasets_app.command("list")
def datasets_list(api_url: Optional[str] = ApiUrl, api_key: Optional[str] = ApiKey):
    """The team's datasets."""
    with _api_errors():
        data = _client(api_url, api_key).datasets()["data"]
    table = Table(_id_column(), "name", "rows", "dropped", "created")
    for d in data:
        table.add_row(d["id"], d["name"], str(d["rows"]), str(d["stats"].get("dropped_total", 0)), d["created_at"][:19])
    out.print(table)


@datasets_app.command("download")
def datasets_download(dataset_id: str, output: Path = typer.Option(..., "--output", "-o", help="File to write."),
                      format: str = typer.Option("conversations", help="conversations | instructions"),
                      api_url: Optional[str] = ApiUrl, api_key: Optional[str] = ApiKey):
    """Download a dataset's rows as JSONL."""
    try:
        with open(output, "wb") as f:
            _client(api_url, api_key).download_dataset(dataset_id, f, format=format)
    except APIError as exc:
        output.unlink(missing_ok=True)
        _fail(str(exc))
    console.print(f"wrote {output}")


# ------------------------------------------------------------------------------------- secrets


@secrets_app.command("set")
def secrets_set(name: str, api_url: Optional[str] = ApiUrl, api_key: Optional[str] = ApiKey):
    """Set a team secret; the value is read from stdin (or asked for), never from the command line."""
    value = sys.stdin.readline().rstrip("\n") if not sys.stdin.isatty() else typer.prompt(name, hide_input=True)
    if not value:
        _fail("empty secret value")
    with _api_errors():
        _client(api_url, api_key).set_secret(name, value)
    console.print(f"secret {name} set")


@secrets_app.command("list")
def secrets_list(api_url: Optional[str] = ApiUrl, api_key: Optional[str] = ApiKey):
    """The team's secret names (values are never shown)."""
    with _api_errors():
        data = _client(api_url, api_key).secrets()["data"]
    for secret in data:
        out.print(f"{secret['name']}  (updated {secret['updated_at'][:19]})")


@secrets_app.command("delete")
def secrets_delete(name: str, api_url: Optional[str] = ApiUrl, api_key: Optional[str] = ApiKey):
    """Delete a team secret."""
    with _api_errors():
        _client(api_url, api_key).delete_secret(name)
    console.print(f"secret {name} deleted")


# --------------------------------------------------------------------------------------- files


@files_app.command("upload")
def files_upload(path: Path, purpose: str = typer.Option("fine-tune"), api_url: Optional[str] = ApiUrl,
                 api_key: Optional[str] = ApiKey):
    """Upload a file (JSONL; plain text for purpose `prompt`); prints the file object."""
    if not path.is_file():
        _fail(f"{path}: no such file")
    with _api_errors():
        out.print_json(data=_client(api_url, api_key).upload(path, purpose))


@files_app.command("list")
def files_list(api_url: Optional[str] = ApiUrl, api_key: Optional[str] = ApiKey):
    """The team's files."""
    with _api_errors():
        data = _client(api_url, api_key).files()["data"]
    table = Table("filename", "purpose", "lines", "bytes")
    table.columns.insert(0, _id_column())
    for f in data:
        table.add_row(f["id"], f["filename"], f["purpose"], str(f["lines"]), str(f["bytes"]))
    out.print(table)


# ---------------------------------------------------------------------------------------- jobs


@jobs_app.command("submit")
def jobs_submit(spec_file: Path = typer.Argument(..., help="JSON job spec with a `type`; - reads stdin."),
                follow: bool = typer.Option(False, "--follow", "-f", help="Show events until the job ends."),
                api_url: Optional[str] = ApiUrl, api_key: Optional[str] = ApiKey):
    """Submit a job from a JSON spec."""
    text = sys.stdin.read() if str(spec_file) == "-" else spec_file.read_text(encoding="utf-8")
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        _fail(f"{spec_file}: not valid JSON: {exc}")
    client = _client(api_url, api_key)
    with _api_errors():
        job = client.submit(spec)
    if not follow:
        out.print_json(data=job)
        return
    console.print(f"job {job['id']} queued")
    final = follow_job(client, job["id"])
    out.print_json(data=final)
    raise typer.Exit(0 if final["status"] == "succeeded" else 1)


@jobs_app.command("list")
def jobs_list(type: Optional[str] = None, status: Optional[str] = None, limit: int = 20,
              api_url: Optional[str] = ApiUrl, api_key: Optional[str] = ApiKey):
    """The team's jobs, newest first."""
    with _api_errors():
        page = _client(api_url, api_key).jobs(type=type, status=status, limit=limit)
    table = Table("type", "status", "created", "finished", title=f"{page['count']} jobs")
    table.columns.insert(0, _id_column())
    for j in page["data"]:
        table.add_row(j["id"], j["type"], j["status"], j["created_at"][:19], (j["finished_at"] or "")[:19])
    out.print(table)


@jobs_app.command("show")
def jobs_show(job_id: str, api_url: Optional[str] = ApiUrl, api_key: Optional[str] = ApiKey):
    """One job as JSON."""
    with _api_errors():
        out.print_json(data=_client(api_url, api_key).job(job_id))


@jobs_app.command("events")
def jobs_events(job_id: str, follow: bool = typer.Option(False, "--follow", "-f"),
                api_url: Optional[str] = ApiUrl, api_key: Optional[str] = ApiKey):
    """A job's events; --follow streams them until the job ends."""
    client = _client(api_url, api_key)
    with _api_errors():
        if follow:
            follow_job(client, job_id)
            return
        for event in client.events(job_id)["data"]:
            _print_event(event)


@jobs_app.command("cancel")
def jobs_cancel(job_id: str, api_url: Optional[str] = ApiUrl, api_key: Optional[str] = ApiKey):
    """Cancel a queued or running job."""
    with _api_errors():
        job = _client(api_url, api_key).cancel(job_id)
    out.print(f"{job['id']}: {job['status']}" + (" (cancellation requested)" if job["status"] == "running" else ""))


# ------------------------------------------------------------------------------------ pipeline


def _finish_pipeline(client: Client, pipeline: dict, follow: bool) -> None:
    from belle_cli.pipelines import steps_table, watch_pipeline

    if not follow:
        out.print(steps_table(pipeline))
        return
    with _api_errors():
        final = watch_pipeline(client, pipeline["id"], console)
    out.print(steps_table(final))
    if final["error"]:
        console.print(f"[red]{final['error']['message']}[/red]", highlight=False)
        console.print(f"re-run from the failed step with: belle pipeline retry {final['id']}")
    raise typer.Exit(0 if final["status"] == "succeeded" else 1)


@pipeline_app.command("run")
def pipeline_run(spec_file: Path = typer.Argument(..., help="Pipeline file (YAML or JSON): `name` and `steps`."),
                 follow: bool = typer.Option(True, "--follow/--no-follow", help="Show progress until it ends."),
                 api_url: Optional[str] = ApiUrl, api_key: Optional[str] = ApiKey):
    """Submit a pipeline and show every step's progress until it ends (exit status 1 if it fails)."""
    from belle_cli.pipelines import PipelineFileError, load_pipeline_file

    try:
        spec = load_pipeline_file(spec_file)
    except PipelineFileError as exc:
        _fail(str(exc))
    client = _client(api_url, api_key)
    with _api_errors():
        pipeline = client.submit_pipeline(spec)
    console.print(f"pipeline {pipeline['id']} submitted ({len(pipeline['steps'])} steps)")
    _finish_pipeline(client, pipeline, follow)


@pipeline_app.command("show")
def pipeline_show(pipeline_id: str, api_url: Optional[str] = ApiUrl, api_key: Optional[str] = ApiKey):
    """One pipeline's steps: status, job, time, and why a step has not run."""
    from belle_cli.pipelines import steps_table

    with _api_errors():
        out.print(steps_table(_client(api_url, api_key).pipeline(pipeline_id)))


@pipeline_app.command("list")
def pipeline_list(limit: int = 20, api_url: Optional[str] = ApiUrl, api_key: Optional[str] = ApiKey):
    """The team's pipelines, newest first."""
    with _api_errors():
        page = _client(api_url, api_key).pipelines(limit=limit)
    table = Table("name", "status", "steps", "created", title=f"{page['count']} pipelines")
    table.columns.insert(0, _id_column())
    for p in page["data"]:
        done = sum(s["status"] == "succeeded" for s in p["steps"])
        table.add_row(p["id"], p["name"] or "", p["status"], f"{done}/{len(p['steps'])} done", p["created_at"][:19])
    out.print(table)


@pipeline_app.command("retry")
def pipeline_retry(pipeline_id: str,
                   follow: bool = typer.Option(True, "--follow/--no-follow", help="Show progress until it ends."),
                   api_url: Optional[str] = ApiUrl, api_key: Optional[str] = ApiKey):
    """Re-run a failed or cancelled pipeline from its failed steps (succeeded steps are kept)."""
    client = _client(api_url, api_key)
    with _api_errors():
        pipeline = client.retry_pipeline(pipeline_id)
    _finish_pipeline(client, pipeline, follow)


@pipeline_app.command("cancel")
def pipeline_cancel(pipeline_id: str, api_url: Optional[str] = ApiUrl, api_key: Optional[str] = ApiKey):
    """Cancel a running pipeline: its running steps stop, no more start."""
    with _api_errors():
        pipeline = _client(api_url, api_key).cancel_pipeline(pipeline_id)
    waiting = " (cancellation requested)" if pipeline["status"] == "running" else ""
    out.print(f"{pipeline['id']}: {pipeline['status']}{waiting}")


def _id_column():
    from rich.table import Column

    # Ids are for copying: never truncated, whatever the terminal width.
    return Column("id", no_wrap=True, min_width=36)


def _print_event(event: dict) -> None:
    style = {"error": "red", "warning": "yellow"}.get(event["level"], "")
    line = f"{event['created_at'][11:19]} {event['kind']:<8} {event['message']}"
    console.print(f"[{style}]{line}[/{style}]" if style else line, highlight=False)


def follow_job(client: Client, job_id: str) -> dict:
    """Print a job's events as they come, with a spinner, and return the finished job."""
    last = 0
    with console.status(f"job {job_id}") as status:
        while True:
            for event in client.follow(job_id, after=last):
                last = event["id"]
                _print_event(event)
                if event.get("data") and event["data"].get("status"):
                    status.update(f"job {job_id}: {event['data']['status']}")
            job = client.job(job_id)
            if job["status"] in TERMINAL:
                return job
            # The stream ended before the job did (dropped connection): resume after the last event.


if __name__ == "__main__":
    app()
