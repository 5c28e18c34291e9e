"""One quantization run: GPTQ with GPTQModel, measured against the source model and round-to-nearest.

    GPTQMODEL_CPU_WORKERS=2 python -m belle_quantizer.quantize --config RUN/quantize.json

(The worker writes `quantize.json` and starts this; see `run_config.py` for the file and the events
of `RUN/progress.jsonl`.) Steps:

1. A LoRA adapter folder is merged into its base model first (GPTQ quantizes plain linear layers).
2. The dataset's conversations, rendered with the model's own chat template, are shuffled with the
   spec's seed and split: `eval_samples` held out for perplexity, `calibration_samples` for GPTQ.
3. The source model is measured in a fresh process (`probe.py`): perplexity, memory, a generation.
4. GPTQ quantizes it layer by layer and saves a Hugging Face folder (safetensors +
   `quantization_config` in config.json, the source's dtype for the layers it leaves alone).
5. The folder is measured in a fresh process the same way: this also proves it reloads with plain
   `AutoModelForCausalLM.from_pretrained` and generates.
6. Round-to-nearest at the same bits and group size, on the same layers, is measured in-process.
7. `quantization_report.json` (sizes, perplexities, memory, timings, the spec) is written beside the
   weights, so the folder explains itself.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from belle_shared.formats import to_messages
from belle_shared.progress import PROGRESS_FILE, ProgressWriter
from belle_shared.worker_watch import exit_with_worker
from belle_quantizer.measure import (
    folder_bytes,
    fp16_linear_bytes,
    linear_weight_bytes,
    perplexity,
    quantized_modules,
)
from belle_quantizer.run_config import EVENT_FIELDS, REPORT_FILE, QuantizeRun, load_run


class QuantizeInputError(Exception):
    """Input the run cannot use (the job fails with this code, message and spec field)."""

    def __init__(self, code: str, message: str, param: str | None = None):
        super().__init__(message)
        self.code, self.message, self.param = code, message, param


# ------------------------------------------------------------------------------------- samples


def read_conversations(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def split_samples(rows: list[dict], *, calibration: int, held_out: int, seed: int) -> tuple[list[dict], list[dict]]:
    """(calibration rows, held-out rows), disjoint; QuantizeInputError if the dataset is too small."""
    if len(rows) < calibration + held_out:
        raise QuantizeInputError(
            "dataset_too_small",
            f"the calibration dataset has {len(rows)} usable rows; this job needs {calibration} for calibration "
            f"plus {held_out} held out for perplexity. Lower calibration_samples / eval_samples or use a larger "
            "dataset", param="calibration_samples")
    shuffled = rows[:]
    random.Random(seed).shuffle(shuffled)
    return shuffled[held_out: held_out + calibration], shuffled[:held_out]


def encode(tokenizer: Any, rows: list[dict], max_length: int) -> list[dict[str, list[int]]]:
    """Each conversation rendered with the model's chat template and tokenized (at most `max_length`
    tokens): `{"ids": [...], "scored": [0/1 ...]}`, where `scored` marks what training trains: each
    assistant reply and its end-of-turn token (`belle_shared.chat_template.reply_spans`); perplexity
    is measured on those. A tokenizer with no chat template gets the turns joined by blank lines,
    every token scored."""
    from belle_shared.chat_template import end_of_turn_token, reply_spans

    end_of_turn = end_of_turn_token(tokenizer) if tokenizer.chat_template else None
    samples = []
    for row in rows:
        if end_of_turn is None:
            text = "\n\n".join(turn["value"] for turn in row["conversations"])
            ids = tokenizer(text, add_special_tokens=False)["input_ids"][:max_length]
            samples.append({"ids": ids, "scored": [1] * len(ids)})
            continue
        messages = to_messages(row)
        text = tokenizer.apply_chat_template(messages, tokenize=False)
        spans = reply_spans(tokenizer, messages, text, end_of_turn)
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = encoded["input_ids"][:max_length]
        scored = [int(any(a <= begin and end <= b for a, b in spans))
                  for begin, end in encoded["offset_mapping"][:max_length]]
        samples.append({"ids": ids, "scored": scored})
    return samples


# ---------------------------------------------------------------------------------------- steps


def merge_lora_if_adapter(model_path: Path, work_dir: Path) -> Path:
    """A LoRA adapter folder merged into its base model (saved under work_dir); other folders as they are."""
    if (model_path / "config.json").exists() or not (model_path / "adapter_config.json").exists():
        return model_path
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer

    merged_dir = work_dir / "merged"
    model = AutoPeftModelForCausalLM.from_pretrained(model_path, dtype="auto")
    model.merge_and_unload().save_pretrained(merged_dir)
    AutoTokenizer.from_pretrained(model_path).save_pretrained(merged_dir)
    return merged_dir


def linear_layers(model_path: Path) -> dict[str, int]:
    """Input width of each linear layer GPTQ quantizes (all but the output head), from an empty
    (meta-device) instance of the model: nothing is loaded."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_path))
    output_head = model.get_output_embeddings()
    return {name: module.in_features for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and module is not output_head}


AUTO_GROUP_SIZES = (128, 64, 32, 16)  # BELLE's 128 first: larger groups store fewer scales


def choose_group_size(widths: dict[str, int], requested: int | None) -> int:
    """The spec's group size (checked against every layer's input width), or, unset, the largest of
    AUTO_GROUP_SIZES that divides them all, else -1 (one group per row)."""
    if requested is not None:
        check_group_size(widths, requested)
        return requested
    return next((size for size in AUTO_GROUP_SIZES if all(w % size == 0 for w in widths.values())), -1)


def check_group_size(widths: dict[str, int], group_size: int) -> None:
    """QuantizeInputError naming the layers whose input width the group size does not divide."""
    if group_size == -1:
        return
    bad = {name.rsplit(".", 1)[-1]: width for name, width in widths.items() if width % group_size}
    if bad:
        largest = max(2**k for k in range(16) if all(w % 2**k == 0 for w in widths.values()))
        raise QuantizeInputError(
            "invalid_group_size",
            f"group_size {group_size} does not divide the input width of "
            + ", ".join(f"{layer} ({width})" for layer, width in sorted(bad.items()))
            + f"; the largest power of two that divides every layer is {largest} (or use -1: one group per row)",
            param="group_size")


def probe_in_fresh_process(model_dir: Path, samples_file: Path, out: Path) -> dict[str, Any]:
    completed = subprocess.run([sys.executable, "-m", "belle_quantizer.probe", "--model", str(model_dir),
                                "--samples", str(samples_file), "--out", str(out)],
                               capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"measuring {model_dir} failed: {completed.stderr[-2000:]}")
    return json.loads(out.read_text())


def gptq_quantize(run: QuantizeRun, model_path: Path, calibration: list[list[int]], dtype: Any, group_size: int,
                  progress: ProgressWriter | None = None) -> tuple[float, list[str]]:
    """Quantize with GPTQModel and save into run.output_dir; returns (seconds, quantized layer names).
    Each decoder layer done is a `layer` event (done of total) in `progress`."""
    import torch
    from gptqmodel import GPTQModel, QuantizeConfig

    spec = run.spec
    config = QuantizeConfig(
        bits=spec.bits, group_size=group_size, desc_act=spec.act_order, sym=spec.symmetric,
        damp_percent=spec.damp_percent,
        # Group-aware reordering is GPTQModel's own addition; act_order (desc_act) excludes it.
        act_group_aware=not spec.act_order,
        # No silent round-to-nearest fallback for layers with little calibration data: the job must
        # report GPTQ itself, and the RTN baseline separately.
        fallback=None,
        offload_to_disk_path=str(run.work_dir / "gptq-offload"),
    )
    device = "cuda" if torch.cuda.is_available() else "cpu"
    started = time.perf_counter()
    model = GPTQModel.load(str(model_path), config, device=device, dtype=dtype)
    if progress is not None:
        # GPTQModel calls `layer_callback` as each decoder layer is quantized (and again once it is
        # finalized): the first call of each layer counts it.
        total = model.model.config.num_hidden_layers
        done: set[int] = set()

        def layer_quantized(layer_idx: int, submodule_finalized: bool) -> None:
            if not submodule_finalized and layer_idx not in done:
                done.add(layer_idx)
                progress.write("layer", done=min(len(done), total), total=total)

        model.layer_callback = layer_quantized
    model.quantize([{"input_ids": ids, "attention_mask": [1] * len(ids)} for ids in calibration], batch_size=1)
    model.save(str(run.output_dir))
    seconds = time.perf_counter() - started
    del model
    return seconds, quantized_modules(run.output_dir)


def rtn_baseline(run: QuantizeRun, model_path: Path, modules: list[str], held_out: list[dict],
                 dtype: Any, group_size: int) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM

    from belle_quantizer.rtn import rtn_quantize_model_

    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype)
    if torch.cuda.is_available():
        model = model.to("cuda")
    fp16_bytes = fp16_linear_bytes(model, modules)
    started = time.perf_counter()
    rtn_quantize_model_(model, modules, bits=run.spec.bits, group_size=group_size,
                        symmetric=run.spec.symmetric)
    seconds = time.perf_counter() - started
    return {**perplexity(model, held_out), "quantize_seconds": round(seconds, 3), "fp16_linear_bytes": fp16_bytes}


def source_dtype(model_path: Path) -> Any:
    import torch

    config = json.loads((model_path / "config.json").read_text())
    name = config.get("dtype") or config.get("torch_dtype") or "float32"
    return getattr(torch, name) if isinstance(name, str) and hasattr(torch, name) else torch.float32


# ------------------------------------------------------------------------------------------ run


def quantize(run: QuantizeRun, progress: ProgressWriter) -> dict[str, Any]:
    import torch
    from transformers import AutoTokenizer

    spec = run.spec
    run.output_dir.mkdir(parents=True, exist_ok=True)
    model_path = merge_lora_if_adapter(run.model_path, run.work_dir)
    config = json.loads((model_path / "config.json").read_text())
    if config.get("quantization_config"):
        raise QuantizeInputError("model_already_quantized", "the model is already quantized "
                                 f"({config['quantization_config'].get('quant_method', 'unknown method')})",
                                 param="model_id")
    widths = linear_layers(model_path)
    group_size = choose_group_size(widths, spec.group_size)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    calibration_rows, held_out_rows = split_samples(
        read_conversations(run.dataset_file), calibration=spec.calibration_samples, held_out=spec.eval_samples,
        seed=spec.seed)
    calibration = [sample["ids"] for sample in encode(tokenizer, calibration_rows, spec.calibration_length)]
    held_out = encode(tokenizer, held_out_rows, spec.calibration_length)
    held_out_file = run.work_dir / "held_out.json"
    held_out_file.write_text(json.dumps(held_out))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    # CPUs are slow or unsupported in 16-bit floats (a bf16-trained model, say): there GPTQ computes in
    # float32, as the evaluator and the chat engine run models there.
    dtype = source_dtype(model_path) if device == "cuda" else torch.float32
    progress.write("start", calibration_samples=len(calibration), eval_samples=len(held_out), device=device,
                   dtype=str(dtype).removeprefix("torch."), quantized_modules=len(widths), group_size=group_size,
                   group_size_from="spec" if spec.group_size is not None else "auto")

    progress.write("stage", stage="measure_source", message="measuring the source model")
    source = probe_in_fresh_process(model_path, held_out_file, run.work_dir / "probe-source.json")
    progress.write("measure", variant="source", report=source)

    progress.write("stage", stage="gptq", message=f"GPTQ {spec.bits}-bit, group size {group_size}, "
                   f"{len(calibration)} calibration samples on {device}")
    gptq_seconds, modules = gptq_quantize(run, model_path, calibration, dtype, group_size, progress)

    progress.write("stage", stage="measure_gptq", message="reloading the quantized folder in a fresh process")
    gptq = probe_in_fresh_process(run.output_dir, held_out_file, run.work_dir / "probe-gptq.json")
    gptq["quantize_seconds"] = round(gptq_seconds, 3)
    progress.write("measure", variant="gptq", report=gptq)

    progress.write("stage", stage="rtn", message="round-to-nearest baseline at the same bits and group size")
    rtn = rtn_baseline(run, model_path, modules, held_out, dtype, group_size)
    progress.write("measure", variant="rtn", report=rtn)

    report = build_report(run, model_path, source=source, gptq=gptq, rtn=rtn, modules=modules,
                          calibration=len(calibration), held_out=len(held_out), group_size=group_size)
    (run.output_dir / REPORT_FILE).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return report


def build_report(run: QuantizeRun, model_path: Path, *, source: dict, gptq: dict, rtn: dict, modules: list[str],
                 calibration: int, held_out: int, group_size: int) -> dict[str, Any]:
    quantized_linear = linear_weight_bytes(run.output_dir, modules)
    increase_gptq = gptq["perplexity"] - source["perplexity"]
    increase_rtn = rtn["perplexity"] - source["perplexity"]
    return {
        "spec": run.spec.model_dump(mode="json"),
        # The group size used: the spec's, or chosen to divide every layer's input width (`auto`).
        "group_size": {"value": group_size, "from": "spec" if run.spec.group_size is not None else "auto"},
        "quantizer": _versions(),
        "samples": {"calibration": calibration, "held_out": held_out, "tokens_scored": source["tokens"]},
        "size": {
            "source_bytes": folder_bytes(model_path), "quantized_bytes": folder_bytes(run.output_dir),
            "linear_fp16_bytes": rtn["fp16_linear_bytes"], "linear_quantized_bytes": quantized_linear,
            "linear_compression": round(rtn["fp16_linear_bytes"] / quantized_linear, 3),
            "quantized_layers": len(modules),
        },
        "perplexity": {
            "source": source["perplexity"], "gptq": gptq["perplexity"], "rtn": rtn["perplexity"],
            "gptq_increase": increase_gptq, "rtn_increase": increase_rtn,
            # Below 1: GPTQ lost less than round-to-nearest (the GPTQ paper: 0.67 on LLaMA-7B, 4 bit).
            "gptq_to_rtn_increase_ratio": increase_gptq / increase_rtn if increase_rtn > 0 else None,
        },
        "memory": {"source": source["memory"], "gptq": gptq["memory"]},
        "seconds": {"gptq_quantize": gptq["quantize_seconds"], "rtn_quantize": rtn["quantize_seconds"],
                    "source_load": source["load_seconds"], "gptq_load": gptq["load_seconds"],
                    "source_generate": source["generate_seconds"], "gptq_generate": gptq["generate_seconds"]},
        "generation_check": {"tokens": gptq["generated_tokens"], "text": gptq["generated_text"],
                             "layer_type": gptq["layer_type"]},
    }


def _versions() -> dict[str, str]:
    import gptqmodel
    import torch
    import transformers

    return {"gptqmodel": gptqmodel.__version__, "torch": torch.__version__, "transformers": transformers.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, type=Path)
    args = parser.parse_args()
    exit_with_worker()
    run = load_run(args.config)
    progress = ProgressWriter(run.work_dir / PROGRESS_FILE, event_fields=EVENT_FIELDS)
    try:
        report = quantize(run, progress)
    except QuantizeInputError as exc:
        progress.write("error", code=exc.code, message=exc.message, param=exc.param)
        sys.exit(2)
    except Exception as exc:  # the worker reports it; the traceback stays in the log
        progress.write("error", code="quantization_failed", message=f"{type(exc).__name__}: {exc}", param=None)
        raise
    progress.write("done", output_path=str(run.output_dir), report=report)


if __name__ == "__main__":
    os.environ.setdefault("GPTQMODEL_CPU_WORKERS", str(max(2, os.cpu_count() or 2)))
    main()
