"""Typed job errors. A failed job stores ``JobError.to_dict()`` as its structured error."""

from __future__ import annotations

from typing import Any


class JobError(Exception):
    """A job failed for a reason its owner can act on (bad input, missing file ...). Not retried."""

    def __init__(self, code: str, message: str, *, param: str | None = None, details: Any = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.param is not None:
            out["param"] = self.param
        if self.details is not None:
            out["details"] = self.details
        return out


class RetryableJobError(JobError):
    """A transient failure (a teacher's 429, a network blip): the job is queued again with backoff."""


class JobCancelled(Exception):
    """Raised inside a job at a safe point once its cancellation was requested."""


class LeaseLost(Exception):
    """This worker no longer holds the job (the sweeper gave it to another); stop without recording."""


class SpecRefused(Exception):
    """A job spec that cannot run, found before it is queued: the gateway answers ``status`` (400, or
    409 for a name already taken) with ``message``, naming the field in ``param``."""

    def __init__(self, message: str, *, param: str | None = None, code: str = "invalid_value", status: int = 400):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.status = status
