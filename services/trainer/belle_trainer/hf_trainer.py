"""The HF Trainer as a run uses it: a subclass that counts trained tokens, and the callback that
turns the Trainer's steps, evaluations and saves into progress events.

Tokens (`TokenCounting`, shared with DPO's trainer in belle_trainer.dpo): BelleTrainer's collator
puts the number of non-pad tokens of each batch under NUM_TOKENS, which the trainer takes out before
the model sees the batch; at each logging step the trainer sums the counts of all
processes (one all-reduce per log line, not per micro-batch) into `state.num_input_tokens_seen`,
which the Trainer saves in every checkpoint, so the count goes on across a resume (the counts are
also summed just before each save, so a checkpoint holds them all). Tokens per second are over
training time only (from the start of each optimizer step to its end), so the
evaluations and checkpoint saves between two log lines do not dilute them.
"""

from __future__ import annotations

import inspect
import logging
import time
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainerCallback

from belle_trainer.chat_format import IGNORE_INDEX
from belle_trainer.checkpoints import mark_complete
from belle_trainer.progress import ProgressWriter
from belle_trainer.train_data import NUM_TOKENS

log = logging.getLogger(__name__)


def barrier() -> None:
    """Wait for every process of the run (no-op in a single process)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


class TokenCounting:
    """A mixin for a transformers Trainer, first among its bases: counts the non-pad tokens trained
    into `state.num_input_tokens_seen` (saved with every checkpoint) and adds `tokens_per_second` and
    `trained_tokens` to each training log line. A trainer says how a batch counts (`batch_tokens`)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._pending_tokens = 0      # this process's tokens not yet summed over the processes
        self._tokens_since_log = 0    # all processes' tokens since the last log line
        self._busy_seconds = 0.0      # training time since the last log line
        self._step_started: float | None = None
        self.add_callback(_StepClock(self))

    def batch_tokens(self, inputs: dict[str, Any]) -> int:
        """The non-pad tokens of one training micro-batch (it may take its own key out of `inputs`)."""
        raise NotImplementedError

    def training_step(self, model, inputs, num_items_in_batch=None):
        self._pending_tokens += self.batch_tokens(inputs)
        return super().training_step(model, inputs, num_items_in_batch)

    def sync_tokens(self) -> int:
        """Add every process's tokens since the last call to the state's total; returns the sum.
        A collective: all processes must call it together."""
        count = torch.tensor([self._pending_tokens], dtype=torch.int64, device=self.args.device)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(count)
        self._pending_tokens = 0
        total = int(count.item())
        self.state.num_input_tokens_seen += total
        self._tokens_since_log += total
        return total

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        # Training log lines (the ones with "loss") are written by every process at the same step,
        # which makes this a safe place for the token all-reduce.
        if "loss" in logs:
            self.sync_tokens()
            tokens, self._tokens_since_log = self._tokens_since_log, 0
            seconds, self._busy_seconds = self._busy_seconds, 0.0
            logs["tokens_per_second"] = tokens / seconds if seconds > 0 else 0.0
            logs["trained_tokens"] = int(self.state.num_input_tokens_seen)
        super().log(logs, start_time)


class BelleTrainer(TokenCounting, Trainer):
    """Supervised fine-tuning: the collator's token counts, and the loss with sparse logits."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # Sparse logits need a model whose forward takes `logits_to_keep` (transformers' causal LMs).
        self._sparse_logits = "logits_to_keep" in inspect.signature(
            type(self.accelerator.unwrap_model(self.model).get_base_model()
                 if hasattr(self.model, "get_base_model") else self.model).forward).parameters

    def batch_tokens(self, inputs: dict[str, Any]) -> int:
        return int(inputs.pop(NUM_TOKENS, 0))

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The causal-LM loss with logits only at the positions that predict a trained token.

        Only replies carry labels (the question, often most of a sample, does not), and the output
        layer plus its softmax over the vocabulary is the largest cost of a small model's step: the
        default loss computes it at every position and throws most of it away. Here the model
        computes logits only at the sequence positions whose next token is trained in some row of
        the batch (`logits_to_keep` with a tensor of positions, which LLaMA, BLOOM, Qwen... accept),
        and the loss is the same sum over trained tokens divided by their count."""
        labels = inputs.get("labels")
        if return_outputs or labels is None or not model.training or not self._sparse_logits:
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)
        inputs = {key: value for key, value in inputs.items() if key != "labels"}
        targets = labels[:, 1:]
        positions = (targets != IGNORE_INDEX).any(dim=0).nonzero().flatten()
        logits = model(**inputs, logits_to_keep=positions).logits
        picked = targets[:, positions]
        loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), picked.flatten(),
                                                 ignore_index=IGNORE_INDEX, reduction="sum")
        count = num_items_in_batch if num_items_in_batch is not None else (picked != IGNORE_INDEX).sum()
        loss = loss / count
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            # As the Trainer's own loss: the gradients are averaged over the processes, while
            # `num_items_in_batch` already counts the tokens of all of them.
            loss = loss * self.accelerator.num_processes
        return loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs.pop(NUM_TOKENS, None)
        return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys)


class _StepClock(TrainerCallback):
    """Adds the wall time of each optimizer step (its micro-batches and the update) to the trainer,
    and sums the token counts before a checkpoint is saved. It is the trainer's last callback, so it
    sees `should_save` as the others left it; every process sees the same flags at the same step."""

    def __init__(self, trainer: TokenCounting):
        self.trainer = trainer

    def on_step_begin(self, args, state, control, **kwargs):
        self.trainer._step_started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self.trainer._step_started is not None:
            self.trainer._busy_seconds += time.perf_counter() - self.trainer._step_started
            self.trainer._step_started = None
        if control.should_save:
            self.trainer.sync_tokens()

    def on_epoch_end(self, args, state, control, **kwargs):
        if control.should_save:
            self.trainer.sync_tokens()


def train_loss_from_history(log_history: list[dict[str, Any]]) -> float | None:
    """The mean training loss over all steps logged (across resumes: the history is restored with
    the checkpoint), each log line weighted by the steps it covers."""
    total, last_step = 0.0, 0
    for entry in log_history:
        if "loss" in entry and "step" in entry and entry["step"] > last_step:
            total += float(entry["loss"]) * (entry["step"] - last_step)
            last_step = entry["step"]
    return total / last_step if last_step else None


# trl's DPOTrainer logs the preference metrics under these names (eval lines with an "eval_" prefix):
# the progress fields they become (belle_trainer.progress.OPTIONAL_FIELDS).
REWARD_METRICS = {"reward_margin": "rewards/margins", "reward_accuracy": "rewards/accuracies"}


def reward_fields(logs: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """A DPO log line's reward margin and accuracy as progress fields; nothing for other runs."""
    return {field: logs[prefix + name] for field, name in REWARD_METRICS.items() if prefix + name in logs}


class ProgressEvents(TrainerCallback):
    """Writes start, step, eval and checkpoint events (rank 0) and asks for a checkpoint at the end
    of every epoch (the Trainer's own schedule saves every `save_steps`)."""

    def __init__(self, writer: ProgressWriter, *, run_dir: Path, start_fields: dict[str, Any], resumed: bool):
        self.writer = writer
        self.run_dir = Path(run_dir)
        self.start_fields = start_fields
        self.resumed = resumed
        self.last_save_step: int | None = None
        self.last_eval: tuple[int, float] | None = None  # (step, eval_loss)
        self.total_steps: int | None = None  # as planned at the start

    def on_train_begin(self, args, state, control, **kwargs):
        self.total_steps = state.max_steps
        self.writer.write("start", total_steps=state.max_steps,
                          resumed_from_step=state.global_step if self.resumed else None, **self.start_fields)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.writer.write("step", step=state.global_step, epoch=logs.get("epoch", state.epoch),
                              loss=logs["loss"], learning_rate=logs.get("learning_rate"),
                              tokens_per_second=logs.get("tokens_per_second"),
                              trained_tokens=logs.get("trained_tokens", state.num_input_tokens_seen),
                              **reward_fields(logs))

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if metrics and "eval_loss" in metrics:
            self.last_eval = (state.global_step, float(metrics["eval_loss"]))
            self.writer.write("eval", step=state.global_step, eval_loss=metrics["eval_loss"],
                              **reward_fields(metrics, prefix="eval_"))

    def on_epoch_end(self, args, state, control, **kwargs):
        if self.last_save_step != state.global_step:
            control.should_save = True
        return control

    def on_save(self, args, state, control, **kwargs):
        # Every process has returned from its part of the save once all meet here.
        barrier()
        self.last_save_step = state.global_step
        if state.is_world_process_zero:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            mark_complete(folder, state.global_step)
            self.writer.write("checkpoint", step=state.global_step,
                              path=folder.relative_to(self.run_dir).as_posix())
