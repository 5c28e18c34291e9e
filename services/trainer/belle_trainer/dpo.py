"""Direct preference optimisation (TrainSpec.objective "dpo") with trl's DPOTrainer: what a DPO run
does differently from supervised fine-tuning. Everything else (chat template, DeepSpeed, LoRA,
progress events, time budget, checkpoints and resume, saving and merging, `belle_training.json`) is
belle_trainer.train's, shared by both objectives.

Data: the run's file holds canonical preference pairs (belle_shared.preferences), one per line; a
line that is not one fails the run (the gateway checked every row, so this is a file edited since).
Each pair goes to trl in its conversational form, ``{"prompt": messages, "chosen": [assistant
message], "rejected": [assistant message]}``, which trl renders with the tokenizer's chat template,
the one the run chose: the reply and what the template writes after it (the end-of-turn token) are
the completion whose log-probability DPO compares. A pair whose prompt alone fills max_length is
dropped and counted (trl would drop it too: truncation keeps the start, so no reply token is left).

Reference model: LoRA takes the base with the adapter disabled (no second model: the adapter is all
that trains). Full fine-tuning computes the reference log-probs of every pair once, before the first
step, with the model as loaded (`precompute_ref_log_probs`), so no frozen copy of the whole model is
held in memory during training; they are recomputed when a run resumes (the model is then loaded
from the base again before the checkpoint is restored). trl keeps them in a datasets cache under
RUN/dpo_data, where every process of the run finds them.

Metrics: trl logs `rewards/chosen`, `rewards/rejected`, `rewards/margins`, `rewards/accuracies`
(and `logps/*`, `logits/*`, `entropy`, `num_tokens`, `mean_token_accuracy`) on each training log
line, with an `eval_` prefix on evaluation lines; the progress events carry the margin and the
accuracy (hf_trainer.REWARD_METRICS). Tokens are counted as in SFT (hf_trainer.TokenCounting): the
non-pad tokens of the chosen and the rejected sequences, the count trl logs as `num_tokens`, but kept
in the Trainer's state so that it goes on across a resume (trl's restarts at zero).
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from belle_shared.preferences import prompt_messages
from belle_trainer.errors import BadDataError
from belle_trainer.train_data import split_holdout

log = logging.getLogger(__name__)

DATA_DIR = "dpo_data"  # under the run folder: the pairs as datasets files, trl's caches beside them
_ROLES = ("human", "assistant")


@dataclass
class PairData:
    """The pairs of a DPO run in trl's conversational form (the shape of train_data.RunData)."""

    train: list[dict[str, Any]]
    validation: list[dict[str, Any]]
    dropped: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


def _pair_problem(pair: Any) -> str | None:
    """Why `pair` is not a canonical preference pair, or None."""
    if not isinstance(pair, dict):
        return "not a JSON object"
    turns = pair.get("conversations")
    if not isinstance(turns, list) or not turns:
        return '"conversations" must be a non-empty array of turns'
    for index, turn in enumerate(turns):
        if not (isinstance(turn, dict) and turn.get("from") in _ROLES and isinstance(turn.get("value"), str)):
            return f'conversations[{index}] must be {{"from": "human" or "assistant", "value": text}}'
    if turns[-1]["from"] != "human":
        return "the prompt must end with the user's turn"
    if "system" in pair and not isinstance(pair["system"], str):
        return '"system" must be a string'
    for key in ("chosen", "rejected"):
        if not isinstance(pair.get(key), str) or not pair[key].strip():
            return f'"{key}" must be a non-empty string'
    return None


def trl_row(pair: dict[str, Any]) -> dict[str, Any]:
    """A canonical pair as trl's conversational preference row."""
    return {"prompt": prompt_messages(pair),
            "chosen": [{"role": "assistant", "content": pair["chosen"]}],
            "rejected": [{"role": "assistant", "content": pair["rejected"]}]}


def read_pairs(path: str | Path) -> list[dict[str, Any]]:
    """The pairs of a JSONL file of canonical pairs, as trl rows; BadDataError naming the first line
    that is not one (pairs are never dropped silently: the gateway refused a file with a bad one)."""
    path = Path(path)
    rows = []
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    pair = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise BadDataError(f"{path.name} line {number}: not JSON: {exc}") from None
                problem = _pair_problem(pair)
                if problem:
                    raise BadDataError(f"{path.name} line {number}: not a preference pair: {problem}")
                rows.append(trl_row(pair))
    except OSError as exc:
        raise BadDataError(f"cannot read {path}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise BadDataError(f"{path} is not UTF-8 text: {exc}") from exc
    return rows


def _prompt_fits(tokenizer: Any, row: dict[str, Any], max_length: int) -> bool:
    """Whether the prompt, as the chat template renders it for generation, leaves room for a reply."""
    text = tokenizer.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"]) < max_length


def load_pairs(tokenizer: Any, train_file: str | Path, validation_file: str | Path | None, *, max_length: int,
               validation_split: float, seed: int) -> PairData:
    """The training pairs and the validation file's, or `validation_split` of the training pairs held
    out (train_data.split_holdout, as SFT). BadDataError when no training pair is left."""
    data = PairData(train=[], validation=[])

    def fitting(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        kept = [row for row in rows if _prompt_fits(tokenizer, row, max_length)]
        if len(kept) < len(rows):
            data.dropped += len(rows) - len(kept)
            data.reasons["prompt fills max_length"] = data.dropped
        return kept

    train = fitting(read_pairs(train_file))
    if validation_file is not None:
        data.train, data.validation = train, fitting(read_pairs(validation_file))
    else:
        data.train, data.validation = split_holdout(train, validation_split, seed)
    if not train:
        detail = f"{data.dropped} whose prompt fills max_length ({max_length} tokens)" if data.dropped \
            else "the file is empty"
        raise BadDataError(f"no usable preference pair in {Path(train_file).name} ({detail})")
    if data.dropped:
        log.warning("dropped %d pairs: %s", data.dropped, data.reasons)
    return data


def dpo_arguments(config: Any, **training_arguments: Any) -> Any:
    """trl's DPOConfig: the run's TrainingArguments (train.training_arguments) and DPO's options."""
    from trl import DPOConfig

    spec = config.spec
    return DPOConfig(
        **training_arguments,
        beta=spec.dpo.beta,
        loss_type=[spec.dpo.loss_type],
        max_length=spec.hyperparameters.max_length,
        # Full fine-tuning: the reference log-probs once, before training, instead of a second model
        # held in memory throughout. LoRA: the base with the adapter disabled is the reference.
        precompute_ref_log_probs=spec.method == "full",
        # DPOConfig turns it on by default, TrainingArguments off: the same as an SFT run.
        gradient_checkpointing=False,
    )


def _trainer_class() -> type:
    from trl import DPOTrainer

    from belle_trainer.hf_trainer import TokenCounting

    class BelleDPOTrainer(TokenCounting, DPOTrainer):
        """trl's DPOTrainer with the run's token count (hf_trainer.TokenCounting)."""

        def batch_tokens(self, inputs: dict[str, Any]) -> int:
            # The collator's batch is the chosen then the rejected sequences, right-padded.
            return int(inputs["attention_mask"].sum())

    return BelleDPOTrainer


def _datasets(data: PairData, data_dir: Path, *, is_main: bool) -> tuple[Any, Any]:
    """The pairs as datasets files under `data_dir` (rank 0 writes, every process reads). trl's
    precomputed reference log-probs are cached beside a dataset's files, under a name all processes
    agree on; a dataset held only in memory would get a random cache name in each process."""
    from datasets import Dataset, load_from_disk

    from belle_trainer.hf_trainer import barrier

    if is_main:
        shutil.rmtree(data_dir, ignore_errors=True)  # a resumed run recomputes them from its base model
        Dataset.from_list(data.train).save_to_disk(str(data_dir / "train"))
        if data.validation:
            Dataset.from_list(data.validation).save_to_disk(str(data_dir / "validation"))
    barrier()
    train = load_from_disk(str(data_dir / "train"))
    validation = load_from_disk(str(data_dir / "validation")) if data.validation else None
    return train, validation


def dpo_trainer(model: Any, args: Any, data: PairData, tokenizer: Any, *, callbacks: list, data_dir: Path,
                is_main: bool) -> Any:
    """trl's DPOTrainer on `model` (a plain model, or a peft model for LoRA) with the run's pairs,
    tokenizer (its chat template chosen) and callbacks. With full fine-tuning this computes the
    reference log-probs of every pair before it returns."""
    import huggingface_hub.constants

    # trl's trainers report their use to the Hugging Face Hub; a training run here contacts nothing.
    huggingface_hub.constants.HF_HUB_DISABLE_TELEMETRY = True
    train, validation = _datasets(data, data_dir, is_main=is_main)
    trainer = _trainer_class()(model=model, ref_model=None, args=args, train_dataset=train, eval_dataset=validation,
                               processing_class=tokenizer, callbacks=callbacks)
    peft_config = getattr(trainer.model, "peft_config", None)
    if peft_config and "ref" in peft_config:
        # Given a peft model, trl copies its adapter as a frozen "ref" adapter to be the reference (made
        # for an adapter trained before). This one is new: its B matrices are zero, so the copy is the
        # base exactly. Without the copy trl disables the adapter for the reference, which is the same
        # model without a second adapter's forward, and without the copy in every checkpoint and in
        # RUN/adapter/.
        trainer.model.delete_adapter("ref")
    return trainer


def reward_metrics(log_history: list[dict[str, Any]]) -> dict[str, float | None]:
    """The last logged reward margin and accuracy, of training and of evaluation (None: not logged)."""
    from belle_trainer.hf_trainer import REWARD_METRICS

    metrics: dict[str, float | None] = {}
    for prefix in ("", "eval_"):
        last = next((entry for entry in reversed(log_history) if prefix + "rewards/margins" in entry), {})
        for name, key in REWARD_METRICS.items():
            metrics[prefix + name] = last.get(prefix + key)
    return metrics
