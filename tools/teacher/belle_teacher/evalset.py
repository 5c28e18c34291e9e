"""Held-out eval sets of the task family, and the check that none of their questions was trained on.

    python -m belle_teacher.evalset --count 240 --seed 7 --out eval.jsonl           # write an eval set
    python -m belle_teacher.evalset --eval eval.jsonl --check data.jsonl            # count overlap
    python -m belle_teacher --holdout eval.jsonl ...                                # a teacher that never
                                                                                    # emits those questions

An eval set is the evaluator's JSONL (`{"question", "class", "std_answer"}`) plus two keys:
`"metric": "exact_match_cased"` (exact match after `tasks.normalize_answer`, case kept: the `case`
kind's answer is only right in the right case) and `"kind"` (the family kind, for per-kind tables).
Kinds map to BELLE's classes (arithmetic, count, extreme, sort -> math; parity -> classification;
case, numeral, reverse -> rewrite), so the evaluator's per-class table has three rows.

A question is the text a model is asked: the instruction, and the input on the next line when there
is one (exactly how a dataset row becomes a human turn, `belle_shared.formats`). Questions are
compared by `question_key` (stripped, whitespace runs as one space).

Kinds are drawn in turn (equal shares), so every kind has the same weight in the overall score.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Container, Iterable, Sequence
from pathlib import Path
from typing import Any

from belle_teacher.kinds import KINDS
from belle_teacher.tasks import LANGUAGES, Task, generate_task, question_key, question_of

# The evaluator's per-row metric for family questions (belle_evaluator.metrics.exact_match_cased).
METRIC = "exact_match_cased"
CLASS_OF_KIND = {
    "arithmetic": "math", "count": "math", "extreme": "math", "sort": "math",
    "parity": "classification",
    "case": "rewrite", "numeral": "rewrite", "reverse": "rewrite",
}


def task_key(task: Task) -> str:
    return question_key(question_of(task.instruction, task.input))


def make_eval_set(count: int, *, seed: int, language: str = "zh",
                  kinds: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """`count` distinct family questions (kinds in turn), as eval-set rows."""
    if count < 1:
        raise ValueError("count must be at least 1")
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {LANGUAGES}, not {language!r}")
    names = list(kinds) if kinds else list(KINDS)
    unknown = [k for k in names if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown kinds {unknown} (known: {', '.join(KINDS)})")
    rng = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < count:
        kind = names[len(rows) % len(names)]
        task = generate_task(rng, language, kind)
        key = task_key(task)
        if key in seen:
            continue
        seen.add(key)
        rows.append({"question": question_of(task.instruction, task.input), "class": CLASS_OF_KIND[kind],
                     "std_answer": task.output, "metric": METRIC, "kind": kind})
    return rows


def write_eval_set(rows: Iterable[dict[str, Any]], path: str | Path) -> Path:
    path = Path(path)
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def _json_lines(path: str | Path) -> Iterable[dict[str, Any]]:
    with Path(path).open(encoding="utf-8-sig") as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                if isinstance(row, dict):
                    yield row


def load_holdout(path: str | Path) -> frozenset[str]:
    """The question keys of an eval set (its `"question"` values)."""
    return frozenset(question_key(row["question"]) for row in _json_lines(path) if isinstance(row.get("question"), str))


def row_questions(row: dict[str, Any]) -> list[str]:
    """The questions a dataset row trains on: instruction (+ input), or every human turn of a
    `conversations` row (BELLE's and the trainer's format)."""
    if isinstance(row.get("instruction"), str):
        return [question_of(row["instruction"], row.get("input") or "")]
    turns = row.get("conversations")
    if isinstance(turns, list):
        return [t["value"] for t in turns if isinstance(t, dict) and t.get("from") == "human"
                and isinstance(t.get("value"), str)]
    return []


def count_overlap(dataset: str | Path, eval_set: str | Path | Container[str]) -> int:
    """How many rows of a dataset JSONL ask a question of the eval set (0 is the promise)."""
    holdout = eval_set if not isinstance(eval_set, (str, Path)) else load_holdout(eval_set)
    return sum(1 for row in _json_lines(dataset) if any(question_key(q) in holdout for q in row_questions(row)))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m belle_teacher.evalset", description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=240, help="questions to write (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--language", choices=LANGUAGES, default="zh")
    parser.add_argument("--out", type=Path, help="eval-set JSONL to write")
    parser.add_argument("--eval", type=Path, help="with --check: the eval set to compare against")
    parser.add_argument("--check", type=Path, help="a dataset JSONL: print how many rows ask an eval question")
    args = parser.parse_args(argv)
    if args.check is not None:
        if args.eval is None:
            parser.error("--check needs --eval")
        overlap = count_overlap(args.check, args.eval)
        print(f"{overlap} rows of {args.check} ask a question of {args.eval}")
        return 1 if overlap else 0
    if args.out is None:
        parser.error("give --out (write an eval set) or --eval and --check")
    try:
        rows = make_eval_set(args.count, seed=args.seed, language=args.language)
    except ValueError as exc:
        parser.error(str(exc))
    write_eval_set(rows, args.out)
    print(f"wrote {len(rows)} questions to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
