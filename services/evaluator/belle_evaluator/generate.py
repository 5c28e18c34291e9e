"""Local answer generation: a model folder answers the eval set's questions, as a subprocess of the
evaluator worker (which does not import torch).

    python -m belle_evaluator.generate --config RUN/answers.json

`answers.json`, `questions.jsonl`, `answers.jsonl` and the progress events are described in
belle_evaluator.answer_config; the progress file is `progress.jsonl` beside the config. The model
folder is a plain Hugging Face folder: fully fine-tuned, LoRA merged in, or GPTQ-quantized (loaded by
transformers itself when optimum and gptqmodel are installed). It runs on the GPU when there is one.

Each question is rendered with the model's own chat template as one user message with the
generation prompt. Questions are sorted by length (longest first, so an out-of-memory error shows up
on the first batch) and generated in left-padded batches; greedy decoding when the temperature is 0,
else sampling with top_p (seeded). The answers are written in the questions' order.

The options are the whole story: the sampling settings a model folder's `generation_config.json`
may carry (top_k, a repetition penalty, its own temperature) are overridden, so that two models, or a
model and an endpoint, answer under the same rules. Only its end-of-sequence ids are kept.

A prompt that does not fit the model's context with `max_new_tokens` after it is cut from the left
(the question's end, and the generation prompt, are what the answer follows on). Should that leave
less than half of the context for it, the prompt keeps half and the answer gets the rest: a batch
then generates at most `context - longest prompt` tokens. Either change is noted in the answer's
`warning`. Everything written to stdout goes to stderr: the worker follows the progress file.
Exit status 0 after a `done` event, 1 after an `error` event.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from belle_evaluator.answer_config import (
    ANSWER_EVENTS,
    ANSWER_PROGRESS_FILE,
    Answer,
    AnswerConfig,
    AnswerConfigError,
    load_answer_config,
    read_questions,
    write_answers,
)
from belle_shared.chat_models import context_length, eos_token_ids, generation_settings, render_chat
from belle_shared.progress import ProgressWriter
from belle_shared.worker_watch import exit_with_worker

log = logging.getLogger("belle_evaluator.generate")

MAX_ERROR_CHARS = 2000


@dataclass
class Prompt:
    id: int
    ids: list[int]
    warning: str | None = None


def prompt_budget(context: int | None, max_new_tokens: int) -> int | None:
    """The longest prompt kept whole: room for the full answer, but never less than half the context."""
    if context is None:
        return None
    return max(context - max_new_tokens, context // 2, 1)


def fit_prompt(qid: int, ids: list[int], budget: int | None, context: int | None) -> Prompt:
    if budget is None or len(ids) <= budget:
        return Prompt(qid, ids)
    return Prompt(qid, ids[-budget:], f"prompt cut from the left from {len(ids)} to {budget} tokens to fit "
                                      f"the model's context of {context} tokens")


def generation_config(options: Any, *, max_new_tokens: int, eos_ids: list[int], pad_id: int) -> Any:
    from transformers import GenerationConfig

    return GenerationConfig(**generation_settings(max_new_tokens=max_new_tokens, temperature=options.temperature,
                                                  top_p=options.top_p, eos_ids=eos_ids, pad_id=pad_id))


def load_model(path: Path, device: str) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if not getattr(tokenizer, "chat_template", None):
        raise AnswerConfigError(f"the model folder {path} has no chat template (tokenizer_config.json "
                                "'chat_template' or chat_template.jinja): its questions cannot be rendered")
    # On a GPU the weights keep the dtype they were saved in; CPUs are slow or unsupported in
    # float16, so there everything runs in float32 (GPTQ layers keep their own packed weights).
    dtype: Any = "auto" if device == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, device_map=device)
    model.eval()
    return tokenizer, model


def generate_batch(model: Any, batch: list[Prompt], *, gen_config: Any, pad_id: int, eos_ids: list[int],
                   tokenizer: Any) -> list[tuple[list[int], str]]:
    """Left-pad one batch, generate, and return each row's answer ids (up to its first EOS) and text."""
    import torch

    longest = max(len(p.ids) for p in batch)
    input_ids = torch.full((len(batch), longest), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(batch), longest), dtype=torch.long)
    for row, prompt in enumerate(batch):
        if prompt.ids:
            input_ids[row, longest - len(prompt.ids):] = torch.tensor(prompt.ids, dtype=torch.long)
            attention_mask[row, longest - len(prompt.ids):] = 1
    device = model.device
    # generate() derives each row's position ids from the attention mask, so a left-padded row
    # sees the same positions as it would alone.
    with torch.inference_mode():
        output = model.generate(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
                                generation_config=gen_config)
    results = []
    for row in output[:, longest:].tolist():
        end = next((i for i, token in enumerate(row) if token in eos_ids), len(row))
        ids = row[:end]
        results.append((ids, tokenizer.decode(ids, skip_special_tokens=True).strip()))
    return results


def run(config: AnswerConfig, writer: ProgressWriter) -> list[Answer]:
    import torch
    from transformers import set_seed

    started = time.monotonic()
    questions = read_questions(config.questions_file)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer, model = load_model(config.model_path, device)
    writer.write("start", total=len(questions), model_type=getattr(model.config, "model_type", None),
                 device=device)

    options = config.generation
    context = context_length(model, tokenizer)
    budget = prompt_budget(context, options.max_new_tokens)
    eos_ids = eos_token_ids(model, tokenizer)
    pad_id = next(v for v in (tokenizer.pad_token_id, *eos_ids, 0) if v is not None)
    set_seed(config.seed)

    prompts = [fit_prompt(qid, render_chat(tokenizer, [{"role": "user", "content": question}]), budget, context) for qid, question in questions]
    # Longest first: similar lengths share a batch (little padding) and the biggest batch runs first.
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i].ids))
    answers: dict[int, Answer] = {}
    for start in range(0, len(order), config.batch_size):
        batch = [prompts[i] for i in order[start:start + config.batch_size]]
        longest = max(len(p.ids) for p in batch)
        max_new = options.max_new_tokens if context is None else max(1, min(options.max_new_tokens,
                                                                             context - longest))
        gen_config = generation_config(options, max_new_tokens=max_new, eos_ids=eos_ids, pad_id=pad_id)
        outputs = generate_batch(model, batch, gen_config=gen_config, pad_id=pad_id, eos_ids=eos_ids,
                                 tokenizer=tokenizer)
        for prompt, (ids, text) in zip(batch, outputs, strict=True):
            warning = prompt.warning
            if max_new < options.max_new_tokens and len(ids) == max_new:
                cut = f"answer cut at {max_new} new tokens to fit the model's context of {context} tokens"
                warning = f"{warning}; {cut}" if warning else cut
            answers[prompt.id] = Answer(prompt.id, text, len(prompt.ids), len(ids), warning)
        writer.write("progress", done=len(answers), total=len(prompts))

    ordered = [answers[qid] for qid, _ in questions]
    write_answers(ordered, config.output_file)
    writer.write("done", answers=len(ordered), seconds=round(time.monotonic() - started, 3),
                 completion_tokens=sum(a.completion_tokens for a in ordered))
    return ordered


def error_message(exc: BaseException) -> str:
    """One line: the exception's own text (pydantic and tracebacks span many lines)."""
    text = " ".join(str(exc).split())
    if not isinstance(exc, AnswerConfigError):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text[:MAX_ERROR_CHARS]


def _stdout_to_stderr() -> None:
    """Send everything written to stdout (library banners and progress bars, C++ op builds) to
    stderr, at the file-descriptor level so child compilers follow."""
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), 1)
    sys.stdout = sys.stderr


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m belle_evaluator.generate",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, type=Path, help="the run folder's answers.json")
    options = parser.parse_args(argv)

    exit_with_worker()
    _stdout_to_stderr()
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    writer = ProgressWriter(options.config.parent / ANSWER_PROGRESS_FILE, event_fields=ANSWER_EVENTS)
    try:
        run(load_answer_config(options.config), writer)
        return 0
    except Exception as exc:  # every failure is reported; the traceback goes to stderr
        log.exception("answer generation failed")
        writer.write("error", message=error_message(exc))
        return 1


if __name__ == "__main__":
    sys.exit(main())
