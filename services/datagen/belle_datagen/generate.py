"""The `datagen` job: self-instruct generation against an OpenAI-compatible teacher.

Loads and checks the inputs (seed tasks, prompt template, topics) and the teacher's key before any
request, checks the teacher answers, runs the generation loop (``generator``), and records the
dataset in one transaction at the end: the canonical conversations, BELLE's instruction/input/output
rows, and a generation report (replies, retries, tokens, cost, drops by reason with examples).

A redelivered job (its worker was killed) reloads the committed rows and counters and carries on:
rows are neither lost nor duplicated (see ``checkpoint``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import tempfile
from typing import Any

from sqlalchemy import select

from belle_datagen.checkpoint import GenerationLog
from belle_datagen.filters import REASONS
from belle_shared.formats import to_conversation
from belle_datagen.generator import Generator, generate
from belle_datagen.inputs import load_inputs
from belle_datagen.stats import DatasetStats
from belle_shared.db.models import Artifact, Dataset
from belle_shared.errors import JobError
from belle_shared.llm_client import TeacherClient
from belle_shared.secrets import resolve_secret
from belle_shared.specs import DatagenSpec
from belle_shared.worker import JobContext

log = logging.getLogger(__name__)

# Drop reasons that are not the filters' own (those are described in filters.REASONS).
_EXTRA_REASONS = {"near_duplicate": "ROUGE-L above the similarity threshold against a seed or an earlier row"}


def run_datagen(spec: DatagenSpec, ctx: JobContext) -> dict[str, Any]:
    with ctx.session_factory() as session:
        existing = session.scalar(select(Dataset).where(Dataset.job_id == ctx.job_id))
        if existing is not None:
            ctx.event("dataset already recorded by an earlier attempt", dataset_id=str(existing.id))
            return _result(existing, existing.stats.get("generation", {}))

    inputs = load_inputs(spec, ctx)
    api_key = resolve_secret(spec.teacher.api_key_secret, param="teacher.api_key_secret", settings=ctx.settings,
                             session_factory=ctx.session_factory, team_id=ctx.team_id)
    journal = GenerationLog(ctx.store, f"teams/{ctx.team_id}/jobs/{ctx.job_id}/datagen")
    gen = Generator(spec, inputs, rng=random.Random(None if spec.seed is None else spec.seed + ctx.attempt))
    state = journal.load_state()
    if state is not None:
        gen.restore(state, journal.committed_rows())
        ctx.event(f"resuming from checkpoint: {gen.progress.accepted} rows already generated",
                  kind="status", rows=gen.progress.accepted)
    gen.progress.attempts += 1

    if not gen.target_reached:
        asyncio.run(_generate_with_client(gen, spec, api_key, journal, ctx))
    else:
        gen.stop_reason = "target_count"
    if gen.progress.accepted == 0:
        p = gen.progress
        raise JobError(
            "nothing_generated",
            f"no row was kept ({gen.stop_reason}; {p.replies} replies, dropped: {dict(p.dropped)})",
            param="teacher", details=p.to_dict(),
        )
    return _record_dataset(spec, ctx, gen, journal)


async def _generate_with_client(gen: Generator, spec: DatagenSpec, api_key: str | None, journal: GenerationLog,
                                ctx: JobContext) -> None:
    client = TeacherClient(spec.teacher, api_key=api_key, temperature=spec.temperature, top_p=spec.top_p,
                           max_tokens=spec.max_tokens, requests_per_minute=spec.requests_per_minute)
    try:
        models = await client.preflight()
        if models is not None and spec.teacher.model not in models:
            ctx.event(f"the teacher does not list model {spec.teacher.model!r} (it lists {models[:10]}); trying anyway",
                      level="warning")
        ctx.event(f"generating {spec.target_count - gen.progress.accepted} rows with {spec.teacher.model} at "
                  f"{spec.teacher.base_url}, {spec.concurrency} requests in flight", kind="status")
        await generate(gen, client, journal, ctx)
    finally:
        await client.aclose()


def _record_dataset(spec: DatagenSpec, ctx: JobContext, gen: Generator, journal: GenerationLog) -> dict[str, Any]:
    """Assemble the committed chunks into the dataset files and record them in one transaction."""
    stats = DatasetStats()
    base = f"teams/{ctx.team_id}/datasets/{ctx.job_id}"
    tmp_dir = tempfile.mkdtemp(prefix="belle-datagen-")
    conv_path = os.path.join(tmp_dir, "conversations.jsonl")
    inst_path = os.path.join(tmp_dir, "instructions.jsonl")
    try:
        with open(conv_path, "w", encoding="utf-8") as conv_out, open(inst_path, "w", encoding="utf-8") as inst_out:
            for number, row in enumerate(journal.committed_rows()):
                if number >= spec.target_count:
                    break
                fmt = "belle_instruction" if "instruction" in row else "belle_conversations"
                conversation, _ = to_conversation(row, fmt)
                conv_out.write(json.dumps(conversation, ensure_ascii=False) + "\n")
                if fmt == "belle_instruction":
                    inst_out.write(json.dumps(row, ensure_ascii=False) + "\n")
                stats.add_row(conversation, "datagen_" + spec.mode)
        stored_conv = ctx.store.put_file(conv_path, f"{base}.jsonl")
        stored_inst = ctx.store.put_file(inst_path, f"{base}.instructions.jsonl") if spec.mode == "self_instruct" else None
    finally:
        for path in (conv_path, inst_path):
            if os.path.exists(path):
                os.unlink(path)
        os.rmdir(tmp_dir)

    p = gen.progress
    generation = p.to_dict()
    generation.update(
        stop_reason=gen.stop_reason or "target_count",
        total_tokens=p.total_tokens,
        drop_reasons={reason: REASONS.get(reason, _EXTRA_REASONS.get(reason, reason)) for reason in p.dropped},
        teacher={"base_url": spec.teacher.base_url, "model": spec.teacher.model, "api": spec.teacher.api},
    )
    summary = stats.to_dict()
    summary["dropped"] = dict(p.dropped)
    summary["dropped_total"] = sum(p.dropped.values())
    summary["drop_examples"] = [{"reason": r, "message": text} for r, texts in p.drop_examples.items() for text in texts]
    summary["generation"] = generation
    name = spec.name or f"datagen-{str(ctx.job_id)[:8]}"
    with ctx.session_factory() as session, session.begin():
        artifact = Artifact(team_id=ctx.team_id, job_id=ctx.job_id, kind="dataset", uri=stored_conv.uri,
                            sha256=stored_conv.sha256, bytes=stored_conv.bytes)
        session.add(artifact)
        if stored_inst is not None:
            session.add(Artifact(team_id=ctx.team_id, job_id=ctx.job_id, kind="dataset_instructions",
                                 uri=stored_inst.uri, sha256=stored_inst.sha256, bytes=stored_inst.bytes))
        session.flush()
        dataset = Dataset(team_id=ctx.team_id, name=name, rows=stats.rows, stats=summary, artifact_id=artifact.id,
                          job_id=ctx.job_id)
        session.add(dataset)
    journal.remove()
    ctx.event(
        f"dataset {name!r}: {stats.rows} rows from {p.replies} replies, {summary['dropped_total']} dropped, "
        f"{p.total_tokens} tokens (${p.cost_usd:.4f}), stopped on {generation['stop_reason']}",
        kind="metrics", dataset_id=str(dataset.id), rows=stats.rows, dropped=summary["dropped"],
        tokens=p.total_tokens, cost_usd=p.cost_usd,
    )
    return _result(dataset, generation)



def _result(dataset: Dataset, generation: dict[str, Any]) -> dict[str, Any]:
    return {"dataset_id": str(dataset.id), "name": dataset.name, "rows": dataset.rows,
            "dropped": dataset.stats.get("dropped_total", 0), "stop_reason": generation.get("stop_reason"),
            "tokens": generation.get("total_tokens"), "cost_usd": generation.get("cost_usd")}
