"""A job type declared outside the platform's packages, in one place, as a team would add its own.

The declaration (spec, queue, outputs, submit-time check) and the worker that runs it are all here:
the gateway imports this module through ``BELLE_JOB_TYPE_MODULES=echo_job_type``, and
``python -m echo_job_type`` is its worker (consuming the ``echo`` queue). Used by
tests/integration/test_job_types.py.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from belle_shared.errors import SpecRefused
from belle_shared.job_types import JobType, register_job_type
from belle_shared.specs import JobSpec
from belle_shared.worker import JobRegistry, WorkerSettings, run_worker


class EchoSpec(JobSpec):
    """Repeat a text: the smallest job a worker can run."""

    type: Literal["echo"] = "echo"
    text: str = Field(min_length=1, max_length=100, description="The text to repeat.")
    times: int = Field(2, ge=1, le=10, description="How many times.")


def check_echo(session, team, spec: EchoSpec, store, settings) -> None:
    # A submit-time check: what the worker would refuse is refused before the job is queued.
    if spec.text.strip().lower() == "refuse":
        raise SpecRefused("text: this worker refuses to echo 'refuse'", param="text", code="refused_text")


ECHO = register_job_type(JobType(EchoSpec, queue="echo", outputs=("echoed",), checks=(check_echo,)))

registry = JobRegistry()


@registry.job("echo", time_limit=60)
def run_echo(spec: EchoSpec, ctx) -> dict:
    ctx.progress(f"echoing {spec.times} times", done=0, total=spec.times)
    return {"echoed": " ".join([spec.text] * spec.times)}


def main() -> None:
    run_worker(registry, queue="echo", settings=WorkerSettings())


if __name__ == "__main__":
    main()
