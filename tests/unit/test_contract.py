"""The job contract, settings and artifact store, without servers."""

from __future__ import annotations

import datetime as dt
import io
import uuid

import pytest
from pydantic import ValidationError

from belle_shared.artifacts import ArtifactStore
from belle_shared.db.types import UTCDateTime
from belle_shared.job_types import job_type_names, job_types, parse_spec, queues, spec_adapter
from belle_shared.queue import task_name
from belle_shared.settings import Settings
from belle_shared.specs import ImportSpec, TrainSpec


def test_union_is_discriminated_on_type():
    spec = parse_spec({"type": "import", "file_id": str(uuid.uuid4())})
    assert isinstance(spec, ImportSpec) and spec.format == "auto"
    train = parse_spec({"type": "train", "base_model": "tiny", "dataset_id": str(uuid.uuid4())})
    assert isinstance(train, TrainSpec)
    # BELLE's published defaults
    assert (train.lora.r, train.lora.alpha, train.lora.dropout) == (16, 32, 0.05)
    assert train.hyperparameters.max_length == 1024 and train.hyperparameters.lr_scheduler == "cosine"
    with pytest.raises(ValidationError) as info:
        parse_spec({"type": "nope"})
    assert info.value.errors()[0]["type"] == "union_tag_invalid"


def test_every_type_has_a_queue_and_a_documented_spec():
    assert job_type_names() == ("import", "datagen", "train", "quantize", "eval", "preference_pairs", "model_import",
                                "pretrain")
    assert queues() == ("datagen", "train", "quantize", "eval")
    assert {name: t.queue for name, t in job_types().items()} == {
        "import": "datagen", "datagen": "datagen", "train": "train", "quantize": "quantize", "eval": "eval",
        "preference_pairs": "eval", "model_import": "train", "pretrain": "train"}
    assert all(t.checks for t in job_types().values()), "every built-in type is checked before it is queued"
    assert task_name("import") == "belle.job.import"
    schema = spec_adapter().json_schema()
    for name, definition in schema["$defs"].items():
        for field, prop in definition.get("properties", {}).items():
            if field == "type":
                continue
            assert prop.get("description"), f"{name}.{field} has no description"


def test_spec_round_trips_through_json_storage():
    spec = parse_spec({"type": "train", "base_model": "m", "dataset_id": str(uuid.uuid4()), "method": "lora",
                       "zero_stage": 3, "offload": "optimizer_and_parameters"})
    assert parse_spec(spec.model_dump(mode="json")) == spec


@pytest.mark.parametrize("bad, field", [
    ({"type": "train", "base_model": "m", "dataset_id": "x"}, "dataset_id"),
    ({"type": "train", "base_model": "m", "dataset_id": str(uuid.uuid4()), "offload": "optimizer_and_parameters"}, None),
    ({"type": "quantize", "model_id": "m", "group_size": 100}, None),
    ({"type": "quantize", "model_id": "m", "bits": 5}, "bits"),
    ({"type": "eval", "model_ids": ["a"]}, None),
    ({"type": "eval", "model_ids": ["a"], "mode": "pairwise",
      "judge": {"base_url": "http://x", "model": "j"}}, None),
    ({"type": "import", "file_id": str(uuid.uuid4()), "colour": "blue"}, "colour"),
])
def test_invalid_specs_are_refused(bad, field):
    with pytest.raises(ValidationError) as info:
        parse_spec(bad)
    if field:
        assert field in info.value.errors()[0]["loc"]


def test_settings_embedded_defaults(tmp_path):
    s = Settings(data_dir=tmp_path, _env_file=None)
    assert s.is_embedded
    assert s.resolved_database_url == f"sqlite:///{tmp_path / 'belle.db'}"
    assert s.resolved_broker_url == f"redis+socket://{tmp_path / 'redis.sock'}"
    assert s.resolved_artifact_root == str(tmp_path / "artifacts")


def test_settings_from_environment(monkeypatch):
    monkeypatch.setenv("BELLE_DATABASE_URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("BELLE_BROKER_URL", "redis://h:6379/0")
    s = Settings()
    assert not s.is_embedded and s.resolved_database_url == "postgresql+psycopg://u@h/db"


def test_deep_data_dir_gets_a_short_socket_path(tmp_path):
    deep = tmp_path / ("x" * 120)
    socket_path = Settings(data_dir=deep).redis_socket
    assert len(str(socket_path)) < 100
    assert socket_path == Settings(data_dir=deep).redis_socket  # stable: every process derives the same


def test_production_refuses_placeholder_secret():
    with pytest.raises(ValidationError, match="BELLE_SECRET_KEY"):
        Settings(environment="production")
    assert Settings(environment="production", secret_key="a-real-secret-value").secret_key


def test_lease_must_outlast_heartbeats():
    with pytest.raises(ValidationError, match="LEASE_TIMEOUT"):
        Settings(heartbeat_interval=5, lease_timeout=8)


def test_gateway_enabled_job_types_from_comma_list(monkeypatch):
    from belle_gateway.settings import GatewaySettings

    monkeypatch.setenv("BELLE_ENABLED_JOB_TYPES", "import, train")
    assert GatewaySettings().enabled_job_types == ["import", "train"]
    monkeypatch.setenv("BELLE_ENABLED_JOB_TYPES", "import,warp")
    with pytest.raises(ValidationError, match="warp"):
        GatewaySettings()


def test_utc_datetime_normalises_offsets_and_refuses_naive():
    column = UTCDateTime()
    plus8 = dt.datetime(2026, 1, 1, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    stored = column.process_bind_param(plus8, None)
    assert stored == dt.datetime(2026, 1, 1, 0, 0, tzinfo=dt.UTC)
    assert column.process_result_value(stored.replace(tzinfo=None), None).tzinfo == dt.UTC
    with pytest.raises(ValueError, match="naive"):
        column.process_bind_param(dt.datetime(2026, 1, 1), None)


def test_artifact_store_put_and_read(tmp_path):
    store = ArtifactStore(str(tmp_path / "root"))
    src = tmp_path / "a.txt"
    src.write_bytes(b"hello")
    stored = store.put_file(src, "teams/t/a.txt")
    assert stored.bytes == 5
    assert stored.sha256 == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    with store.open(stored.uri) as f:
        assert f.read() == b"hello"
    assert not list((tmp_path / "root" / "teams" / "t").glob("*.tmp-*"))


def test_artifact_store_stream_limit_leaves_nothing(tmp_path):
    store = ArtifactStore(str(tmp_path))
    with pytest.raises(ValueError, match="limit"):
        store.put_stream(io.BytesIO(b"x" * 100), "big.bin", max_bytes=10)
    assert not store.exists(store.uri("big.bin"))
    assert list(tmp_path.iterdir()) == []
    ok = store.put_stream(io.BytesIO(b"abc"), "small.bin", max_bytes=10)
    assert ok.bytes == 3 and store.exists(ok.uri)
