"""Round-to-nearest (RTN): the baseline GPTQ has to beat, on the same grid.

Each weight row is cut into groups of `group_size` input columns; each group gets the min/max grid
GPTQ uses (GPTQ's `Quantizer.find_params` with `perchannel`, no MSE search): the range always
includes 0; symmetric grids take the larger of |min| and max on both sides with the zero point in
the middle; scales are rounded to float16 as the GPTQ checkpoint format stores them. The weights are
replaced by their quantized values in place ("fake quantization"), so the same perplexity code
measures RTN, GPTQ and the unquantized model. The only difference left between RTN and GPTQ is how
each weight is rounded: GPTQ uses the calibration data to compensate each rounding error, RTN does not.
"""

from __future__ import annotations

import torch


def rtn_quantize_(weight: torch.Tensor, *, bits: int, group_size: int, symmetric: bool) -> torch.Tensor:
    """Quantize a [out, in] weight in place to `bits` on per-group grids; returns it."""
    out_features, in_features = weight.shape
    size = in_features if group_size == -1 else group_size
    if in_features % size:
        raise ValueError(f"group size {group_size} does not divide the layer's input width {in_features}")
    maxq = 2**bits - 1
    w = weight.detach().float().reshape(out_features, in_features // size, size)
    zeros = torch.zeros(w.shape[:2])
    xmin = torch.minimum(w.amin(dim=2), zeros)
    xmax = torch.maximum(w.amax(dim=2), zeros)
    if symmetric:
        xmax = torch.maximum(xmin.abs(), xmax)
        xmin = torch.where(xmin < 0, -xmax, xmin)
    empty = (xmin == 0) & (xmax == 0)
    xmin = torch.where(empty, -1.0, xmin)
    xmax = torch.where(empty, 1.0, xmax)
    scale = ((xmax - xmin) / maxq).half().float()
    zero = torch.full_like(scale, (maxq + 1) // 2) if symmetric else torch.round(-xmin / scale)
    q = torch.clamp(torch.round(w / scale[..., None]) + zero[..., None], 0, maxq)
    dequantized = (scale[..., None] * (q - zero[..., None])).reshape(out_features, in_features)
    with torch.no_grad():
        weight.copy_(dequantized.to(weight.dtype))
    return weight


def rtn_quantize_model_(model: torch.nn.Module, module_names: list[str], *, bits: int, group_size: int,
                        symmetric: bool) -> None:
    """RTN-quantize the weights of the named linear layers (the ones GPTQ quantized) in place."""
    modules = dict(model.named_modules())
    for name in module_names:
        rtn_quantize_(modules[name].weight, bits=bits, group_size=group_size, symmetric=symmetric)
