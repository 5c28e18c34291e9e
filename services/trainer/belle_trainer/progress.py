"""`RUN/progress.jsonl`: the events a training run reports, one JSON object per line.

The trainer worker tails this file (never stdout) and turns the lines into job events. Only rank 0
writes; each line is appended and flushed on its own, so a reader never sees half a line from a
process that was killed between two events (a line is one `write` of a few hundred bytes).

    {"event": "start", "total_steps", "num_train_samples", "num_eval_samples", "world_size",
     "resumed_from_step", "trainable_parameters", "total_parameters", "dropped_samples"}
    {"event": "step", "step", "epoch", "loss", "learning_rate", "tokens_per_second", "trained_tokens"}
    {"event": "eval", "step", "eval_loss"}
    {"event": "checkpoint", "step", "path"}             # only once the folder is complete
    {"event": "done", "step", "train_loss", "eval_loss", "model_path", "adapter_path", "train_seconds",
     "trained_tokens"}
    {"event": "error", "message"}

Standard library only: the worker and tests import it without torch.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

PROGRESS_FILE = "progress.jsonl"

# The fields of each event, in the contract's order; `write` refuses an event that lacks one.
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "start": ("total_steps", "num_train_samples", "num_eval_samples", "world_size", "resumed_from_step",
              "trainable_parameters", "total_parameters", "dropped_samples"),
    "step": ("step", "epoch", "loss", "learning_rate", "tokens_per_second", "trained_tokens"),
    "eval": ("step", "eval_loss"),
    "checkpoint": ("step", "path"),
    "done": ("step", "train_loss", "eval_loss", "model_path", "adapter_path", "train_seconds", "trained_tokens"),
    "error": ("message",),
}


def _json_value(value: Any) -> Any:
    # JSON has no NaN or infinity (a diverged loss): null keeps every line parseable by strict readers.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class ProgressWriter:
    """Appends events to `path`; a writer with `enabled=False` (ranks other than 0) writes nothing."""

    def __init__(self, path: str | Path, *, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled

    def write(self, event: str, **fields: Any) -> dict[str, Any]:
        """Append one event and return it. Every field of the contract must be given (None allowed)."""
        expected = EVENT_FIELDS.get(event)
        if expected is None:
            raise ValueError(f"unknown progress event {event!r}")
        missing = [name for name in expected if name not in fields]
        if missing:
            raise ValueError(f"{event} event without {missing}")
        record = {"event": event, **{name: _json_value(value) for name, value in fields.items()}}
        if self.enabled:
            line = json.dumps(record, ensure_ascii=False) + "\n"
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
        return record


def read_events(path: str | Path) -> list[dict[str, Any]]:
    """All events of a progress file (a missing file has none)."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
