"""The evaluator worker: consumes the `eval` queue (job types `eval` and `preference_pairs`). One job at a
time; local answers run in a subprocess.

    belle-evaluator-worker                 # or: python -m belle_evaluator.worker
    BELLE_EVALUATOR_WORK_DIR=/scratch/belle belle-evaluator-worker

Settings come from BELLE_* environment variables (see belle_shared.settings). This process does not
import torch; `belle_evaluator.generate` (started per local model) does. Judge and endpoint keys are
the team's secrets, or environment variables of this process (belle_shared.secrets).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from belle_evaluator.job import run_eval
from belle_evaluator.pairs import run_pairs
from belle_shared.settings import Settings
from belle_shared.specs import EvalSpec, PreferencePairsSpec
from belle_shared.worker import JobContext, JobRegistry, WorkerSettings, run_worker


class EvaluatorSettings(WorkerSettings):
    evaluator_work_dir: Path | None = Field(
        None, description="Local folder for run folders (questions, answers, logs) and cached candidate models; "
        "default: <data dir>/evaluator.")


def work_root(settings: Settings) -> Path:
    return getattr(settings, "evaluator_work_dir", None) or Path(settings.data_dir) / "evaluator"


registry = JobRegistry()


# Answering a large eval set with several large models takes hours; the hard limit stays under the
# broker's visibility timeout. A judge that keeps failing (429s) is retried with a longer backoff.
@registry.job("eval", time_limit=47 * 3600, retry_backoff=30.0)
def evaluate(spec: EvalSpec, ctx: JobContext) -> dict:
    return run_eval(spec, ctx, work_root=work_root(ctx.settings))


# Sampling several answers to each prompt takes as long as an eval of that many answers.
@registry.job("preference_pairs", time_limit=47 * 3600, retry_backoff=30.0)
def preference_pairs(spec: PreferencePairsSpec, ctx: JobContext) -> dict:
    return run_pairs(spec, ctx, work_root=work_root(ctx.settings))


def main() -> None:
    run_worker(registry, queue="eval", settings=EvaluatorSettings())


if __name__ == "__main__":
    main()
