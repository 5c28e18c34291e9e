"""Checkpoint folders of a run (`RUN/checkpoints/checkpoint-<step>/`, the HF Trainer's layout) and
which of them can be resumed from.

The Trainer gives no sign that a checkpoint is finished: with DeepSpeed every process writes its own
optimizer shard, and rank 0 may have written its `trainer_state.json` while another rank is still
writing. So after a save all ranks meet at a barrier and rank 0 then writes a small marker file; a
folder without it (the run was killed while saving) is never resumed from and is deleted on resume.
Standard library only.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

CHECKPOINTS_DIR = "checkpoints"
PREFIX = "checkpoint-"
COMPLETE_MARKER = "belle_checkpoint_complete.json"
TRAINER_STATE = "trainer_state.json"  # the HF Trainer's, needed to resume the step count

_NAME = re.compile(rf"^{re.escape(PREFIX)}(\d+)$")


def checkpoint_step(path: str | Path) -> int | None:
    """The step of a folder named checkpoint-<step>, else None."""
    match = _NAME.match(Path(path).name)
    return int(match.group(1)) if match else None


def list_checkpoints(root: str | Path) -> list[tuple[int, Path]]:
    """(step, folder) of every checkpoint folder under `root`, complete or not, by step."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [(checkpoint_step(path), path) for path in root.iterdir() if path.is_dir()]
    return sorted((step, path) for step, path in found if step is not None)


def mark_complete(path: str | Path, step: int) -> None:
    """Record that every process has finished writing this checkpoint."""
    marker = Path(path) / COMPLETE_MARKER
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(json.dumps({"step": step}) + "\n", encoding="utf-8")
    tmp.replace(marker)  # atomic: the marker is either absent or whole


def is_complete(path: str | Path) -> bool:
    path = Path(path)
    return (path / COMPLETE_MARKER).is_file() and (path / TRAINER_STATE).is_file()


def newest_complete(root: str | Path) -> Path | None:
    """The complete checkpoint with the highest step, or None."""
    complete = [path for _, path in list_checkpoints(root) if is_complete(path)]
    return complete[-1] if complete else None


def remove_incomplete(root: str | Path) -> list[Path]:
    """Delete checkpoint folders without the marker (a save cut short); returns them."""
    removed = [path for _, path in list_checkpoints(root) if not is_complete(path)]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed
