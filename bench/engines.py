"""The gateway's batching engine against transformers' continuous batching, in one process, side by side.

    .venv/bin/python bench/engines.py                  # the real model (SmolLM2-135M-Instruct), 32 requests
    .venv/bin/python bench/engines.py --model tiny     # the tiny random-init LLaMA of bench/serve.py
    .venv/bin/python bench/engines.py --requests 64 --output-tokens 32

The question (issue "Chat serving on transformers' continuous batching"): can the engine of
`services/gateway/belle_gateway/serving/` give way to `transformers.generation.continuous_batching`
(transformers 5.17, a paged KV cache, on CPU and CUDA)? Both engines are timed here without HTTP in
between, since the gateway around them is the same code either way (`bench/serve.py` measures the whole
path for today's engine). Every side gets the same chat-templated prompts (mixed lengths, from
`bench/serve.py`), greedy, `--output-tokens` tokens each (end-of-text ignored), all requests submitted at
once and at most 16 decoded together:

- `sequential`: `model.generate` one request at a time (the first `--sequential-requests` of them);
- `belle`: the gateway's `BatchEngine` (what `BELLE_CHAT_ENGINE=batched` runs; oneDNN linear layers and the
  native decode attention on a CPU);
- `transformers`: `model.init_continuous_batching()` as documented, with the KV cache sized
  (`num_blocks`, `block_size`, `max_batch_tokens`: left unset on a CPU it sizes the cache from free memory)
  and the paged attention transformers picks (`paged|sdpa` without flash-attn: one attention over every
  query and every cached key of the batch, with a block-diagonal mask);
- `transformers+varlen`: the same with an attention function registered through `AttentionInterface`
  that attends each sequence to its own keys only (`varlen_paged_attention` below), which is what a CPU
  lacks upstream.

On a machine with a GPU every side runs there. Printed: output tokens/s of each side, the ratios, and how many greedy replies differ from `belle`'s.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from serve import build_model, make_prompts  # noqa: E402

CONCURRENT = 16
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # as the gateway's engine picks it (float32 on both here)


def varlen_paged_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    """Paged attention for continuous batching where each sequence of the packed batch attends only to
    its own cached keys (one `scaled_dot_product_attention` per sequence): `paged|sdpa` instead gathers
    every sequence's keys and attends every query to all of them under a mask, a cost that grows with the
    square of the batch."""
    cache = kwargs.pop("cache")
    key, value = cache.update(key_states=key, value_states=value, layer_idx=module.layer_idx,
                              read_index=kwargs["read_index"], write_index=kwargs["write_index"])
    cu_q = kwargs["cu_seq_lens_q"].tolist()
    cu_k = kwargs["cu_seq_lens_k"]
    if isinstance(cu_k, dict):  # one entry per layer type
        cu_k = cu_k.get(getattr(module, "layer_type", None), next(iter(cu_k.values())))
    cu_k = cu_k.tolist()
    q, k, v = query[0], key.transpose(0, 1), value.transpose(0, 1)  # [heads, tokens, head_dim]
    out = torch.empty_like(q)
    for i in range(len(cu_q) - 1):
        q0, q1, k0, k1 = cu_q[i], cu_q[i + 1], cu_k[i], cu_k[i + 1]
        q_len, k_len = q1 - q0, k1 - k0
        mask = None
        if 1 < q_len < k_len:  # a prompt chunk after cached tokens: causal, offset by the cached part
            mask = torch.ones(q_len, k_len, dtype=torch.bool, device=q.device).tril(k_len - q_len)
        out[:, q0:q1] = torch.nn.functional.scaled_dot_product_attention(
            q[:, q0:q1], k[:, k0:k1], v[:, k0:k1], attn_mask=mask, is_causal=q_len > 1 and q_len == k_len, scale=scaling,
            enable_gqa=True)
    return out.transpose(0, 1).unsqueeze(0), None


def sequential(folder: Path, prompts: list[list[int]], output_tokens: int) -> tuple[float, list[list[int]]]:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).to(DEVICE).eval()
    replies = []
    started = time.perf_counter()
    with torch.inference_mode():
        for prompt in prompts:
            ids = torch.tensor([prompt], device=DEVICE)
            out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=output_tokens,
                                 min_new_tokens=output_tokens, pad_token_id=0)
            replies.append(out[0, len(prompt):].tolist())
    return len(prompts) * output_tokens / (time.perf_counter() - started), replies


def belle(folder: Path, prompts: list[list[int]], output_tokens: int) -> tuple[float, list[list[int]]]:
    from belle_gateway.serving.engine import SamplingOptions, Sequence, load_engine

    handle = load_engine(folder, "batched", CONCURRENT)
    finished = threading.Semaphore(0)

    def submit(prompt: list[int]) -> Sequence:
        seq = Sequence(prompt, SamplingOptions(max_tokens=output_tokens, temperature=0, ignore_eos=True),
                       lambda event: event["type"] in ("done", "error") and finished.release(), handle.loaded.decode)
        handle.engine.submit(seq)
        return seq

    submit(prompts[0])  # warm-up
    finished.acquire()
    started = time.perf_counter()
    sequences = [submit(prompt) for prompt in prompts]
    for _ in prompts:
        finished.acquire()
    elapsed = time.perf_counter() - started
    handle.engine.stop()
    return len(prompts) * output_tokens / elapsed, [seq.reply.ids for seq in sequences]


def transformers_cb(folder: Path, prompts: list[list[int]], output_tokens: int, *,
                    attention: str | None) -> tuple[float, list[list[int]]]:
    from transformers import AttentionInterface, AutoModelForCausalLM, GenerationConfig
    from transformers.generation.configuration_utils import ContinuousBatchingConfig

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).to(DEVICE).eval()
    if attention is not None:
        AttentionInterface.register(attention, varlen_paged_attention)
        model.set_attn_implementation(attention)
    longest = max(map(len, prompts)) + output_tokens
    block = 64
    # Room for twice the longest request in every slot: with less, the scheduler keeps a safety margin of
    # free blocks by admitting fewer requests (measured: 31 instead of 46 tokens/s at one slot's worth).
    config = ContinuousBatchingConfig(block_size=block, num_blocks=2 * CONCURRENT * -(-longest // block),
                                      max_batch_tokens=1024, max_requests_per_batch=CONCURRENT,
                                      allow_block_sharing=False)
    manager = model.init_continuous_batching(
        generation_config=GenerationConfig(do_sample=False, max_new_tokens=output_tokens, eos_token_id=-1, pad_token_id=0),
        continuous_batching_config=config)
    manager.start()
    try:
        def wait(count: int) -> dict[str, list[int]]:
            done: dict[str, list[int]] = {}
            while len(done) < count:
                result = manager.get_result(timeout=600)
                if result is None:
                    raise RuntimeError("continuous batching stopped answering")
                if result.error:
                    raise RuntimeError(result.error)
                if result.is_finished():
                    done[result.request_id] = result.generated_tokens
            return done

        manager.add_request(prompts[0], request_id="warm-up", max_new_tokens=4, eos_token_id=-1)
        wait(1)
        started = time.perf_counter()
        for i, prompt in enumerate(prompts):
            manager.add_request(prompt, request_id=str(i), max_new_tokens=output_tokens, eos_token_id=-1)
        replies = wait(len(prompts))
        elapsed = time.perf_counter() - started
    finally:
        manager.stop(block=True)
    return len(prompts) * output_tokens / elapsed, [replies[str(i)] for i in range(len(prompts))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("real", "tiny"), default="real")
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--sequential-requests", type=int, default=4)
    parser.add_argument("--output-tokens", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--one-side", help=argparse.SUPPRESS)  # run one side, write it to --result
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    from transformers import AutoTokenizer

    if args.model == "real":
        from vocab import real_model

        folder = real_model()
    else:
        folder = build_model(HERE.parent / ".bench-cache" / "serve-tiny-llama")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    prompts = [list(tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                                  tokenize=True, return_dict=False))
               for text in make_prompts(args.requests, args.seed)]
    if not args.one_side:
        print(f"model: {folder.name}; {len(prompts)} requests, {sum(map(len, prompts))} prompt tokens, "
              f"{args.output_tokens} output tokens each, {CONCURRENT} at once, {torch.get_num_threads()} torch "
              "threads", flush=True)
    runs = {"sequential": lambda: sequential(folder, prompts[: args.sequential_requests], args.output_tokens),
            "belle": lambda: belle(folder, prompts, args.output_tokens),
            "transformers": lambda: transformers_cb(folder, prompts, args.output_tokens, attention=None),
            "transformers+varlen": lambda: transformers_cb(folder, prompts, args.output_tokens,
                                                           attention="paged|belle_varlen")}
    if args.one_side:
        speed, replies = runs[args.one_side]()
        args.result.write_text(json.dumps({"speed": speed, "replies": replies}))
        return
    # Each side in a process of its own: run after the belle engine in the same process, continuous
    # batching measured a third slower (36 vs 51 tokens/s), whatever state the first side leaves behind.
    speed, replies = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in runs:
            result = Path(tmp) / "result.json"
            subprocess.run([sys.executable, __file__, *sys.argv[1:], "--one-side", name, "--result", str(result)],
                           check=True)
            side = json.loads(result.read_text())
            speed[name], replies[name] = side["speed"], side["replies"]
            print(f"{name:20s} {speed[name]:7.1f} tokens/s", flush=True)
    for name in ("transformers", "transformers+varlen"):
        differ = sum(a != b for a, b in zip(replies[name], replies["belle"]))
        print(f"{name}: {speed[name] / speed['sequential']:.2f}x sequential, {speed[name] / speed['belle']:.2f}x belle; "
              f"{differ} of {len(prompts)} greedy replies differ from belle's")
    differ = sum(a != b for a, b in zip(replies["sequential"], replies["belle"]))
    print(f"belle: {speed['belle'] / speed['sequential']:.2f}x sequential; {differ} of {len(replies['sequential'])} "
          "greedy replies differ from sequential's")
    best = max(("transformers", "transformers+varlen"), key=speed.get)
    print(f"ratio: {speed[best] / speed['belle']:.2f} (the faster continuous batching side, {best}, over belle)")


if __name__ == "__main__":
    main()
