"""Process logging setup, called once by each process's entry point."""

from __future__ import annotations

import logging

from belle_shared.settings import Settings


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s",
    )
