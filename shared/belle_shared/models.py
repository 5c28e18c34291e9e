"""The model registry: what a model folder holds, which layers LoRA can adapt, names and lookups.

No torch here: the gateway and the CLI import this. A model folder is read through fsspec (a local
folder or any fsspec URL) and only its small JSON files are opened; weights are never loaded.

Lookups see a team's own models and the shared base models (``team_id`` NULL); where a name is
both, the team's own wins. Data-access functions are keyword-only and never commit.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import fsspec
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from belle_shared.db.models import Model, ModelKind

# Short names of the linear layers of each architecture (``config.json``'s ``model_type``), as
# peft's ``target_modules`` matches them (the last component of a module's dotted name). lm_head is
# left out: it is the output layer, not a projection LoRA adapts. An architecture missing here is
# unknown: no LoRA default, and a request for named targets cannot be checked before training.
_DECODER_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
ARCHITECTURE_MODULES: dict[str, tuple[str, ...]] = {
    "llama": _DECODER_PROJECTIONS,
    "qwen2": _DECODER_PROJECTIONS,
    "mistral": _DECODER_PROJECTIONS,
    "bloom": ("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"),
}

# BELLE adapts the attention and the MLP projections: every linear layer above.
LORA_DEFAULT_TARGETS: dict[str, tuple[str, ...]] = dict(ARCHITECTURE_MODULES)

WEIGHT_SUFFIXES = (".safetensors", ".bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")

# Names a team may register: no colon (the separator of fine-tuned names), no whitespace, and
# not a UUID (ids and names share one lookup). A slash is allowed for hub-style "org/name".
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/+-]{0,199}$"
_NAME_RE = re.compile(MODEL_NAME_PATTERN)


def module_names(model_type: str | None) -> list[str] | None:
    """Linear-layer short names of an architecture; None when it is not in the table."""
    names = ARCHITECTURE_MODULES.get((model_type or "").lower())
    return list(names) if names is not None else None


def lora_default_targets(model_type: str | None) -> list[str] | None:
    names = LORA_DEFAULT_TARGETS.get((model_type or "").lower())
    return list(names) if names is not None else None


def check_model_name(name: str) -> str:
    """Return ``name`` if a team may register it; ValueError saying why not otherwise."""
    if not _NAME_RE.match(name or ""):
        raise ValueError(
            "a model name is 1-200 characters of letters, digits and . _ / + -, starting with a letter or "
            f"digit (no ':' or spaces); got {name!r}"
        )
    if _parse_uuid(name) is not None:
        raise ValueError(f"a model name cannot be a UUID (ids and names share one lookup); got {name!r}")
    if name.endswith("/lineage"):
        raise ValueError(f"a model name cannot end in '/lineage' (that path shows a model's lineage); got {name!r}")
    return name


def fine_tuned_model_name(base_name: str, team_name: str, suffix: str | None, job_id: uuid.UUID | str) -> str:
    """OpenAI's shape: ``ft:<base>:<team>:<suffix or "">:<first 8 hex of the job id>``.

    Fine-tuning a fine-tuned model names the original base, as OpenAI does, so names do not nest.
    """
    if base_name.startswith("ft:"):
        base_name = base_name.split(":")[1]
    job_hex = uuid.UUID(str(job_id)).hex[:8]
    return f"ft:{base_name}:{team_name}:{suffix or ''}:{job_hex}"


# ----------------------------------------------------------------------------------- folders


def inspect_model_folder(uri: str) -> dict[str, Any]:
    """Read a Hugging Face model folder's config and check it is complete; returns its details.

    Raises ValueError naming what is missing or unreadable. The details are what the registry
    stores in ``Model.details``: architecture and sizes, weight and tokenizer files, whether a chat
    template is present, and the LoRA-relevant ``module_names`` / ``lora_default_targets``.
    """
    try:
        fs, root = fsspec.core.url_to_fs(uri)
    except (ValueError, ImportError) as exc:  # unknown protocol, or its fsspec backend not installed
        raise ValueError(f"cannot open {uri!r}: {exc}") from None
    root = root.rstrip("/") or "/"
    if not fs.isdir(root):
        raise ValueError(f"{uri}: no such folder" if not fs.exists(root) else f"{uri}: not a folder")
    files = {entry.rstrip("/").rsplit("/", 1)[-1] for entry in fs.ls(root, detail=False)}

    if "config.json" not in files:
        if "adapter_config.json" in files:
            raise ValueError(f"{uri}: missing config.json (this is a LoRA adapter folder; register the merged model)")
        raise ValueError(f"{uri}: missing config.json")
    config = _read_json(fs, f"{root}/config.json", "config.json")
    weights = sorted(name for name in files if name.endswith(WEIGHT_SUFFIXES) and not name.startswith("training_args"))
    tokenizer = [name for name in TOKENIZER_FILES if name in files]
    missing = []
    if not weights:
        missing.append("weights (*.safetensors or *.bin)")
    if not tokenizer:
        missing.append("a tokenizer (tokenizer.json or tokenizer.model)")
    if missing:
        raise ValueError(f"{uri}: missing {' and '.join(missing)}")

    chat_template = "chat_template.jinja" in files
    if not chat_template and "tokenizer_config.json" in files:
        tokenizer_config = _read_json(fs, f"{root}/tokenizer_config.json", "tokenizer_config.json")
        chat_template = bool(tokenizer_config.get("chat_template"))

    model_type = config.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        raise ValueError(f"{uri}: config.json has no model_type")
    quantization = config.get("quantization_config")
    return {
        "model_type": model_type,
        "architectures": config.get("architectures") or [],
        "hidden_size": config.get("hidden_size", config.get("n_embed")),
        "num_layers": config.get("num_hidden_layers", config.get("n_layer")),
        "vocab_size": config.get("vocab_size"),
        # BLOOM (ALiBi) has no position limit in its config.
        "max_position_embeddings": config.get("max_position_embeddings"),
        "weights": weights,
        "tokenizer": tokenizer[0],
        "chat_template": chat_template,
        "module_names": module_names(model_type),
        "lora_default_targets": lora_default_targets(model_type),
        "linear_in_features": linear_in_features(config),
        "quantization_method": quantization.get("quant_method", "unknown") if isinstance(quantization, dict) else None,
    }


def linear_in_features(config: dict[str, Any]) -> list[int] | None:
    """Input widths of an architecture's decoder linear layers (what a GPTQ group size must divide),
    from its config; None for an architecture not known here."""
    model_type = (config.get("model_type") or "").lower()
    hidden = config.get("hidden_size", config.get("n_embed"))
    if not isinstance(hidden, int):
        return None
    if model_type in ("llama", "qwen2", "mistral"):
        heads, head_dim = config.get("num_attention_heads"), config.get("head_dim")
        attention = heads * head_dim if isinstance(heads, int) and isinstance(head_dim, int) else hidden
        return sorted({hidden, attention, config.get("intermediate_size", 4 * hidden)})
    if model_type == "bloom":
        return sorted({hidden, 4 * hidden})  # query_key_value/dense take hidden, dense_4h_to_h takes 4x
    return None


def _read_json(fs, path: str, name: str) -> dict:
    try:
        with fs.open(path, "rb") as f:
            value = json.loads(f.read().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{name} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{name} must hold a JSON object")
    return value


# ----------------------------------------------------------------------------------- lookups


def _parse_uuid(ref: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(ref))
    except ValueError:
        return None


def _visible(team_id: uuid.UUID | None):
    return or_(Model.team_id == team_id, Model.team_id.is_(None)) if team_id is not None else Model.team_id.is_(None)


def find_model(session: Session, team_id: uuid.UUID | None, ref: str) -> Model | None:
    """A model by id or by name among the team's and the shared ones (the team's own first).

    ``team_id`` None looks among the shared models only.
    """
    model_id = _parse_uuid(ref)
    if model_id is not None:
        return session.scalar(select(Model).where(Model.id == model_id, _visible(team_id)))
    # Own before shared, then the newest (names are unique per team, but nothing in the schema
    # enforces it: two racing registrations could both land).
    own_first = Model.team_id.is_(None)  # False (own) sorts before True (shared)
    return session.scalars(
        select(Model).where(Model.name == ref, _visible(team_id)).order_by(own_first, Model.created_at.desc()).limit(1)
    ).first()


def list_models(session: Session, *, team_id: uuid.UUID) -> list[Model]:
    """The team's models and the shared ones, newest first."""
    return list(session.scalars(select(Model).where(_visible(team_id)).order_by(Model.created_at.desc(), Model.name)))


def shared_base_models(session: Session) -> list[Model]:
    return list(session.scalars(select(Model).where(Model.team_id.is_(None), Model.kind == ModelKind.base)))


class ModelExists(Exception):
    """A model of that name is already visible where the new one would be."""


def check_name_free(session: Session, *, team_id: uuid.UUID | None, name: str) -> None:
    """ModelExists when a model of that name is visible where a new one of the team would be."""
    clash = session.scalar(select(Model.id).where(Model.name == name, _visible(team_id)).limit(1))
    if clash is not None:
        raise ModelExists(f"a model named {name!r} already exists")


def register_model(
    session: Session,
    *,
    team_id: uuid.UUID | None,
    name: str,
    uri: str,
    details: dict[str, Any] | None = None,
    kind: str = ModelKind.base,
) -> Model:
    """Add a model row (flushed, not committed). ``team_id`` None registers a shared model.

    ``details`` defaults to ``inspect_model_folder(uri)`` (ValueError if the folder is incomplete).
    A team's name must be free among its own and the shared models (a clash would make lookups by
    name depend on who registered first); a shared name among the shared ones. Names of base models
    follow ``check_model_name``; fine-tuned and quantized ones are the platform's own
    (``fine_tuned_model_name``).
    """
    if kind == ModelKind.base:
        check_model_name(name)
    check_name_free(session, team_id=team_id, name=name)
    if details is None:
        details = inspect_model_folder(uri)
    model = Model(id=uuid.uuid4(), team_id=team_id, name=name, kind=kind, uri=uri, details=details)
    session.add(model)
    session.flush()
    return model
