"""The in-process engine: a model folder loaded with transformers, and requests decoded together.

`BatchEngine` keeps one running batch per loaded model. Its thread loops: admit waiting requests
(each prompt is prefilled on its own, exactly as a single `generate` call would), then run one
decoding step for every request in the batch at once, then drop the requests that finished or whose
client went away. Requests of different lengths share the batch through left padding of the KV cache:
padded positions are masked, so they add exactly zero to attention, and each row keeps its own
position ids. Greedy outputs are therefore those of one-at-a-time generation, up to floating-point
ties between two logits (a batched matrix product may round differently from a single-row one).

`SequentialEngine` serves one request at a time with `model.generate`: the reference the batching
engine is checked against, and the baseline of `bench/serve.py`.

Imported only when the first model is loaded: this module imports torch.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence as Seq

import torch
import torch.nn.functional as F

from belle_gateway.serving.output import ReplyText
from belle_shared.chat_models import context_length, eos_token_ids, generation_settings, render_chat

log = logging.getLogger(__name__)

Emit = Callable[[dict[str, Any]], None]


class EngineInputError(ValueError):
    """A request this model cannot serve (no chat template, a message the template refuses)."""


@dataclass
class SamplingOptions:
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stops: Seq[str] = ()
    ignore_eos: bool = False

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


class LoadedModel:
    """A tokenizer and a model from a local Hugging Face folder (full, merged LoRA or GPTQ)."""

    def __init__(self, folder: str | Path):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.folder = Path(folder)
        self.tokenizer = AutoTokenizer.from_pretrained(self.folder)
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        # CPUs are slow or unsupported in float16: there everything runs in float32 (GPTQ layers keep
        # their packed weights); on a GPU the weights keep the dtype they were saved in.
        dtype: Any = "auto" if self.device == "cuda" else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(self.folder, dtype=dtype, device_map=self.device)
        self.model.eval()
        self.eos_ids = eos_token_ids(self.model, self.tokenizer)
        self.pad_id = next(v for v in (self.tokenizer.pad_token_id, *self.eos_ids, 0) if v is not None)
        self.context_length = context_length(self.model, self.tokenizer)
        self.takes_position_ids = "position_ids" in inspect.signature(self.model.forward).parameters

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def render(self, messages: list[dict[str, str]]) -> list[int]:
        """The prompt's token ids: the conversation through the model's own chat template."""
        if not self.has_chat_template:
            raise EngineInputError("this model has no chat template (tokenizer_config.json 'chat_template' or "
                                   "chat_template.jinja), so its conversations cannot be rendered")
        try:
            return render_chat(self.tokenizer, messages)
        except Exception as exc:  # a template's own raise_exception(): e.g. roles out of order
            raise EngineInputError(f"the model's chat template refused the messages: {exc}") from None

    def decode(self, ids: Seq[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)


class Sequence:
    """One choice of one request: its prompt, options, the reply so far and where its events go.

    Events (plain dicts, handed to `emit` from the engine's thread):
    ``{"type": "text", "text": ...}``, ``{"type": "done", "finish_reason", "completion_tokens"}``,
    ``{"type": "error", "message": ...}``. `cancel()` may be called from any thread."""

    def __init__(self, prompt_ids: list[int], options: SamplingOptions, emit: Emit, decode: Callable):
        self.prompt_ids = prompt_ids
        self.options = options
        self.emit = emit
        self.reply = ReplyText(decode, options.stops)
        self.cancelled = False
        self.finished = False
        self.generator: torch.Generator | None = None
        if not options.greedy:
            self.generator = torch.Generator()
            if options.seed is not None:
                self.generator.manual_seed(options.seed)
            else:
                self.generator.seed()

    def cancel(self) -> None:
        self.cancelled = True

    @property
    def done(self) -> bool:
        return self.finished or self.cancelled

    def push(self, token: int, eos_ids: Seq[int]) -> bool:
        """Take one generated token; True when the sequence has finished."""
        if token in eos_ids and not self.options.ignore_eos:
            self.reply.ids.append(token)
            return self._finish("stop")
        text = self.reply.add(token)
        if text:
            self.emit({"type": "text", "text": text})
        if self.reply.stopped:
            return self._finish("stop")
        if len(self.reply.ids) >= self.options.max_tokens:
            return self._finish("length")
        return False

    def fail(self, message: str) -> None:
        if not self.finished:
            self.finished = True
            self.emit({"type": "error", "message": message})

    def _finish(self, reason: str) -> bool:
        tail = self.reply.finish()
        if tail:
            self.emit({"type": "text", "text": tail})
        self.finished = True
        self.emit({"type": "done", "finish_reason": reason, "completion_tokens": len(self.reply.ids)})
        return True


def pick_token(logits: torch.Tensor, seq: Sequence) -> int:
    """The next token of one row: argmax when greedy, else temperature + top-p sampling."""
    options = seq.options
    if options.greedy:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.float() / options.temperature, dim=-1)
    if options.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        # Keep a token while the mass before it is below top_p (the first token is always kept).
        keep = (torch.cumsum(sorted_probs, dim=-1) - sorted_probs) < options.top_p
        sorted_probs = torch.where(keep, sorted_probs, torch.zeros_like(sorted_probs))
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=seq.generator))


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


_SLOT_LAYER: Any = None
HEADROOM_CAP = 256  # most columns reserved ahead for replies still to come


class _EngineThread:
    """What both engines share: a waiting queue, a worker thread, stop and busy."""

    def __init__(self, loaded: LoadedModel, name: str):
        self.loaded = loaded
        self._waiting: deque[Sequence] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, seq: Sequence) -> None:
        with self._cond:
            if self._stopping:
                raise RuntimeError("engine stopped")
            self._waiting.append(seq)
            self._cond.notify()

    @property
    def busy(self) -> bool:
        return bool(self._waiting) or self.active_count > 0

    @property
    def active_count(self) -> int:
        raise NotImplementedError

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout=30)

    def _take(self, limit: int) -> list[Sequence] | None:
        """Wait for work; the sequences to admit (up to `limit`), or None when stopping."""
        with self._cond:
            while not self._stopping and not self._waiting and self.active_count == 0:
                self._cond.wait()
            if self._stopping:
                for seq in self._waiting:
                    seq.fail("the model was unloaded")
                self._waiting.clear()
                return None
            taken = []
            while self._waiting and len(taken) < limit:
                taken.append(self._waiting.popleft())
            return taken

    def _run(self) -> None:
        raise NotImplementedError


class BatchEngine(_EngineThread):
    """Continuous batching over a left-padded KV cache (see the module docstring)."""

    def __init__(self, loaded: LoadedModel, *, max_batch_size: int = 16):
        self.max_batch_size = max_batch_size
        self._active: list[Sequence] = []
        self._cache: Any = None  # transformers DynamicCache with one row per active sequence
        self._mask: torch.Tensor | None = None  # [rows, cached positions + 0]: 1 real, 0 padding
        self._positions: torch.Tensor | None = None  # [rows]: the position of each row's next input token
        self._last: torch.Tensor | None = None  # [rows]: each row's last token, the next step's input
        self._batchable: bool | None = None  # False for caches other than plain dynamic layers
        self.steps = 0
        self.peak_rows = 0
        super().__init__(loaded, name=f"engine-{loaded.folder.name}")

    @property
    def active_count(self) -> int:
        return len(self._active)

    def _run(self) -> None:
        while True:
            room = self.max_batch_size - len(self._active) if self._batchable is not False else (
                0 if self._active else 1)
            admitted = self._take(max(room, 0))
            if admitted is None:
                for seq in self._active:
                    seq.fail("the model was unloaded")
                return
            try:
                with torch.inference_mode():
                    for seq in admitted:
                        if not seq.cancelled:
                            self._prefill(seq)
                    if self._active:
                        self._step()
            except Exception as exc:  # a broken model fails its requests, not the gateway
                log.exception("engine step failed")
                for seq in [*admitted, *self._active]:
                    seq.fail(f"generation failed: {type(exc).__name__}: {exc}")
                self._reset()

    def _prefill(self, seq: Sequence) -> None:
        from transformers import DynamicCache

        model = self.loaded.model
        ids = torch.tensor([seq.prompt_ids], dtype=torch.long, device=model.device)
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids), past_key_values=DynamicCache(config=model.config),
                    use_cache=True)
        token = pick_token(out.logits[0, -1], seq)
        if seq.push(token, self.loaded.eos_ids):
            return
        self._join(seq, out.past_key_values, token)

    def _join(self, seq: Sequence, cache: Any, token: int) -> None:
        from transformers.cache_utils import DynamicLayer

        if self._batchable is None:
            self._batchable = all(type(layer) is DynamicLayer for layer in cache.layers)
        device = self.loaded.model.device
        length = len(seq.prompt_ids)
        row_mask = torch.ones((1, length), dtype=torch.long, device=device)
        self._active.append(seq)
        if self._cache is None:
            self._cache, self._mask = cache, row_mask
            self._positions = torch.tensor([length], device=device)
            self._last = torch.tensor([token], device=device)
            self._rebuild(lambda layer: [(layer.keys, layer.values, 0, 0)], rows=1, width=length)
        else:
            # The batch and the new row left-padded to one width, written into new buffers at once.
            rows, width = len(self._active), max(self._mask.shape[1], length)
            grow, fit = width - self._mask.shape[1], width - length
            new_layers = iter(cache.layers)

            def stacked(layer):
                new = next(new_layers)
                return [(layer.keys, layer.values, 0, grow), (new.keys, new.values, rows - 1, fit)]

            self._rebuild(stacked, rows=rows, width=width)
            self._mask = torch.cat([F.pad(self._mask, (grow, 0)), F.pad(row_mask, (fit, 0))], dim=0)
            self._positions = torch.cat([self._positions, torch.tensor([length], device=device)])
            self._last = torch.cat([self._last, torch.tensor([token], device=device)])
        self.peak_rows = max(self.peak_rows, len(self._active))

    def _rebuild(self, blocks: Callable[[Any], list], *, rows: int, width: int) -> None:
        """Replace every cache layer by a SlotLayer of `rows` x `width` made of `blocks(old layer)`, with
        room for the tokens the active sequences may still generate (capped; it doubles when that runs
        out). Caches of other layer types (a single row, never batched) just take the one block."""
        if not self._batchable:
            for layer in self._cache.layers:
                (layer.keys, layer.values, _, _), = blocks(layer)
            return
        slot_layer = _slot_layer_class()
        ahead = max(seq.options.max_tokens - len(seq.reply.ids) for seq in self._active)
        headroom = max(16, min(ahead, HEADROOM_CAP))
        self._cache.layers = [slot_layer(blocks(layer), rows, width, width + headroom) for layer in self._cache.layers]

    def _step(self) -> None:
        loaded = self.loaded
        rows = len(self._active)
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
        for row, seq in enumerate(self._active):
            if seq.cancelled:
                continue
            token = greedy[row] if seq.options.greedy else pick_token(logits[row], seq)
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
        self._active = [self._active[i] for i in keep]
        self._mask, self._positions, self._last = self._mask[index], self._positions[index], self._last[index]
        real = self._mask.any(dim=0).nonzero()
        first = int(real[0]) if len(real) else 0
        self._mask = self._mask[:, first:]
        self._rebuild(lambda layer: [(layer.keys[index, :, first:], layer.values[index, :, first:], 0, 0)],
                      rows=len(keep), width=self._mask.shape[1])

    def _reset(self) -> None:
        self._active, self._cache, self._mask, self._positions, self._last = [], None, None, None, None


class SequentialEngine(_EngineThread):
    """One request at a time through `model.generate` (the reference and the benchmark's baseline)."""

    def __init__(self, loaded: LoadedModel, **_ignored: Any):
        self._current: Sequence | None = None
        super().__init__(loaded, name=f"sequential-{loaded.folder.name}")

    @property
    def active_count(self) -> int:
        return 1 if self._current is not None else 0

    def _run(self) -> None:
        while True:
            taken = self._take(1)
            if taken is None:
                return
            for seq in taken:
                if seq.cancelled:
                    continue
                self._current = seq
                try:
                    self._generate(seq)
                except Exception as exc:
                    log.exception("generate failed")
                    seq.fail(f"generation failed: {type(exc).__name__}: {exc}")
                finally:
                    self._current = None

    def _generate(self, seq: Sequence) -> None:
        from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList
        from transformers.generation.streamers import BaseStreamer

        loaded, options = self.loaded, seq.options
        eos_ids = loaded.eos_ids

        class Streamer(BaseStreamer):
            prompt_seen = False

            def put(self, value):
                if not self.prompt_seen:  # generate() hands the prompt over first
                    self.prompt_seen = True
                    return
                if not seq.finished:
                    seq.push(int(value.reshape(-1)[0]), eos_ids)

            def end(self):
                pass

        class Stop(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return torch.full((input_ids.shape[0],), seq.done, dtype=torch.bool, device=input_ids.device)

        config = GenerationConfig(**generation_settings(
            max_new_tokens=options.max_tokens, temperature=options.temperature, top_p=options.top_p,
            eos_ids=None if options.ignore_eos else eos_ids, pad_id=loaded.pad_id))
        if not options.greedy and options.seed is not None:
            torch.manual_seed(options.seed)
        ids = torch.tensor([seq.prompt_ids], dtype=torch.long, device=loaded.model.device)
        with torch.inference_mode():
            loaded.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config,
                                  streamer=Streamer(), stopping_criteria=StoppingCriteriaList([Stop()]))
        if not seq.done:  # generate() ended without a last token we saw as final (should not happen)
            seq.fail("generation ended early")


ENGINES: dict[str, type[_EngineThread]] = {"batched": BatchEngine, "sequential": SequentialEngine}


@dataclass
class EngineHandle:
    """A loaded model and the engine that serves it (what the pool keeps)."""

    engine: _EngineThread
    loaded: LoadedModel
    users: int = field(default=0)


def load_engine(folder: str | Path, kind: str, max_batch_size: int) -> EngineHandle:
    loaded = LoadedModel(folder)
    return EngineHandle(engine=ENGINES[kind](loaded, max_batch_size=max_batch_size), loaded=loaded)
