"""The model registry without the gateway: folder inspection (local and through fsspec), the
architecture table checked against real transformers models, fine-tuned names, and lookups by id or
name on a SQLite database (own models before shared ones, other teams' invisible)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import fsspec
import pytest

from belle_shared.db.engine import make_engine, make_session_factory
from belle_shared.db.migrate import upgrade
from belle_shared.db.models import Model, Team
from belle_shared.models import (
    ARCHITECTURE_MODULES,
    ModelExists,
    check_model_name,
    find_model,
    fine_tuned_model_name,
    inspect_model_folder,
    list_models,
    register_model,
)
from belle_shared.settings import Settings

LLAMA_CONFIG = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 64,
                "num_hidden_layers": 2, "vocab_size": 300, "max_position_embeddings": 512}


def make_folder(path: Path, config: dict | None = None, *, weights=("model.safetensors",),
                tokenizer=("tokenizer.json",), extra: dict[str, str] | None = None) -> Path:
    """A model folder with the files the registry looks at (the weights' content is never read)."""
    path.mkdir(parents=True, exist_ok=True)
    if config is not None:
        (path / "config.json").write_text(json.dumps(config))
    for name in (*weights, *tokenizer):
        (path / name).write_bytes(b"x")
    for name, text in (extra or {}).items():
        (path / name).write_text(text)
    return path


# ----------------------------------------------------------------------------------- inspection


def test_inspects_a_complete_llama_folder(tmp_path):
    folder = make_folder(tmp_path / "m", LLAMA_CONFIG, weights=("model-00001-of-00002.safetensors",
                                                                 "model-00002-of-00002.safetensors"),
                         extra={"chat_template.jinja": "{{ messages }}"})
    details = inspect_model_folder(str(folder))
    assert details["model_type"] == "llama"
    assert details["architectures"] == ["LlamaForCausalLM"]
    assert (details["hidden_size"], details["num_layers"], details["vocab_size"]) == (64, 2, 300)
    assert details["max_position_embeddings"] == 512
    assert details["weights"] == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    assert details["tokenizer"] == "tokenizer.json"
    assert details["chat_template"] is True
    assert details["module_names"] == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert details["lora_default_targets"] == details["module_names"]
    json.dumps(details)  # stored in a JSON column


def test_bloom_sizes_come_from_its_own_config_keys(tmp_path):
    config = {"model_type": "bloom", "n_embed": 32, "n_layer": 3, "vocab_size": 250}
    folder = make_folder(tmp_path / "b", config, weights=("pytorch_model.bin",), tokenizer=("tokenizer.model",))
    details = inspect_model_folder(str(folder))
    assert (details["hidden_size"], details["num_layers"]) == (32, 3)
    assert details["max_position_embeddings"] is None
    assert details["tokenizer"] == "tokenizer.model"
    assert details["chat_template"] is False
    assert details["module_names"] == ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"]


def test_chat_template_in_tokenizer_config_counts(tmp_path):
    folder = make_folder(tmp_path / "m", LLAMA_CONFIG,
                         extra={"tokenizer_config.json": json.dumps({"chat_template": "{{ x }}"})})
    assert inspect_model_folder(str(folder))["chat_template"] is True
    (folder / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 10}))
    assert inspect_model_folder(str(folder))["chat_template"] is False


def test_unknown_architecture_has_no_module_table(tmp_path):
    folder = make_folder(tmp_path / "m", {**LLAMA_CONFIG, "model_type": "gpt_neox"})
    details = inspect_model_folder(str(folder))
    assert details["module_names"] is None and details["lora_default_targets"] is None


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"config": None}, "missing config.json"),
        ({"weights": ()}, "missing weights (*.safetensors or *.bin)"),
        ({"tokenizer": ()}, "missing a tokenizer (tokenizer.json or tokenizer.model)"),
        ({"weights": (), "tokenizer": ()}, "missing weights (*.safetensors or *.bin) and a tokenizer"),
        ({"config": {"hidden_size": 8}}, "config.json has no model_type"),
    ],
)
def test_incomplete_folders_are_refused_naming_what_is_missing(tmp_path, kwargs, expected):
    kwargs = {"config": LLAMA_CONFIG, **kwargs}
    folder = make_folder(tmp_path / "m", kwargs.pop("config"), **kwargs)
    with pytest.raises(ValueError, match=None) as info:
        inspect_model_folder(str(folder))
    assert expected in str(info.value)


def test_other_unusable_folders(tmp_path):
    with pytest.raises(ValueError, match="no such folder"):
        inspect_model_folder(str(tmp_path / "nope"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        inspect_model_folder(str(tmp_path / "file"))
    adapter = make_folder(tmp_path / "adapter", None, weights=("adapter_model.safetensors",),
                          extra={"adapter_config.json": "{}"})
    with pytest.raises(ValueError, match="LoRA adapter"):
        inspect_model_folder(str(adapter))
    broken = make_folder(tmp_path / "broken", LLAMA_CONFIG)
    (broken / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json is not valid JSON"):
        inspect_model_folder(str(broken))
    # A checkpoint's training_args.bin is not a model's weights.
    checkpoint = make_folder(tmp_path / "ckpt", LLAMA_CONFIG, weights=("training_args.bin",))
    with pytest.raises(ValueError, match="missing weights"):
        inspect_model_folder(str(checkpoint))


def test_reads_folders_through_fsspec_urls():
    fs = fsspec.filesystem("memory")
    root = f"/belle-test-{uuid.uuid4().hex}/model"
    fs.pipe({f"{root}/config.json": json.dumps(LLAMA_CONFIG).encode(), f"{root}/model.safetensors": b"x",
             f"{root}/tokenizer.json": b"{}"})
    try:
        details = inspect_model_folder(f"memory://{root}")
        assert details["model_type"] == "llama" and details["weights"] == ["model.safetensors"]
        fs.rm(f"{root}/tokenizer.json")
        with pytest.raises(ValueError, match="missing a tokenizer"):
            inspect_model_folder(f"memory://{root}")
    finally:
        fs.rm(root, recursive=True)
    with pytest.raises(ValueError, match="cannot open"):
        inspect_model_folder("nosuchprotocol://x/y")


# --------------------------------------------------------------------- the architecture table


def _linear_names(model) -> set[str]:
    import torch

    return {name.rsplit(".", 1)[-1] for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and name != "lm_head"}


@pytest.mark.parametrize("model_type", sorted(ARCHITECTURE_MODULES))
def test_table_lists_exactly_the_linear_layers_of_each_architecture(model_type):
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    config = transformers.AutoConfig.for_model(model_type, vocab_size=64, hidden_size=32, intermediate_size=64,
                                               num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2,
                                               n_layer=1, n_head=4)
    model = transformers.AutoModelForCausalLM.from_config(config)
    assert _linear_names(model) == set(ARCHITECTURE_MODULES[model_type])


def test_a_real_tiny_model_folder_inspects_cleanly(tmp_path):
    tiny = pytest.importorskip("belle_trainer.tiny")
    folder = tiny.init_tiny_model(tmp_path / "tiny", arch="llama", hidden_size=32, num_layers=1, num_heads=2,
                                  vocab_size=512)
    details = inspect_model_folder(str(folder))
    assert details["model_type"] == "llama" and details["num_layers"] == 1 and details["hidden_size"] == 32
    assert details["weights"] == ["model.safetensors"]
    assert details["chat_template"] is True  # BELLE's template is saved with the tokenizer
    assert details["vocab_size"] == 512


# ------------------------------------------------------------------------------------- names


def test_fine_tuned_model_name_follows_openai():
    job_id = uuid.UUID("7f3a9c12-0000-4000-8000-000000000000")
    assert fine_tuned_model_name("belle-tiny-llama", "alpha", "chat", job_id) == "ft:belle-tiny-llama:alpha:chat:7f3a9c12"
    assert fine_tuned_model_name("base", "alpha", None, str(job_id)) == "ft:base:alpha::7f3a9c12"
    # Training a fine-tuned model again names the original base: names never nest.
    assert fine_tuned_model_name("ft:base:alpha::7f3a9c12", "alpha", "v2", job_id) == "ft:base:alpha:v2:7f3a9c12"


@pytest.mark.parametrize("name", ["belle-tiny-llama", "Qwen/Qwen2-0.5B", "llama_7b.v1", "m+lora"])
def test_good_model_names(name):
    assert check_model_name(name) == name


@pytest.mark.parametrize("name", ["", "ft:x:y::1", "has space", "-leading", "x" * 201, "3f2b8c1e-5d4a-4e6f-9a7b-2c1d0e9f8a7b"])  # a UUID: names are never ids
def test_bad_model_names(name):
    with pytest.raises(ValueError):
        check_model_name(name)


# ------------------------------------------------------------------------------------ lookups


@pytest.fixture
def db(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    upgrade(settings)
    engine = make_engine(settings)
    yield make_session_factory(engine)
    engine.dispose()


def test_lookups_by_id_and_name_own_before_shared_and_never_another_teams(db, tmp_path):
    folder = str(make_folder(tmp_path / "m", LLAMA_CONFIG))
    with db() as session:
        alpha, beta = Team(name="alpha"), Team(name="beta")
        session.add_all([alpha, beta])
        session.flush()
        shared = register_model(session, team_id=None, name="base", uri=folder)
        own = register_model(session, team_id=alpha.id, name="mine", uri=folder)
        other = register_model(session, team_id=beta.id, name="theirs", uri=folder)
        # The platform records fine-tuned models under names teams could not register.
        tuned = register_model(session, team_id=alpha.id, name="ft:base:alpha::12345678", uri=folder,
                               kind="fine_tuned", details={"module_names": ["q_proj"]})
        session.commit()
        ids = {m.id for m in (shared, own, other, tuned)}

    with db() as session:
        assert find_model(session, alpha.id, "base").id == shared.id
        assert find_model(session, alpha.id, str(shared.id)).id == shared.id
        assert find_model(session, alpha.id, "mine").id == own.id
        assert find_model(session, alpha.id, str(own.id)).id == own.id
        assert find_model(session, alpha.id, "ft:base:alpha::12345678").details == {"module_names": ["q_proj"]}
        assert find_model(session, alpha.id, "theirs") is None
        assert find_model(session, alpha.id, str(other.id)) is None
        assert find_model(session, None, "mine") is None and find_model(session, None, "base").id == shared.id
        assert find_model(session, alpha.id, "nothing") is None
        assert {m.name for m in list_models(session, team_id=alpha.id)} == {"base", "mine", "ft:base:alpha::12345678"}
        assert {m.name for m in list_models(session, team_id=beta.id)} == {"base", "theirs"}
        assert len(ids) == 4

        # A team model that shares a name with a later shared one is found first by its team.
        session.add(Model(team_id=None, name="mine", kind="base", uri=folder))
        session.commit()
        assert find_model(session, alpha.id, "mine").id == own.id
        assert find_model(session, beta.id, "mine").team_id is None


def test_duplicate_names_are_refused_where_they_would_clash(db, tmp_path):
    folder = str(make_folder(tmp_path / "m", LLAMA_CONFIG))
    with db() as session:
        alpha, beta = Team(name="alpha"), Team(name="beta")
        session.add_all([alpha, beta])
        session.flush()
        register_model(session, team_id=None, name="base", uri=folder)
        register_model(session, team_id=alpha.id, name="mine", uri=folder)
        with pytest.raises(ModelExists):
            register_model(session, team_id=alpha.id, name="base", uri=folder)  # shadows the shared one
        with pytest.raises(ModelExists):
            register_model(session, team_id=alpha.id, name="mine", uri=folder)
        with pytest.raises(ModelExists):
            register_model(session, team_id=None, name="base", uri=folder)
        register_model(session, team_id=beta.id, name="mine", uri=folder)  # another team's name is free
        with pytest.raises(ValueError, match="missing config.json"):
            register_model(session, team_id=alpha.id, name="empty", uri=str(tmp_path))
        with pytest.raises(ValueError, match="no ':'"):
            register_model(session, team_id=alpha.id, name="a:b", uri=folder)
