"""Errors the training entry point knows how to explain: each becomes an `error` event (its message
as written) before a non-zero exit. Anything else is reported with its type name, as a crash."""

from __future__ import annotations


class RunError(Exception):
    """A run that cannot go on for a reason the user can act on (bad data, a bad option, no memory)."""


class BadDataError(RunError):
    """The training or validation data gives nothing to train or evaluate on."""


class BadOptionError(RunError):
    """An option of the spec that this model or machine cannot honour."""
