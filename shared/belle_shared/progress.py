"""Progress logs: the JSONL file a job's subprocess writes and its worker follows.

A long job step (training, quantization, local generation) runs in a subprocess that imports torch;
the worker process does not. The subprocess appends one JSON object per line to a progress file; the
worker tails that file (never stdout) and turns the lines into job events. Each line is one `write`
of a few hundred bytes, appended and flushed on its own, so a reader never sees half a line from a
process killed between two events.

Each service declares its events and their fields (``{"done": ("model_path", ...), ...}``);
``ProgressWriter.write`` refuses an unknown event or one that lacks a field. Standard library only.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

PROGRESS_FILE = "progress.jsonl"


def _json_value(value: Any) -> Any:
    # JSON has no NaN or infinity (a diverged loss): null keeps every line parseable by strict readers.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class ProgressWriter:
    """Appends events to `path`; a writer with `enabled=False` (ranks other than 0) writes nothing."""

    def __init__(self, path: str | Path, *, event_fields: Mapping[str, tuple[str, ...]], enabled: bool = True):
        self.path = Path(path)
        self.event_fields = event_fields
        self.enabled = enabled

    def write(self, event: str, **fields: Any) -> dict[str, Any]:
        """Append one event and return it. Every field of the contract must be given (None allowed)."""
        expected = self.event_fields.get(event)
        if expected is None:
            raise ValueError(f"unknown progress event {event!r}")
        missing = [name for name in expected if name not in fields]
        if missing:
            raise ValueError(f"{event} event without {missing}")
        record = {"event": event, **{name: _json_value(value) for name, value in fields.items()}}
        if self.enabled:
            line = json.dumps(record, ensure_ascii=False) + "\n"
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
        return record


def read_events(path: str | Path) -> list[dict[str, Any]]:
    """All events of a progress file (a missing file has none)."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class ProgressTail:
    """The complete lines added to a progress file since the last call (a half-written line waits)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.offset = 0

    def new_events(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        return [json.loads(line) for line in data[: end + 1].splitlines() if line.strip()]
