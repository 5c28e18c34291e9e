"""The datagen worker: consumes the `datagen` queue (dataset import, self-instruct generation).

    belle-datagen-worker                 # or: python -m belle_datagen.worker
    BELLE_WORKER_CONCURRENCY=4 belle-datagen-worker

Settings come from BELLE_* environment variables (see belle_shared.settings). Teacher API keys are
read from the environment variables that job specs name in `teacher.api_key_secret`.
"""

from __future__ import annotations

from belle_datagen.generate import run_datagen
from belle_datagen.importer import run_import
from belle_shared.worker import JobRegistry, WorkerSettings, run_worker

registry = JobRegistry()
registry.job("import", time_limit=6 * 3600)(run_import)
# A teacher outage is retried with backoff; the retry resumes from the last checkpoint.
registry.job("datagen", time_limit=72 * 3600, retry_backoff=30.0)(run_datagen)


def main() -> None:
    run_worker(registry, queue="datagen", settings=WorkerSettings())


if __name__ == "__main__":
    main()
