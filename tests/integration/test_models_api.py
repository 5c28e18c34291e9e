"""The model registry over HTTP (`/v1/models`), from the CLI, and the embedded default's tiny model.

A gateway on this run's PostgreSQL/Redis serves on a real port (the CLI and the `openai` SDK need
one); model folders are small fakes with the files the registry checks, except in the embedded
tests, which build the real tiny model (`belle up` serving it is in test_embedded.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from belle_shared.db.models import Model
from belle_shared.models import register_model
from conftest import settings_env
from helpers import LiveGateway

pytestmark = pytest.mark.integration

BELLE = [sys.executable, "-m", "belle_cli.main"]
LLAMA_CONFIG = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 64,
                "num_hidden_layers": 2, "vocab_size": 300, "max_position_embeddings": 512}


def make_folder(path: Path, config: dict | None = None, *, weights=("model.safetensors",),
                tokenizer=("tokenizer.json",)) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    if config is not None:
        (path / "config.json").write_text(json.dumps(config))
    for name in (*weights, *tokenizer):
        (path / name).write_bytes(b"x")
    return path


@pytest.fixture(scope="module")
def model_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("model-root")


@pytest.fixture(scope="module")
def live(settings, model_root):
    from belle_gateway.settings import GatewaySettings

    gateway_settings = GatewaySettings(**{**settings.model_dump(), "model_roots": [str(model_root)],
                                          "run_sweeper": False})
    gateway = LiveGateway(gateway_settings)
    with httpx.Client(base_url=gateway.url, timeout=30) as http:
        yield http, gateway_settings
    gateway.stop()


@pytest.fixture(scope="module")
def shared_model(session_factory, model_root) -> Model:
    """A shared base model (as an operator registers it), named uniquely for this run."""
    folder = make_folder(model_root / "shared-base", LLAMA_CONFIG)
    with session_factory() as session:
        model = register_model(session, team_id=None, name=f"shared-{uuid.uuid4().hex[:8]}", uri=str(folder))
        session.commit()
    return model


def _error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    return response.json()["error"]


def test_list_shows_the_teams_and_the_shared_models_in_openais_shape(live, team, shared_model, model_root):
    http, _ = live
    created, headers = team
    make_folder(model_root / "mine", LLAMA_CONFIG)
    registered = http.post("/v1/models", headers=headers, json={"name": "mine", "path": str(model_root / "mine")})
    assert registered.status_code == 201, registered.text

    body = http.get("/v1/models", headers=headers).json()
    assert body["object"] == "list"
    by_name = {m["id"]: m for m in body["data"]}
    assert {"mine", shared_model.name} <= set(by_name)
    mine, shared = by_name["mine"], by_name[shared_model.name]
    assert mine["object"] == "model" and isinstance(mine["created"], int)
    assert abs(mine["created"] - time.time()) < 600
    assert mine["owned_by"] == created.name and shared["owned_by"] == "belle"
    assert shared["belle_id"] == str(shared_model.id) and shared["kind"] == "base" and shared["parent"] is None
    assert mine["details"]["model_type"] == "llama" and mine["details"]["module_names"][0] == "q_proj"

    # By name and by id.
    assert http.get("/v1/models/mine", headers=headers).json()["belle_id"] == mine["belle_id"]
    assert http.get(f"/v1/models/{mine['belle_id']}", headers=headers).json()["id"] == "mine"
    assert _error(http.get("/v1/models/nothing-here", headers=headers), 404)["param"] == "model"


def test_registration_paths_relative_symlinks_and_the_teams_artifacts(live, team, model_root):
    http, settings = live
    created, headers = team
    tag = uuid.uuid4().hex[:6]
    make_folder(model_root / f"rel-{tag}", LLAMA_CONFIG)
    # Relative to a root.
    response = http.post("/v1/models", headers=headers, json={"name": f"rel-{tag}", "path": f"rel-{tag}"})
    assert response.status_code == 201, response.text
    assert http.get(f"/v1/models/rel-{tag}", headers=headers).json()["details"]["weights"] == ["model.safetensors"]

    # The team's own folder in the artifact store.
    own = make_folder(Path(settings.resolved_artifact_root) / "teams" / str(created.id) / "models" / tag, LLAMA_CONFIG)
    response = http.post("/v1/models", headers=headers, json={"name": f"art-{tag}", "path": str(own)})
    assert response.status_code == 201, response.text

    # Another team's folder in the artifact store is not.
    theirs = make_folder(Path(settings.resolved_artifact_root) / "teams" / str(uuid.uuid4()) / "m", LLAMA_CONFIG)
    error = _error(http.post("/v1/models", headers=headers, json={"name": f"x-{tag}", "path": str(theirs)}), 400)
    assert (error["param"], error["code"]) == ("path", "path_not_allowed")


def test_paths_outside_the_roots_are_refused(live, team, model_root, tmp_path):
    http, _ = live
    _, headers = team
    outside = make_folder(tmp_path / "outside", LLAMA_CONFIG)
    (model_root / "escape").mkdir(exist_ok=True)
    link = model_root / f"link-{uuid.uuid4().hex[:6]}"
    link.symlink_to(outside, target_is_directory=True)
    for path in (str(outside), str(model_root / ".." / outside.name), str(link), "../../../etc",
                 f"file://{outside}", "s3://bucket/teams/x/model", "/"):
        error = _error(http.post("/v1/models", headers=headers, json={"name": "nope", "path": path}), 400)
        assert (error["param"], error["code"]) == ("path", "path_not_allowed"), (path, error)
    assert "nope" not in {m["id"] for m in http.get("/v1/models", headers=headers).json()["data"]}


def test_a_root_that_contains_the_artifact_store_still_keeps_other_teams_out(tmp_path):
    from belle_gateway.errors import APIError
    from belle_gateway.routers.models import resolve_model_path

    store = tmp_path / "data" / "artifacts"
    own, other = store / "teams" / "t1" / "m", store / "teams" / "t2" / "m"
    for folder in (own, other, tmp_path / "data" / "models" / "m"):
        folder.mkdir(parents=True)
    kwargs = {"roots": [tmp_path / "data"], "team_prefix": f"{store}/teams/t1", "store_root": f"{store}/"}
    assert resolve_model_path(str(own), **kwargs) == str(own)
    assert resolve_model_path("models/m", **kwargs) == str(tmp_path / "data" / "models" / "m")
    for path in (str(other), "artifacts/teams/t2/m", str(own / ".." / ".." / "t2" / "m")):
        with pytest.raises(APIError) as info:
            resolve_model_path(path, **kwargs)
        assert info.value.param == "path" and info.value.code == "path_not_allowed"


def test_incomplete_folders_bad_names_and_duplicates(live, team, model_root, shared_model):
    http, _ = live
    _, headers = team
    tag = uuid.uuid4().hex[:6]
    no_weights = make_folder(model_root / f"noweights-{tag}", LLAMA_CONFIG, weights=())
    error = _error(http.post("/v1/models", headers=headers, json={"name": "a", "path": str(no_weights)}), 400)
    assert error["param"] == "path" and error["code"] == "invalid_model"
    assert "missing weights (*.safetensors or *.bin)" in error["message"]
    no_config = make_folder(model_root / f"noconfig-{tag}", None)
    assert "missing config.json" in _error(http.post("/v1/models", headers=headers,
                                                     json={"name": "a", "path": str(no_config)}), 400)["message"]
    missing = _error(http.post("/v1/models", headers=headers, json={"name": "a", "path": f"absent-{tag}"}), 400)
    assert missing["param"] == "path" and "no such folder" in missing["message"]

    good = make_folder(model_root / f"good-{tag}", LLAMA_CONFIG)
    for name in ("ft:x:y::z", "has space", str(uuid.uuid4())):
        error = _error(http.post("/v1/models", headers=headers, json={"name": name, "path": str(good)}), 400)
        assert error["param"] == "name", name
    error = _error(http.post("/v1/models", headers=headers, json={"path": str(good)}), 400)
    assert error["param"] == "name"

    assert http.post("/v1/models", headers=headers, json={"name": f"dup-{tag}", "path": str(good)}).status_code == 201
    error = _error(http.post("/v1/models", headers=headers, json={"name": f"dup-{tag}", "path": str(good)}), 409)
    assert (error["param"], error["code"], error["type"]) == ("name", "model_exists", "conflict_error")
    # A team name may not shadow a shared model either.
    error = _error(http.post("/v1/models", headers=headers, json={"name": shared_model.name, "path": str(good)}), 409)
    assert error["code"] == "model_exists"


def test_the_longest_derived_names_are_stored_and_served(live, team, session_factory):
    """A 200-character base, a 100-character team and a 64-character suffix make a fine-tuned name of 378
    characters and its quantized name 400: both fit the column (they once failed a finished run)."""
    from belle_quantizer.job import quantized_model_name
    from belle_shared.models import fine_tuned_model_name

    http, _ = live
    created, headers = team
    tuned = fine_tuned_model_name("b" * 200, "t" * 100, "s" * 64, uuid.uuid4())
    quantized = quantized_model_name(tuned, 8, 1024, uuid.uuid4())
    assert (len(tuned), len(quantized)) == (378, 400)
    with session_factory() as session:
        for name in (tuned, quantized):
            session.add(Model(team_id=created.id, name=name, kind="fine_tuned", uri="file:///x", details={}))
        session.commit()
    listed = {m["id"] for m in http.get("/v1/models", headers=headers).json()["data"]}
    assert {tuned, quantized} <= listed
    assert http.get(f"/v1/models/{quantized}", headers=headers).json()["id"] == quantized


def test_delete_and_team_isolation(live, team, session_factory, settings, model_root, shared_model):
    from belle_shared.teams import create_team

    http, _ = live
    created, headers = team
    with session_factory() as session:
        _, other_key = create_team(session, name=f"team-{uuid.uuid4().hex[:8]}", secret=settings.secret_key)
        session.commit()
    other = {"Authorization": f"Bearer {other_key}"}
    folder = make_folder(model_root / f"iso-{uuid.uuid4().hex[:6]}", LLAMA_CONFIG)
    mine = http.post("/v1/models", headers=headers, json={"name": "private", "path": str(folder)}).json()

    # Another team sees neither the name nor the id, cannot delete it, and may use the name itself.
    assert "private" not in {m["id"] for m in http.get("/v1/models", headers=other).json()["data"]}
    assert _error(http.get("/v1/models/private", headers=other), 404)["code"] == "model_not_found"
    assert _error(http.get(f"/v1/models/{mine['belle_id']}", headers=other), 404)["code"] == "model_not_found"
    assert _error(http.delete(f"/v1/models/{mine['belle_id']}", headers=other), 404)["param"] == "model"
    assert http.post("/v1/models", headers=other, json={"name": "private", "path": str(folder)}).status_code == 201

    # A shared model cannot be deleted by a team.
    error = _error(http.delete(f"/v1/models/{shared_model.name}", headers=headers), 403)
    assert error["code"] == "model_shared"

    deleted = http.delete("/v1/models/private", headers=headers)
    assert deleted.status_code == 200 and deleted.json() == {"id": "private", "object": "model", "deleted": True}
    assert _error(http.get("/v1/models/private", headers=headers), 404)["code"] == "model_not_found"
    assert http.get("/v1/models/private", headers=other).json()["owned_by"] != created.name
    assert folder.is_dir()  # files stay where they are
    assert _error(http.get("/v1/models", headers={"Authorization": "Bearer belle-nope"}), 401)


def test_openai_sdk_lists_retrieves_and_deletes_models(live, team, model_root, shared_model):
    from openai import NotFoundError, OpenAI

    http, _ = live
    _, headers = team
    folder = make_folder(model_root / f"sdk-{uuid.uuid4().hex[:6]}", LLAMA_CONFIG)
    assert http.post("/v1/models", headers=headers, json={"name": "org/sdk-model", "path": str(folder)}).status_code == 201
    client = OpenAI(base_url=str(http.base_url).rstrip("/") + "/v1", api_key=headers["Authorization"].split()[1], max_retries=0)
    names = {m.id for m in client.models.list()}
    assert {"org/sdk-model", shared_model.name} <= names
    model = client.models.retrieve("org/sdk-model")  # a name with a slash
    assert model.owned_by != "belle" and model.object == "model"
    assert client.models.delete("org/sdk-model").deleted is True
    with pytest.raises(NotFoundError):
        client.models.retrieve("org/sdk-model")


# -------------------------------------------------------------------------------------------- CLI


def test_cli_registers_lists_and_admin_registers_shared(live, team, settings, model_root, tmp_path):
    http, _ = live
    _, headers = team
    env = settings_env(settings, BELLE_API_URL=str(http.base_url).rstrip("/"),
                       BELLE_API_KEY=headers["Authorization"].split()[1], COLUMNS="250")  # no wrapped messages
    tag = uuid.uuid4().hex[:6]
    make_folder(model_root / f"cli-{tag}", LLAMA_CONFIG)
    # A relative local path is sent as an absolute one.
    registered = subprocess.run([*BELLE, "models", "register", f"cli-{tag}", "--name", f"cli-{tag}"], env=env,
                                cwd=model_root, capture_output=True, text=True, timeout=60)
    assert registered.returncode == 0, registered.stderr
    assert json.loads(registered.stdout)["id"] == f"cli-{tag}"
    refused = subprocess.run([*BELLE, "models", "register", str(tmp_path), "--name", f"bad-{tag}"], env=env,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "path" in refused.stderr

    # An operator registers a shared model from anywhere, straight into the database.
    anywhere = make_folder(tmp_path / "anywhere", LLAMA_CONFIG)
    admin = subprocess.run([*BELLE, "admin", "register-model", str(anywhere), "--name", f"shared-cli-{tag}"],
                           env=env, capture_output=True, text=True, timeout=60)
    assert admin.returncode == 0, admin.stderr
    again = subprocess.run([*BELLE, "admin", "register-model", str(anywhere), "--name", f"shared-cli-{tag}"],
                           env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "already exists" in again.stderr
    broken = subprocess.run([*BELLE, "admin", "register-model", str(tmp_path), "--name", f"broken-{tag}"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert broken.returncode == 1 and "missing config.json" in broken.stderr

    listed = subprocess.run([*BELLE, "models", "list"], env=env, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert f"cli-{tag}" in listed.stdout and f"shared-cli-{tag}" in listed.stdout and "belle" in listed.stdout
    shared = http.get(f"/v1/models/shared-cli-{tag}", headers=headers).json()
    assert shared["owned_by"] == "belle" and shared["details"]["model_type"] == "llama"


# --------------------------------------------------------------------------- the embedded default


def test_embedded_default_registers_the_tiny_model_once(tmp_path):
    pytest.importorskip("belle_trainer.tiny")
    from belle_cli.stack import DEFAULT_MODEL_NAME, ensure_default_model
    from belle_shared.db.engine import make_engine, make_session_factory
    from belle_shared.db.migrate import upgrade
    from belle_shared.models import find_model, inspect_model_folder
    from belle_shared.settings import Settings

    settings = Settings(data_dir=tmp_path / "belle")  # the embedded default: SQLite in the data folder
    upgrade(settings)
    messages: list[str] = []
    folder = ensure_default_model(settings, log=messages.append)
    assert folder == str((tmp_path / "belle" / "models" / DEFAULT_MODEL_NAME).resolve()), messages
    assert inspect_model_folder(folder)["chat_template"] is True
    engine = make_engine(settings)
    try:
        with make_session_factory(engine)() as session:
            model = find_model(session, None, DEFAULT_MODEL_NAME)
            assert model.team_id is None and model.kind == "base" and model.uri == folder
            assert model.details["model_type"] == "llama"
            first_id = model.id
        # A second start finds a shared base model and does nothing.
        built_at = Path(folder, "model.safetensors").stat().st_mtime_ns
        assert ensure_default_model(settings, log=messages.append) is None
        assert Path(folder, "model.safetensors").stat().st_mtime_ns == built_at
        with make_session_factory(engine)() as session:
            assert session.query(Model).count() == 1 and find_model(session, None, DEFAULT_MODEL_NAME).id == first_id
            # A fresh database with the folder left behind: registered again without a rebuild.
            session.query(Model).delete()
            session.commit()
        assert ensure_default_model(settings, log=messages.append) == folder
        assert Path(folder, "model.safetensors").stat().st_mtime_ns == built_at
    finally:
        engine.dispose()


def test_embedded_default_without_the_trainer_skips_and_says_so(tmp_path, monkeypatch):
    import belle_cli.stack as stack
    from belle_shared.db.migrate import upgrade
    from belle_shared.settings import Settings

    settings = Settings(data_dir=tmp_path / "belle")
    upgrade(settings)
    monkeypatch.setattr(stack, "trainer_installed", lambda: False)
    messages: list[str] = []
    assert stack.ensure_default_model(settings, log=messages.append) is None
    assert any("not installed" in m for m in messages)
    assert not (tmp_path / "belle" / "models").exists()


# ------------------------------------------------------------------------------ model_import


def _gguf(path: Path, architecture: str) -> Path:
    """A small but well-formed GGUF file of `architecture` (one tensor, a tokenizer's keys)."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(["a", "b"])
    writer.add_tensor("token_embd.weight", np.zeros((2, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_model_imports_that_cannot_work_are_refused_before_anything_is_queued(live, team, model_root, real_model):
    """A GGUF of an architecture the platform does not import, a truncated GGUF, a folder without a tokenizer or
    without weights, a path outside the model roots: each a 400 naming `path` and saying what is wrong; no job,
    no model."""
    from belle_shared.model_sources import BUNDLED_MODELS

    http, settings = live
    _, headers = team
    bundled = BUNDLED_MODELS["smollm2"]
    source = settings.resolved_cache_dir / "bundled" / f"{bundled.package}-{bundled.version}" / Path(bundled.member).name
    truncated = model_root / "truncated.gguf"
    with open(source, "rb") as f:
        truncated.write_bytes(f.read(3_000_000))
    cases = {
        str(_gguf(model_root / "rwkv.gguf", "rwkv6")): "architecture 'rwkv6' is not one this platform imports",
        str(truncated): "truncated",
        str(make_folder(model_root / "no-tokenizer", LLAMA_CONFIG, tokenizer=())): "a tokenizer",
        str(make_folder(model_root / "no-weights", LLAMA_CONFIG, weights=())): "weights",
        str(model_root / "absent.gguf"): "no such file",
        "/etc/passwd": "outside the folders",
        str(model_root / "notes.txt"): "neither a GGUF file nor a Hugging Face model folder",
    }
    (model_root / "notes.txt").write_text("not a model")
    jobs_before = http.get("/v1/jobs", headers=headers).json()["count"]
    models_before = len(http.get("/v1/models", headers=headers).json()["data"])
    for path, message in cases.items():
        error = _error(http.post("/v1/jobs", headers=headers, json={"type": "model_import", "path": path}), 400)
        assert error["param"] == "path" and error["code"] == "invalid_model", error
        assert message in error["message"], (path, error["message"])
    for spec, param in (({"type": "model_import"}, None), ({"type": "model_import", "bundled": "llama-70b"}, "bundled"),
                        ({"type": "model_import", "bundled": "smollm2", "name": "has space"}, "name")):
        error = _error(http.post("/v1/jobs", headers=headers, json=spec), 400)
        assert param is None or error["param"] == param, error
    # Registering a GGUF file in place is refused with the way to import it.
    error = _error(http.post("/v1/models", headers=headers, json={"name": "a-gguf", "path": str(truncated)}), 400)
    assert error["param"] == "path" and "model_import" in error["message"]
    assert http.get("/v1/jobs", headers=headers).json()["count"] == jobs_before
    assert len(http.get("/v1/models", headers=headers).json()["data"]) == models_before
