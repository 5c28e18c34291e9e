"""A generation job's inputs: seed tasks, prompt template and dialogue topics, bundled or uploaded.

Everything is loaded and checked before the first teacher request, so a bad seed file or a template
without its placeholders fails the job at once with an error naming the spec field, not after the
budget is spent.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from belle_datagen.seeds import (
    PromptTemplateError,
    SeedFileError,
    SeedTask,
    bundled_seed_tasks,
    bundled_template,
    bundled_topics,
    check_template,
    parse_seed_tasks,
)
from belle_shared.errors import JobError
from belle_shared.specs import DatagenSpec
from belle_shared.worker import JobContext

MAX_TEXT_FILE_BYTES = 1 << 20  # a prompt or topic list larger than 1 MiB is a mistake


@dataclass(frozen=True)
class GenerationInputs:
    seeds: list[SeedTask]
    template: str
    topics: list[str]


def load_inputs(spec: DatagenSpec, ctx: JobContext) -> GenerationInputs:
    seeds = _load_seeds(spec, ctx)
    kind = "self_instruct" if spec.mode == "self_instruct" else "dialogue"
    if spec.prompt_file_id is None:
        template = bundled_template(kind, spec.language)
    else:
        template = _read_text(ctx, spec.prompt_file_id, "prompt_file_id")
    try:
        check_template(template, kind)
    except PromptTemplateError as exc:
        raise JobError("invalid_prompt_file", f"prompt template: {exc}", param="prompt_file_id") from None
    topics: list[str] = []
    if spec.mode == "dialogue":
        if spec.topics_file_id is None:
            topics = bundled_topics(spec.language)
        else:
            text = _read_text(ctx, spec.topics_file_id, "topics_file_id")
            topics = [line.strip() for line in text.splitlines() if line.strip()]
        if not topics:
            raise JobError("invalid_topics_file", "the topics file has no topic (one per line)",
                           param="topics_file_id")
    return GenerationInputs(seeds=seeds, template=template, topics=topics)


def _load_seeds(spec: DatagenSpec, ctx: JobContext) -> list[SeedTask]:
    if spec.seed_file_id is None:
        seeds = bundled_seed_tasks(spec.language)
    else:
        file = ctx.team_file(spec.seed_file_id, param="seed_file_id")
        try:
            with ctx.store.open(file.uri, "rb") as f:
                seeds = parse_seed_tasks(f, source=file.filename)
        except SeedFileError as exc:
            raise JobError("invalid_seed_file", f"{file.filename}: {exc}", param="seed_file_id") from None
    if len(seeds) < spec.num_prompt_instructions:
        raise JobError(
            "invalid_seed_file",
            f"{len(seeds)} seed task(s), fewer than the {spec.num_prompt_instructions} examples each request shows",
            param="seed_file_id" if spec.seed_file_id else "num_prompt_instructions",
        )
    return seeds


def _read_text(ctx: JobContext, file_id: uuid.UUID, param: str) -> str:
    file = ctx.team_file(file_id, param=param)
    filename = file.filename
    with ctx.store.open(file.uri, "rb") as f:
        data = f.read(MAX_TEXT_FILE_BYTES + 1)
    if len(data) > MAX_TEXT_FILE_BYTES:
        raise JobError("file_too_large", f"{filename} is larger than {MAX_TEXT_FILE_BYTES} bytes", param=param)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JobError("invalid_text_file", f"{filename} is not UTF-8 text (byte {exc.start})", param=param) from None
