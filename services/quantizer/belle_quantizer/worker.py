"""The quantizer worker: consumes the `quantize` queue. One job at a time; GPTQ runs in a subprocess.

    belle-quantizer-worker                 # or: python -m belle_quantizer.worker
    BELLE_QUANTIZER_WORK_DIR=/scratch/belle belle-quantizer-worker

Settings come from BELLE_* environment variables (see belle_shared.settings). This process does not
import torch; `belle_quantizer.quantize` (started per job) does.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from belle_shared.settings import Settings
from belle_shared.specs import QuantizeSpec
from belle_shared.worker import JobContext, JobRegistry, WorkerSettings, run_worker
from belle_quantizer.job import run_quantize


class QuantizerSettings(WorkerSettings):
    quantizer_work_dir: Path | None = Field(
        None, description="Local folder for run folders and cached source models; default: <data dir>/quantizer. "
        "Needs room for the source model, its quantized copy and GPTQ's offloaded layers.")


def work_root(settings: Settings) -> Path:
    return getattr(settings, "quantizer_work_dir", None) or Path(settings.data_dir) / "quantizer"


registry = JobRegistry()


# GPTQ of a large model on CPU takes hours; the hard limit stays under the broker's visibility timeout.
@registry.job("quantize", time_limit=47 * 3600)
def quantize(spec: QuantizeSpec, ctx: JobContext) -> dict:
    return run_quantize(spec, ctx, work_root=work_root(ctx.settings))


def main() -> None:
    run_worker(registry, queue="quantize", settings=QuantizerSettings())


if __name__ == "__main__":
    main()
