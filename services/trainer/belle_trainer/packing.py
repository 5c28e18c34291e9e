"""Batches of tokenised conversations: padded, or packed (several samples in one sequence that do
not attend to each other).

Packing, measured on transformers 5.17 (tests/unit/test_packing.py checks the logits of a packed
sequence against each sample run alone):
- LLaMA-style models (RoPE, `position_ids`, masks from `masking_utils.create_causal_mask`): a 4D
  additive block-diagonal causal mask plus position ids restarting at 0 per sample, with eager or
  SDPA attention. transformers can also infer the blocks from restarting `position_ids` alone
  (its "packed sequence" detection), but only when no attention mask is given *and* no KV cache
  exists; `use_cache` defaults to True in the config, which silently turns the detection off, so
  that mode (`mask="position_ids"`, the one that also works with flash-attention) sets
  `use_cache=False` in the batch.
- BLOOM has no position ids: ALiBi adds slope x key position, computed from a 2D mask, and BLOOM
  rejects a 4D one there. `enable_packing` swaps in an ALiBi builder that reads each key's position
  within its own sample off the block mask, so the biases are exactly those of the sample alone
  (even without it they would differ only by a per-row constant, which softmax ignores, but large
  offsets would cost float precision).
Other architectures are refused by `enable_packing` until someone checks them.

Label boundaries: the model shifts labels by one, so the last token of one sample would be trained
to predict the first token of the next; `pack` masks every sample's first label (a sample's own
first label is never used, so nothing else changes).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from belle_trainer.chat_format import IGNORE_INDEX

MASK_MODES = ("block", "position_ids")
# Model types whose packed logits the tests compare with unpacked ones (BLOOM is handled apart).
POSITION_ID_MODELS = ("llama", "qwen2")


class PackingUnsupported(ValueError):
    """The model cannot take packed sequences (correctly) the way asked."""


@dataclass(frozen=True)
class PackedSequence:
    input_ids: list[int]
    labels: list[int]
    position_ids: list[int]  # restarting at 0 for each sample
    seq_lens: list[int]      # the samples' lengths, in order

    def __len__(self) -> int:
        return len(self.input_ids)


def _field(sample: Any, name: str) -> list[int]:
    return list(sample[name] if isinstance(sample, Mapping) else getattr(sample, name))


def pack(samples: Iterable[Any], max_length: int) -> list[PackedSequence]:
    """Best-fit decreasing: longest samples first, each into the fullest sequence it still fits in.

    Samples are anything with `input_ids` and `labels` (Sample objects or dicts); one longer than
    `max_length` is an error (truncate first: `tokenize_conversation`). Deterministic."""
    items = [(_field(s, "input_ids"), _field(s, "labels")) for s in samples]
    for index, (ids, labels) in enumerate(items):
        if len(ids) != len(labels):
            raise ValueError(f"sample {index}: input_ids and labels differ in length")
        if not ids:
            raise ValueError(f"sample {index} is empty")
        if len(ids) > max_length:
            raise ValueError(f"sample {index} has {len(ids)} tokens, more than max_length={max_length}")
    order = sorted(range(len(items)), key=lambda i: (-len(items[i][0]), i))
    bins: list[list[int]] = []
    # (room left, bin number), kept sorted: the first entry with room >= n is the best fit.
    rooms: list[tuple[int, int]] = []
    for index in order:
        size = len(items[index][0])
        at = bisect.bisect_left(rooms, (size, -1))
        if at == len(rooms):
            bins.append([index])
            room, number = max_length - size, len(bins) - 1
        else:
            room, number = rooms.pop(at)
            bins[number].append(index)
            room -= size
        bisect.insort(rooms, (room, number))
    packed = []
    for members in bins:
        input_ids, labels, position_ids, seq_lens = [], [], [], []
        for index in members:
            ids, sample_labels = items[index]
            input_ids += ids
            labels += [IGNORE_INDEX] + sample_labels[1:]
            position_ids += range(len(ids))
            seq_lens.append(len(ids))
        packed.append(PackedSequence(input_ids, labels, position_ids, seq_lens))
    return packed


def block_causal_mask(seq_lens: Sequence[int], dtype=None, *, length: int | None = None):
    """The 4D additive mask (1, 1, L, L) of one packed row: 0 where a query may attend (same sample,
    not later), the dtype's minimum elsewhere. With `length` > sum(seq_lens) the rest is one more
    block (padding attends to itself, so no row is all masked and softmax stays finite)."""
    import torch

    dtype = dtype or torch.float32
    lens = list(seq_lens)
    total = sum(lens)
    if length is not None:
        if length < total:
            raise ValueError(f"length {length} is shorter than the samples ({total})")
        if length > total:
            lens.append(length - total)
    segment = torch.repeat_interleave(torch.arange(len(lens)), torch.tensor(lens, dtype=torch.long))
    positions = torch.arange(segment.numel())
    allowed = (segment[:, None] == segment[None, :]) & (positions[None, :] <= positions[:, None])
    mask = torch.zeros(allowed.shape, dtype=dtype)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask[None, None]


def _pad_to(length: int, multiple: int | None) -> int:
    return length if not multiple else -(-length // multiple) * multiple


def collate_padded(samples: Sequence[Any], pad_token_id: int, *, pad_to_multiple_of: int | None = None
                   ) -> dict[str, Any]:
    """A batch padded (right) to its longest sample: input_ids, labels (IGNORE_INDEX on padding),
    attention_mask (1 on tokens, 0 on padding)."""
    import torch

    rows = [(_field(s, "input_ids"), _field(s, "labels")) for s in samples]
    length = _pad_to(max(len(ids) for ids, _ in rows), pad_to_multiple_of)
    input_ids = torch.full((len(rows), length), pad_token_id, dtype=torch.long)
    labels = torch.full((len(rows), length), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
    for row, (ids, sample_labels) in enumerate(rows):
        input_ids[row, :len(ids)] = torch.tensor(ids)
        labels[row, :len(ids)] = torch.tensor(sample_labels)
        attention_mask[row, :len(ids)] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}


def collate_packed(sequences: Sequence[PackedSequence], pad_token_id: int, *, mask: str = "block", dtype=None,
                   pad_to_multiple_of: int | None = None) -> dict[str, Any]:
    """A batch of packed rows padded to the longest: input_ids, labels, position_ids (padding counts
    0.. as one more sample) and, with mask="block", the 4D additive `attention_mask` in `dtype` (the
    model's compute dtype); with mask="position_ids", no mask and `use_cache=False` (see the module
    docstring)."""
    import torch

    if mask not in MASK_MODES:
        raise ValueError(f"mask must be one of {MASK_MODES}, not {mask!r}")
    length = _pad_to(max(len(s) for s in sequences), pad_to_multiple_of)
    input_ids = torch.full((len(sequences), length), pad_token_id, dtype=torch.long)
    labels = torch.full((len(sequences), length), IGNORE_INDEX, dtype=torch.long)
    position_ids = torch.zeros((len(sequences), length), dtype=torch.long)
    for row, seq in enumerate(sequences):
        n = len(seq)
        input_ids[row, :n] = torch.tensor(seq.input_ids)
        labels[row, :n] = torch.tensor(seq.labels)
        position_ids[row, :n] = torch.tensor(seq.position_ids)
        position_ids[row, n:] = torch.arange(length - n)
    batch = {"input_ids": input_ids, "labels": labels, "position_ids": position_ids}
    if mask == "block":
        batch["attention_mask"] = torch.cat(
            [block_causal_mask(seq.seq_lens, dtype, length=length) for seq in sequences])
    else:
        batch["use_cache"] = False
    return batch


# ------------------------------------------------------------------------------ models


def _bloom_modules(model) -> list:
    from transformers.models.bloom.modeling_bloom import BloomModel

    return [module for module in model.modules() if isinstance(module, BloomModel)]


def _packed_alibi(original):
    """BLOOM's ALiBi builder, extended to a 4D block mask: each key's position is counted from the
    start of its own sample (the number of keys its own row may see, minus one)."""

    def build_alibi_tensor(attention_mask, num_heads, dtype):
        if attention_mask.ndim != 4:
            return original(attention_mask, num_heads, dtype)
        import torch

        batch, _, q_length, kv_length = attention_mask.shape
        if q_length != kv_length:
            raise PackingUnsupported("packed BLOOM inputs are for training: no KV cache")
        visible = attention_mask[:, 0] == 0                          # (batch, L, L)
        positions = visible.sum(dim=-1).to(torch.float32) - 1         # (batch, L)
        # The slopes, from the original builder: the alibi of positions (0, 1) is (0, slope).
        slopes = original(torch.ones(1, 2, device=attention_mask.device), num_heads, torch.float32)[:, 0, 1]
        alibi = slopes[None, :, None] * positions[:, None, :]         # (batch, heads, L)
        return alibi.reshape(batch * num_heads, 1, kv_length).to(dtype)

    build_alibi_tensor.belle_packed = True
    return build_alibi_tensor


def enable_packing(model, mask: str = "block") -> None:
    """Check that `model` takes packed batches of this `mask` mode correctly, patching BLOOM's ALiBi
    for block masks; raises PackingUnsupported otherwise. Call once before training."""
    if mask not in MASK_MODES:
        raise ValueError(f"mask must be one of {MASK_MODES}, not {mask!r}")
    config = model.config
    model_type = getattr(config, "model_type", "")
    attn = getattr(config, "_attn_implementation", None) or "eager"
    if model_type == "bloom":
        if mask != "block":
            raise PackingUnsupported("BLOOM has no position ids (ALiBi): pack it with mask='block'")
        for module in _bloom_modules(model):
            if not getattr(module.build_alibi_tensor, "belle_packed", False):
                module.build_alibi_tensor = _packed_alibi(module.build_alibi_tensor)
        return
    if model_type not in POSITION_ID_MODELS:
        raise PackingUnsupported(f"packing is not verified for model type {model_type!r}; train without packing")
    if mask == "block" and attn not in ("eager", "sdpa"):
        raise PackingUnsupported(f"a 4D block mask needs eager or sdpa attention, not {attn!r}; use mask='position_ids'")
