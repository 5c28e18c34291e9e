"""The vocabulary step of a `pretrain` job, run by its worker as a subprocess (the worker never imports
torch):

    python -m belle_trainer.expand_vocab --source BASE --destination RUN/expanded --text RUN/train.jsonl \\
        --max-new-tokens 8000 --min-frequency 2

Learns tokens from the training documents and writes the expanded model and tokenizer to the destination
(belle_trainer.vocab), then its report as `belle_vocabulary.json` there, last, so a folder with a report
is a finished expansion.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

REPORT = "belle_vocabulary.json"


def read_documents(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f if line.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True, help="the base model folder")
    parser.add_argument("--destination", type=Path, required=True, help="where the expanded model goes")
    parser.add_argument("--text", type=Path, required=True, help="JSONL documents ({'text': ...})")
    parser.add_argument("--max-new-tokens", type=int, required=True)
    parser.add_argument("--min-frequency", type=int, default=2)
    args = parser.parse_args(argv)

    from belle_trainer.vocab import expand_folder

    report = expand_folder(args.source, args.destination, read_documents(args.text),
                           max_new_tokens=args.max_new_tokens, min_frequency=args.min_frequency)
    (args.destination / REPORT).write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    print(json.dumps({k: v for k, v in report.items() if k != "examples"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
