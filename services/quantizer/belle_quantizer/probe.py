"""Load a model folder in a fresh process, measure perplexity and peak memory, generate a reply.

    python -m belle_quantizer.probe --model DIR --samples heldout.json --out probe.json

The quantizer runs this once for the source model and once for the quantized folder, so both are
measured the same way, and the quantized folder is proved to load with plain
`AutoModelForCausalLM.from_pretrained` in a process that never saw it made. On a CPU the model
computes in float32, as in every service: transformers loads a folder in its saved dtype, and a
bf16 folder on a CPU without bf16 instructions multiplies ~8x slower (a 135M model's measurement
then ran past the job's time).
Memory: on a GPU the peak allocated by torch; on CPU the process's peak resident set size minus the
resident size after the libraries were imported (the model's own cost: loading, perplexity and
generation; for a GPTQ folder, gptqmodel and optimum are imported before the baseline is read).
`samples` is the JSON list of `{"ids", "scored"}` samples that `quantize.encode` makes.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

from belle_shared.worker_watch import exit_with_worker

GENERATE_TOKENS = 32


def _rss_mib() -> float:
    # VmRSS from /proc (Linux); the peak comes from getrusage, in KiB on Linux.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def probe(model_dir: str, samples: list[dict]) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from belle_quantizer.measure import perplexity

    cuda = torch.cuda.is_available()
    if json.loads((Path(model_dir) / "config.json").read_text()).get("quantization_config"):
        # transformers imports these on the first GPTQ load; import them first so that the memory
        # they take counts as a library, not as the model.
        import gptqmodel  # noqa: F401
        import optimum  # noqa: F401
    rss_before = _rss_mib()
    started = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(model_dir, device_map="cuda" if cuda else None,
                                                 dtype="auto" if cuda else torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    load_seconds = time.perf_counter() - started
    device = next(model.parameters()).device

    first = samples[0]["ids"]
    prompt = torch.tensor([first[: max(1, len(first) // 2)]], device=device)
    started = time.perf_counter()
    with torch.inference_mode():
        output = model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), do_sample=False,
                                max_new_tokens=GENERATE_TOKENS, min_new_tokens=GENERATE_TOKENS,
                                pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
    generate_seconds = time.perf_counter() - started
    generated = output[0, prompt.shape[1]:].tolist()
    measured = perplexity(model, samples)

    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    memory = {"device": str(device), "peak_rss_mib": round(peak_rss, 1),
              "model_rss_mib": round(peak_rss - rss_before, 1)}
    if cuda:
        memory["cuda_peak_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return {**measured, "memory": memory, "load_seconds": round(load_seconds, 3),
            "generate_seconds": round(generate_seconds, 3), "generated_tokens": len(generated),
            "generated_text": tokenizer.decode(generated, skip_special_tokens=True),
            "layer_type": type(_first_linear(model)).__name__}


def _first_linear(model):
    """The first projection of the first decoder layer: nn.Linear, or the GPTQ kernel that replaced it."""
    for name, module in model.named_modules():
        if name.endswith(("q_proj", "query_key_value", "c_attn")):
            return module
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--samples", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    exit_with_worker()
    result = probe(args.model, json.loads(args.samples.read_text()))
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
