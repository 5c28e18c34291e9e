"""`quantize.json`, the file the quantizer worker writes into a run folder before it starts the run.

    {"spec": <QuantizeSpec>, "model_path": "/abs/hf/folder", "dataset_file": "/abs/conversations.jsonl",
     "output_dir": "/abs/RUN/quantized", "work_dir": "/abs/RUN"}

And the events the run reports in `RUN/progress.jsonl` (see `belle_shared.progress`):

    {"event": "start", "calibration_samples", "eval_samples", "device", "dtype", "quantized_modules",
     "group_size", "group_size_from"}
    {"event": "stage", "stage", "message"}            # what the run is doing now
    {"event": "layer", "done", "total"}               # GPTQ: decoder layers quantized of all
    {"event": "measure", "variant", "report"}         # source | gptq | rtn, as they finish
    {"event": "done", "output_path", "report"}        # report: the whole quantization_report.json
    {"event": "error", "code", "message", "param"}    # a clear job error (bad input found at run time)

Standard library and pydantic only, so the worker builds and checks it without torch.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from belle_shared.specs import QuantizeSpec

RUN_FILE = "quantize.json"
REPORT_FILE = "quantization_report.json"

EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "start": ("calibration_samples", "eval_samples", "device", "dtype", "quantized_modules", "group_size",
              "group_size_from"),
    "stage": ("stage", "message"),
    "layer": ("done", "total"),
    "measure": ("variant", "report"),
    "done": ("output_path", "report"),
    "error": ("code", "message", "param"),
}


class QuantizeRun(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec: QuantizeSpec
    model_path: Path
    dataset_file: Path
    output_dir: Path
    work_dir: Path

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.model_dump(mode="json"), indent=2), encoding="utf-8")


def load_run(path: str | Path) -> QuantizeRun:
    return QuantizeRun.model_validate_json(Path(path).read_text(encoding="utf-8"))
