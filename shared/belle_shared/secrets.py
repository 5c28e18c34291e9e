"""Server-side secrets named in job specs (a teacher's API key, say).

A spec carries only the *name* of a secret; its value lives in the worker's environment (a Kubernetes
Secret mounted as environment variables, or an exported variable on a laptop), so keys never enter the
database, the queue or the job's events.
"""

from __future__ import annotations

import os

from belle_shared.errors import JobError


def resolve_secret(name: str | None, *, param: str) -> str | None:
    """The secret's value, None when no secret is named; a JobError naming ``param`` when it is unset."""
    if name is None:
        return None
    value = os.environ.get(name)
    if not value:
        raise JobError(
            "missing_secret",
            f"secret {name!r} is not set on this worker: export the environment variable {name} where the "
            "worker runs (a Kubernetes Secret in deploy/k8s)",
            param=param,
        )
    return value
