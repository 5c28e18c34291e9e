"""The datagen worker: consumes the `datagen` queue (dataset import, self-instruct generation).

    belle-datagen-worker                 # or: python -m belle_datagen.worker
    BELLE_WORKER_CONCURRENCY=4 belle-datagen-worker

Settings come from BELLE_* environment variables (see belle_shared.settings).
"""

from __future__ import annotations

from belle_datagen.importer import run_import
from belle_shared.worker import JobRegistry, WorkerSettings, run_worker

registry = JobRegistry()
registry.job("import", time_limit=6 * 3600)(run_import)


def main() -> None:
    run_worker(registry, queue="datagen", settings=WorkerSettings())


if __name__ == "__main__":
    main()
