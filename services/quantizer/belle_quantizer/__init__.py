"""BELLE quantizer worker: GPTQ 4/8-bit quantization (queue: quantize). Not implemented yet: see the service's issue."""
