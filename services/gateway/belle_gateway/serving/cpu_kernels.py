"""Which of the batching engine's CPU fast paths are on: the settings `chat_onednn_linear` and
`chat_native_attention`, carried as one value from the gateway's settings to wherever the engine builds
its batch (a thread of the gateway, or the engine process). Torch-free: built before any model loads."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CpuKernels:
    onednn_linear: bool = True  # float32 linear layers on oneDNN, weights reordered once (`cpu_linear`)
    native_attention: bool = True  # decoding rows' attention in one compiled call per layer (`native_attention`)
