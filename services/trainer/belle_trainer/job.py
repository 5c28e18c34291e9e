"""The `train` job: prepare a run folder, launch training under torchrun, follow it, record the model.

The worker process never imports torch: training runs in a subprocess tree
(``torch.distributed.run -m belle_trainer.train``, `spec.num_processes` processes) in its own process
group, which a cancel kills within seconds. The subprocess writes ``progress.jsonl`` (see
``belle_trainer.train`` for the contract); this module follows it and turns each line into job
events, uploads every checkpoint to the artifact store and records it, and records the final model.

Resume: a redelivered job (its worker died) downloads the newest recorded checkpoint into a fresh
run folder when the old one is not on this machine, and training continues from that step.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import select

from belle_shared.db.models import Artifact, Dataset, Job, Model, Team
from belle_shared.errors import JobError, RetryableJobError
from belle_shared.formats import RowError, to_conversation
from belle_shared.models import find_model, fine_tuned_model_name
from belle_shared.preferences import to_preference
from belle_shared.pretraining import PretrainSpec
from belle_shared.progress import PROGRESS_FILE
from belle_shared.specs import TrainSpec
from belle_shared.subprocess_run import run_followed, step_failed
from belle_shared.worker import JobContext
from belle_trainer import expand_vocab, kubernetes_launch
from belle_trainer.progress import OPTIONAL_FIELDS
from belle_trainer.run_lock import wait_until_no_training

log = logging.getLogger(__name__)
# How long a new attempt waits for an earlier attempt's training to die (it polls its worker every 0.5 s).
RUN_LOCK_TIMEOUT = 60.0

STEP_EVENT_EVERY_SECONDS = 1.0  # at most one step event per second (every step still lands in the log)
DPO_METRICS = OPTIONAL_FIELDS["done"]  # what a DPO model records of its run (reward margin and accuracy)
VOCABULARY_DIR = "expanded"              # the base model with its grown vocabulary (pretrain jobs)
VOCABULARY_REPORT = expand_vocab.REPORT  # what the expansion added and measured


def run_train(spec: TrainSpec | PretrainSpec, ctx: JobContext, *, work_root: Path) -> dict[str, Any]:
    """A `train` job, or a `pretrain` job (belle_shared.pretraining: plain text, every token trained,
    optionally after growing the vocabulary): the same run folder, launch, checkpoints and record."""
    with ctx.session_factory() as session:
        existing = session.scalar(select(Model).where(Model.job_id == ctx.job_id))
        if existing is not None:
            ctx.event("model already recorded by an earlier attempt", model_id=str(existing.id))
            return dict(session.get(Job, ctx.job_id).result or _result(existing))
        base = find_model(session, ctx.team_id, spec.base_model)
        if base is None:
            raise JobError("model_not_found", f"no model {spec.base_model!r}", param="base_model")
        base_name, base_uri, base_id = base.name, base.uri, base.id
        team_name = session.get(Team, ctx.team_id).name

    run_dir = work_root / str(ctx.job_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not wait_until_no_training(run_dir, timeout=RUN_LOCK_TIMEOUT):
        raise RetryableJobError("run_folder_busy", f"a training process of an earlier attempt still runs in "
                                f"{run_dir.name} after {RUN_LOCK_TIMEOUT:.0f}s; will retry")
    inputs = _prepare_inputs(spec, ctx, run_dir)
    base_path = _local_model(ctx, base_uri, work_root / "models" / str(base_id))
    vocabulary = None
    if isinstance(spec, PretrainSpec) and spec.vocabulary is not None:
        base_path, vocabulary = _expand_vocabulary(spec, ctx, run_dir, base_path, inputs["train"])
    _restore_checkpoint(ctx, run_dir)
    config = {
        "spec": spec.model_dump(mode="json"),
        "base_model_path": str(base_path),
        "train_file": str(inputs["train"]),
        "validation_file": str(inputs["validation"]) if inputs["validation"] else None,
        "output_dir": str(run_dir),
        "resume": True,
        "new_tokens_from": vocabulary["vocab_size_before"] if vocabulary else None,
    }
    (run_dir / "run.json").write_text(json.dumps(config, indent=2))

    done = _launch_and_follow(spec, ctx, run_dir)
    return _record_model(spec, ctx, run_dir, done, base_id=base_id, vocabulary=vocabulary,
                         name=fine_tuned_model_name(base_name, team_name, spec.suffix, ctx.job_id))


# ------------------------------------------------------------------------------------- inputs


def _prepare_inputs(spec: TrainSpec | PretrainSpec, ctx: JobContext, run_dir: Path) -> dict[str, Path | None]:
    """Local canonical JSONL files for training and validation."""
    paths: dict[str, Path | None] = {"validation": None}
    if isinstance(spec, PretrainSpec):
        paths["train"] = _materialize_text(ctx, run_dir / "train.jsonl", spec.training_file_id, "training_file_id")
        if spec.validation_file_id is not None:
            paths["validation"] = _materialize_text(ctx, run_dir / "validation.jsonl", spec.validation_file_id,
                                                    "validation_file_id")
        return paths
    paths["train"] = _materialize(ctx, run_dir / "train.jsonl", dataset_id=spec.dataset_id,
                                  file_id=spec.training_file_id,
                                  param="dataset_id" if spec.dataset_id else "training_file_id",
                                  objective=spec.objective)
    if spec.validation_dataset_id or spec.validation_file_id:
        paths["validation"] = _materialize(
            ctx, run_dir / "validation.jsonl", dataset_id=spec.validation_dataset_id,
            file_id=spec.validation_file_id,
            param="validation_dataset_id" if spec.validation_dataset_id else "validation_file_id",
            objective=spec.objective)
    return paths


def _materialize(ctx: JobContext, target: Path, *, dataset_id, file_id, param: str, objective: str = "sft") -> Path:
    """Write the rows of a dataset (as stored: canonical already) or of an uploaded file, converted
    to canonical conversations (sft: unreadable rows are skipped and counted) or canonical preference
    pairs (dpo: the gateway checked every row, so a bad one fails the job, naming its line)."""
    if dataset_id is not None:
        with ctx.session_factory() as session:
            dataset = session.scalar(select(Dataset).where(Dataset.id == dataset_id, Dataset.team_id == ctx.team_id))
            if dataset is None:
                raise JobError("dataset_not_found", f"no dataset with id {dataset_id}", param=param)
            uri, convert = dataset.artifact.uri, False
    else:
        uri, convert = ctx.team_file(file_id, param=param).uri, True
    tmp = target.with_suffix(".tmp")
    rows = dropped = 0
    with ctx.store.open(uri, "rb") as src, open(tmp, "w", encoding="utf-8") as out:
        for number, line in enumerate(src, start=1):
            if not line.strip():
                continue
            if convert and objective == "dpo":
                try:
                    row, _ = to_preference(json.loads(line))
                except RowError as exc:
                    where = f"line {number}" + (f", field {exc.field}" if exc.field else "")
                    raise JobError("invalid_training_row", f"{param}: {where}: not a preference pair: {exc.message}",
                                   param=param) from None
                except ValueError as exc:  # not JSON
                    raise JobError("invalid_training_row", f"{param}: line {number}: not JSON: {exc}",
                                   param=param) from None
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
            elif convert:
                try:
                    row, _ = to_conversation(json.loads(line))
                except (ValueError, RowError):
                    dropped += 1
                    continue
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
            else:
                out.write(line.decode("utf-8").rstrip("\n") + "\n")
            rows += 1
    os.replace(tmp, target)
    if rows == 0:
        what = "preference pair" if objective == "dpo" else "conversation row"
        raise JobError("no_usable_rows", f"{param}: no usable {what} ({dropped} unreadable)", param=param)
    ctx.event(f"{target.name}: {rows} rows" + (f", {dropped} unreadable rows skipped" if dropped else ""),
              rows=rows, dropped=dropped)
    return target


def _materialize_text(ctx: JobContext, target: Path, file_id, param: str) -> Path:
    """A `pretrain` upload as JSONL documents ({"text": ...}), read and written a line at a time: an
    upload may be far larger than memory should hold twice."""
    uri = ctx.team_file(file_id, param=param).uri
    tmp = target.with_suffix(".tmp")
    documents = characters = 0
    with ctx.store.open(uri, "rb") as src, open(tmp, "w", encoding="utf-8") as out:
        for text in _upload_documents(src, plain_text=uri.endswith(".txt")):
            if text.strip():
                out.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
                documents += 1
                characters += len(text)
    if not documents:
        tmp.unlink()
        raise JobError("no_usable_rows", f"{param}: the file has no text", param=param)
    os.replace(tmp, target)
    ctx.event(f"{target.name}: {documents} documents, {characters} characters", rows=documents, characters=characters)
    return target


def _upload_documents(src, *, plain_text: bool) -> Iterator[str]:
    """The documents of a `pretrain` upload: plain text cut at blank lines (lines of whitespace only),
    each stripped; or the `text` of each JSONL row, as written."""
    if not plain_text:
        for raw in src:
            if raw.strip():
                yield json.loads(raw)["text"]
        return
    lines: list[str] = []
    for raw in src:
        line = raw.decode("utf-8")
        if line.strip():
            lines.append(line)
        elif lines:
            yield "".join(lines).strip()
            lines = []
    if lines:
        yield "".join(lines).strip()


def _expand_vocabulary(spec: PretrainSpec, ctx: JobContext, run_dir: Path, base_path: Path,
                       train_file: Path) -> tuple[Path, dict[str, Any]]:
    """Grow the base's vocabulary from the training text in a subprocess (torch stays out of the worker);
    a redelivered job reuses a finished expansion. Returns the expanded folder and its report."""
    folder = run_dir / VOCABULARY_DIR
    report_path = folder / VOCABULARY_REPORT
    if not report_path.exists():
        shutil.rmtree(folder, ignore_errors=True)
        argv = [sys.executable, "-m", "belle_trainer.expand_vocab", "--source", str(base_path), "--destination",
                str(folder), "--text", str(train_file), "--max-new-tokens", str(spec.vocabulary.max_new_tokens),
                "--min-frequency", str(spec.vocabulary.min_frequency)]
        log_path = run_dir / "vocabulary.log"
        returncode = run_followed(argv, ctx, cwd=run_dir, progress_path=run_dir / "vocabulary.progress",
                                  log_path=log_path, on_event=lambda _event: None,
                                  start_message="growing the vocabulary from the training text")
        if returncode != 0 or not report_path.exists():
            raise step_failed("vocabulary_failed", "vocabulary expansion", returncode, log_path, None)
    report = json.loads(report_path.read_text())
    ctx.event(f"vocabulary grown by {report['added_tokens']} tokens ({report['vocab_size_before']} -> "
              f"{report['vocab_size_after']}): {report['tokens_per_char_before']:.2f} -> "
              f"{report['tokens_per_char_after']:.2f} tokens per Chinese character on the training text",
              kind="vocabulary", **{k: v for k, v in report.items() if k != "examples"}, examples=report.get("examples"))
    return folder, report


def _local_model(ctx: JobContext, uri: str, cache: Path) -> Path:
    """A local folder of the model: the store's own path when local, else a cached download."""
    folder, downloaded = ctx.store.local_folder(uri, cache)
    if downloaded:
        ctx.event(f"downloaded the base model from {uri}")
    return Path(folder)


def _restore_checkpoint(ctx: JobContext, run_dir: Path) -> None:
    """Bring the newest recorded checkpoint into the run folder if this machine lacks it; an older
    one if the newest is gone from the store; none (the run starts over) if all are."""
    with ctx.session_factory() as session:
        recorded = session.scalars(
            select(Artifact).where(Artifact.job_id == ctx.job_id, Artifact.kind == "checkpoint")
        ).all()
    for checkpoint in sorted(recorded, key=lambda a: (a.details or {}).get("step", 0), reverse=True):
        step = (checkpoint.details or {}).get("step", 0)
        local = run_dir / "checkpoints" / f"checkpoint-{step}"
        if local.exists():
            ctx.event(f"resuming from checkpoint at step {step}", kind="status", step=step)
            return
        ctx.event(f"restoring checkpoint at step {step} from the artifact store", kind="status", step=step)
        partial = local.with_name(local.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        try:
            ctx.store.get_dir(checkpoint.uri, partial)
        except FileNotFoundError:
            shutil.rmtree(partial, ignore_errors=True)
            ctx.event(f"checkpoint at step {step} is missing from the artifact store; trying an older one",
                      kind="status", level="warning", step=step)
            continue
        os.replace(partial, local)
        return


# ---------------------------------------------------------------------------------- the process


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch_and_follow(spec: TrainSpec | PretrainSpec, ctx: JobContext, run_dir: Path) -> dict[str, Any]:
    argv = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(spec.num_processes),
            "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
            "-m", "belle_trainer.train", "--config", str(run_dir / "run.json")]
    log_path = run_dir / "train.log"
    follower = _ProgressFollower(ctx, run_dir, spec)
    if kubernetes_launch.wanted(spec, ctx.settings):
        # More GPUs than one node has: a multi-node TrainJob, followed through the same progress file.
        returncode, error = kubernetes_launch.run_trainjob(spec, ctx, run_dir, on_event=follower.handle,
                                                           log_path=log_path)
        follower.error = follower.error or error
    else:
        returncode = run_followed(
            argv, ctx, cwd=run_dir, progress_path=run_dir / PROGRESS_FILE, log_path=log_path,
            on_event=follower.handle,
            start_message=f"training started: {spec.method}, ZeRO-{spec.zero_stage}, {spec.num_processes} process(es)")
    if returncode != 0 or follower.done is None:
        raise step_failed("training_failed", "training", returncode, log_path, follower.error)
    return follower.done


def _loss_text(loss: float | None) -> str:
    """A loss for an event's message; a diverged loss is written as null (not JSON's NaN) by the trainer."""
    return f"{loss:.4f}" if isinstance(loss, (int, float)) else "n/a (diverged)"


def _reward_text(record: dict[str, Any]) -> str:
    """A DPO step's or eval's reward margin and accuracy for its message (nothing for SFT runs)."""
    if "reward_margin" not in record and "reward_accuracy" not in record:
        return ""

    def number(value: Any) -> str:
        return f"{value:.4f}" if isinstance(value, (int, float)) else "n/a"

    return f", reward margin {number(record.get('reward_margin'))}, accuracy {number(record.get('reward_accuracy'))}"


class _ProgressFollower:
    """Turns the lines of progress.jsonl into job events, checkpoint records and the final result."""

    def __init__(self, ctx: JobContext, run_dir: Path, spec: TrainSpec | PretrainSpec):
        self.ctx = ctx
        self.run_dir = run_dir
        self.spec = spec
        self.done: dict[str, Any] | None = None
        self.error: str | None = None
        self.last_metrics: dict[str, Any] = {}
        self._last_step_event = 0.0

    def handle(self, record: dict[str, Any]) -> None:
        kind = record.get("event")
        data = {k: v for k, v in record.items() if k != "event"}
        if kind == "start":
            resumed = record.get("resumed_from_step")
            self.ctx.event(
                f"{record['total_steps']} steps over {record['num_train_samples']} samples on "
                f"{record['world_size']} process(es)" + (f", resumed from step {resumed}" if resumed else ""),
                kind="status", **data)
        elif kind == "step":
            self.last_metrics.update(step=record["step"], train_loss=record.get("loss"))
            self.last_metrics.update({key: record[key] for key in ("reward_margin", "reward_accuracy") if key in record})
            now = time.monotonic()
            if now - self._last_step_event >= STEP_EVENT_EVERY_SECONDS:
                self._last_step_event = now
                self.ctx.event(f"step {record['step']}: loss {_loss_text(record.get('loss'))}{_reward_text(record)}",
                               kind="metrics", **data)
        elif kind == "budget":
            self.ctx.event(f"time budget {record['max_seconds']:.0f}s at {record['seconds_per_step']:.2f}s per step: "
                           f"{record['total_steps']} of {record['planned_steps']} steps, the schedule fitted to them",
                           kind="status", **data)
        elif kind == "eval":
            self.last_metrics.update(eval_loss=record.get("eval_loss"))
            self.last_metrics.update({f"eval_{key}": record[key] for key in ("reward_margin", "reward_accuracy")
                                      if key in record})
            self.ctx.event(f"step {record['step']}: eval loss {_loss_text(record.get('eval_loss'))}"
                           f"{_reward_text(record)}", kind="metrics", **data)
        elif kind == "checkpoint":
            self._record_checkpoint(record)
        elif kind == "done":
            self.done = record
        elif kind == "error":
            self.error = record.get("message")
            self.ctx.event(f"training error: {self.error}", level="error")

    def _record_checkpoint(self, record: dict[str, Any]) -> None:
        step = record["step"]
        local = self.run_dir / record["path"]
        try:
            stored = self.ctx.store.put_dir(local, f"teams/{self.ctx.team_id}/jobs/{self.ctx.job_id}/checkpoints/"
                                                   f"checkpoint-{step}")
        except FileNotFoundError:
            # The Trainer keeps only the newest checkpoints: on a fast run it can rotate this one away
            # before the worker (polling every half second) uploads it. A newer one is on its way.
            self.ctx.event(f"checkpoint at step {step} was replaced by a newer one before it was uploaded",
                           kind="status", step=step)
            return
        metrics = {k: v for k, v in self.last_metrics.items() if v is not None}
        with self.ctx.session_factory() as session, session.begin():
            session.add(Artifact(team_id=self.ctx.team_id, job_id=self.ctx.job_id, kind="checkpoint",
                                 uri=stored.uri, sha256=stored.sha256, bytes=stored.bytes,
                                 details={"step": step, "metrics": metrics}))
        self.ctx.event(f"checkpoint at step {step} saved", kind="checkpoint", step=step, uri=stored.uri)


# -------------------------------------------------------------------------------------- result


def _record_model(spec: TrainSpec | PretrainSpec, ctx: JobContext, run_dir: Path, done: dict[str, Any], *, base_id,
                  name: str, vocabulary: dict[str, Any] | None = None) -> dict[str, Any]:
    prefix = f"teams/{ctx.team_id}/models/{ctx.job_id}"
    stored = ctx.store.put_dir(run_dir / done.get("model_path", "final"), prefix)
    adapter = None
    if done.get("adapter_path"):
        adapter = ctx.store.put_dir(run_dir / done["adapter_path"], f"{prefix}-adapter")
    training = json.loads((run_dir / "final" / "belle_training.json").read_text()) \
        if (run_dir / "final" / "belle_training.json").exists() else {}
    details = {
        "method": spec.method, "objective": spec.objective, "base_model": spec.base_model,
        "trained_tokens": done.get("trained_tokens"),
        "train_loss": done.get("train_loss"), "eval_loss": done.get("eval_loss"), "steps": done.get("step"),
        "train_seconds": done.get("train_seconds"), "adapter_uri": adapter.uri if adapter else None,
        "module_names": training.get("module_names"),
    }
    if spec.objective == "dpo":
        details["dpo"] = {key: done.get(key) for key in DPO_METRICS}
    if vocabulary is not None:
        details["vocabulary"] = {k: v for k, v in vocabulary.items() if k != "examples"}
    with ctx.session_factory() as session, session.begin():
        base = session.get(Model, base_id)
        if base is not None and base.details and not details["module_names"]:
            details["module_names"] = base.details.get("module_names")
        session.add(Artifact(team_id=ctx.team_id, job_id=ctx.job_id, kind="model", uri=stored.uri,
                             sha256=stored.sha256, bytes=stored.bytes))
        model = Model(team_id=ctx.team_id, name=name, kind="fine_tuned", uri=stored.uri, parent_model_id=base_id,
                      job_id=ctx.job_id, dataset_id=spec.dataset_id, details=details)
        session.add(model)
        session.flush()
        result = _result(model)
    rewards = ""
    if spec.objective == "dpo":
        held_out = done.get("eval_reward_accuracy")
        rewards = (f", eval reward accuracy {held_out}" if held_out is not None
                   else f", reward accuracy {done.get('reward_accuracy')}")
    ctx.event(f"model {name} recorded: train loss {done.get('train_loss')}, eval loss {done.get('eval_loss')}{rewards}",
              kind="metrics", model_id=result["model_id"], objective=spec.objective, train_loss=done.get("train_loss"),
              eval_loss=done.get("eval_loss"), trained_tokens=done.get("trained_tokens"), **details.get("dpo", {}))
    return result


def _result(model: Model) -> dict[str, Any]:
    details = model.details or {}
    result = {"model_id": str(model.id), "fine_tuned_model": model.name, "objective": details.get("objective", "sft"),
              "trained_tokens": details.get("trained_tokens"), "train_loss": details.get("train_loss"),
              "eval_loss": details.get("eval_loss"), "steps": details.get("steps")}
    if details.get("dpo"):
        result.update(details["dpo"])
    if details.get("vocabulary"):
        result["vocabulary"] = details["vocabulary"]
    return result
