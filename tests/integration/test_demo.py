"""`belle demo`, the README's main job, end to end on the embedded default with a small budget, on the
tiny model (`--model tiny`: the default real model's recipe runs in tests/integration/test_real_model.py
through the same jobs, and its pipeline file is checked in tests/unit/test_demo_pipeline.py).

A real `belle demo --exit` process: the embedded stack (SQLite, bundled Redis, gateway, one worker per
service), a tiny base model built and registered, a held-out eval set, the offline teacher, and the
demo pipeline (datagen -> train -> 4-bit GPTQ -> exact-match eval of three models) followed to the
end. What is checked is that every step ran and the summary reports what it should; whether the
fine-tuned model reaches 90% needs the full budget (docs/learning.md).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.embedded, pytest.mark.slow]


@pytest.mark.timeout(1200)
def test_the_demo_runs_the_whole_recipe_as_one_pipeline_and_reports_it(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BELLE_")}
    done = subprocess.run(
        [sys.executable, "-m", "belle_cli.main", "demo", "--model", "tiny", "--exit", "--data-dir",
         str(tmp_path / "belle"), "--rows", "240", "--epochs", "1", "--eval-questions", "16"],
        capture_output=True, text=True, timeout=1100, env={**env, "COLUMNS": "200"})
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-6000:]

    # Every step of the pipeline ran, in order, each started by the end of the one it needs.
    for step, kind in (("data", "datagen"), ("train", "train"), ("quantize", "quantize"), ("evaluate", "eval")):
        assert re.search(rf"│ {step}\s+│ {kind}\s+│ succeeded │", done.stdout), done.stdout
    assert "step train: pending: waiting for 'data'" in done.stderr
    assert "step evaluate: pending: waiting for 'train', 'quantize'" in done.stderr

    # The summary: the dataset (no held-out question in it), training, sizes, three models' scores.
    assert re.search(r"held-out questions in it\s+│ 0 ", done.stdout), done.stdout
    assert re.search(r"dataset\s+│ demo-teacher-tasks: \d+ rows", done.stdout)
    assert re.search(r"training\s+│ \d+ steps, [\d,]+ tokens; loss \d", done.stdout)
    assert re.search(r"sizes\s+│ fine-tuned [\d.]+ MB -> 4-bit GPTQ [\d.]+ MB", done.stdout)
    overall = re.search(r"│ overall\s+│ ([\d.]+)% \(16\)\s+│ ([\d.]+)% \(16\)\s+│ ([\d.]+)% \(16\)\s+│", done.stdout)
    assert overall, done.stdout
    assert re.search(r"│ base model\s+│ [\d.]+%\s+│ at most 5%\s+│ yes", done.stdout)  # a random model knows nothing
    assert "lineage: ft:demo-base:" in done.stdout and "(quantized) <- ft:demo-base:" in done.stdout
    for timing in ("start the stack", "step train (train)", "whole pipeline", "total"):
        assert re.search(rf"│ {re.escape(timing)}\s+│ \d+", done.stdout), timing
