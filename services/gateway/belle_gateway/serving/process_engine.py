"""The batching engine in a process of its own, so that the HTTP server and the decoding loop stop
taking turns on one interpreter lock.

In-process, the engine's thread needs Python's GIL between every pair of its (many, small) torch calls,
and the event loop needs it for every streamed chunk and every request's routing, authentication and
chat template: the two serialise, and the gateway never uses more than about one core (measured in
docs/benchmarks.md, "third round"). Here the model and its `PackedBatch`/`PaddedBatch` live in a child
process (spawned, loaded from the same folder) that only turns prompt ids into token ids; the gateway
keeps the tokenizer, renders prompts, turns tokens into text (stop strings, UTF-8 tails) and streams.

Messages over one pipe (pickled tuples):

- to the child: ``("submit", id, prompt_ids, options)``, ``("cancel", id)``, ``("stop",)``;
- from it: ``("ready", facts)`` once loaded (or ``("failed", message)``), then after every decoding
  step ``("step", [(id, token), ...], [(id, error message), ...], [ids it ended], peak rows)``.

The child applies the same token-level ends as the gateway's `Sequence.push` (EOS unless ignored,
`max_tokens`), so both sides agree on when a sequence is over; a stop string or a client that went
away is a cancel from the gateway, acted on before the child's next step.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import threading
from collections import deque
from pathlib import Path
from typing import Any

from belle_gateway.serving.cpu_kernels import CpuKernels
from belle_gateway.serving.engine import (ChatTokenizer, SamplingOptions, admit, sampling_generator, step_batch,
                                          token_end)

log = logging.getLogger(__name__)

START_TIMEOUT = 600  # seconds for the child to import torch and load the model


class ServedModel(ChatTokenizer):
    """The gateway's side of a model whose engine process holds the weights: the tokenizer (rendering and
    decoding), and the facts the child reports once it has loaded the model."""

    def __init__(self, folder: str | Path):
        super().__init__(folder)
        self.eos_ids: list[int] = []
        self.context_length: int | None = None
        self.module_classes: dict[str, int] = {}

    def learn(self, facts: dict[str, Any]) -> None:
        self.eos_ids, self.context_length = facts["eos_ids"], facts["context_length"]
        self.module_classes = facts["module_classes"]


class ProcessEngine:
    """`BatchEngine`'s interface (submit, busy, stop) over a child process (module docstring)."""

    def __init__(self, folder: str | Path, *, max_batch_size: int, torch_threads: int = 0,
                 kernels: CpuKernels = CpuKernels()):
        self.loaded = ServedModel(folder)
        context = multiprocessing.get_context("spawn")  # never fork a process that has threads
        self._conn, child_conn = context.Pipe()
        self._process = context.Process(target=_child_main, name=f"belle-engine-{Path(folder).name}",
                                        args=(child_conn, str(folder), max_batch_size, torch_threads, kernels),
                                        daemon=True)
        self._process.start()
        child_conn.close()
        if not self._conn.poll(START_TIMEOUT):
            self._process.kill()
            raise RuntimeError(f"the engine process did not load {folder} within {START_TIMEOUT} s")
        try:
            message = self._conn.recv()
        except EOFError:
            raise RuntimeError(f"the engine process exited while loading {folder} "
                               f"(exit code {self._process.exitcode})") from None
        if message[0] == "failed":
            self._process.join(timeout=10)
            raise ValueError(message[1])
        self.loaded.learn(message[1])
        self.steps = 0  # decoding steps the child has reported
        self.peak_rows = 0  # most sequences it decoded together
        self._ids = itertools.count()
        self._active: dict[int, Any] = {}  # id -> the gateway's Sequence, until it is over
        self._lock = threading.Lock()  # guards _active and the pipe's sending end
        self._stopping = False
        self._reader = threading.Thread(target=self._read, name=f"engine-reader-{Path(folder).name}", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def alive(self) -> bool:
        return not self._stopping and self._process.is_alive()

    @property
    def active_count(self) -> int:
        return len(self._active)

    @property
    def busy(self) -> bool:
        return bool(self._active)

    def submit(self, seq: Any) -> None:
        options = seq.options
        wire = {"max_tokens": options.max_tokens, "temperature": options.temperature, "top_p": options.top_p,
                "seed": options.seed, "ignore_eos": options.ignore_eos}
        with self._lock:
            if not self.alive:
                raise RuntimeError("engine stopped")
            seq_id = next(self._ids)
            # Known before it is sent: the child's first tokens for it may arrive before send returns.
            self._active[seq_id] = seq
            try:
                self._conn.send(("submit", seq_id, list(seq.prompt_ids), wire))
            except OSError:  # the child died since `alive` was read
                self._active.pop(seq_id, None)
                raise RuntimeError("engine stopped") from None

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            try:
                self._conn.send(("stop",))
            except OSError:
                pass
        self._process.join(timeout=30)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(timeout=10)
        self._reader.join(timeout=10)
        self._fail_all("the model was unloaded")

    def _read(self) -> None:
        """The gateway's end of the pipe: tokens to their sequences, cancels back to the child."""
        eos_ids = self.loaded.eos_ids
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                break
            if message[0] != "step":
                continue
            _, tokens, errors, ended, self.peak_rows = message
            self.steps += 1
            for seq_id, token in tokens:
                seq = self._active.get(seq_id)
                if seq is None:
                    continue
                if seq.done or seq.push(token, eos_ids):
                    # Over here: the child may not know it yet (a stop string, a client gone); a cancel
                    # for a sequence it has already ended itself is ignored there.
                    self._forget(seq_id, cancel=True)
            for seq_id, error in errors:
                seq = self._active.get(seq_id)
                if seq is not None:
                    seq.fail(error)
                    self._forget(seq_id, cancel=False)
            for seq_id in ended:  # both sides apply the same ends; a sequence left open would wait forever
                seq = self._active.get(seq_id)
                if seq is not None:
                    seq.fail("generation ended early (the engine process ended the reply before the gateway did)")
                    self._forget(seq_id, cancel=False)
            self._send_cancels()
        if not self._stopping:
            log.error("the engine process for %s exited (code %s)", self.loaded.folder, self._process.exitcode)
        self._stopping = True
        self._fail_all("the engine process exited")

    def _forget(self, seq_id: int, *, cancel: bool) -> None:
        with self._lock:
            self._active.pop(seq_id, None)
            if cancel:
                try:
                    self._conn.send(("cancel", seq_id))
                except OSError:  # the child is gone: the reader's next recv ends and fails the rest
                    pass

    def _send_cancels(self) -> None:
        """Sequences whose client went away (cancelled on the event loop's thread) leave the child's batch."""
        cancelled = [seq_id for seq_id, seq in list(self._active.items()) if seq.cancelled]
        for seq_id in cancelled:
            self._forget(seq_id, cancel=True)

    def _fail_all(self, message: str) -> None:
        with self._lock:
            failed, self._active = list(self._active.values()), {}
        for seq in failed:
            seq.fail(message)


class _ChildSequence:
    """The child's view of one sequence: what `PackedBatch`/`PaddedBatch` read, and the token-level ends."""

    def __init__(self, seq_id: int, prompt_ids: list[int], options: Any, tokens: list):
        self.id, self.prompt_ids, self.options = seq_id, prompt_ids, options
        self.reply = _Tokens()
        self.cancelled = False
        self.finished = False
        self._tokens = tokens  # this step's (id, token) pairs, shared by all sequences
        self.error: str | None = None
        self.generator = sampling_generator(options)

    def push(self, token: int, eos_ids: Any) -> bool:
        self._tokens.append((self.id, token))
        self.reply.ids.append(token)
        self.finished = token_end(token, len(self.reply.ids), self.options, eos_ids) is not None
        return self.finished

    def fail(self, message: str) -> None:
        self.finished = True
        self.error = message


class _Tokens:
    def __init__(self):
        self.ids: list[int] = []


def _child_main(conn: Any, folder: str, max_batch_size: int, torch_threads: int, kernels: CpuKernels) -> None:
    """The engine process: load the model, then decode until told to stop or the gateway goes away."""
    import torch

    from belle_gateway.serving.engine import PREFILL_TOKENS, LoadedModel, make_batch

    if torch_threads:
        torch.set_num_threads(torch_threads)
    try:
        loaded = LoadedModel(folder)
        batch = make_batch(loaded, max_batch_size, kernels)
    except Exception as exc:  # the gateway turns it into a 400 (a folder that cannot be loaded)
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", {"eos_ids": loaded.eos_ids, "context_length": loaded.context_length,
                         "module_classes": loaded.module_classes}))
    waiting: deque[_ChildSequence] = deque()
    by_id: dict[int, _ChildSequence] = {}
    tokens: list[tuple[int, int]] = []

    def handle(message: tuple) -> bool:
        kind = message[0]
        if kind == "submit":
            _, seq_id, prompt_ids, wire = message
            seq = _ChildSequence(seq_id, prompt_ids, SamplingOptions(**wire), tokens)
            by_id[seq_id] = seq
            waiting.append(seq)
        elif kind == "cancel":
            seq = by_id.pop(message[1], None)
            if seq is not None:
                seq.cancelled = True
        return kind != "stop"

    while True:
        try:
            if not waiting and not batch.active:
                if not handle(conn.recv()):  # idle: wait for work
                    return
            while conn.poll():
                if not handle(conn.recv()):
                    return
        except (EOFError, OSError):  # the gateway went away
            return
        joining = [seq for seq in admit(waiting, max(batch.room, 0), PREFILL_TOKENS) if not seq.cancelled]
        tokens.clear()
        step_batch(batch, joining)
        errors, ended = [], []
        for seq in list(by_id.values()):
            if seq.finished:
                by_id.pop(seq.id)
                if seq.error is not None:
                    errors.append((seq.id, seq.error))
                else:
                    ended.append(seq.id)
        try:
            conn.send(("step", list(tokens), errors, ended, batch.peak_rows))
        except (EOFError, OSError):
            return
