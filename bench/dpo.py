"""Does DPO on the platform's own judged pairs beat the supervised model it started from?

Issue 22's proof, run through the platform as a team would: the embedded stack (`belle up`'s Stack),
one pipeline of six steps, the offline teacher as the source of exactly-checkable questions:

1. `base`: the bundled SmolLM2-135M-Instruct (`model_import`);
2. `sft`: LoRA on the teacher's task family (rows generated here, the eval questions held out), sized by
   time;
3. `pairs`: `preference_pairs` on the supervised model: SAMPLES answers per prompt at temperature 1 to a
   prompt set disjoint from the eval set, scored by exact match against the teacher's answer
   (`scoring: reference`), best vs worst where they differ;
4. `dpo`: DPO (LoRA, beta 0.1) from the supervised model on those pairs;
5. `evaluate`: greedy exact match of the supervised and the DPO model on the held-out questions.

The noise of the eval set: both models answer the same questions, so the difference is measured per
question (d = DPO right - SFT right, in {-1, 0, 1}); its standard error is sd(d) / sqrt(n), and the gain
counts when it is larger than twice that (a paired test; greedy answers are deterministic, so the
only noise is which questions the eval set holds). Prints one JSON line and writes OUT/result.json.

    .venv/bin/python bench/dpo.py --out /tmp/dpo                    # ~15 minutes on 2 CPU cores
    .venv/bin/python bench/dpo.py --out /tmp/dpo --sft-seconds 120 --eval 200 --prompts 300

A research harness: it imports the CLI's stack and the teacher's generator, which services never do.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import tempfile
import time
import uuid
from pathlib import Path

KINDS = ["extreme", "parity", "case"]  # kinds a 135M model picks up in a few minutes (test_real_model.py)


def _training_rows(n: int, holdout: set[str], seed: int) -> list[dict]:
    from belle_teacher.tasks import generate_task, question_of

    rng, rows, seen = random.Random(seed), [], set()
    while len(rows) < n:
        task = generate_task(rng, "zh", kind=rng.choice(KINDS), avoid=holdout)
        question = question_of(task.instruction, task.input)
        if question not in seen and question not in holdout:
            seen.add(question)
            rows.append({"instruction": question, "input": "", "output": task.output})
    return rows


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def _paired(items: list[dict], sft: str, dpo: str) -> dict:
    """Exact match of both models per question, and the paired difference with its standard error."""
    diffs = []
    for item in items:
        a, b = item["answers"][sft]["reference_score"], item["answers"][dpo]["reference_score"]
        diffs.append(float(b) - float(a))
    n = len(diffs)
    mean = sum(diffs) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1)) if n > 1 else float("nan")
    se = sd / math.sqrt(n)
    return {"questions": n, "sft": sum(i["answers"][sft]["reference_score"] for i in items) / n,
            "dpo": sum(i["answers"][dpo]["reference_score"] for i in items) / n, "gain": mean,
            "gain_standard_error": se, "dpo_better_only": sum(d > 0 for d in diffs),
            "sft_better_only": sum(d < 0 for d in diffs), "significant": mean > 2 * se}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rows", type=int, default=400, help="supervised training rows")
    parser.add_argument("--sft-seconds", type=float, default=180)
    parser.add_argument("--prompts", type=int, default=240, help="prompts the supervised model answers for pairs")
    parser.add_argument("--samples", type=int, default=4, help="answers sampled per prompt")
    parser.add_argument("--dpo-seconds", type=float, default=180)
    parser.add_argument("--dpo-lr", type=float, default=5e-4)
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--eval", type=int, default=240, help="held-out eval questions")
    args = parser.parse_args()

    from belle_cli.admin import new_team
    from belle_cli.client import Client
    from belle_cli.demo import free_port
    from belle_cli.stack import Stack
    from belle_shared.settings import Settings
    from belle_teacher.evalset import make_eval_set, write_eval_set

    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="belle-dpo-"))
    eval_rows = make_eval_set(args.eval, seed=11, kinds=KINDS)
    held_out = {row["question"] for row in eval_rows}
    prompt_rows = [row for row in make_eval_set(args.prompts + args.eval, seed=23, kinds=KINDS)
                   if row["question"] not in held_out][: args.prompts]
    train_rows = _training_rows(args.rows, held_out | {row["question"] for row in prompt_rows}, seed=5)

    settings = Settings(_env_file=None, data_dir=work / "belle")
    stack = Stack(settings, port=free_port(), log=lambda m: None)
    started = time.perf_counter()
    stack.start(wait_timeout=120)
    try:
        _, key = new_team(settings, f"dpo-{uuid.uuid4().hex[:8]}")
        client = Client(stack.url, key, timeout=120)
        train_file = client.upload(_write_jsonl(work / "train.jsonl", train_rows))
        prompt_file = client.upload(write_eval_set(prompt_rows, work / "prompts.jsonl"), purpose="eval")
        eval_file = client.upload(write_eval_set(eval_rows, work / "eval.jsonl"), purpose="eval")
        lora = {"method": "lora", "lora": {"r": 16, "alpha": 32, "dropout": 0.0}, "zero_stage": 0,
                "validation_split": 0.0, "packing": False}
        steps = [
            {"name": "base", "spec": {"type": "model_import", "bundled": "smollm2"}},
            {"name": "sft", "spec": {"type": "train", "base_model": "${base.model_id}", "training_file_id": train_file["id"],
                                     "chat_template": "belle", **lora, "suffix": "sft",
                                     "hyperparameters": {"learning_rate": 3e-3, "epochs": 2, "batch_size": 8,
                                                         "max_length": 128, "warmup_ratio": 0.03,
                                                         "max_seconds": args.sft_seconds}}},
            {"name": "pairs", "spec": {"type": "preference_pairs", "model_id": "${sft.model_id}",
                                       "prompt_file_id": prompt_file["id"], "samples_per_prompt": args.samples,
                                       "generation": {"temperature": 1.0, "max_new_tokens": 24},
                                       "scoring": "reference", "batch_size": 32, "seed": 0}},
            {"name": "dpo", "spec": {"type": "train", "objective": "dpo", "base_model": "${sft.model_id}",
                                     "dataset_id": "${pairs.dataset_id}", **lora, "suffix": "dpo",
                                     "dpo": {"beta": args.beta},
                                     "hyperparameters": {"learning_rate": args.dpo_lr, "epochs": 2, "batch_size": 8,
                                                         "max_length": 128, "warmup_ratio": 0.05,
                                                         "max_seconds": args.dpo_seconds}}},
            {"name": "evaluate", "spec": {"type": "eval", "mode": "reference", "eval_file_id": eval_file["id"],
                                          "model_ids": ["${sft.model_id}", "${dpo.model_id}"],
                                          "generation": {"max_new_tokens": 24}, "batch_size": 24}},
        ]
        pipeline = client.submit_pipeline({"name": "sft-pairs-dpo", "steps": steps})
        while pipeline["status"] not in ("succeeded", "failed", "cancelled"):
            time.sleep(5)
            pipeline = client.pipeline(pipeline["id"])
        if pipeline["status"] != "succeeded":
            raise SystemExit(f"pipeline {pipeline['status']}: {json.dumps(pipeline['steps'], indent=1)[-4000:]}")
        by_name = {step["name"]: step for step in pipeline["steps"]}
        sft_model = by_name["sft"]["result"]["fine_tuned_model"]
        dpo_model = by_name["dpo"]["result"]["fine_tuned_model"]
        eval_id = by_name["evaluate"]["job_id"]
        items, offset = [], 0
        while True:
            page = client.http.get(f"/v1/evals/{eval_id}/items", params={"limit": 100, "offset": offset}).json()
            items += page["data"]
            offset += len(page["data"])
            if not page["has_more"]:
                break
        lineage = client.http.get(f"/v1/models/{dpo_model}/lineage").json()
        result = {
            "settings": vars(args) | {"out": str(args.out)},
            "pairs": by_name["pairs"]["result"],
            "sft_steps": by_name["sft"]["result"].get("steps"), "dpo_steps": by_name["dpo"]["result"].get("steps"),
            "dpo_result": by_name["dpo"]["result"],
            "exact_match": _paired(items, sft_model, dpo_model),
            "lineage": [link["model"]["id"] for link in lineage.get("chain", [])],
            "step_seconds": {name: step.get("finished_at") and step.get("started_at") and
                             _seconds(step["started_at"], step["finished_at"]) for name, step in by_name.items()},
            "seconds": round(time.perf_counter() - started, 1),
        }
    finally:
        stack.stop()
    (args.out / "result.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(json.dumps(result, ensure_ascii=False))


def _seconds(start: str, end: str) -> float:
    from datetime import datetime

    return round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(), 1)


if __name__ == "__main__":
    main()
