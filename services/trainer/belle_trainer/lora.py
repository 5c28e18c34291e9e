"""LoRA with peft: BELLE's adapters (r=16, alpha=32, dropout 0.05 on the attention and MLP
projections), and merging a saved adapter into its base model for `RUN/final/`.

The default target modules are the projections of each architecture, by the module names its
transformers implementation uses; an architecture not listed needs `spec.lora.target_modules`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

from belle_trainer.errors import BadOptionError

log = logging.getLogger(__name__)

_LLAMA_STYLE = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
DEFAULT_TARGET_MODULES: dict[str, list[str]] = {
    "llama": _LLAMA_STYLE,
    "qwen2": _LLAMA_STYLE,
    "mistral": _LLAMA_STYLE,
    # BLOOM fuses q, k and v into one projection; its MLP is dense_h_to_4h / dense_4h_to_h.
    "bloom": ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"],
}


def target_modules(model_type: str, explicit: list[str] | None) -> list[str]:
    """The spec's target modules, else the architecture's default; BadOptionError if neither."""
    if explicit:
        return list(explicit)
    try:
        return list(DEFAULT_TARGET_MODULES[model_type])
    except KeyError:
        known = ", ".join(sorted(DEFAULT_TARGET_MODULES))
        raise BadOptionError(
            f"no default LoRA target modules for model type {model_type!r} (known: {known}); "
            "set lora.target_modules") from None


def apply_lora(model: Any, *, r: int, alpha: int, dropout: float, targets: list[str] | None,
               trainable_tokens: Sequence[int] | None = None) -> Any:
    """Wrap `model` in a peft LoRA model; only the adapters are trainable, and the rows of
    `trainable_tokens` (new tokens of a grown vocabulary) in the input embeddings and, when it is not
    tied to them, the output layer (peft's trainable tokens: only those rows, not the whole matrix)."""
    from peft import LoraConfig, TaskType, get_peft_model

    modules = target_modules(model.config.model_type, targets)
    tokens = None
    if trainable_tokens:
        ids = list(trainable_tokens)
        tied = getattr(model.config, "tie_word_embeddings", False)
        tokens = {"embed_tokens": ids} if tied else {"embed_tokens": ids, "lm_head": ids}
    config = LoraConfig(task_type=TaskType.CAUSAL_LM, r=r, lora_alpha=alpha, lora_dropout=dropout,
                        target_modules=modules, trainable_token_indices=tokens)
    try:
        return get_peft_model(model, config)
    except ValueError as exc:
        # peft's message names the modules it could not find in the model.
        raise BadOptionError(f"LoRA target modules {modules}: {exc}") from exc


def merge_adapter(base_model_path: str | Path, adapter_dir: str | Path, out_dir: str | Path) -> Path:
    """Load the base model, apply the saved adapter, merge it into the weights and save a plain
    model folder (no peft needed to load it). Runs in one process, outside any ZeRO-3 context."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_model_path, dtype="auto")
    dtype = base.dtype
    # Merge in float32 (W + B @ A x scale), then store in the base model's dtype.
    model = PeftModel.from_pretrained(base.to(torch.float32), adapter_dir)
    merged = model.merge_and_unload().to(dtype)
    out = Path(out_dir)
    merged.save_pretrained(out)
    return out
