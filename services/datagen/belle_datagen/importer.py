"""The `import` job: an uploaded JSONL file -> a validated conversation dataset with statistics.

Rows are streamed (millions fit in constant memory, bar one 16-byte hash per row for exact
de-duplication). The dataset is written to a temporary file and recorded only when complete, in one
transaction, so a crash never leaves half a dataset; a redelivered job that already recorded its
dataset returns it instead of importing again.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import PurePosixPath

from sqlalchemy import select

from belle_shared.formats import RowError, to_conversation
from belle_shared.preferences import is_preference_row, to_preference
from belle_datagen.stats import DatasetStats
from belle_shared.db.models import Artifact, Dataset
from belle_shared.errors import JobError
from belle_shared.specs import ImportSpec
from belle_shared.worker import JobContext

PROGRESS_EVERY_SECONDS = 2.0


def run_import(spec: ImportSpec, ctx: JobContext) -> dict:
    with ctx.session_factory() as session:
        existing = session.scalar(select(Dataset).where(Dataset.job_id == ctx.job_id))
        if existing is not None:
            ctx.event("dataset already recorded by an earlier attempt", dataset_id=str(existing.id))
            return _result(existing)
    source = ctx.team_file(spec.file_id, param="file_id")

    fd, tmp_path = tempfile.mkstemp(prefix="belle-import-", suffix=".jsonl")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out, ctx.store.open(source.uri, "rb") as src:
            stats = convert_stream(src, out, spec, ctx)
        if stats.rows == 0:
            examples = "; ".join(f"line {d['line']}: {d['message']}" for d in stats.to_dict()["drop_examples"][:5])
            raise JobError(
                "no_usable_rows",
                f"no usable row in {source.filename} ({sum(stats.dropped.values())} dropped): {examples}",
                param="file_id",
                details=stats.to_dict(),
            )
        stored = ctx.store.put_file(tmp_path, f"teams/{ctx.team_id}/datasets/{ctx.job_id}.jsonl")
    finally:
        os.unlink(tmp_path)

    name = spec.name or PurePosixPath(source.filename).stem or "dataset"
    summary = stats.to_dict()
    with ctx.session_factory() as session, session.begin():
        artifact = Artifact(team_id=ctx.team_id, job_id=ctx.job_id, kind="dataset", uri=stored.uri,
                            sha256=stored.sha256, bytes=stored.bytes)
        session.add(artifact)
        session.flush()
        dataset = Dataset(team_id=ctx.team_id, name=name, format=stats.dataset_format, rows=stats.rows, stats=summary,
                          artifact_id=artifact.id, source_file_id=source.id, job_id=ctx.job_id)
        session.add(dataset)
    ctx.event(
        f"dataset {name!r}: {stats.rows} rows, {sum(stats.dropped.values())} dropped",
        kind="metrics", dataset_id=str(dataset.id), rows=stats.rows, dropped=summary["dropped"],
    )
    return _result(dataset)


def convert_stream(src, out, spec: ImportSpec, ctx: JobContext | None = None) -> DatasetStats:
    """Convert JSONL lines from ``src`` (binary) into canonical rows written to ``out`` (text). The first row
    decides what the file is (with format `auto`): preference pairs (belle_shared.preferences) or supervised
    samples; a row of the other kind is dropped."""
    stats = DatasetStats()
    kind: str | None = None
    seen: set[bytes] = set()
    last_report = time.monotonic()
    for number, raw in enumerate(src, start=1):
        if ctx is not None and number % 1000 == 0:
            ctx.check_cancelled()
            if time.monotonic() - last_report > PROGRESS_EVERY_SECONDS:
                last_report = time.monotonic()
                ctx.progress(f"read {number} lines", lines=number, rows=stats.rows, dropped=sum(stats.dropped.values()))
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            stats.add_drop(number, "invalid_utf8", f"not UTF-8 text ({exc.reason} at byte {exc.start})")
            continue
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            stats.add_drop(number, "invalid_json", f"not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        if kind is None:
            kind = "preferences" if spec.format == "auto" and is_preference_row(row) else "conversations"
            stats.dataset_format = kind
        if kind == "preferences" and not is_preference_row(row):
            stats.add_drop(number, "not_a_pair", "a supervised sample in a file of preference pairs (the first row "
                           "is a pair)")
            continue
        try:
            if kind == "preferences":
                pair, fmt = to_preference(row)
            else:
                conversation, fmt = to_conversation(row, spec.format)
        except RowError as exc:
            stats.add_drop(number, "invalid_row", exc.message, exc.field)
            continue
        if kind == "preferences":
            encoded = json.dumps(pair, ensure_ascii=False)
            # Counted as its prompt and its preferred reply.
            conversation = {**pair, "conversations": [*pair["conversations"], {"from": "assistant",
                                                                               "value": pair["chosen"]}]}
        else:
            encoded = json.dumps(conversation, ensure_ascii=False)
        digest = hashlib.blake2b(encoded.encode("utf-8"), digest_size=16).digest()
        if digest in seen:
            stats.add_drop(number, "duplicate", "exact duplicate of an earlier row")
            continue
        seen.add(digest)
        out.write(encoded + "\n")
        stats.add_row(conversation, fmt)
        if spec.max_rows is not None and stats.rows >= spec.max_rows:
            break
    return stats


def _result(dataset: Dataset) -> dict:
    return {"dataset_id": str(dataset.id), "name": dataset.name, "rows": dataset.rows,
            "dropped": dataset.stats.get("dropped_total", 0)}
