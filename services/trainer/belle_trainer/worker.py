"""The trainer worker: consumes the `train` queue. One job at a time; training runs in subprocesses.

    belle-trainer-worker                 # or: python -m belle_trainer.worker
    BELLE_TRAINER_WORK_DIR=/scratch/belle belle-trainer-worker

Settings come from BELLE_* environment variables (see belle_shared.settings). This process does not
import torch; `belle_trainer.train` (launched under torchrun per job) does.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from belle_shared.settings import Settings
from belle_shared.specs import TrainSpec
from belle_shared.worker import JobContext, JobRegistry, WorkerSettings, run_worker
from belle_trainer.job import run_train


class TrainerSettings(WorkerSettings):
    trainer_work_dir: Path | None = Field(
        None, description="Local folder for run folders (checkpoints, logs) and cached base models; "
        "default: <data dir>/trainer. Needs room for a few checkpoints of the largest model.")


def work_root(settings: Settings) -> Path:
    return getattr(settings, "trainer_work_dir", None) or Path(settings.data_dir) / "trainer"


registry = JobRegistry()


# Training is long: no soft limit; the hard limit stays under the broker's visibility timeout (48 h).
@registry.job("train", time_limit=47 * 3600)
def train(spec: TrainSpec, ctx: JobContext) -> dict:
    return run_train(spec, ctx, work_root=work_root(ctx.settings))


def main() -> None:
    run_worker(registry, queue="train", settings=TrainerSettings())


if __name__ == "__main__":
    main()
