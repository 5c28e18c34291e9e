"""What several resources' schemas share."""

from __future__ import annotations

import datetime as dt


def unix_time(moment: dt.datetime | None) -> int | None:
    """Unix seconds, as OpenAI's objects give times."""
    return int(moment.timestamp()) if moment is not None else None


# PostgreSQL's bigint: the most an offset or an id bound in a query can be (a larger Python int cannot
# be sent, and the driver raises OverflowError). Query parameters past it are a 400 naming them.
MAX_BIGINT = 2**63 - 1
