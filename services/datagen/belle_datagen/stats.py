"""Streaming statistics for an imported dataset.

The import job feeds every kept row (``add_row``) and every dropped line (``add_drop``) through one
``DatasetStats`` and stores ``to_dict()`` beside the dataset. Memory stays constant however many
rows pass: only counters are kept, plus the first ``MAX_DROP_EXAMPLES`` drops so that a user can
see what went wrong without the report growing with the file.

Character counts are Python ``len`` (code points), not tokens: no tokenizer is needed here, and
the trainer reports token counts itself. Standard library only.
"""

from __future__ import annotations

import re
from collections import Counter

MAX_DROP_EXAMPLES = 20
# A drop message quotes at most a short value, but a JSON decoder's message is not ours to trust.
_MAX_MESSAGE_CHARS = 500

# CJK ideographs: the URO (4E00-9FFF), extension A (3400-4DBF), compatibility ideographs
# (F900-FAFF), and planes 2 and 3, which Unicode reserves for ideographs (extensions B to I).
# CJK punctuation: CJK Symbols and Punctuation (3001-303F: 、。《》「」【】〇...; U+3000 is the
# ideographic space, which counts as whitespace), the vertical compatibility forms (FE30-FE4F) and
# the fullwidth punctuation in FF01-FF65 (，！？：；（）), leaving out fullwidth digits and letters.
# Curly quotes and the ellipsis are shared with English text, so they do not count.
_CJK = re.compile(
    "[\u3001-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\ufe30-\ufe4f"
    "\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65\U00020000-\U0003ffff]+"
)


def _cjk_counts(text: str) -> tuple[int, int]:
    """(CJK characters, non-whitespace characters) of ``text``, both computed in C for speed."""
    cjk = sum(len(run) for run in _CJK.findall(text))
    # str.split() splits on exactly the characters str.isspace() accepts (U+3000 included).
    visible = sum(len(word) for word in text.split())
    return cjk, visible


def chinese_share(text: str) -> float:
    """Share of CJK ideographs and CJK punctuation among non-whitespace characters."""
    cjk, visible = _cjk_counts(text)
    return cjk / visible if visible else 0.0


class DatasetStats:
    """Counters over canonical rows (see ``formats``) and dropped lines; O(1) memory."""

    def __init__(self) -> None:
        self.rows = 0
        self.turns = 0
        self.assistant_turns = 0
        self.multi_turn_rows = 0
        self.characters = {"human": 0, "assistant": 0, "system": 0}
        self.max_characters_per_row = 0
        self._cjk = 0
        self._visible = 0
        self.formats: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.drop_examples: list[dict] = []
        # "conversations" (supervised samples) or "preferences" (DPO pairs; a pair counts as its prompt and
        # its preferred reply): the Dataset's format.
        self.dataset_format = "conversations"

    def add_row(self, conv: dict, fmt: str) -> None:
        """Count one canonical row that was kept, converted from format ``fmt``."""
        self.rows += 1
        self.formats[fmt] += 1
        row_chars = 0
        answers = 0
        for turn in conv["conversations"]:
            role, text = turn["from"], turn["value"]
            self.characters[role] += len(text)
            row_chars += len(text)
            cjk, visible = _cjk_counts(text)
            self._cjk += cjk
            self._visible += visible
            answers += role == "assistant"
        self.turns += len(conv["conversations"])
        self.assistant_turns += answers
        # More than one assistant reply means the sample trains on a dialogue, not a single answer.
        self.multi_turn_rows += answers > 1
        system = conv.get("system") or ""
        self.characters["system"] += len(system)
        row_chars += len(system)
        self.max_characters_per_row = max(self.max_characters_per_row, row_chars)

    def add_drop(self, line: int, reason: str, message: str, field: str | None = None) -> None:
        """Count one input line that was not kept; ``reason`` is a short code such as "duplicate"."""
        self.dropped[reason] += 1
        if len(self.drop_examples) < MAX_DROP_EXAMPLES:
            self.drop_examples.append(
                {"line": line, "reason": reason, "message": message[:_MAX_MESSAGE_CHARS], "field": field}
            )

    @property
    def dropped_total(self) -> int:
        """Lines dropped so far, for progress messages that should not build the whole summary."""
        return sum(self.dropped.values())

    def to_dict(self) -> dict:
        """A JSON-serialisable summary; safe to call at any point, e.g. for progress reports."""
        total_chars = sum(self.characters.values())
        return {
            "rows": self.rows,
            "turns": self.turns,
            "assistant_turns": self.assistant_turns,
            "multi_turn_rows": self.multi_turn_rows,
            "characters": dict(self.characters),
            "mean_characters_per_row": total_chars / self.rows if self.rows else 0.0,
            "max_characters_per_row": self.max_characters_per_row,
            # Character-weighted over human and assistant text: a mean of per-row shares would let
            # a thousand one-word rows outweigh one long answer.
            "chinese_share": self._cjk / self._visible if self._visible else 0.0,
            "formats": dict(self.formats),
            "dropped": dict(self.dropped),
            "dropped_total": self.dropped_total,
            "drop_examples": [dict(example) for example in self.drop_examples],
        }
