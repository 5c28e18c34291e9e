"""`run.json`, the file the trainer worker writes into a run folder before it launches training.

    {"spec": <TrainSpec or PretrainSpec>, "base_model_path": "/abs/hf/folder", "train_file": "/abs/train.jsonl",
     "validation_file": "/abs/val.jsonl" | null, "output_dir": "/abs/RUN", "resume": true,
     "new_tokens_from": null | <first new token id>}

The spec is validated again here (the worker validated it too: a file can be edited in between).
Standard library and pydantic only, so the worker can build and check a RunConfig without torch.
"""

from __future__ import annotations

import json
from pathlib import Path

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from belle_shared.pretraining import PretrainSpec
from belle_shared.specs import TrainSpec, default_learning_rate
from belle_trainer.errors import BadOptionError

RUN_FILE = "run.json"



class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec: Annotated[TrainSpec | PretrainSpec, Field(discriminator="type")]
    base_model_path: Path
    train_file: Path
    validation_file: Path | None = None
    output_dir: Path
    resume: bool = True
    # A pretrain run whose vocabulary grew: the first new token id (LoRA also trains those rows).
    new_tokens_from: int | None = None

    @property
    def learning_rate(self) -> float:
        """The spec's learning rate, or the default for its objective and method (belle_shared.specs)."""
        return self.spec.hyperparameters.learning_rate or default_learning_rate(self.spec.objective, self.spec.method)


def load_run_config(path: str | Path) -> RunConfig:
    """Read and validate `run.json`; BadOptionError says what is wrong with it."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise BadOptionError(f"cannot read the run file {path}: {exc}") from exc
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        raise BadOptionError(f"invalid run file {path}: {exc}") from exc
