"""Chat serving: OpenAI-shaped protocol models, the backends that answer (the in-process batching
engine, a proxy to any OpenAI-compatible server) and the service that routes a request to one.

Nothing here imports torch at module level: the engine's torch code lives in `engine` and is only
imported when the first model is loaded (the gateway image without the `engine` extra has no torch).
"""
