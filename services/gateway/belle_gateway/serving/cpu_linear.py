"""Linear layers on oneDNN with their weights reordered once, for the batching engine on a CPU.

PyTorch runs a float32 `nn.Linear` on the CPU through MKL's sgemm. MKL takes its AVX2 code on AMD
processors even where they have AVX-512: on the AMD EPYC (Zen 5) machine of docs/benchmarks.md it
reached about 100 GFLOP/s on one core. oneDNN, which PyTorch also ships, uses the widest instructions
of any x86 CPU. With the weight reordered once into oneDNN's blocked layout (as PyTorch's own
compiler does for frozen CPU models), the engine's products took 2-2.7x less time there at 16 rows
or more, and a whole one-row decoding step took no longer. Those products are the engine's largest
cost. On Intel CPUs, where MKL already uses AVX-512, expect less.

The results are float32 products like MKL's; only the order of the additions differs, which moves the
last bits as much as MKL's own products over 16 rows differ from its one-row products (what `generate`
runs). Greedy replies therefore still equal `generate`'s unless two logits tie to within that rounding.

Only plain float32 `nn.Linear` modules on the CPU are replaced (a GPTQ model's quantized layers keep
their own kernels); anything else, or a PyTorch build without these oneDNN operators, keeps PyTorch's
default. The reordered weight replaces the layer's own (no second copy), except where a tied
embedding still holds the original.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)


class OneDNNLinear(nn.Module):
    """An `nn.Linear` for inference whose weight lives in oneDNN's layout, reordered for `rows` rows
    (a hint for the layout: any number of rows works)."""

    def __init__(self, linear: nn.Linear, rows: int):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        # A oneDNN tensor, opaque to the rest of PyTorch: only `_linear_pointwise` reads it.
        self.packed = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), rows)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def onednn_available() -> bool:
    return (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
            and hasattr(torch.ops.mkldnn, "_reorder_linear_weight"))


def use_onednn_linears(model: Any, rows: int) -> int:
    """Replace the model's float32 CPU `nn.Linear` layers by `OneDNNLinear`; how many were replaced
    (0 when oneDNN cannot serve them here: the model then runs as loaded)."""
    targets = [(parent, name, child) for parent in model.modules() for name, child in parent.named_children()
               if type(child) is nn.Linear and child.weight.device.type == "cpu"
               and child.weight.dtype == torch.float32]
    if not targets or not onednn_available():
        return 0
    try:
        _check(targets[0][2], rows)
    except Exception as exc:  # an unusual build or CPU: keep PyTorch's default products
        log.warning("oneDNN linear layers unavailable here, keeping PyTorch's default: %s", exc)
        return 0
    for parent, name, child in targets:
        setattr(parent, name, OneDNNLinear(child, rows))
    return len(targets)


def _check(linear: nn.Linear, rows: int) -> None:
    """A reordered copy of `linear` computes what it does (to float32 rounding), or raise."""
    x = torch.randn(rows, linear.in_features, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected, got = F.linear(x, linear.weight, linear.bias), OneDNNLinear(linear, rows)(x)
    if not torch.allclose(got, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max())):
        raise RuntimeError(f"oneDNN's product differs from PyTorch's by {float((got - expected).abs().max()):.3g}")
