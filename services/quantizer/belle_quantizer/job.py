"""The `quantize` job: fetch the model and its data, run the quantization subprocess, record the model.

The worker process never imports torch: `python -m belle_quantizer.quantize` runs in its own process
group (a cancel kills it within seconds) and reports through `RUN/progress.jsonl` (contract in
`run_config.py`). The quantized folder is uploaded to the artifact store and recorded as a model of
kind `quantized` whose parent is the source model, with the measured report in its details and the
job's result. A redelivered job whose model is already recorded returns it without redoing the work.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from belle_shared.db.models import Artifact, Dataset, Job, Model, ModelKind
from belle_shared.errors import JobError
from belle_shared.models import find_model
from belle_shared.progress import PROGRESS_FILE
from belle_shared.specs import QuantizeSpec
from belle_shared.subprocess_run import run_followed, step_failed
from belle_shared.worker import JobContext
from belle_quantizer.run_config import RUN_FILE, QuantizeRun

LAYER_EVENT_EVERY_SECONDS = 1.0  # at most one "layers quantized" event a second


def quantized_model_name(parent_name: str, bits: int, group_size: int, job_id) -> str:
    """`<parent>:gptq-w4g128:<first 8 hex of the job id>` (group size -1 reads `gall`)."""
    group = "all" if group_size == -1 else str(group_size)
    return f"{parent_name}:gptq-w{bits}g{group}:{job_id.hex[:8]}"


def run_quantize(spec: QuantizeSpec, ctx: JobContext, *, work_root: Path) -> dict[str, Any]:
    with ctx.session_factory() as session:
        existing = session.scalar(select(Model).where(Model.job_id == ctx.job_id))
        if existing is not None:
            ctx.event("model already recorded by an earlier attempt", model_id=str(existing.id))
            return dict(session.get(Job, ctx.job_id).result or _result(existing))
        source = find_model(session, ctx.team_id, spec.model_id)
        if source is None:
            raise JobError("model_not_found", f"no model {spec.model_id!r}", param="model_id")
        if source.kind == ModelKind.quantized:
            raise JobError("model_already_quantized", f"{source.name!r} is already quantized; quantize the "
                           "model it was made from", param="model_id")
        dataset_id = spec.dataset_id or source.dataset_id
        if dataset_id is None:
            raise JobError("dataset_required", f"{source.name!r} was not trained on a recorded dataset; give "
                           "dataset_id for calibration", param="dataset_id")
        dataset = session.scalar(select(Dataset).where(Dataset.id == dataset_id, Dataset.team_id == ctx.team_id))
        if dataset is None:
            raise JobError("dataset_not_found", f"no dataset with id {dataset_id}", param="dataset_id")
        source_name, source_uri, source_id = source.name, source.uri, source.id
        dataset_uri = dataset.artifact.uri

    run_dir = work_root / str(ctx.job_id)
    shutil.rmtree(run_dir, ignore_errors=True)  # a retried run starts clean: quantization has no checkpoints
    run_dir.mkdir(parents=True)
    folder, downloaded = ctx.store.local_folder(source_uri, work_root / "models" / str(source_id))
    if downloaded:
        ctx.event(f"downloaded {source_name} from {source_uri}")
    dataset_file = run_dir / "dataset.jsonl"
    with ctx.store.open(dataset_uri, "rb") as src, open(dataset_file, "wb") as out:
        shutil.copyfileobj(src, out)
    run = QuantizeRun(spec=spec, model_path=Path(folder).resolve(), dataset_file=dataset_file,
                      output_dir=run_dir / "quantized", work_dir=run_dir)
    run.write(run_dir / RUN_FILE)

    follower = _Follower(ctx)
    env = dict(os.environ)
    # GPTQModel sizes a worker pool from this; on 2 cores it fails without it (see FACTS.md).
    env.setdefault("GPTQMODEL_CPU_WORKERS", str(max(2, os.cpu_count() or 2)))
    log_path = run_dir / "quantize.log"
    returncode = run_followed(
        [sys.executable, "-m", "belle_quantizer.quantize", "--config", str(run_dir / RUN_FILE)], ctx,
        cwd=run_dir, progress_path=run_dir / PROGRESS_FILE, log_path=log_path, on_event=follower.handle, env=env,
        start_message=f"quantizing {source_name}: GPTQ {spec.bits}-bit, group size "
                      f"{spec.group_size if spec.group_size is not None else 'auto'}")
    if follower.input_error is not None:
        raise JobError(**follower.input_error)
    if returncode != 0 or follower.report is None:
        raise step_failed("quantization_failed", "quantization", returncode, log_path, follower.error)
    group_size = follower.report["group_size"]["value"]
    return _record_model(spec, ctx, run, follower.report, source_id=source_id, dataset_id=dataset_id,
                         name=quantized_model_name(source_name, spec.bits, group_size, ctx.job_id))


class _Follower:
    """Turns the run's progress events into job events; keeps the report and any error."""

    def __init__(self, ctx: JobContext):
        self.ctx = ctx
        self.report: dict[str, Any] | None = None
        self.error: str | None = None
        self.input_error: dict[str, Any] | None = None
        self._last_layer_event = 0.0

    def handle(self, record: dict[str, Any]) -> None:
        kind = record["event"]
        if kind == "start":
            self.ctx.event(f"{record['calibration_samples']} calibration and {record['eval_samples']} held-out "
                           f"samples, {record['quantized_modules']} layers to quantize on {record['device']} "
                           f"({record['dtype']}), group size {record['group_size']} ({record['group_size_from']})",
                           kind="status",
                           **{k: v for k, v in record.items() if k != "event"})
        elif kind == "stage":
            self.ctx.event(record["message"], kind="status", stage=record["stage"])
        elif kind == "layer":
            # At most one event a second (a large model has many small layers), and always the last.
            now = time.monotonic()
            if now - self._last_layer_event >= LAYER_EVENT_EVERY_SECONDS or record["done"] == record["total"]:
                self._last_layer_event = now
                self.ctx.progress(f"GPTQ: {record['done']}/{record['total']} layers quantized", done=record["done"],
                                  total=record["total"], stage="gptq")
        elif kind == "measure":
            report = record["report"]
            self.ctx.event(f"{record['variant']}: perplexity {report['perplexity']:.4f} on {report['tokens']} "
                           "held-out tokens", kind="metrics", variant=record["variant"], report=report)
        elif kind == "done":
            self.report = record["report"]
        elif kind == "error":
            self.error = record["message"]
            if record.get("code") != "quantization_failed":
                self.input_error = {"code": record["code"], "message": record["message"], "param": record.get("param")}
            self.ctx.event(f"quantization error: {record['message']}", level="error")


def _record_model(spec: QuantizeSpec, ctx: JobContext, run: QuantizeRun, report: dict[str, Any], *, source_id,
                  dataset_id, name: str) -> dict[str, Any]:
    stored = ctx.store.put_dir(run.output_dir, f"teams/{ctx.team_id}/models/{ctx.job_id}")
    with ctx.session_factory() as session, session.begin():
        source = session.get(Model, source_id)
        inherited = (source.details or {}) if source is not None else {}
        details = {**inherited,
                   "quantization": {"method": "gptq", "bits": spec.bits, "group_size": report["group_size"]["value"],
                                    "act_order": spec.act_order, "symmetric": spec.symmetric},
                   "quantization_report": report}
        session.add(Artifact(team_id=ctx.team_id, job_id=ctx.job_id, kind="model", uri=stored.uri,
                             sha256=stored.sha256, bytes=stored.bytes))
        model = Model(team_id=ctx.team_id, name=name, kind=ModelKind.quantized, uri=stored.uri,
                      parent_model_id=source_id, job_id=ctx.job_id, dataset_id=dataset_id, details=details)
        session.add(model)
        session.flush()
        result = _result(model)
    perplexity = report["perplexity"]
    ctx.event(f"model {name} recorded: perplexity {perplexity['source']:.4f} -> {perplexity['gptq']:.4f} "
              f"(round-to-nearest: {perplexity['rtn']:.4f}); linear weights "
              f"{report['size']['linear_compression']:.2f}x smaller than fp16", kind="metrics", **result)
    return result


def _result(model: Model) -> dict[str, Any]:
    report = (model.details or {}).get("quantization_report", {})
    return {"model_id": str(model.id), "quantized_model": model.name, "parent_model_id": str(model.parent_model_id),
            "size": report.get("size"), "perplexity": report.get("perplexity"), "memory": report.get("memory"),
            "seconds": report.get("seconds")}
