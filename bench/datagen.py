"""Generation throughput: the project's generator vs a sequential one, against a slow teacher.

    .venv/bin/python bench/datagen.py                     # latency 1 s, concurrency 32, 1000 rows each
    .venv/bin/python bench/datagen.py --latency 1 --concurrency 32 --rows 1000

Both run against the offline teacher (`python -m belle_teacher`, a real HTTP server) with a fixed
per-request latency, standing in for a paid API whose replies take seconds. Both use the same prompt
rendering, parsing, filters and ROUGE-L de-duplication from belle_datagen; they differ in how they
talk to the teacher:

- baseline: one request at a time (as BELLE's generate_instruction.py does), with the synchronous
  `openai` client;
- project: `belle_datagen.generate.generate` with `concurrency` requests in flight, checkpointing to
  a temporary artifact store as the job does.

Both generate the same number of rows (the share of near-duplicates grows with the pool, so equal
sizes keep the comparison fair). Prints accepted instructions per second for both and their ratio
(last line: `ratio: X`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import openai

from belle_datagen.blocks import Task, parse_self_instruct_reply, render_self_instruct_prompt
from belle_datagen.checkpoint import GenerationLog
from belle_datagen.dedup import NearDuplicateIndex
from belle_datagen.filters import drop_reason
from belle_datagen.generator import Generator, generate
from belle_datagen.inputs import GenerationInputs
from belle_datagen.seeds import bundled_seed_tasks, bundled_template
from belle_shared.artifacts import ArtifactStore
from belle_shared.llm_client import TeacherClient
from belle_shared.specs import DatagenSpec

LISTENING = re.compile(r"belle teacher listening on (http://\S+/v1)")


def start_teacher(latency: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "belle_teacher", "--port", "0", "--latency", str(latency),
                             "--seed", "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    for line in proc.stdout:
        match = LISTENING.search(line)
        if match:
            # Keep draining its output so a full pipe never stalls the server.
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
            return proc, match.group(1)
    raise SystemExit(f"the teacher did not start (exit code {proc.poll()})")


class BenchContext:
    """The two things `generate` asks of a job context, without a database."""

    def check_cancelled(self) -> None:
        pass

    def progress(self, message: str, **metrics) -> None:
        pass


def _inputs() -> GenerationInputs:
    return GenerationInputs(seeds=bundled_seed_tasks("zh"), template=bundled_template("self_instruct", "zh"), topics=[])


def run_project(base_url: str, rows: int, concurrency: int) -> tuple[float, int, int]:
    spec = DatagenSpec(teacher={"base_url": base_url, "model": "belle-teacher"}, target_count=rows,
                       concurrency=concurrency, seed=0)
    gen = Generator(spec, _inputs(), rng=random.Random(0))
    with tempfile.TemporaryDirectory() as tmp:
        journal = GenerationLog(ArtifactStore(tmp), f"bench/{uuid.uuid4().hex}")

        async def main() -> None:
            client = TeacherClient(spec.teacher, api_key=None, temperature=spec.temperature, top_p=spec.top_p,
                                   max_tokens=spec.max_tokens)
            try:
                await generate(gen, client, journal, BenchContext())
            finally:
                await client.aclose()

        started = time.perf_counter()
        asyncio.run(main())
        elapsed = time.perf_counter() - started
    return elapsed, gen.progress.accepted, gen.progress.replies


def run_sequential(base_url: str, rows: int) -> tuple[float, int, int]:
    """One request at a time, as BELLE's script does; same prompt, parser, filters and de-duplication."""
    inputs = _inputs()
    rng = random.Random(0)
    client = openai.OpenAI(base_url=base_url, api_key="no-key", max_retries=3)
    index = NearDuplicateIndex(0.7)
    for seed in inputs.seeds:
        index.add(seed.instruction)
    accepted = replies = 0
    started = time.perf_counter()
    while accepted < rows:
        examples = [Task(s.instruction, s.input, s.output) for s in rng.sample(inputs.seeds, 3)]
        prompt = render_self_instruct_prompt(inputs.template, examples, num_tasks=20, language="zh")
        response = client.chat.completions.create(model="belle-teacher", messages=[{"role": "user", "content": prompt}],
                                                  temperature=1.0, top_p=1.0, max_tokens=3072)
        replies += 1
        choice = response.choices[0]
        parsed = parse_self_instruct_reply(choice.message.content or "", first_index=4, language="zh",
                                           truncated=choice.finish_reason == "length", completion=False)
        for task in parsed.tasks:
            if accepted < rows and drop_reason(task, language="zh") is None and index.add_if_novel(task.instruction) is not None:
                accepted += 1
    return time.perf_counter() - started, accepted, replies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=1.0, help="Teacher seconds per request.")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rows", type=int, default=1000, help="Rows each generator produces.")
    args = parser.parse_args()

    proc, base_url = start_teacher(args.latency)
    try:
        print(f"offline teacher at {base_url}, latency {args.latency:.2f} s per request", flush=True)
        base_time, base_rows, base_replies = run_sequential(base_url, args.rows)
        base_rate = base_rows / base_time
        print(f"sequential: {base_rows} rows from {base_replies} requests in {base_time:.1f} s = {base_rate:.1f} rows/s",
              flush=True)
        time_, rows, replies = run_project(base_url, args.rows, args.concurrency)
        rate = rows / time_
        print(f"project (concurrency {args.concurrency}): {rows} rows from {replies} requests in {time_:.1f} s "
              f"= {rate:.1f} rows/s", flush=True)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    print(f"ratio: {rate / base_rate:.1f}")


if __name__ == "__main__":
    main()
