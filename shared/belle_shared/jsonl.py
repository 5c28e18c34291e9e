"""Reading hand-written JSONL files line by line, with errors that name the line.

Seed files, eval sets and other files a person writes by hand are read with this: blank lines are
skipped, a UTF-8 BOM on the first line is tolerated (editors on Windows like to add one), and bad
UTF-8 or bad JSON raises `JsonlLineError` with the 1-based line, which each caller turns into its
own error type. Standard library only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any


class JsonlLineError(ValueError):
    def __init__(self, message: str, line: int):
        super().__init__(f"line {line}: {message}")
        self.message = message
        self.line = line


def iter_json_lines(lines: Iterable[bytes | str] | str | bytes) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) of each non-blank line of an open file (text or binary), a list of
    lines, or a whole file's text."""
    if isinstance(lines, (str, bytes)):
        # A whole file's text: iterating it would give characters. Split on "\n" only, because JSON
        # strings may hold raw U+2028 and friends that str.splitlines would cut at.
        lines = lines.split("\n" if isinstance(lines, str) else b"\n")
    for number, raw in enumerate(lines, start=1):
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise JsonlLineError(f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at position {exc.start + 1})",
                                     number) from None
        if number == 1:
            raw = raw.removeprefix("\ufeff")
        if not raw.strip():
            continue
        try:
            yield number, json.loads(raw)
        except json.JSONDecodeError as exc:
            raise JsonlLineError(f"not valid JSON ({exc.msg} at column {exc.colno})", number) from None
