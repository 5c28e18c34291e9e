"""Gateway settings: the shared ones plus HTTP and upload limits and where models may come from."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from belle_shared.settings import CommaList, Settings
from belle_shared.job_types import job_type_names


class ProxyRoute(BaseModel):
    """Where chat for one model goes instead of the in-process engine (vLLM or any OpenAI server)."""

    model_config = ConfigDict(extra="forbid")
    url: str = Field(description="Base URL of the OpenAI-compatible API, e.g. http://vllm:8000/v1.")
    model: str | None = Field(None, description="The model name the upstream server knows (default: the same).")
    api_key: str | None = Field(None, description="Bearer key the upstream server wants, if any.")
    timeout: float = Field(600.0, gt=0, description="Seconds to wait for the upstream server.")


class GatewaySettings(Settings):
    host: str = Field("127.0.0.1", description="Address the gateway listens on.")
    port: int = Field(8000, description="Port the gateway listens on.")
    max_upload_bytes: int = Field(512 * 1024 * 1024, ge=1, description="Largest accepted upload, in bytes "
                                  "(a larger one is refused with a 413).")
    enabled_job_types: CommaList = Field(
        default_factory=lambda: list(job_type_names()),
        description="Job types this deployment accepts (comma-separated in the environment). Others are "
        "refused with a 400 instead of waiting forever for a worker that is not deployed. Unset: every "
        "registered type (the built-in ones and those of `BELLE_JOB_TYPE_MODULES`).",
    )
    sse_poll_interval: float = Field(0.5, gt=0, description="Seconds between an event stream's checks for new "
                                     "events.")
    run_sweeper: bool = Field(True, description="Run the job sweeper inside the gateway process.")
    chat_engine: Literal["batched", "sequential", "off"] = Field(
        "batched", description="The in-process chat engine: `batched` (requests join and leave a running "
        "batch), `sequential` (one request at a time with transformers' generate: the reference), or `off` "
        "(no local models: chat only through proxy routes; the gateway image without torch).",
    )
    chat_engine_process: bool = Field(
        True, description="Run the `batched` engine of each loaded model in a process of its own (the gateway "
        "keeps the tokenizer and the streaming). In the gateway's process the engine and the HTTP server take "
        "turns on Python's interpreter lock; apart, both run at once (docs/benchmarks.md). false: a thread of "
        "the gateway's process, as `sequential` always is.")
    chat_max_resident_models: int = Field(2, ge=1, description="Models kept loaded at once; the least "
                                          "recently used idle one is unloaded to make room.")
    chat_max_batch_size: int = Field(16, ge=1, description="Most requests decoded together per model.")
    chat_torch_threads: int = Field(0, ge=0, description="torch's intra-op threads for the engine "
                                    "(`torch.set_num_threads`; process-wide). 0: torch's default, one per core. "
                                    "Fewer leave cores to the HTTP server; on a busy machine torch's spinning "
                                    "threads can be many times slower than one.")
    chat_onednn_linear: bool = Field(
        True, description="On a CPU, run the `batched` engine's float32 linear layers on oneDNN with their weights "
        "reordered once (`serving/cpu_linear.py`): 2-2.7x faster products on AMD CPUs, where PyTorch's default "
        "(MKL) does not use AVX-512. false: PyTorch's default. The `sequential` engine never changes the model.")
    chat_native_attention: bool = Field(
        True, description="On a CPU, run the attention of the `batched` engine's decoding rows in one compiled call "
        "per layer (`serving/native_attention.py`) instead of one PyTorch call per row. Compiled on first use with "
        "the machine's C compiler ($CC, else cc) into ~/.cache/belle/native; without one, PyTorch's attention "
        "is kept (logged). false: always PyTorch's.")
    chat_default_max_tokens: int = Field(512, ge=1, description="Reply length when a request sets no max_tokens "
                                         "(never more than the model's context leaves).")
    chat_proxy_routes: dict[str, ProxyRoute] = Field(
        default_factory=dict,
        description='Models served by another OpenAI-compatible server, as JSON: {"MODEL": {"url": '
        '"http://vllm:8000/v1", "model": "UPSTREAM-NAME"}}. The key is a registered model name, or "*" for every '
        "model without a route of its own. The gateway still checks the key and the team's access first.",
    )

    @field_validator("enabled_job_types")
    @classmethod
    def _known(cls, value):
        known = job_type_names()
        unknown = set(value) - set(known)
        if unknown:
            raise ValueError(f"unknown job types {sorted(unknown)}; known: {list(known)}")
        return value
