"""The models the local engine keeps loaded: at most `max_resident`, least recently used unloaded.

`acquire` (blocking: call it from a worker thread) returns a loaded model with its engine and counts
the caller as a user until `release`; `acquire_resident` does the same without blocking when the model
is already loaded (the common case, with no hop to a worker thread). A model with users, or with
requests still decoding, is never unloaded; when every resident model is busy and another is asked
for, `PoolBusy` says so (a 503 for the client) instead of growing past the bound. Two requests for a
model that is not loaded yet load it once; a model whose engine process died is loaded again by the
next request. Folders come from the artifact store: used in place when local, else downloaded once
into `cache_dir/<model id>`.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from belle_gateway.serving.cpu_kernels import CpuKernels
from belle_shared.artifacts import ArtifactStore

log = logging.getLogger(__name__)


class PoolBusy(Exception):
    """Every resident model is in use; nothing can be unloaded to load another."""


class ModelPool:
    def __init__(self, *, store: ArtifactStore, cache_dir: Path, engine_kind: str, max_resident: int,
                 max_batch_size: int, torch_threads: int = 0, separate_process: bool = False,
                 kernels: CpuKernels = CpuKernels()):
        self.store = store
        self.cache_dir = cache_dir
        self.engine_kind = engine_kind
        self.max_resident = max_resident
        self.max_batch_size = max_batch_size
        self.torch_threads = torch_threads
        self.separate_process = separate_process
        self.kernels = kernels
        self._handles: OrderedDict[str, Any] = OrderedDict()  # model id -> EngineHandle, oldest use first
        self._lock = threading.Lock()
        self._load_locks: dict[str, threading.Lock] = {}

    def resident(self) -> list[str]:
        with self._lock:
            return list(self._handles)

    def acquire(self, model_id: str, uri: str) -> Any:
        handle = self.acquire_resident(model_id)
        if handle is not None:
            return handle
        with self._lock:
            load_lock = self._load_locks.setdefault(model_id, threading.Lock())
        with load_lock:
            handle = self.acquire_resident(model_id)  # loaded by the request we waited for
            if handle is not None:
                return handle
            self._make_room()
            from belle_gateway.serving.engine import load_engine  # torch, on first use only

            folder, downloaded = self.store.local_folder(uri, self.cache_dir / model_id)
            if downloaded:
                log.info("downloaded model %s from %s", model_id, uri)
            handle = load_engine(folder, self.engine_kind, self.max_batch_size, torch_threads=self.torch_threads,
                                 in_process=not self.separate_process, kernels=self.kernels)
            with self._lock:
                handle.users += 1
                self._handles[model_id] = handle
            log.info("loaded model %s (%s engine, %d resident)", model_id, self.engine_kind, len(self._handles))
            return handle

    def release(self, handle: Any) -> None:
        with self._lock:
            handle.users = max(0, handle.users - 1)

    def close(self) -> None:
        with self._lock:
            handles, self._handles = list(self._handles.values()), OrderedDict()
        for handle in handles:
            handle.engine.stop()

    def acquire_resident(self, model_id: str) -> Any:
        """The model's handle, counted as a user, if it is loaded and its engine alive; else None. Never
        blocks (a dictionary look-up under a lock): the event loop calls it before `acquire`'s thread."""
        with self._lock:
            handle = self._handles.get(model_id)
            if handle is not None and not handle.engine.alive:  # its engine process died: load it again
                log.warning("the engine of model %s is gone; loading the model again", model_id)
                del self._handles[model_id]
                handle = None
            if handle is not None:
                self._handles.move_to_end(model_id)
                handle.users += 1
            return handle

    def _make_room(self) -> None:
        with self._lock:
            if len(self._handles) < self.max_resident:
                return
            idle = next((key for key, h in self._handles.items() if h.users == 0 and not h.engine.busy), None)
            if idle is None:
                raise PoolBusy(f"all {self.max_resident} resident models are serving requests; retry shortly "
                               "(or raise BELLE_CHAT_MAX_RESIDENT_MODELS)")
            evicted = self._handles.pop(idle)
        evicted.engine.stop()
        del evicted
        gc.collect()
        log.info("unloaded model %s to make room", idle)
