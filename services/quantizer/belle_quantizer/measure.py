"""What a quantization costs and gains: perplexity, weight bytes, folder size.

Perplexity is exp of the mean next-token negative log-likelihood of the assistant replies of the
held-out samples given everything before them (each sample a conversation rendered with the
model's chat template, at most `calibration_length` tokens): the text a chat model is trained to
write, not the prompts it only reads. One sample per forward pass, so no padding enters the sums. The same
function measures the unquantized model, the GPTQ model (reloaded from its folder) and the
round-to-nearest baseline.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

WEIGHT_SUFFIXES = (".safetensors", ".bin")
# The tensors a GPTQ layer stores in place of its weight.
GPTQ_TENSORS = ("qweight", "qzeros", "scales", "g_idx")


def perplexity(model: Any, samples: list[dict[str, list[int]]]) -> dict[str, float]:
    """exp(mean NLL) of the scored tokens of each sample (`{"ids", "scored"}`, see quantize.encode)."""
    import torch

    device = next(model.parameters()).device
    total_nll, total_tokens = 0.0, 0
    model.eval()
    with torch.inference_mode():
        for sample in samples:
            ids, scored = sample["ids"], sample["scored"]
            targets = torch.tensor(ids[1:], device=device)
            weights = torch.tensor(scored[1:], device=device, dtype=torch.float32)
            if len(ids) < 2 or not weights.any():
                continue
            logits = model(input_ids=torch.tensor([ids], device=device)).logits[0, :-1].float()
            nll = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
            total_nll += float((nll * weights).sum())
            total_tokens += int(weights.sum())
    if not total_tokens:
        raise ValueError("no held-out sample has a scored token to predict")
    mean = total_nll / total_tokens
    return {"perplexity": math.exp(mean), "nll": mean, "tokens": total_tokens}


def folder_bytes(path: str | Path) -> int:
    """Bytes of the weight files of a model folder (what a download of the model costs)."""
    return sum(entry.stat().st_size for entry in os.scandir(path)
               if entry.is_file() and entry.name.endswith(WEIGHT_SUFFIXES))


def quantized_modules(folder: str | Path) -> list[str]:
    """Names of the layers a GPTQ folder stores quantized (those with a `qweight`)."""
    return sorted(key[: -len(".qweight")] for key in _tensor_shapes(folder) if key.endswith(".qweight"))


def linear_weight_bytes(folder: str | Path, modules: list[str]) -> int:
    """Bytes the GPTQ tensors of `modules` take in the folder (packed weights, zeros, scales, indices)."""
    shapes = _tensor_shapes(folder)
    total = 0
    for module in modules:
        for part in GPTQ_TENSORS:
            shape, dtype_bytes = shapes.get(f"{module}.{part}", ((), 0))
            total += math.prod(shape) * dtype_bytes
    return total


def fp16_linear_bytes(model: Any, modules: list[str]) -> int:
    """Bytes the same layers' weights take in float16 (2 bytes per weight; biases are not quantized)."""
    found = dict(model.named_modules())
    return sum(2 * found[name].weight.numel() for name in modules)


_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def _tensor_shapes(folder: str | Path) -> dict[str, tuple[tuple[int, ...], int]]:
    """Shape and element size of every tensor in the folder's safetensors files, without loading them."""
    shapes: dict[str, tuple[tuple[int, ...], int]] = {}
    for path in sorted(Path(folder).glob("*.safetensors")):
        with open(path, "rb") as f:
            header_len = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(header_len))
        for key, info in header.items():
            if key != "__metadata__":
                shapes[key] = (tuple(info["shape"]), _DTYPE_BYTES[info["dtype"]])
    return shapes
