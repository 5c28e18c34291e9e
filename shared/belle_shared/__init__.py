"""BELLE shared library: settings, database, job contract, queue, artifact store.

A library only (never run on its own) and free of torch/transformers, so the gateway stays small.
"""
