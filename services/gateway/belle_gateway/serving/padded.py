"""The fallback batch for models whose attention cannot be packed (`packed.packed_supported` is False,
e.g. BLOOM with its ALiBi bias): a left-padded KV cache shared by every running sequence.

Each prompt is prefilled on its own, exactly as a single `generate` call would, and then joins the
batch: its cache is left-padded to the batch's width and written into new buffers (`SlotLayer`). Padded
positions are masked, so they add exactly zero to attention, and each row keeps its own position ids.
A decoding step writes one column in place. Models whose cache is not made of plain dynamic layers run
one sequence at a time.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F


_SLOT_LAYER: Any = None


def _slot_layer_class():
    """`SlotLayer`, defined on first use (it subclasses a transformers class; imports stay late)."""
    global _SLOT_LAYER
    if _SLOT_LAYER is None:
        from transformers.cache_utils import DynamicLayer

        class SlotLayer(DynamicLayer):
            """One layer's keys and values in preallocated buffers: a decoding step writes its column in
            place. transformers' DynamicLayer concatenates the whole cache with each new token, which
            was over half of a step's time at batch 16 on CPU (copying every row's keys and values)."""

            def __init__(self, parts: list[tuple[torch.Tensor, torch.Tensor, int, int]], rows: int, length: int,
                         capacity: int):
                """`parts`: (keys, values, first row, first column) blocks written straight into new
                zeroed buffers of `rows` x `capacity` columns (padding must be zeros, not garbage:
                a masked position's weight is exactly 0, and 0 times NaN would not be)."""
                super().__init__()
                like_keys, like_values = parts[0][0], parts[0][1]
                heads = like_keys.shape[1]
                self.dtype, self.device, self.is_initialized = like_keys.dtype, like_keys.device, True
                capacity = max(capacity, length)
                self._keys = like_keys.new_zeros((rows, heads, capacity, like_keys.shape[-1]))
                self._values = like_values.new_zeros((rows, heads, capacity, like_values.shape[-1]))
                for keys, values, row, column in parts:
                    self._keys[row:row + keys.shape[0], :, column:column + keys.shape[2]] = keys
                    self._values[row:row + values.shape[0], :, column:column + values.shape[2]] = values
                self.length = length
                self._views()

            def _views(self) -> None:
                self.keys = self._keys[:, :, : self.length]
                self.values = self._values[:, :, : self.length]

            def update(self, key_states, value_states, *args, **kwargs):
                end = self.length + key_states.shape[-2]
                if end > self._keys.shape[2]:  # out of room: double (rare; capacity covers most replies)
                    grown = SlotLayer([(self.keys, self.values, 0, 0)], self._keys.shape[0], self.length,
                                      max(end, 2 * self._keys.shape[2]))
                    self._keys, self._values = grown._keys, grown._values
                self._keys[:, :, self.length:end] = key_states
                self._values[:, :, self.length:end] = value_states
                self.length = end
                self._views()
                return self.keys, self.values

            def get_seq_length(self) -> int:
                return self.length

        _SLOT_LAYER = SlotLayer
    return _SLOT_LAYER


HEADROOM_CAP = 256  # most columns reserved ahead for replies still to come


class PaddedBatch:
    """Running sequences over a left-padded KV cache (see the module docstring); `PackedBatch`'s interface."""

    def __init__(self, loaded: Any, max_rows: int):
        self.loaded = loaded
        self.max_rows = max_rows
        self.active: list[Any] = []
        self._cache: Any = None  # transformers DynamicCache with one row per active sequence
        self._mask: torch.Tensor | None = None  # [rows, cached positions + 0]: 1 real, 0 padding
        self._positions: torch.Tensor | None = None  # [rows]: the position of each row's next input token
        self._last: torch.Tensor | None = None  # [rows]: each row's last token, the next step's input
        self._batchable: bool | None = None  # False for caches other than plain dynamic layers
        self._pick: Any = None
        self.steps = 0
        self.peak_rows = 0

    @property
    def room(self) -> int:
        if self._batchable is False:
            return 0 if self.active else 1
        return self.max_rows - len(self.active)

    def step(self, joining: list[Any], pick: Any) -> None:
        """Prefill each joining prompt alone, then one decoding step for every running sequence."""
        self._pick = pick
        for seq in joining:
            if not seq.cancelled:
                self._prefill(seq)
        if self.active:
            self._step()

    def fail_all(self, message: str) -> list[Any]:
        failed = self.active
        self._reset()
        for seq in failed:
            seq.fail(message)
        return failed

    def _prefill(self, seq: Any) -> None:
        from transformers import DynamicCache

        model = self.loaded.model
        ids = torch.tensor([seq.prompt_ids], dtype=torch.long, device=model.device)
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids), past_key_values=DynamicCache(config=model.config),
                    use_cache=True)
        token = self._pick(out.logits[0, -1], seq)
        if seq.push(token, self.loaded.eos_ids):
            return
        self._join(seq, out.past_key_values, token)

    def _join(self, seq: Any, cache: Any, token: int) -> None:
        from transformers.cache_utils import DynamicLayer

        if self._batchable is None:
            self._batchable = all(type(layer) is DynamicLayer for layer in cache.layers)
        device = self.loaded.model.device
        length = len(seq.prompt_ids)
        row_mask = torch.ones((1, length), dtype=torch.long, device=device)
        self.active.append(seq)
        if self._cache is None:
            self._cache, self._mask = cache, row_mask
            self._positions = torch.tensor([length], device=device)
            self._last = torch.tensor([token], device=device)
            self._rebuild(lambda layer: [(layer.keys, layer.values, 0, 0)], rows=1, width=length)
        else:
            # The batch and the new row left-padded to one width, written into new buffers at once.
            rows, width = len(self.active), max(self._mask.shape[1], length)
            grow, fit = width - self._mask.shape[1], width - length
            new_layers = iter(cache.layers)

            def stacked(layer):
                new = next(new_layers)
                return [(layer.keys, layer.values, 0, grow), (new.keys, new.values, rows - 1, fit)]

            self._rebuild(stacked, rows=rows, width=width)
            self._mask = torch.cat([F.pad(self._mask, (grow, 0)), F.pad(row_mask, (fit, 0))], dim=0)
            self._positions = torch.cat([self._positions, torch.tensor([length], device=device)])
            self._last = torch.cat([self._last, torch.tensor([token], device=device)])
        self.peak_rows = max(self.peak_rows, len(self.active))

    def _rebuild(self, blocks: Callable[[Any], list], *, rows: int, width: int) -> None:
        """Replace every cache layer by a SlotLayer of `rows` x `width` made of `blocks(old layer)`, with
        room for the tokens the active sequences may still generate (capped; it doubles when that runs
        out). Caches of other layer types (a single row, never batched) just take the one block."""
        if not self._batchable:
            for layer in self._cache.layers:
                (layer.keys, layer.values, _, _), = blocks(layer)
            return
        slot_layer = _slot_layer_class()
        ahead = max(seq.options.max_tokens - len(seq.reply.ids) for seq in self.active)
        headroom = max(16, min(ahead, HEADROOM_CAP))
        self._cache.layers = [slot_layer(blocks(layer), rows, width, width + headroom) for layer in self._cache.layers]

    def _step(self) -> None:
        loaded = self.loaded
        rows = len(self.active)
        self._mask = torch.cat([self._mask, torch.ones((rows, 1), dtype=self._mask.dtype, device=self._mask.device)], 1)
        inputs = {"input_ids": self._last[:, None], "attention_mask": self._mask, "past_key_values": self._cache,
                  "use_cache": True}
        if loaded.takes_position_ids:
            inputs["position_ids"] = self._positions[:, None]
        logits = loaded.model(**inputs).logits[:, -1]
        greedy = logits.argmax(dim=-1).tolist()
        self._positions += 1
        self.steps += 1
        keep = []
        for row, seq in enumerate(self.active):
            if seq.cancelled:
                continue
            token = greedy[row] if seq.options.greedy else self._pick(logits[row], seq)
            if not seq.push(token, loaded.eos_ids):
                self._last[row] = token
                keep.append(row)
        if len(keep) < rows:
            self._select(keep)

    def _select(self, keep: list[int]) -> None:
        """Keep only these rows, and drop leading columns that are padding in every remaining row."""
        if not keep:
            self._reset()
            return
        index = torch.tensor(keep, device=self._mask.device)
        self.active = [self.active[i] for i in keep]
        self._mask, self._positions, self._last = self._mask[index], self._positions[index], self._last[index]
        real = self._mask.any(dim=0).nonzero()
        first = int(real[0]) if len(real) else 0
        self._mask = self._mask[:, first:]
        self._rebuild(lambda layer: [(layer.keys[index, :, first:], layer.values[index, :, first:], 0, 0)],
                      rows=len(keep), width=self._mask.shape[1])

    def _reset(self) -> None:
        self.active, self._cache, self._mask, self._positions, self._last = [], None, None, None, None


