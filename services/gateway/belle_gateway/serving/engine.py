"""The in-process engine: a model folder loaded with transformers, and requests decoded together.

Why one module over 400 lines: it does one thing (decode a loaded model's chat requests), and its two
engines share the sequence, sampling and thread code. Why our own engine and not transformers' continuous
batching: on two CPU cores it reached 0.44-0.58x of this engine's tokens/s with the same replies
(`bench/engines.py`, docs/benchmarks.md: its CPU paged attention attends across the whole batch).

`BatchEngine` keeps one running batch per loaded model. Its thread loops: take the waiting requests
that fit (up to the batch size, and `PREFILL_TOKENS` prompt tokens at once), run one forward for the
whole batch, hand every sequence its next token, and drop the sequences that finished or whose client
went away. Requests join and leave between steps. The batch is a `packed.PackedBatch` (running
sequences and joining prompts packed into one forward; per-sequence cache slots and attention, so no
padding) for models whose attention transformers lets us replace, else a `padded.PaddedBatch` (each
prompt prefilled alone, then a left-padded shared cache). Either way a sequence's attention sees exactly
its own tokens, so greedy outputs are those of one-at-a-time generation, up to floating-point ties
between two logits (a matrix product over several rows may round differently from a single-row one).
On a CPU, the batching engine's linear layers run on oneDNN (`cpu_linear`), and the attention of its
decoding rows in one compiled call per layer (`native_attention`): the same computations, faster.

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

from belle_gateway.serving.cpu_kernels import CpuKernels
from belle_gateway.serving.output import ReplyText
from belle_shared.chat_models import context_length, eos_token_ids, generation_settings, render_chat
from belle_shared.chat_template import reply_prefix

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


class ChatTokenizer:
    """A model folder's tokenizer: renders conversations with the model's own chat template and turns
    token ids back into text."""

    def __init__(self, folder: str | Path):
        from transformers import AutoTokenizer

        self.folder = Path(folder)
        self.tokenizer = AutoTokenizer.from_pretrained(self.folder)

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

    @property
    def reply_prefix(self) -> str:
        """What the chat template puts at the start of every reply (not sent: see serving/output.py)."""
        return reply_prefix(self.tokenizer)


class LoadedModel(ChatTokenizer):
    """A tokenizer and a model from a local Hugging Face folder (full, merged LoRA or GPTQ)."""

    def __init__(self, folder: str | Path):
        from transformers import AutoModelForCausalLM

        super().__init__(folder)
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        # CPUs are slow or unsupported in float16: there everything runs in float32 (GPTQ layers keep
        # their packed weights); on a GPU the weights keep the dtype they were saved in.
        dtype: Any = "auto" if self.device == "cuda" else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(self.folder, dtype=dtype, device_map=self.device)
        self.model.eval()
        self.eos_ids = eos_token_ids(self.model, self.tokenizer)
        self.pad_id = next(v for v in (self.tokenizer.pad_token_id, *self.eos_ids, 0) if v is not None)
        self.context_length = context_length(self.model, self.tokenizer)
        self.module_classes = module_classes(self.model)
        self.takes_position_ids = "position_ids" in inspect.signature(self.model.forward).parameters


def token_end(token: int, count: int, options: SamplingOptions, eos_ids: Seq[int]) -> str | None:
    """Whether a reply ends at this token, its `count`-th, by the token-level rules: "stop" (an EOS the
    request does not ignore), "length" (max_tokens reached), else None. Stop strings are text-level:
    `ReplyText`. The engine process applies these same rules, so that it and the gateway agree."""
    if token in eos_ids and not options.ignore_eos:
        return "stop"
    if count >= options.max_tokens:
        return "length"
    return None


def module_classes(model: Any) -> dict[str, int]:
    """How many leaf modules of each class the model has: which kernels serve it (a GPTQ model's
    quantized layers, not `Linear`)."""
    counts: dict[str, int] = {}
    for module in model.modules():
        if next(module.children(), None) is None:
            name = type(module).__name__
            counts[name] = counts.get(name, 0) + 1
    return counts


def sampling_generator(options: SamplingOptions) -> torch.Generator | None:
    """The random generator a sampled sequence draws from (seeded when the request gives a seed);
    None when greedy."""
    if options.greedy:
        return None
    generator = torch.Generator()
    if options.seed is not None:
        generator.manual_seed(options.seed)
    else:
        generator.seed()
    return generator


class Sequence:
    """One choice of one request: its prompt, options, the reply so far and where its events go.

    Events (plain dicts, handed to `emit` from the engine's thread):
    ``{"type": "text", "text": ...}``, ``{"type": "done", "finish_reason", "completion_tokens"}``,
    ``{"type": "error", "message": ...}``. `cancel()` may be called from any thread."""

    def __init__(self, prompt_ids: list[int], options: SamplingOptions, emit: Emit, decode: Callable, *,
                 reply_prefix: str = ""):
        self.prompt_ids = prompt_ids
        self.options = options
        self.emit = emit
        self.reply = ReplyText(decode, options.stops, prefix=reply_prefix)
        self.cancelled = False
        self.finished = False
        self.generator = sampling_generator(options)

    def cancel(self) -> None:
        self.cancelled = True

    @property
    def done(self) -> bool:
        return self.finished or self.cancelled

    def push(self, token: int, eos_ids: Seq[int]) -> bool:
        """Take one generated token; True when the sequence has finished."""
        end = token_end(token, len(self.reply.ids) + 1, self.options, eos_ids)
        if end == "stop":  # an EOS: never part of the text
            self.reply.ids.append(token)
            return self._finish("stop")
        text = self.reply.add(token)
        if text:
            self.emit({"type": "text", "text": text})
        if self.reply.stopped:
            return self._finish("stop")
        if end == "length":
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


PREFILL_TOKENS = 2048  # most prompt tokens joining in one step (bounds a step's time and memory)


def admit(waiting: deque, limit: int, tokens: int | None = None) -> list:
    """Take from the front of `waiting` the sequences that join the next step: up to `limit`, and prompts
    of at most `tokens` tokens together (though always one when `limit` allows)."""
    taken: list = []
    budget = tokens
    while waiting and len(taken) < limit:
        size = len(waiting[0].prompt_ids)
        if budget is not None and taken and size > budget:
            break
        taken.append(waiting.popleft())
        budget = None if budget is None else budget - size
    return taken


def make_batch(loaded: LoadedModel, max_rows: int, kernels: CpuKernels = CpuKernels()) -> Any:
    """The running batch of a batching engine for this model: a `PackedBatch` where the model allows
    it, else a `PaddedBatch`. On a CPU, with `kernels.onednn_linear` its linear layers first move to
    oneDNN (`cpu_linear`); with `kernels.native_attention` a float32 `PackedBatch` runs its decoding rows'
    attention in one native call per layer (`native_attention`). The model is the engine's from then on."""
    from belle_gateway.serving.packed import PackedBatch, packed_supported
    from belle_gateway.serving.padded import PaddedBatch

    if kernels.onednn_linear and loaded.device == "cpu":
        from belle_gateway.serving.cpu_linear import use_onednn_linears

        replaced = use_onednn_linears(loaded.model, max_rows)
        log.info("%s: %d linear layers on oneDNN", loaded.folder.name, replaced)
        loaded.module_classes = module_classes(loaded.model)
    if not packed_supported(loaded.model):
        return PaddedBatch(loaded, max_rows)
    kernel = None
    if kernels.native_attention and loaded.device == "cpu" and loaded.model.dtype == torch.float32:
        from belle_gateway.serving.native_attention import load_decode_attention

        kernel = load_decode_attention()
    return PackedBatch(loaded, max_rows, decode_attention=kernel)


def step_batch(batch: Any, joining: list) -> None:
    """One decoding step of `batch` with `joining` admitted. If the model raises, the sequences in the
    step fail with the error, not the engine: it goes on with the next requests."""
    try:
        with torch.inference_mode():
            batch.step(joining, pick_token)
    except Exception as exc:
        log.exception("engine step failed")
        message = f"generation failed: {type(exc).__name__}: {exc}"
        failed = batch.fail_all(message)
        for seq in joining:
            if seq not in failed:
                seq.fail(message)


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
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def active_count(self) -> int:
        raise NotImplementedError

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout=30)

    def _take(self, limit: int, tokens: int | None = None) -> list[Sequence] | None:
        """Wait for work; the sequences to admit (up to `limit`, and prompts of at most `tokens` tokens
        together, though always one when `limit` allows), or None when stopping."""
        with self._cond:
            while not self._stopping and not self._waiting and self.active_count == 0:
                self._cond.wait()
            if self._stopping:
                for seq in self._waiting:
                    seq.fail("the model was unloaded")
                self._waiting.clear()
                return None
            return admit(self._waiting, limit, tokens)

    def _run(self) -> None:
        raise NotImplementedError


class BatchEngine(_EngineThread):
    """Continuous batching (see the module docstring): a `PackedBatch` where the model allows it, else
    a `PaddedBatch`."""

    def __init__(self, loaded: LoadedModel, *, max_batch_size: int = 16, prefill_tokens: int = PREFILL_TOKENS,
                 kernels: CpuKernels = CpuKernels()):
        self.max_batch_size = max_batch_size
        self.prefill_tokens = prefill_tokens
        self.batch: Any = make_batch(loaded, max_batch_size, kernels)
        super().__init__(loaded, name=f"engine-{loaded.folder.name}")

    @property
    def active_count(self) -> int:
        return len(self.batch.active)

    @property
    def steps(self) -> int:
        return self.batch.steps

    @property
    def peak_rows(self) -> int:
        return self.batch.peak_rows

    def _run(self) -> None:
        while True:
            admitted = self._take(max(self.batch.room, 0), self.prefill_tokens)
            if admitted is None:
                self.batch.fail_all("the model was unloaded")
                return
            step_batch(self.batch, [seq for seq in admitted if not seq.cancelled])


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


@dataclass
class EngineHandle:
    """A loaded model and the engine that serves it (what the pool keeps)."""

    engine: _EngineThread
    loaded: LoadedModel
    users: int = field(default=0)


def load_engine(folder: str | Path, kind: str, max_batch_size: int, *, torch_threads: int = 0,
                in_process: bool = True, kernels: CpuKernels = CpuKernels()) -> EngineHandle:
    """The model in `folder` with an engine of this kind: in this process, or (batched only) in a process
    of its own (`process_engine`), the gateway keeping just the tokenizer. `kernels`: the batching engine's
    CPU fast paths (`make_batch`; the sequential engine keeps the model as loaded)."""
    if kind == "batched" and not in_process:
        from belle_gateway.serving.process_engine import ProcessEngine

        engine = ProcessEngine(folder, max_batch_size=max_batch_size, torch_threads=torch_threads,
                               kernels=kernels)
        return EngineHandle(engine=engine, loaded=engine.loaded)
    if torch_threads:
        torch.set_num_threads(torch_threads)
    loaded = LoadedModel(folder)
    if kind == "batched":
        engine: _EngineThread = BatchEngine(loaded, max_batch_size=max_batch_size, kernels=kernels)
    else:
        engine = SequentialEngine(loaded)
    return EngineHandle(engine=engine, loaded=loaded)
