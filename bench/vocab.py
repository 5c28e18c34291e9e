"""Chinese vocabulary expansion and continued pre-training (`pretrain` jobs) on the real model, side by side.

    .venv/bin/python bench/vocab.py                    # 180 s of training per side
    .venv/bin/python bench/vocab.py --seconds 600 --max-new-tokens 4000
    .venv/bin/python bench/vocab.py --corpus teacher.jsonl --seconds 1800   # a larger corpus (GPU session)

The model is SmolLM2-135M-Instruct (the bundled real model, converted into the user cache on first use).
The text ships with the project: training text is the Chinese documents of the trainer's
`tokenizer_corpus.txt` (built from the datagen seed tasks and the offline teacher's wording, see its
`make_corpus.py`); held-out text is the evaluator's `eval_set_zh.jsonl` (questions and reference answers),
which no step here trains on.

Printed, then the ratios:
- tokens per Chinese character on the held-out text, base vs expanded tokenizer (target: >= 1.5x fewer);
- held-out bits per character (the total negative log-likelihood of each text in bits over its characters:
  comparable across tokenizers) of the base, the expanded model before training, and after the same number
  of seconds of continued pre-training (`belle_trainer.train` with a PretrainSpec and `max_seconds`, full
  training or `--method lora`, one process) with and without the expansion;
- Chinese characters, all characters and tokens per second from the gateway's chat engine (greedy, 16
  clients, a fixed number of output tokens per reply), the model trained without expansion vs with it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from serve import Gateway  # noqa: E402  (bench/serve.py: a gateway process with one model registered)

CORPUS = ROOT / "services/trainer/belle_trainer/data/tokenizer_corpus.txt"
HELD_OUT = ROOT / "services/evaluator/belle_evaluator/data/eval_set_zh.jsonl"
CJK = re.compile("[\u4e00-\u9fff]")


def training_documents(corpus: Path | None = None) -> list[str]:
    """The Chinese documents of the shipped corpus, or of `corpus`: UTF-8 text cut at blank lines, or JSONL
    rows with a `text` field (as a `pretrain` upload)."""
    if corpus is not None and corpus.suffix == ".jsonl":
        docs = [json.loads(line)["text"].strip() for line in corpus.read_text(encoding="utf-8").splitlines() if line.strip()]
    elif corpus is not None:
        docs = [d.strip() for d in re.split(r"\n\s*\n", corpus.read_text(encoding="utf-8")) if d.strip()]
    else:
        docs = [d.strip() for d in CORPUS.read_text(encoding="utf-8").split("\n\n\n") if d.strip()]
    return [d for d in docs if len(CJK.findall(d)) > len(d) / 3]


def held_out_texts() -> list[str]:
    texts = []
    for line in HELD_OUT.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        texts += [row[key] for key in ("question", "std_answer") if isinstance(row.get(key), str) and row[key].strip()]
    return texts


def real_model() -> Path:
    from belle_shared.model_sources import BUNDLED_MODELS
    from belle_shared.settings import Settings

    cache = Settings(_env_file=None).resolved_cache_dir
    subprocess.run([sys.executable, "-m", "belle_trainer.model_import", "--bundled", "smollm2", "--cache", str(cache)],
                   check=True, capture_output=True)
    return cache / "models" / f"smollm2-{BUNDLED_MODELS['smollm2'].version}"


def bits_per_char(folder: Path, texts: list[str]) -> float:
    """Total bits of the texts (each read after an end-of-text token, every token of it predicted) over
    their characters."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).to(device).eval()
    start = tokenizer.eos_token_id
    nats = 0.0
    with torch.inference_mode():
        for text in texts:
            ids = torch.tensor([start] + tokenizer(text, add_special_tokens=False)["input_ids"], device=device)
            logits = model(ids[None]).logits[0, :-1]
            nats += torch.nn.functional.cross_entropy(logits, ids[1:], reduction="sum").item()
    return nats / math.log(2) / sum(len(t) for t in texts)


def pretrain(base: Path, run_dir: Path, documents: list[str], *, seconds: float, new_tokens_from: int | None,
             method: str) -> Path:
    """`seconds` of continued pre-training in one process, as a `pretrain` job runs it."""
    run_dir.mkdir(parents=True)
    train_file = run_dir / "train.jsonl"
    train_file.write_text("".join(json.dumps({"text": d}, ensure_ascii=False) + "\n" for d in documents),
                          encoding="utf-8")
    spec = {"type": "pretrain", "base_model": "bench", "training_file_id": "00000000-0000-0000-0000-000000000001",
            "zero_stage": 0, "validation_split": 0, "method": method,
            "hyperparameters": {"epochs": 50, "batch_size": 4, "gradient_accumulation_steps": 1, "max_length": 256,
                                "max_seconds": seconds, "warmup_ratio": 0.02}}
    config = {"spec": spec, "base_model_path": str(base), "train_file": str(train_file), "validation_file": None,
              "output_dir": str(run_dir), "resume": False, "new_tokens_from": new_tokens_from}
    (run_dir / "run.json").write_text(json.dumps(config))
    with open(run_dir / "train.log", "wb") as log:
        subprocess.run([sys.executable, "-m", "belle_trainer.train", "--config", str(run_dir / "run.json")],
                       stdout=log, stderr=subprocess.STDOUT, check=True)
    done = [json.loads(line) for line in (run_dir / "progress.jsonl").read_text().splitlines()][-1]
    print(f"  trained {done['step']} steps, {done['trained_tokens']} tokens in {done['train_seconds']:.0f}s, "
          f"train loss {done['train_loss']:.3f}", flush=True)
    return run_dir / "final"


async def chat_speed(model: Path, data_dir: Path, prompts: list[str], *, clients: int,
                     output_tokens: int) -> dict[str, float]:
    """Chinese characters, all characters and tokens per second of replies from the gateway's engine."""
    data_dir.mkdir(parents=True, exist_ok=True)
    gateway = Gateway(data_dir, model, "batched", batch_size=16, torch_threads=0)
    try:
        queue = list(prompts)
        counts = {"chinese": 0, "characters": 0, "tokens": 0}

        async def client(http: httpx.AsyncClient) -> None:
            while queue:
                prompt = queue.pop()
                body = {"model": "bench-tiny", "messages": [{"role": "user", "content": prompt}],
                        "max_tokens": output_tokens, "temperature": 0, "ignore_eos": True}
                response = await http.post(f"{gateway.url}/v1/chat/completions", headers=gateway.headers, json=body)
                response.raise_for_status()
                reply = response.json()
                text = reply["choices"][0]["message"]["content"]
                counts["chinese"] += len(CJK.findall(text))
                counts["characters"] += len(text)
                counts["tokens"] += reply["usage"]["completion_tokens"]

        async with httpx.AsyncClient(timeout=600) as http:
            warm = {"model": "bench-tiny", "messages": [{"role": "user", "content": "你好"}], "max_tokens": 2}
            (await http.post(f"{gateway.url}/v1/chat/completions", headers=gateway.headers, json=warm)).raise_for_status()
            started = time.perf_counter()
            await asyncio.gather(*(client(http) for _ in range(clients)))
            elapsed = time.perf_counter() - started
            return {name: count / elapsed for name, count in counts.items()}
    finally:
        gateway.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180, help="training seconds per side")
    parser.add_argument("--method", choices=("full", "lora"), default="full",
                        help="lora: the adapters and, with the expansion, the new tokens' rows (as a pretrain job)")
    parser.add_argument("--max-new-tokens", type=int, default=4000)
    parser.add_argument("--corpus", type=Path, help="training text instead of the shipped corpus (.txt cut at blank "
                        "lines, or .jsonl with a text field)")
    parser.add_argument("--chat-requests", type=int, default=32)
    parser.add_argument("--output-tokens", type=int, default=48)
    args = parser.parse_args()

    from transformers import AutoTokenizer

    from belle_trainer.vocab import expand_folder, tokens_per_char

    documents, held_out = training_documents(args.corpus), held_out_texts()
    print(f"training text: {len(documents)} documents, {sum(len(CJK.findall(d)) for d in documents)} Chinese "
          f"characters; held-out: {len(held_out)} texts, {sum(len(CJK.findall(t)) for t in held_out)}", flush=True)
    base = real_model()
    with tempfile.TemporaryDirectory(prefix="belle-vocab-bench-") as tmp:
        tmp = Path(tmp)
        expanded = tmp / "expanded"
        report = expand_folder(base, expanded, documents, max_new_tokens=args.max_new_tokens)
        before = tokens_per_char(AutoTokenizer.from_pretrained(base), held_out)
        after = tokens_per_char(AutoTokenizer.from_pretrained(expanded), held_out)
        print(f"vocabulary: +{report['added_tokens']} tokens ({report['vocab_size_before']} -> "
              f"{report['vocab_size_after']}), e.g. {' '.join(report['examples'][:10])}")
        print(f"held-out tokens per Chinese character: base {before:.3f}, expanded {after:.3f}", flush=True)

        bits = {"base": bits_per_char(base, held_out), "expanded, untrained": bits_per_char(expanded, held_out)}
        print(f"held-out bits per character: base {bits['base']:.3f}, expanded untrained "
              f"{bits['expanded, untrained']:.3f}", flush=True)
        print(f"continued pre-training ({args.method}) without expansion ({args.seconds:.0f}s):", flush=True)
        plain = pretrain(base, tmp / "run-plain", documents, seconds=args.seconds, new_tokens_from=None,
                         method=args.method)
        print(f"continued pre-training ({args.method}) with expansion ({args.seconds:.0f}s):", flush=True)
        grown = pretrain(expanded, tmp / "run-grown", documents, seconds=args.seconds,
                         new_tokens_from=report["vocab_size_before"], method=args.method)
        bits["pretrained"] = bits_per_char(plain, held_out)
        bits["expanded, pretrained"] = bits_per_char(grown, held_out)
        for name, value in bits.items():
            print(f"  bits/char {name:22s} {value:.3f}")

        prompts = [t for t in held_out if len(t) < 80][: args.chat_requests]
        speed = {}
        for name, folder in (("pretrained", plain), ("expanded, pretrained", grown)):
            speed[name] = asyncio.run(chat_speed(folder, tmp / f"gateway-{len(speed)}", prompts, clients=16,
                                                 output_tokens=args.output_tokens))
            print(f"chat: {name}: {speed[name]['chinese']:.1f} Chinese characters/s, {speed[name]['characters']:.1f} "
                  f"characters/s, {speed[name]['tokens']:.1f} tokens/s", flush=True)

    print(f"tokens per character ratio (base / expanded): {before / after:.2f}x")
    print(f"bits/char after equal training, expanded vs not: {bits['expanded, pretrained']:.3f} vs "
          f"{bits['pretrained']:.3f}")
    print(f"chat tokens/s, expanded / not: {speed['expanded, pretrained']['tokens'] / speed['pretrained']['tokens']:.2f}")
    print(f"ratio: {speed['expanded, pretrained']['chinese'] / speed['pretrained']['chinese']:.2f} "
          "(chat Chinese characters/s, expanded / not)")


if __name__ == "__main__":
    main()
