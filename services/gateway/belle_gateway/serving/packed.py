"""Packed batches: one forward per step for every running sequence and every prompt that joins.

The new tokens of all sequences go into the model as one packed row (a running sequence adds one
token, a joining prompt all of its tokens), each with its own position id. The KV cache is one
preallocated slot per sequence (`SlotCache`: `rows x capacity` buffers per layer); a token's keys
and values are written straight into its sequence's slot. Attention (`packed_attention`, registered
with transformers as the model's attention implementation) then runs per sequence over that
sequence's own slot only: no padding is read and no mask is needed, so each sequence's attention is
the very computation a one-at-a-time `generate` does (causal over a fresh prompt, then one query over
the whole cache). What is shared is the rest of the model: the matrix products run over all packed
tokens at once, and can round differently from a one-row product (the only source of a different
greedy token: a tie between two logits).

A sequence that leaves frees its slot by moving the last slot's rows into it (one row's cache is
copied, nothing else is rebuilt); a joining prompt takes the next free slot. Slots grow (one copy)
only when a sequence outgrows the columns reserved so far.

Only for models whose attention goes through transformers' attention interface, without sliding
windows (LLaMA, Qwen, Mistral without a window, ...); other models use `padded.PaddedBatch`.
"""

from __future__ import annotations

import inspect
import threading
from typing import Any

import torch
import torch.nn.functional as F

ATTENTION = "belle_packed"
_current = threading.local()  # the SlotCache of the forward running on this thread
_registered = False


def packed_supported(model: Any) -> bool:
    """Whether `PackedBatch` can drive this model (see the module docstring)."""
    config = model.config
    parameters = inspect.signature(model.forward).parameters
    layer_types = getattr(config, "layer_types", None) or ()
    sliding = bool(getattr(config, "sliding_window", None)) and getattr(config, "use_sliding_window", True)
    return (bool(getattr(model, "_supports_attention_backend", False)) and "position_ids" in parameters
            and not sliding and all(kind == "full_attention" for kind in layer_types)
            and not getattr(config, "is_encoder_decoder", False) and getattr(config, "is_causal", True))


def _use_packed_attention(model: Any) -> None:
    global _registered
    if not _registered:
        from transformers import AttentionInterface

        AttentionInterface.register(ATTENTION, packed_attention)
        _registered = True
    # Set on this model's config only (the other loaded models keep theirs). With an attention
    # implementation that has no mask function, transformers builds no mask at all.
    model.config._attn_implementation = ATTENTION


def packed_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None,
                     **kwargs):
    """Attention of each packed segment over its own slot (keys and values already written there).

    `query` is [1, heads, packed tokens, head dim]; returns [1, packed tokens, heads, head dim] as
    transformers' sdpa attention does, with the same `scaled_dot_product_attention` call per segment
    that a single unpadded sequence gets (causal for a prompt, plain for one new token)."""
    cache: SlotCache = _current.cache
    keys, values = cache.keys[module.layer_idx], cache.values[module.layer_idx]
    groups = getattr(module, "num_key_value_groups", 1)
    outputs = []
    segments = cache.segments
    if (cache.decode_attention is not None and cache.decoding and query.dtype == keys.dtype == torch.float32
            and query.shape[-1] == keys.shape[-1] == values.shape[-1]):
        # The running rows (packed tokens 0..decoding-1, slot i = token i) in one native call. (A model
        # whose values have another head dim than its keys keeps one sdpa call per row.)
        rows = query[0, :, : cache.decoding].transpose(0, 1).contiguous()
        scale = scaling if scaling is not None else query.shape[-1] ** -0.5
        outputs.append(cache.decode_attention(rows, keys, values, cache.decode_lengths, scale)[None])
        segments = segments[cache.decoding:]
    for row, start, end, length in segments:
        k, v = keys[row:row + 1, :, :length], values[row:row + 1, :, :length]
        outputs.append(_sdpa(query[:, :, start:end], k, v, scaling, groups).transpose(1, 2))
    return torch.cat(outputs, dim=1) if len(outputs) > 1 else outputs[0].contiguous(), None


def _sdpa(q, k, v, scaling, groups: int):
    """transformers' own sdpa call for an unpadded sequence: no mask, causal when several queries (a
    fresh prompt), grouped key heads passed as `enable_gqa` up to head dim 256, else repeated."""
    if groups > 1 and k.shape[-1] > 256:
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
        groups = 1
    extra = {"enable_gqa": True} if groups > 1 else {}
    return F.scaled_dot_product_attention(q, k, v, dropout_p=0.0, scale=scaling, is_causal=q.shape[2] > 1, **extra)


class SlotCache:
    """Per layer, keys and values of `rows` sequences in [rows, kv heads, capacity, head dim] buffers.

    Duck-types the one method transformers calls on a cache when position ids are given (`update`);
    the buffers are created on the first update, when the head shapes and dtype are known."""

    is_compileable = False

    def __init__(self, num_layers: int, rows: int, capacity: int):
        self.rows, self.capacity = rows, capacity
        self.keys: list[Any] = [None] * num_layers
        self.values: list[Any] = [None] * num_layers
        # Set per forward: where each packed token goes, and each segment's (row, start, end, cached length).
        self.write_rows: torch.Tensor | None = None
        self.write_columns: torch.Tensor | None = None
        # Per sequence in the forward: (slot, first packed token, end, cached columns to attend to).
        self.segments: list[tuple[int, int, int, int]] = []
        # With a native kernel (`native_attention`): the first `decoding` segments (one token each, in
        # slots 0..decoding-1) go to it in one call, with their lengths as a tensor.
        self.decode_attention: Any = None
        self.decoding = 0
        self.decode_lengths: torch.Tensor | None = None

    def update(self, key_states, value_states, layer_idx: int, *args, **kwargs):
        if self.keys[layer_idx] is None:
            shape = (self.rows, key_states.shape[1], self.capacity, key_states.shape[-1])
            # Zeros, not garbage: unused columns are never read, but a NaN there could not hurt either way.
            self.keys[layer_idx] = key_states.new_zeros(shape)
            self.values[layer_idx] = value_states.new_zeros((*shape[:3], value_states.shape[-1]))
        # [1, heads, tokens, dim] -> [tokens, heads, dim]: token i goes to (write_rows[i], :, write_columns[i]).
        self.keys[layer_idx][self.write_rows, :, self.write_columns] = key_states[0].transpose(0, 1)
        self.values[layer_idx][self.write_rows, :, self.write_columns] = value_states[0].transpose(0, 1)
        return key_states, value_states

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return 0  # never used for positions: every forward passes its position ids

    def reserve(self, columns: int) -> None:
        """Make room for `columns` cached tokens per slot (double, copying once, when out of room)."""
        if columns <= self.capacity:
            return
        capacity = max(columns, 2 * self.capacity)
        for buffers in (self.keys, self.values):
            for i, old in enumerate(buffers):
                if old is not None:
                    grown = old.new_zeros((*old.shape[:2], capacity, old.shape[-1]))
                    grown[:, :, : self.capacity] = old
                    buffers[i] = grown
        self.capacity = capacity

    def move(self, source: int, target: int, length: int) -> None:
        """Copy slot `source`'s first `length` columns into slot `target` (a leaving sequence's slot)."""
        for buffers in (self.keys, self.values):
            for buffer in buffers:
                if buffer is not None:
                    buffer[target, :, :length] = buffer[source, :, :length]


class PackedBatch:
    """The running sequences of one model, decoded with packed forwards over slots (module docstring)."""

    def __init__(self, loaded: Any, max_rows: int, *, capacity: int = 256, decode_attention: Any = None):
        """`decode_attention`: a `native_attention.DecodeAttention` for the running rows' attention (CPU,
        float32), else one `scaled_dot_product_attention` per row."""
        self.loaded = loaded
        self.max_rows = max_rows
        _use_packed_attention(loaded.model)
        self.cache = SlotCache(loaded.model.config.num_hidden_layers, max_rows, capacity)
        self.cache.decode_attention = decode_attention
        self.takes_logits_to_keep = "logits_to_keep" in inspect.signature(loaded.model.forward).parameters
        self.active: list[Any] = []  # the sequence in each slot, slot i = active[i]
        self.lengths: list[int] = []  # tokens cached per slot
        self.last: list[int] = []  # each slot's last token: its input in the next step
        self.steps = 0
        self.peak_rows = 0

    @property
    def room(self) -> int:
        return self.max_rows - len(self.active)

    def step(self, joining: list[Any], pick: Any) -> None:
        """One forward: a token for every running sequence and the prompts of `joining` (which take
        free slots), then each sequence's next token through `pick(logits, seq)`."""
        self._drop([row for row, seq in enumerate(self.active) if seq.cancelled])
        joining = joining[: self.room]
        if not self.active and not joining:
            return
        device = self.loaded.model.device
        running = len(self.active)
        # Packed tokens: one per running slot (token i is slot i), then each joining prompt whole.
        ids = list(self.last)
        positions = list(self.lengths)
        rows = list(range(running))
        columns = list(self.lengths)
        prompts = []
        for offset, seq in enumerate(joining):
            row, length, start = running + offset, len(seq.prompt_ids), len(ids)
            ids.extend(seq.prompt_ids)
            positions.extend(range(length))
            rows.extend([row] * length)
            columns.extend(range(length))
            prompts.append((row, start, start + length, length))
        segments = [(row, row, row + 1, length + 1) for row, length in enumerate(self.lengths)] + prompts
        self.cache.reserve(max(length for *_, length in segments))

        cache = self.cache
        cache.write_rows = torch.tensor(rows, device=device)
        cache.write_columns = torch.tensor(columns, device=device)
        cache.segments = segments
        cache.decoding = running
        if cache.decode_attention is not None and running:
            cache.decode_lengths = torch.tensor([length + 1 for length in self.lengths], dtype=torch.int64)
        last_token = torch.tensor([end - 1 for _, _, end, _ in segments], device=device)
        inputs: dict[str, Any] = {"input_ids": torch.tensor([ids], device=device),
                                  "position_ids": torch.tensor([positions], device=device),
                                  "past_key_values": cache, "use_cache": True}
        if self.takes_logits_to_keep:
            inputs["logits_to_keep"] = last_token
        _current.cache = cache
        try:
            logits = self.loaded.model(**inputs).logits[0]
        finally:
            _current.cache = None
        if not self.takes_logits_to_keep:
            logits = logits[last_token]
        self.steps += 1

        self.active.extend(joining)
        self.lengths = [length + 1 for length in self.lengths] + [len(seq.prompt_ids) for seq in joining]
        self.last.extend([0] * len(joining))
        self.peak_rows = max(self.peak_rows, len(self.active))
        greedy = logits.argmax(dim=-1).tolist()  # one device sync for every greedy row
        eos_ids = self.loaded.eos_ids
        done = []
        for row, seq in enumerate(self.active):
            if seq.cancelled:
                done.append(row)
                continue
            token = greedy[row] if seq.options.greedy else pick(logits[row], seq)
            if seq.push(token, eos_ids):
                done.append(row)
            else:
                self.last[row] = token
        self._drop(done)

    def fail_all(self, message: str) -> list[Any]:
        failed, self.active, self.lengths, self.last = self.active, [], [], []
        for seq in failed:
            seq.fail(message)
        return failed

    def _drop(self, rows: list[int]) -> None:
        """Free these slots: the last slot moves into each hole, so slots 0..n-1 stay the running ones."""
        for row in sorted(rows, reverse=True):  # every slot after `row` is alive by then
            last = len(self.active) - 1
            if row != last:
                self.cache.move(last, row, self.lengths[last])
                self.active[row], self.lengths[row], self.last[row] = self.active[last], self.lengths[last], self.last[last]
            self.active.pop()
            self.lengths.pop()
            self.last.pop()
