"""How well a tiny model learns the offline teacher's task family: one training run, scored per kind.

Issue 8's proof (the fine-tuned model answers held-out family questions exactly) made quick to
explore. One run does what the demo's pipeline does, without the stack around it:

1. the held-out eval set (`belle_teacher.evalset.make_eval_set`, the demo's seed 7);
2. training rows from the teacher's generator with those questions held out, one per distinct
   question (the demo goes through datagen, whose ROUGE-L filter at 0.9 drops ~8% of tries and
   keeps the kinds in about equal shares, as here);
3. a random-init base model (`belle_trainer.tiny.init_tiny_model`, character tokens);
4. `python -m belle_trainer.train` on a run.json, exactly as the trainer worker launches it
   (full fine-tune, packing, ZeRO 0, one process);
5. greedy answers through the model's chat template (`belle_shared.chat_models`), scored with the
   evaluator's `exact_match_cased`, per kind; `--score-train` also scores questions it trained on.

    .venv/bin/python bench/learning.py --out /tmp/learn/demo          # the demo's settings
    .venv/bin/python bench/learning.py --out /tmp/learn/overfit --rows 300 --epochs 30 --score-train 96

Prints one JSON line with the settings, training time, tokens/s, final loss and the scores, and
writes it to OUT/result.json (docs/learning.md collects them). A research harness: it imports the
trainer, the evaluator and the teacher together, which the services themselves never do.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path

from belle_evaluator.metrics import exact_match_cased
from belle_shared.chat_models import eos_token_ids, generation_settings, render_chat
from belle_teacher.evalset import make_eval_set
from belle_teacher.tasks import generate_task, question_key, question_of
from belle_trainer.tiny import init_tiny_model


def training_rows(count: int, *, seed: int, holdout: set[str], kinds: list[str] | None = None) -> list[dict]:
    """`count` conversation rows of distinct questions, none of them held out (of `kinds` only, if given)."""
    rng, seen, rows = random.Random(seed), set(holdout), []
    while len(rows) < count:
        task = generate_task(rng, "zh", rng.choice(kinds) if kinds else None, avoid=holdout)
        question = question_of(task.instruction, task.input)
        if question_key(question) in seen:
            continue
        seen.add(question_key(question))
        rows.append({"conversations": [{"from": "human", "value": question},
                                       {"from": "assistant", "value": task.output}],
                     "kind": task.kind})
    return rows


def train(args: argparse.Namespace, base: Path, train_file: Path, run_dir: Path) -> dict:
    spec = {
        "type": "train", "base_model": "bench-base", "dataset_id": str(uuid.uuid4()), "method": "full",
        "zero_stage": 0, "validation_split": 0.0, "packing": True,
        "hyperparameters": {"learning_rate": args.lr, "epochs": args.epochs, "batch_size": args.batch_size,
                            "gradient_accumulation_steps": 1, "warmup_ratio": args.warmup,
                            "weight_decay": 0.0, "max_length": args.max_length, "lr_scheduler": args.scheduler,
                            "seed": args.seed, "precision": args.precision},
    }
    config = {"spec": spec, "base_model_path": str(base), "train_file": str(train_file),
              "validation_file": None, "output_dir": str(run_dir), "resume": False}
    (run_dir / "run.json").write_text(json.dumps(config, indent=2))
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    started = time.perf_counter()
    with open(run_dir / "train.log", "wb") as log:
        code = subprocess.call([sys.executable, "-m", "belle_trainer.train", "--config", str(run_dir / "run.json")],
                               stdout=log, stderr=subprocess.STDOUT, env=env)
    seconds = time.perf_counter() - started
    events = [json.loads(line) for line in (run_dir / "progress.jsonl").read_text().splitlines() if line.strip()]
    done = next((e for e in events if e.get("event") == "done"), None)
    if code != 0 or done is None:
        raise SystemExit(f"training failed ({code}); see {run_dir / 'train.log'}")
    return {"train_s": round(seconds, 1), "steps": done["step"], "train_loss": done["train_loss"],
            "trained_tokens": done["trained_tokens"],
            "tokens_per_s": round(done["trained_tokens"] / max(done["train_seconds"], 1e-9))}


def answers(model_dir: Path, questions: list[str], *, max_new_tokens: int, batch_size: int) -> list[str]:
    """Greedy replies, in left-padded batches, prompted exactly as the evaluator and the chat engine do."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    eos = eos_token_ids(model, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0]
    gen = GenerationConfig(**generation_settings(max_new_tokens=max_new_tokens, temperature=0.0, top_p=1.0,
                                                 eos_ids=eos, pad_id=pad))
    replies = []
    for start in range(0, len(questions), batch_size):
        prompts = [render_chat(tokenizer, [{"role": "user", "content": q}]) for q in questions[start:start + batch_size]]
        width = max(map(len, prompts))
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=mask, generation_config=gen)
        replies += [tokenizer.decode(row[width:], skip_special_tokens=True) for row in out]
    return replies


def score(rows: list[dict], replies: list[str]) -> dict:
    by_kind: dict[str, list[float]] = defaultdict(list)
    for row, reply in zip(rows, replies, strict=True):
        by_kind[row["kind"]].append(exact_match_cased(reply, row["answer"]))
    everything = [s for scores in by_kind.values() for s in scores]
    return {"exact_match": round(100 * sum(everything) / len(everything), 1),
            "per_kind": {kind: round(100 * sum(s) / len(s), 1) for kind, s in sorted(by_kind.items())}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="a new folder for the run")
    parser.add_argument("--rows", type=int, default=6000)
    parser.add_argument("--eval-count", type=int, default=240)
    parser.add_argument("--eval-seed", type=int, default=7)
    parser.add_argument("--kinds", help="comma-separated kinds to train and score (default: all)")
    parser.add_argument("--score-train", type=int, default=0, help="also score this many training questions")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--pretokenize", default="chars", choices=("chars", "words"))
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--epochs", type=float, default=4)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--warmup", type=float, default=0.05)
    parser.add_argument("--scheduler", default="cosine")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    parser.add_argument("--threads", type=int, default=0, help="OMP threads for training (0: torch's default)")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    args = parser.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=False)
    kinds = args.kinds.split(",") if args.kinds else None
    eval_rows = [{"question": r["question"], "answer": r["std_answer"], "kind": r["kind"]}
                 for r in make_eval_set(args.eval_count, seed=args.eval_seed, kinds=kinds)]
    holdout = {question_key(r["question"]) for r in eval_rows}
    rows = training_rows(args.rows, seed=args.seed, holdout=holdout, kinds=kinds)
    train_file = args.out / "train.jsonl"
    train_file.write_text("".join(json.dumps({"conversations": r["conversations"]}, ensure_ascii=False) + "\n"
                                  for r in rows), encoding="utf-8")
    base = init_tiny_model(args.out / "base", hidden_size=args.hidden, num_layers=args.layers,
                           num_heads=args.heads, vocab_size=4096, max_position=512, pretokenize=args.pretokenize)
    result = {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}
    result.update(train(args, base, train_file, args.out))
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    final = args.out / "final"
    replies = answers(final, [r["question"] for r in eval_rows], max_new_tokens=args.max_new_tokens, batch_size=48)
    result["held_out"] = score(eval_rows, replies)
    (args.out / "replies.jsonl").write_text("".join(
        json.dumps({**row, "reply": reply}, ensure_ascii=False) + "\n" for row, reply in zip(eval_rows, replies)),
        encoding="utf-8")
    if args.score_train:
        seen = [{"question": r["conversations"][0]["value"], "answer": r["conversations"][1]["value"],
                 "kind": r["kind"]} for r in rows[:args.score_train]]
        result["trained_on"] = score(seen, answers(final, [r["question"] for r in seen],
                                                   max_new_tokens=args.max_new_tokens, batch_size=48))
    (args.out / "result.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
