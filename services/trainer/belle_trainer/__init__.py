"""BELLE trainer worker: full and LoRA fine-tuning with DeepSpeed (queue: train). Not implemented yet: see the service's issue."""
