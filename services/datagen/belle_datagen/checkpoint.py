"""Durable progress of a generation job, so a killed worker's successor continues where it stopped.

Accepted rows go to numbered chunk files; a small state file names how many chunks are committed and
carries the counters (drops by reason, tokens, requests). Each file is written whole and atomically
(the artifact store writes beside the target and renames; object stores replace whole objects), and
the state file is written after its chunk. So at any instant of a SIGKILL:

- a chunk the state does not list yet is ignored on resume and overwritten by the next flush, and
- every chunk the state lists is complete,

which gives exactly-once rows: none lost that the state counted, none duplicated. Works the same on
a local folder and on S3, which has no append.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

from belle_shared.artifacts import ArtifactStore

STATE_VERSION = 1


class GenerationLog:
    def __init__(self, store: ArtifactStore, prefix: str):
        self.store = store
        self.prefix = prefix.rstrip("/")
        self.chunks = 0
        self.rows = 0

    def _chunk_key(self, number: int) -> str:
        return f"{self.prefix}/chunk-{number:06d}.jsonl"

    @property
    def _state_key(self) -> str:
        return f"{self.prefix}/state.json"

    def load_state(self) -> dict[str, Any] | None:
        """The committed state of an earlier attempt, or None on a fresh start."""
        uri = self.store.uri(self._state_key)
        if not self.store.exists(uri):
            return None
        with self.store.open(uri, "rb") as f:
            state = json.loads(f.read().decode("utf-8"))
        if state.get("version") != STATE_VERSION:
            return None
        self.chunks = state["chunks"]
        self.rows = state["rows"]
        return state

    def committed_rows(self) -> Iterator[dict[str, Any]]:
        """Every row of the committed chunks, in order."""
        for number in range(self.chunks):
            with self.store.open(self.store.uri(self._chunk_key(number)), "rb") as f:
                for line in f:
                    if line.strip():
                        yield json.loads(line)

    def commit(self, rows: list[dict[str, Any]], counters: dict[str, Any]) -> None:
        """Write ``rows`` as the next chunk, then the state that makes them count."""
        if rows:
            payload = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")
            self.store.put_stream(io.BytesIO(payload), self._chunk_key(self.chunks))
            self.chunks += 1
            self.rows += len(rows)
        state = {"version": STATE_VERSION, "chunks": self.chunks, "rows": self.rows, "counters": counters}
        self.store.put_stream(io.BytesIO(json.dumps(state).encode("utf-8")), self._state_key)

    def remove(self) -> None:
        """Delete the work files once the dataset is recorded."""
        self.store.delete(self.store.uri(self.prefix))
