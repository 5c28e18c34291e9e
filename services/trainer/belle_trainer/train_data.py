"""The data of a training run: rows read and tokenised (unusable rows counted, not fatal), a seeded
validation hold-out, optional packing, and the collator the Trainer batches with.

Every process of a run prepares the same data the same way (same files, same seed), so no process
needs to send it to another; the Trainer's distributed sampler then gives each its share.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from belle_shared.chat_template import BoundaryError, EncodedChat
from belle_trainer.chat_format import ConversationError, tokenize_conversation
from belle_trainer.errors import BadDataError
from belle_trainer.packing import PackedSequence, collate_packed, collate_padded

log = logging.getLogger(__name__)

# The batch key that carries the number of real (non-pad) input tokens of a batch to the trainer,
# which takes it out before the model sees the batch.
NUM_TOKENS = "num_tokens"


@dataclass
class TokenizedFile:
    """The usable samples of one JSONL file and how many of its rows were dropped, with why."""

    samples: list[EncodedChat]
    dropped: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str) -> None:
        self.dropped += 1
        self.reasons[reason] = self.reasons.get(reason, 0) + 1


def tokenize_file(tokenizer: Any, path: str | Path, max_length: int, *, end_of_turn: str) -> TokenizedFile:
    """Tokenise every row of a JSONL file of conversations through the tokenizer's chat template. A
    line that is not JSON, a row that is not a conversation, one whose prompt and reply share a token,
    or one with no reply token within `max_length` is dropped and counted; blank lines are skipped.
    A file that cannot be read is a BadDataError."""
    path = Path(path)
    result = TokenizedFile(samples=[])
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise BadDataError(f"cannot read {path}: {exc}") from exc
    with handle:
        try:
            for line in handle:
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    result.drop("not JSON")
                    continue
                try:
                    sample = tokenize_conversation(tokenizer, row, max_length, end_of_turn=end_of_turn)
                except ConversationError:
                    result.drop("not a conversation")
                    continue
                except BoundaryError:
                    result.drop("prompt and reply share a token")
                    continue
                if sample is None:
                    result.drop("no reply token fits in max_length")
                    continue
                result.samples.append(sample)
        except UnicodeDecodeError as exc:
            raise BadDataError(f"{path} is not UTF-8 text: {exc}") from exc
    return result


def holdout_size(num_samples: int, split: float) -> int:
    """Samples held out for validation: round(n x split), at least 1 when the split is positive and
    there are two samples or more, and never all of them."""
    if split <= 0 or num_samples < 2:
        return 0
    return min(num_samples - 1, max(1, round(num_samples * split)))


def split_holdout(samples: Sequence[EncodedChat], split: float, seed: int) -> tuple[list[EncodedChat], list[EncodedChat]]:
    """(train, validation): a seeded random choice of `holdout_size` samples, both in file order."""
    size = holdout_size(len(samples), split)
    held = set(random.Random(seed).sample(range(len(samples)), size)) if size else set()
    train = [s for i, s in enumerate(samples) if i not in held]
    validation = [s for i, s in enumerate(samples) if i in held]
    return train, validation


@dataclass
class RunData:
    train: list[EncodedChat]
    validation: list[EncodedChat]
    dropped: int
    reasons: dict[str, int]


def load_run_data(tokenizer: Any, train_file: str | Path, validation_file: str | Path | None, *,
                  max_length: int, validation_split: float, seed: int, end_of_turn: str) -> RunData:
    """Tokenise the training file and the validation file, or hold out `validation_split` of the
    training samples. BadDataError when no training sample is left."""
    train = tokenize_file(tokenizer, train_file, max_length, end_of_turn=end_of_turn)
    reasons = dict(train.reasons)
    dropped = train.dropped
    if validation_file is not None:
        validation = tokenize_file(tokenizer, validation_file, max_length, end_of_turn=end_of_turn)
        dropped += validation.dropped
        for reason, count in validation.reasons.items():
            reasons[reason] = reasons.get(reason, 0) + count
        train_samples, validation_samples = train.samples, validation.samples
    else:
        train_samples, validation_samples = split_holdout(train.samples, validation_split, seed)
    if not train.samples:
        detail = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items())) or "the file is empty"
        raise BadDataError(f"no usable training row in {Path(train_file).name} ({detail})")
    if dropped:
        log.warning("dropped %d rows: %s", dropped, reasons)
    return RunData(train_samples, validation_samples, dropped, reasons)


def tokenize_documents(tokenizer: Any, path: str | Path, max_length: int) -> list[EncodedChat]:
    """Continued pre-training's samples: each JSONL document ({"text": ...}) tokenised with an end of
    text after it and cut into pieces of at most `max_length` tokens, every token trained (labels are the
    ids). Packing then fills sequences with pieces, none attending to another's."""
    eos = tokenizer.eos_token_id
    samples = []
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if not line.strip():
                    continue
                ids = tokenizer(json.loads(line)["text"], add_special_tokens=False)["input_ids"]
                ids = ids + ([eos] if eos is not None else [])
                for start in range(0, len(ids), max_length):
                    piece = ids[start:start + max_length]
                    if len(piece) > 1:  # one token predicts nothing
                        samples.append(EncodedChat(input_ids=piece, labels=list(piece)))
    except (OSError, ValueError, KeyError) as exc:
        raise BadDataError(f"cannot read the documents of {Path(path).name}: {exc}") from exc
    return samples


def load_text_data(tokenizer: Any, train_file: str | Path, validation_file: str | Path | None, *,
                   max_length: int, validation_split: float, seed: int) -> RunData:
    """The samples of a `pretrain` run: the training documents' pieces, and the validation file's or a
    seeded `validation_split` of them held out. BadDataError when nothing is left to train on."""
    train = tokenize_documents(tokenizer, train_file, max_length)
    if validation_file is not None:
        train_samples, validation_samples = train, tokenize_documents(tokenizer, validation_file, max_length)
    else:
        train_samples, validation_samples = split_holdout(train, validation_split, seed)
    if not train_samples:
        raise BadDataError(f"no text to train on in {Path(train_file).name}")
    return RunData(train_samples, validation_samples, 0, {})


class ListDataset:
    """A map-style dataset over a list (what the Trainer's DataLoader needs: len and indexing)."""

    def __init__(self, items: Sequence[Any]):
        self.items = list(items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Any:
        return self.items[index]


class Collator:
    """Batches Samples padded to the longest (`collate_padded`), or PackedSequences with their block
    masks in the model's compute dtype (`collate_packed`), and adds NUM_TOKENS (non-pad tokens)."""

    def __init__(self, pad_token_id: int, *, mask_dtype: Any = None):
        self.pad_token_id = pad_token_id
        self.mask_dtype = mask_dtype

    def __call__(self, items: Sequence[Any]) -> dict[str, Any]:
        if isinstance(items[0], PackedSequence):
            batch = collate_packed(items, self.pad_token_id, mask="block", dtype=self.mask_dtype)
            batch[NUM_TOKENS] = sum(len(item) for item in items)
        else:
            batch = collate_padded(items, self.pad_token_id)
            batch[NUM_TOKENS] = int(batch["attention_mask"].sum())
        return batch


def pad_token_id(tokenizer: Any) -> int:
    """The id padding is written with (never trained or attended to): the pad token, else EOS."""
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if candidate is not None:
            return int(candidate)
    return 0
