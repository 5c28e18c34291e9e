"""`RUN/progress.jsonl`: the events a training run reports, one JSON object per line.

The trainer worker tails this file (never stdout) and turns the lines into job events. Only rank 0
writes; each line is appended and flushed on its own, so a reader never sees half a line from a
process that was killed between two events (a line is one `write` of a few hundred bytes).

    {"event": "start", "total_steps", "num_train_samples", "num_eval_samples", "world_size",
     "resumed_from_step", "trainable_parameters", "total_parameters", "dropped_samples"}
    {"event": "step", "step", "epoch", "loss", "learning_rate", "tokens_per_second", "trained_tokens"}
    {"event": "eval", "step", "eval_loss"}
    {"event": "budget", "total_steps", "planned_steps", "seconds_per_step", "max_seconds"}  # max_seconds fitted
    {"event": "checkpoint", "step", "path"}             # only once the folder is complete
    {"event": "done", "step", "train_loss", "eval_loss", "model_path", "adapter_path", "train_seconds",
     "trained_tokens", "objective"}
    {"event": "error", "message"}

A DPO run (objective dpo) adds OPTIONAL_FIELDS: to `step` and `eval` the mean reward margin and reward
accuracy of the pairs since the last line (held-out pairs for `eval`), to `done` the last of each,
train and eval (null without validation). The loss of a DPO run is the DPO loss, its eval_loss the
DPO loss on the held-out pairs; SFT runs write none of these fields.

Standard library only: the worker and tests import it without torch. The writer and reader are
`belle_shared.progress`'s; this module holds the training contract.
"""

from __future__ import annotations

from pathlib import Path

from belle_shared.progress import PROGRESS_FILE, ProgressWriter as _Writer, read_events

__all__ = ["EVENT_FIELDS", "OPTIONAL_FIELDS", "PROGRESS_FILE", "ProgressWriter", "read_events"]

# The fields of each event, in the contract's order; `write` refuses an event that lacks one.
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "start": ("total_steps", "num_train_samples", "num_eval_samples", "world_size", "resumed_from_step",
              "trainable_parameters", "total_parameters", "dropped_samples"),
    "step": ("step", "epoch", "loss", "learning_rate", "tokens_per_second", "trained_tokens"),
    "eval": ("step", "eval_loss"),
    "budget": ("total_steps", "planned_steps", "seconds_per_step", "max_seconds"),
    "checkpoint": ("step", "path"),
    "done": ("step", "train_loss", "eval_loss", "model_path", "adapter_path", "train_seconds", "trained_tokens",
             "objective"),
    "error": ("message",),
}
# Fields only some runs write (DPO's reward metrics), by event.
OPTIONAL_FIELDS: dict[str, tuple[str, ...]] = {
    "step": ("reward_margin", "reward_accuracy"),
    "eval": ("reward_margin", "reward_accuracy"),
    "done": ("reward_margin", "reward_accuracy", "eval_reward_margin", "eval_reward_accuracy"),
}



class ProgressWriter(_Writer):
    """A writer of the training contract: ``ProgressWriter(path, enabled=rank == 0)``."""

    def __init__(self, path: str | Path, *, enabled: bool = True):
        super().__init__(path, event_fields=EVENT_FIELDS, enabled=enabled)
