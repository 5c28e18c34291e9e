"""Judging throughput: the evaluator's Judge vs a sequential judge loop, against a slow judge.

    .venv/bin/python bench/judge.py                        # 1000 judgments, latency 0.5 s, concurrency 32
    .venv/bin/python bench/judge.py --judgments 1000 --sequential-sample 1000   # the loop on all 1000 too

The judge is the offline teacher (`python -m belle_teacher`, a real HTTP server) with a fixed
per-request latency, standing in for a paid judge API. The prompts are distinct rendered judge
prompts (the bundled eval set's questions and per-class templates, each question with its reference
as the answer and with wrong answers numbered so that no two prompts are the same). The two sides:

- baseline: one request after another with the synchronous `openai` client, reply parsed with the
  same `parse_score` (as FastChat's `gen_judgment.py` and BELLE's eval scripts do, one call at a time);
- project: `belle_evaluator.judge.Judge` with `concurrency` requests in flight, its preflight, and
  every reply written to its cache in a fresh SQLite database, so the cache cannot help it.

At 0.5 s a request the loop needs ~500 s for 1000 judgments, so by default it runs on the first
`--sequential-sample` prompts only: both rates are judgments per second, so the ratio holds. The
scores of the sampled prompts are compared between the two sides. Last line: `ratio: X`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import openai

from belle_evaluator.evalset import bundled_eval_set
from belle_evaluator.judge import Judge
from belle_shared.judging import parse_score
from belle_shared.db.engine import make_engine, make_session_factory
from belle_shared.judging import load_judge_prompts, render_judge_prompt
from belle_shared.db.migrate import upgrade
from belle_shared.settings import Settings
from belle_shared.specs import TeacherEndpoint

MODEL = "belle-judge"
READY_LINE = re.compile(r"belle teacher listening on (http://\S+/v1)")


def launch_judge(latency: float) -> tuple[subprocess.Popen, str]:
    """The offline teacher as a judge, in its own process group; returns it and its base URL."""
    command = [sys.executable, "-m", "belle_teacher", "--port", "0", "--model", MODEL, "--seed", "0",
               "--latency", str(latency)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    for line in proc.stdout:
        found = READY_LINE.search(line)
        if found:
            # Its output must keep flowing somewhere, or a full pipe would stall the server.
            threading.Thread(target=proc.stdout.read, daemon=True).start()
            return proc, found.group(1)
    raise SystemExit(f"the offline judge did not start (exit code {proc.poll()})")


def judge_prompts(count: int) -> list[str]:
    """`count` distinct judge prompts: each question with its reference as the answer, then with
    numbered wrong answers, round after round."""
    questions = [q for q in bundled_eval_set() if q.std_answer]
    templates = load_judge_prompts()
    prompts: list[str] = []
    round_ = 0
    while len(prompts) < count:
        for q in questions[:count - len(prompts)]:
            answer = q.std_answer if round_ == 0 else f"我认为答案是第 {round_} 种说法。"
            prompts.append(render_judge_prompt(templates[q.cls], q, answer))
        round_ += 1
    return prompts


def run_sequential(base_url: str, prompts: list[str]) -> tuple[float, list[float | None]]:
    client = openai.OpenAI(base_url=base_url, api_key="no-key", max_retries=3)
    scores: list[float | None] = []
    started = time.perf_counter()
    for prompt in prompts:
        response = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": prompt}],
                                                  temperature=0.0, max_tokens=1024)
        scores.append(parse_score(response.choices[0].message.content or ""))
    elapsed = time.perf_counter() - started
    client.close()
    return elapsed, scores


def run_project(base_url: str, prompts: list[str], concurrency: int) -> tuple[float, list[float | None], Judge]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp))  # the embedded default: a fresh SQLite database
        upgrade(settings)
        engine = make_engine(settings)
        try:
            judge = Judge(TeacherEndpoint(base_url=base_url, model=MODEL), api_key=None,
                          session_factory=make_session_factory(engine), concurrency=concurrency)
            started = time.perf_counter()
            judgments = asyncio.run(judge.score(prompts))
            elapsed = time.perf_counter() - started
        finally:
            engine.dispose()
    if judge.totals.cache_hits or judge.totals.sent != len(prompts):
        raise SystemExit(f"the project side was not judged afresh: {judge.totals.to_dict()}")
    return elapsed, [j.score for j in judgments], judge


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=0.5, help="Judge seconds per request.")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--judgments", type=int, default=1000, help="Prompts the project judges.")
    parser.add_argument("--sequential-sample", type=int, default=100,
                        help="Prompts the sequential loop judges (the first N of the same prompts).")
    args = parser.parse_args()
    sample = min(args.sequential_sample, args.judgments)

    prompts = judge_prompts(args.judgments)
    proc, base_url = launch_judge(args.latency)
    try:
        print(f"offline judge at {base_url}, latency {args.latency:.2f} s per request; "
              f"{len(prompts)} distinct judge prompts", flush=True)
        seq_time, seq_scores = run_sequential(base_url, prompts[:sample])
        seq_rate = sample / seq_time
        note = "" if sample == len(prompts) else f" (a sample: the first {sample} of the {len(prompts)})"
        print(f"sequential: {sample} judgments{note} in {seq_time:.1f} s = {seq_rate:.2f} judgments/s", flush=True)
        time_, scores, judge = run_project(base_url, prompts, args.concurrency)
        rate = len(prompts) / time_
        t = judge.totals
        print(f"project (concurrency {args.concurrency}): {len(prompts)} judgments in {time_:.1f} s = {rate:.2f} "
              f"judgments/s ({t.requests} requests, {t.retries} retries, {t.cache_hits} cache hits, "
              f"{t.prompt_tokens} + {t.completion_tokens} tokens)", flush=True)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    agree = sum(a == b for a, b in zip(seq_scores, scores[:sample], strict=True))
    print(f"scores: the two sides agree on {agree}/{sample} sampled prompts; project: "
          f"{scores.count(1.0)} scored 1, {scores.count(0.0)} scored 0, {scores.count(None)} unparsable")
    print(f"ratio: {rate / seq_rate:.1f}")


if __name__ == "__main__":
    main()
