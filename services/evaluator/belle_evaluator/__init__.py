"""BELLE evaluator worker: per-class LLM-judge scoring and reference metrics (queue: eval). Not implemented yet: see the service's issue."""
