"""Chat serving throughput: the gateway's batching engine vs one-request-at-a-time `generate`.

    .venv/bin/python bench/serve.py                     # 64 requests, 16 clients, 64 output tokens
    .venv/bin/python bench/serve.py --requests 32 --clients 8 --output-tokens 32
    .venv/bin/python bench/serve.py --torch-threads 1 --repeat 5   # this machine is noisy: the median of 5

Both sides are the same gateway process (`python -m belle_gateway`, embedded SQLite, the same HTTP
API and SSE streaming) serving the same model: by default a tiny random-init LLaMA (hidden 256, 4 layers,
built locally); `--model-dir` names another folder (the real SmolLM2 model: `~/.cache/belle/models/smollm2-*`):

- baseline: `BELLE_CHAT_ENGINE=sequential`, transformers' `model.generate` on one request at a time
  (what a user gets by wrapping a Hugging Face model in a web server);
- project: `BELLE_CHAT_ENGINE=batched`, requests joining and leaving a running batch, in the engine's own
  process (the default);
- and, for the record, the same engine in a thread of the gateway's process (`BELLE_CHAT_ENGINE_PROCESS=false`);
- with `--mkl-side`, also the engine process with PyTorch's default linear layers instead of oneDNN's
  (`BELLE_CHAT_ONEDNN_LINEAR=false`): what `serving/cpu_linear.py` gains, in the same run;
- with `--sdpa-side`, also the engine process with one `scaled_dot_product_attention` per decoding row
  instead of the native kernel (`BELLE_CHAT_NATIVE_ATTENTION=false`): what `serving/native_attention.py`
  gains, in the same run;
- with `--proxy-side`, also the proxy path: a second gateway that serves no model itself
  (`BELLE_CHAT_ENGINE=off`) and forwards the chat (`BELLE_CHAT_PROXY_ROUTES`) to an upstream
  OpenAI-compatible server: by default a project gateway on this machine, with `--upstream URL` any
  other (vLLM on a GPU; `--upstream-model`, `--upstream-key` as it needs). Against the project side it
  shows what the extra hop costs; with vLLM upstream, what a team gets on a GPU.

Each of `--clients` concurrent clients takes the next of `--requests` requests (prompt lengths mixed
from a few to ~300 tokens), sends it with `stream: true`, greedy, `max_tokens = --output-tokens` and
`ignore_eos` (a fixed reply length), and records time to first token and latency. Printed per side:
output tokens/s, p50/p99 latency, p50/p99 time to first token; then how many replies differ between
the sides (greedy: only floating-point ties between two logits may flip a token) and, last,
`ratio: X` (project tokens/s over baseline tokens/s). With `--repeat N`, all sides run N times in turn and
the last line is `median ratio: X`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
PHRASES = ["请介绍一下你自己。", "为什么天空是蓝色的？", "把下面的句子翻译成英文：今天天气很好。", "写一首关于秋天的诗。",
           "hello world, how are you today?", "计算 12 乘以 34 等于多少。", "列出三种常见的水果。"]


def build_model(folder: Path) -> Path:
    from belle_trainer.tiny import init_tiny_model

    if not (folder / "config.json").exists():
        init_tiny_model(folder, arch="llama", hidden_size=256, num_layers=4, num_heads=4, max_position=1024,
                        seed=0, overwrite=True)
    return folder


def describe(model: Path) -> str:
    """The model's size in a few words, from its config."""
    config = json.loads((model / "config.json").read_text())
    return f"{config.get('model_type')}, hidden {config.get('hidden_size')}, {config.get('num_hidden_layers')} layers"


def make_prompts(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    prompts = []
    for i in range(count):
        repeats = rng.choice([1, 1, 2, 4, 8, 16, 24])  # mostly short, some long (up to ~300 tokens)
        prompts.append(f"第{i}题：" + "".join(rng.choice(PHRASES) for _ in range(repeats)))
    return prompts


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gateway:
    """`python -m belle_gateway` in its own process, with a team and the model registered."""

    def __init__(self, data_dir: Path, model: Path, engine: str, batch_size: int, torch_threads: int,
                 engine_process: bool = True, extra_env: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "BELLE_DATA_DIR": str(data_dir), "BELLE_PORT": str(self.port),
                    "BELLE_RUN_SWEEPER": "false", "BELLE_CHAT_ENGINE": engine, "BELLE_LOG_LEVEL": "WARNING",
                    "BELLE_CHAT_ENGINE_PROCESS": str(engine_process).lower(),
                    "BELLE_CHAT_MAX_BATCH_SIZE": str(batch_size),
                    "BELLE_CHAT_TORCH_THREADS": str(torch_threads), "BELLE_MODEL_ROOTS": str(model.parent),
                    **(extra_env or {})}
        belle = [sys.executable, "-m", "belle_cli.main"]
        subprocess.run([*belle, "admin", "migrate"], env=self.env, check=True, capture_output=True)
        created = subprocess.run([*belle, "admin", "create-team", f"bench-{engine}"], env=self.env, check=True,
                                 capture_output=True, text=True)
        self.key = created.stdout.strip().splitlines()[-1]
        self.log = open(data_dir / f"gateway-{engine}.log", "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "belle_gateway"], env=self.env, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        self.headers = {"Authorization": f"Bearer {self.key}"}
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"gateway did not start; see {self.log.name}")
            time.sleep(0.2)
        response = httpx.post(f"{self.url}/v1/models", headers=self.headers, json={"name": "bench-tiny", "path": str(model)})
        response.raise_for_status()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


async def one_request(http: httpx.AsyncClient, gateway: Gateway, prompt: str, output_tokens: int) -> dict:
    body = {"model": "bench-tiny", "messages": [{"role": "user", "content": prompt}], "max_tokens": output_tokens,
            "temperature": 0, "ignore_eos": True, "stream": True, "stream_options": {"include_usage": True}}
    started = time.perf_counter()
    first = None
    text, tokens = "", 0
    async with http.stream("POST", f"{gateway.url}/v1/chat/completions", headers=gateway.headers, json=body) as response:
        if response.status_code != 200:
            raise RuntimeError(f"{response.status_code}: {(await response.aread())[:300]!r}")
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                raise RuntimeError(chunk["error"]["message"])
            for choice in chunk["choices"]:
                if choice["delta"].get("content"):
                    first = first or time.perf_counter()
                    text += choice["delta"]["content"]
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    done = time.perf_counter()
    return {"text": text, "tokens": tokens, "latency": done - started, "ttft": (first or done) - started}


async def load(gateway: Gateway, prompts: list[str], clients: int, output_tokens: int,
               probe: bool = False) -> tuple[list[dict], float, list[float]]:
    """Every prompt through `clients` concurrent clients; the replies, the seconds it took and, with
    `probe`, the latencies of `GET /v1/models` sent every 50 ms meanwhile (how responsive the rest of
    the API stays under chat load)."""
    queue: asyncio.Queue = asyncio.Queue()
    for index, prompt in enumerate(prompts):
        queue.put_nowait((index, prompt))
    results: list[dict | None] = [None] * len(prompts)

    async def client(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            index, prompt = queue.get_nowait()
            results[index] = await one_request(http, gateway, prompt, output_tokens)

    limits = httpx.Limits(max_connections=clients + 4)
    async with httpx.AsyncClient(timeout=httpx.Timeout(1800.0), limits=limits) as http:
        await one_request(http, gateway, "预热", 4)  # load the model outside the timed part
        probes: list[float] = []
        running = True

        async def prober() -> None:
            while running:
                sent = time.perf_counter()
                (await http.get(f"{gateway.url}/v1/models", headers=gateway.headers)).raise_for_status()
                probes.append(time.perf_counter() - sent)
                await asyncio.sleep(0.05)

        probing = asyncio.create_task(prober()) if probe else None
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        elapsed = time.perf_counter() - started
        running = False
        if probing is not None:
            await probing
    return [r for r in results if r is not None], elapsed, probes


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def summary(name: str, results: list[dict], elapsed: float, probes: list[float]) -> float:
    tokens = sum(r["tokens"] for r in results)
    rate = tokens / elapsed
    lat = [r["latency"] for r in results]
    ttft = [r["ttft"] for r in results]
    print(f"{name:<28} {rate:9.1f} tok/s  {elapsed:7.1f} s  latency p50 {statistics.median(lat):6.2f} s "
          f"p99 {percentile(lat, 99):6.2f} s  TTFT p50 {statistics.median(ttft):6.2f} s p99 {percentile(ttft, 99):6.2f} s"
          f"  ({tokens} tokens)")
    if probes:
        print(f"{'':<28} GET /v1/models meanwhile: p50 {statistics.median(probes) * 1e3:.0f} ms "
              f"p90 {percentile(probes, 90) * 1e3:.0f} ms max {max(probes) * 1e3:.0f} ms ({len(probes)} requests)")
    return rate


def proxy_route(args: argparse.Namespace, tmp: Path, model: Path) -> tuple[Gateway | None, dict[str, str]]:
    """The proxy side's upstream (a project gateway started here unless `--upstream` names one) and the
    proxy gateway's environment: chat only through `BELLE_CHAT_PROXY_ROUTES`."""
    upstream = None
    url, name, key = args.upstream, args.upstream_model or "bench-tiny", args.upstream_key
    if url is None:
        data_dir = tmp / "upstream"
        data_dir.mkdir()
        upstream = Gateway(data_dir, model, "batched", args.batch_size, args.torch_threads)
        url, key = f"{upstream.url}/v1", upstream.key
    routes = {"bench-tiny": {"url": url, "model": name, "api_key": key}}
    return upstream, {"BELLE_CHAT_PROXY_ROUTES": json.dumps(routes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--output-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16, help="the engine's BELLE_CHAT_MAX_BATCH_SIZE")
    parser.add_argument("--torch-threads", type=int, default=0,
                        help="BELLE_CHAT_TORCH_THREADS for both sides (0: torch's default, one per core)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--probe-api", action="store_true",
                        help="also time GET /v1/models every 50 ms during each side's load")
    parser.add_argument("--mkl-side", action="store_true",
                        help="also run the engine process with BELLE_CHAT_ONEDNN_LINEAR=false "
                        "(PyTorch's default products)")
    parser.add_argument("--sdpa-side", action="store_true",
                        help="also run the engine process with BELLE_CHAT_NATIVE_ATTENTION=false "
                        "(PyTorch's attention, one call per decoding row)")
    parser.add_argument("--proxy-side", action="store_true",
                        help="also run the chat through a proxy-only gateway (BELLE_CHAT_ENGINE=off) to an upstream")
    parser.add_argument("--upstream", default=None,
                        help="with --proxy-side: the upstream's base URL (e.g. http://gpu-host:8000/v1); "
                        "default: a project gateway started here")
    parser.add_argument("--upstream-model", default=None, help="the model's name upstream (default: bench-tiny)")
    parser.add_argument("--upstream-key", default=None, help="the upstream's API key, if it needs one")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run all sides this many times, one after the other, and print the median ratio")
    parser.add_argument("--model-dir", type=Path, default=HERE.parent / ".bench-cache" / "serve-tiny-llama")
    args = parser.parse_args()
    if (args.upstream or args.upstream_model or args.upstream_key) and not args.proxy_side:
        parser.error("--upstream, --upstream-model and --upstream-key go with --proxy-side")

    model = build_model(args.model_dir)
    prompts = make_prompts(args.requests, args.seed)
    print(f"{args.requests} requests, {args.clients} concurrent clients, {args.output_tokens} output tokens each, "
          f"greedy; model {model} ({describe(model)}); {os.cpu_count()} CPU cores; torch threads "
          f"{args.torch_threads or 'default'} on both sides")
    # side -> (engine, engine process, extra environment), in the order they run
    sides = {"sequential": ("sequential", False, {}), "batched": ("batched", True, {}),
             "thread": ("batched", False, {})}
    names = {"sequential": "baseline (sequential generate)", "thread": "engine in the gateway's thread",
             "batched": "project (batching engine)", "mkl": "engine process, MKL linears",
             "sdpa": "engine process, sdpa per row", "proxy": "proxy gateway -> upstream"}
    if args.mkl_side:
        sides["mkl"] = ("batched", True, {"BELLE_CHAT_ONEDNN_LINEAR": "false"})
    if args.sdpa_side:
        sides["sdpa"] = ("batched", True, {"BELLE_CHAT_NATIVE_ATTENTION": "false"})
    if args.proxy_side:
        sides["proxy"] = ("off", False, {})
    compared = [side for side in ("thread", "mkl", "sdpa", "proxy", "batched") if side in sides]
    ratios, rates = [], {side: [] for side in sides}
    for repeat in range(args.repeat):
        if args.repeat > 1:
            print(f"-- run {repeat + 1} of {args.repeat}")
        runs = {}
        with tempfile.TemporaryDirectory(prefix="belle-bench-serve-") as tmp:
            for side, (engine, engine_process, extra_env) in sides.items():
                data_dir = Path(tmp) / side
                data_dir.mkdir()
                upstream = None
                if side == "proxy":
                    upstream, extra_env = proxy_route(args, Path(tmp), model)
                try:
                    gateway = Gateway(data_dir, model, engine, args.batch_size, args.torch_threads, engine_process,
                                      extra_env)
                    try:
                        runs[side] = asyncio.run(load(gateway, prompts, args.clients, args.output_tokens,
                                                      args.probe_api))
                    finally:
                        gateway.stop()
                finally:
                    if upstream is not None:
                        upstream.stop()
        for side in ["sequential", *compared]:
            rates[side].append(summary(names[side], *runs[side]))
        for side in compared:
            pairs = zip(runs["sequential"][0], runs[side][0])
            differing = [i for i, (a, b) in enumerate(pairs) if a["text"] != b["text"]]
            print(f"greedy replies that differ ({side}): {len(differing)} of {len(prompts)}"
                  + (f" (requests {differing})" if differing else ""))
        ratios.append(rates["batched"][-1] / rates["sequential"][-1])
        print(f"ratio: {ratios[-1]:.2f}")
    if args.repeat > 1:
        medians = {side: statistics.median(values) for side, values in rates.items()}
        print(f"-- median of {args.repeat} runs: " + ", ".join(f"{names[side]} {medians[side]:.1f} tok/s"
                                                              for side in ["sequential", *compared])
              + "; ratios " + " ".join(f"{r:.2f}" for r in ratios))
        print(f"median ratio: {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
