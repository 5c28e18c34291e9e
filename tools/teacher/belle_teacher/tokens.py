"""The teacher's token rule, used for `usage`, `max_tokens` and stream chunks.

One token per CJK character, per run of Latin letters, per run of digits, and per any other
non-space character (punctuation marks, symbols). Whitespace is never a token. It is not a real
tokenizer's count, only a simple, documented one that behaves like one: Chinese text costs about a
token a character, English about a token a word.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[A-Za-z]+|[0-9]+|[^\sA-Za-z0-9]")


def count_tokens(text: str) -> int:
    return sum(1 for _ in _TOKEN.finditer(text))


def truncate(text: str, max_tokens: int | None) -> tuple[str, bool]:
    """The first `max_tokens` tokens of `text` (with the spaces between them) and whether it was cut."""
    if max_tokens is None:
        return text, False
    for index, match in enumerate(_TOKEN.finditer(text), start=1):
        if index == max_tokens:
            end = match.end()
            return text[:end], bool(text[end:].strip())
    return text, False


def pieces(text: str, size: int = 6) -> list[str]:
    """`text` cut after every `size` tokens (stream deltas); joined they give back `text` exactly."""
    out, start = [], 0
    for index, match in enumerate(_TOKEN.finditer(text), start=1):
        if index % size == 0:
            out.append(text[start:match.end()])
            start = match.end()
    if start < len(text) or not out:
        out.append(text[start:])
    return out
