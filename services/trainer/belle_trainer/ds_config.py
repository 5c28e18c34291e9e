"""The DeepSpeed config of a run, built from the spec (`zero_stage`, `offload`).

Batch sizes, gradient accumulation, clipping, precision and (when present) optimizer settings are
"auto": the HF Trainer fills them from its TrainingArguments, so the spec's hyper-parameters have
one source. There is no "scheduler" section: the Trainer's own schedulers (cosine, linear, constant,
with warmup) are what the spec names.

The optimizer: without a DeepSpeed "optimizer" section the Trainer builds torch's AdamW and
DeepSpeed wraps it, which works with every ZeRO stage and needs no compiled op. DeepSpeed's own
AdamW is worth its one-time JIT compile (about 25 s with g++) only where it is much faster: with
optimizer offload on a GPU machine, where it is the vectorised CPU Adam. On a CPU-only machine the
"offloaded" optimizer already runs on the CPU, so torch's AdamW stays, and DeepSpeed is told that
this is intended (`zero_force_ds_cpu_optimizer: false`), else it refuses a client optimizer with
offload.

Standard library only.
"""

from __future__ import annotations

from typing import Any

# DeepSpeed prints a line of timings every `steps_per_print` steps; the run's progress is in
# progress.jsonl, so keep its log quiet.
QUIET_STEPS = 1_000_000


def uses_deepspeed_optimizer(offload: str, *, on_gpu: bool) -> bool:
    """True where the config names DeepSpeed's AdamW (CPU Adam with offload on a GPU machine)."""
    return on_gpu and offload != "none"


def build_ds_config(zero_stage: int, offload: str = "none", *, on_gpu: bool = False) -> dict[str, Any]:
    """A DeepSpeed config dict for `TrainingArguments(deepspeed=...)`.

    zero_stage: 0-3. offload: none | optimizer (stages 1-3) | optimizer_and_parameters (stage 3)."""
    if zero_stage not in (0, 1, 2, 3):
        raise ValueError(f"zero_stage must be 0, 1, 2 or 3, not {zero_stage!r}")
    if offload not in ("none", "optimizer", "optimizer_and_parameters"):
        raise ValueError(f"unknown offload {offload!r}")
    if offload == "optimizer" and zero_stage == 0:
        raise ValueError("offload=optimizer needs ZeRO stage 1, 2 or 3")
    if offload == "optimizer_and_parameters" and zero_stage != 3:
        raise ValueError("offload=optimizer_and_parameters needs ZeRO stage 3")

    zero: dict[str, Any] = {"stage": zero_stage}
    if zero_stage > 0:
        zero.update({
            "contiguous_gradients": True,
            # Overlapping the reduction with the backward pass needs CUDA streams; on CPU it only
            # adds copies.
            "overlap_comm": on_gpu,
            "reduce_bucket_size": "auto",
        })
    if offload != "none":
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": on_gpu}
    if offload == "optimizer_and_parameters":
        zero["offload_param"] = {"device": "cpu", "pin_memory": on_gpu}
    if zero_stage == 3:
        zero.update({
            "stage3_prefetch_bucket_size": "auto",
            "stage3_param_persistence_threshold": "auto",
            # Without it `save_model` writes no weights under ZeRO-3 (each rank holds a shard);
            # with it the shards are gathered into one normal save_pretrained folder.
            "stage3_gather_16bit_weights_on_model_save": True,
        })

    config: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": "auto",
        "train_batch_size": "auto",
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "bf16": {"enabled": "auto"},
        "fp16": {"enabled": "auto"},
        "zero_optimization": zero,
        "steps_per_print": QUIET_STEPS,
        "wall_clock_breakdown": False,
    }
    if uses_deepspeed_optimizer(offload, on_gpu=on_gpu):
        config["optimizer"] = {"type": "AdamW", "params": {
            "lr": "auto", "betas": "auto", "eps": "auto", "weight_decay": "auto"}}
    elif offload != "none":
        config["zero_force_ds_cpu_optimizer"] = False
    return config
