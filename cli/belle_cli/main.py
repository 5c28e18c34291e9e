"""The `belle` command: this module only assembles it; each command group is a module of
`belle_cli.commands`.

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

Long commands (`jobs submit --follow`, `models import`, `pipeline run`, `demo`) show a progress bar per
running job, read from its events (`belle_cli.progress`); plain lines where the output is not a terminal.
"""

from __future__ import annotations

import typer

from belle_cli.commands import admin, datasets, files, jobs, local, model, models, pipeline, secrets

app = typer.Typer(help="BELLE: your own instruction-tuned chat model.", no_args_is_help=True)
for command in local.COMMANDS:  # up, demo, teacher
    app.command()(command)
app.add_typer(admin.app, name="admin")
app.add_typer(jobs.app, name="jobs")
app.add_typer(files.app, name="files")
app.add_typer(datasets.app, name="datasets")
app.add_typer(secrets.app, name="secrets")
app.add_typer(model.app, name="model")
app.add_typer(models.app, name="models")
app.add_typer(pipeline.app, name="pipeline")


if __name__ == "__main__":
    app()
