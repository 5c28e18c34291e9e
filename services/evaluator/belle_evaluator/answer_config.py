"""`answers.json`, the file the evaluator worker writes before it starts local answer generation
(``python -m belle_evaluator.generate``), and the files and events around it.

    {"model_path": "/abs/folder", "questions_file": "/abs/questions.jsonl",
     "output_file": "/abs/answers.jsonl",
     "generation": {"max_new_tokens": 512, "temperature": 0.0, "top_p": 1.0},
     "batch_size": 8, "seed": 0}

    questions.jsonl   {"id": 0, "question": "..."}                         one per line
    answers.jsonl     {"id": 0, "answer": "...", "prompt_tokens": 31, "completion_tokens": 12,
                       "warning": null}                                     same order as the questions
    progress.jsonl    (beside answers.json) the events of ANSWER_EVENTS:
        {"event": "start", "total", "model_type", "device"}
        {"event": "progress", "done", "total"}
        {"event": "done", "answers", "seconds", "completion_tokens"}
        {"event": "error", "message"}

``warning`` says what was changed to make a question fit the model's context (the prompt cut from
the left, or fewer new tokens allowed); it is null otherwise. The answers of an OpenAI-compatible
endpoint (``endpoint_answers``) come back as the same ``Answer`` records.

Standard library and pydantic only: the worker builds, checks and reads these without torch.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from belle_shared.progress import PROGRESS_FILE
from belle_shared.specs import GenerationOptions

ANSWER_CONFIG_FILE = "answers.json"
ANSWER_PROGRESS_FILE = PROGRESS_FILE

# The fields of each progress event; ProgressWriter refuses an event that lacks one.
ANSWER_EVENTS: dict[str, tuple[str, ...]] = {
    "start": ("total", "model_type", "device"),
    "progress": ("done", "total"),
    "done": ("answers", "seconds", "completion_tokens"),
    "error": ("message",),
}


class AnswerConfigError(ValueError):
    """answers.json or the questions file cannot be read or is not valid; the message says why."""


class AnswerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_path: Path
    questions_file: Path
    output_file: Path
    generation: GenerationOptions = Field(default_factory=GenerationOptions)
    batch_size: int = Field(8, ge=1, le=1024)
    seed: int = 0


@dataclass(frozen=True)
class Answer:
    id: int
    answer: str
    prompt_tokens: int
    completion_tokens: int
    warning: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_answer_config(path: str | Path) -> AnswerConfig:
    """Read and validate `answers.json`; AnswerConfigError says what is wrong with it."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise AnswerConfigError(f"cannot read the answer config {path}: {exc}") from exc
    try:
        return AnswerConfig.model_validate(raw)
    except ValidationError as exc:
        raise AnswerConfigError(f"invalid answer config {path}: {exc}") from exc


def write_answer_config(config: AnswerConfig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(config.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return path


def write_questions(questions: Iterable[str], path: str | Path) -> int:
    """Write questions.jsonl with ids 0, 1, ... in the given order; returns how many."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for count, question in enumerate(questions, start=1):
            handle.write(json.dumps({"id": count - 1, "question": question}, ensure_ascii=False) + "\n")
    return count


def read_questions(path: str | Path) -> list[tuple[int, str]]:
    """(id, question) pairs of questions.jsonl, in file order; AnswerConfigError on a bad line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise AnswerConfigError(f"cannot read the questions file {path}: {exc}") from exc
    rows: list[tuple[int, str]] = []
    seen: set[int] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AnswerConfigError(f"{path} line {number}: not JSON ({exc})") from exc
        qid, question = (row.get("id"), row.get("question")) if isinstance(row, dict) else (None, None)
        # bool is an int subclass; an id of `true` is a mistake, not id 1.
        if not isinstance(qid, int) or isinstance(qid, bool) or not isinstance(question, str):
            raise AnswerConfigError(f"{path} line {number}: expected {{\"id\": int, \"question\": str}}")
        if qid in seen:
            raise AnswerConfigError(f"{path} line {number}: duplicate id {qid}")
        seen.add(qid)
        rows.append((qid, question))
    return rows


def write_answers(answers: Iterable[Answer], path: str | Path) -> None:
    """Write answers.jsonl at once (a temporary file renamed), so a half-written file never exists."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8") as handle:
        for answer in answers:
            handle.write(json.dumps(answer.to_dict(), ensure_ascii=False) + "\n")
    os.replace(partial, path)


def read_answers(path: str | Path) -> list[Answer]:
    path = Path(path)
    return [Answer(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
