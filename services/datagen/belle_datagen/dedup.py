"""Near-duplicate removal by ROUGE-L (interim: exact and quadratic; the fast index replaces it).

A row is a near-duplicate when its ROUGE-L F-measure against any kept row exceeds the threshold.
Tokens: each CJK character, each run of lowercase ASCII letters or digits.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_TOKEN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]|[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def _lcs(a: Sequence[str], b: Sequence[str]) -> int:
    """Bit-parallel LCS length (Allison-Dix): one big-int step per token of ``b``."""
    masks: dict[str, int] = {}
    for i, token in enumerate(a):
        masks[token] = masks.get(token, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full
    for token in b:
        u = v & masks.get(token, 0)
        v = ((v + u) | (v - u)) & full
    return len(a) - v.bit_count()


def rouge_l(a: Sequence[str], b: Sequence[str]) -> float:
    if not a or not b:
        return 0.0
    return 2 * _lcs(a, b) / (len(a) + len(b))


class NearDuplicateIndex:
    def __init__(self, threshold: float = 0.7):
        self.threshold = threshold
        self._rows: list[list[str]] = []

    def add(self, text: str) -> int:
        self._rows.append(tokenize(text))
        return len(self._rows) - 1

    def find(self, text: str) -> int | None:
        tokens = tokenize(text)
        for row_id, row in enumerate(self._rows):
            if rouge_l(tokens, row) > self.threshold:
                return row_id
        return None

    def add_if_novel(self, text: str) -> int | None:
        return None if self.find(text) is not None else self.add(text)

    def __len__(self) -> int:
        return len(self._rows)
