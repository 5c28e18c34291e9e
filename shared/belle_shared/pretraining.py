"""The `pretrain` job: continued pre-training on a team's plain text, optionally after growing the
base model's vocabulary from that text, as BELLE did for LLaMA (BELLE-LLaMA-EXT: Chinese tokens added,
then secondary pre-training on Chinese text).

An English-centred tokenizer spends several tokens on one Chinese character (SmolLM2: 15 tokens for
the 9 characters of 北京是中国的首都。), so training and generation in Chinese are slower and the context
holds less. With `vocabulary` set, the trainer learns new tokens from the training text (a tokenizer
trained on it with the `tokenizers` library), adds those the base does not have, grows the embeddings
and the output layer, and starts each new row as the mean of the rows of the pieces it replaces; then
every token of the text is trained. The result is a model like any other: fine-tune it with a `train`
job as from any base.

The job runs on the trainer's queue with the supervised runs' machinery (DeepSpeed, checkpoints,
resume, events, time budget); its text is an upload of purpose `pretrain`: UTF-8 text (documents
separated by a blank line) or JSONL with a `text` field per line.
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import Field, model_validator

from belle_shared.specs import JobSpec, LoraOptions, TrainHyperparameters, _Spec, check_offload

PRETRAIN_PURPOSE = "pretrain"


class VocabularyOptions(_Spec):
    max_new_tokens: int = Field(
        8000, ge=1, le=200_000, description="At most this many tokens are added: those of a tokenizer trained on "
        "the training text that save the most base tokens on it (words and characters the base splits into pieces).")
    min_frequency: int = Field(2, ge=1, le=1_000_000,
                               description="A token must occur at least this often in the training text.")


def _pretrain_hyperparameters() -> TrainHyperparameters:
    # One pass over the text by default: continued pre-training reads much text once, not little text twice.
    return TrainHyperparameters(epochs=1)


class PretrainSpec(JobSpec):
    """Continued pre-training of a causal language model on plain text (every token trained), optionally
    after a vocabulary expansion learned from that text."""

    type: Literal["pretrain"] = "pretrain"
    base_model: str = Field(description="Id or name of a registered model to start from.")
    training_file_id: uuid.UUID = Field(description="Uploaded text (purpose `pretrain`): UTF-8 text, documents "
                                        "separated by a blank line, or JSONL with a `text` field per line.")
    validation_file_id: uuid.UUID | None = Field(
        None, description="Uploaded validation text (purpose `pretrain`); unset holds out `validation_split` of "
        "the documents.")
    validation_split: float = Field(0.02, ge=0, lt=0.5, description="Share of documents held out for eval loss.")
    vocabulary: VocabularyOptions | None = Field(
        None, description="Grow the vocabulary from the training text first (unset: keep the base's tokenizer).")
    method: Literal["full", "lora"] = Field(
        "full", description="Full training, or LoRA adapters; with a grown vocabulary LoRA also trains the new "
        "tokens' rows of the embeddings and the output layer.")
    lora: LoraOptions = Field(default_factory=LoraOptions, description="LoRA options (method=lora).")
    hyperparameters: TrainHyperparameters = Field(
        default_factory=_pretrain_hyperparameters, description="Optimisation settings; `max_length` is the "
        "length of the blocks the text is cut into (a document is never attended to from another).")
    zero_stage: Literal[0, 1, 2, 3] = Field(2, description="DeepSpeed ZeRO stage.")
    offload: Literal["none", "optimizer", "optimizer_and_parameters"] = Field(
        "none", description="DeepSpeed CPU offload.")
    num_processes: int = Field(1, ge=1, le=1024, description="Training processes (GPUs, or CPU processes without one).")
    suffix: str | None = Field(None, max_length=64, description="Added to the trained model's name.")
    metadata: dict[str, str] | None = Field(
        None, max_length=16, description="Up to 16 key-value pairs kept with the job.")

    # What the trainer reads of every run spec (belle_trainer): a pretrain run is the supervised
    # machinery with its own data, every token trained, packed, the base's chat template kept.
    @property
    def objective(self) -> str:
        return "pretrain"

    @property
    def packing(self) -> bool:
        return True

    @property
    def dataset_id(self) -> None:
        return None

    @model_validator(mode="after")
    def _offload_needs_zero(self) -> "PretrainSpec":
        return check_offload(self)
