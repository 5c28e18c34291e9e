"""Reading an LLM judge's reply: a 0..1 score (single-answer grading) or a preference (pairwise).

    >>> parse_score("得分: 0.8分。模型回答基本正确，但漏了第3点。")
    0.8
    >>> parse_score("8分（满分10分）")
    0.8
    >>> parse_preference("回答A算错了，回答B正确。\\n[[B]]")
    'B'

Both return None when the reply does not say clearly: the caller records the item as unparsable,
never as a score of 0 or a tie. The parsers live in ``belle_shared.judging`` because the gateway's
single-question scoring (`POST /v1/evals/judge`) reads replies the same way and may not import the
evaluator; this module keeps the evaluator's names for them.
"""

from __future__ import annotations

from belle_shared.judging import Preference, parse_preference, parse_score

__all__ = ["Preference", "parse_preference", "parse_score"]
