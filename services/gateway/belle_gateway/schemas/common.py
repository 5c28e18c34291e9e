"""What several resources' schemas share."""

from __future__ import annotations

import datetime as dt


def unix_time(moment: dt.datetime | None) -> int | None:
    """Unix seconds, as OpenAI's objects give times."""
    return int(moment.timestamp()) if moment is not None else None
