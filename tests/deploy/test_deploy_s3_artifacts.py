"""The artifact store on an S3-compatible server: moto's S3 server (a real HTTP server on
127.0.0.1) reached through s3fs, configured the way deployments do it: BELLE_ARTIFACT_ROOT=s3://...
and the standard AWS_ENDPOINT_URL / AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY variables."""

from __future__ import annotations

import io
import json
import os
import uuid
from pathlib import Path

import pytest
from conftest import WorkerProcess
from helpers import wait_for

from belle_shared.artifacts import ArtifactStore

BUCKET = "belle-artifacts"


@pytest.fixture(scope="module")
def s3_server():
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "belle-test",
           "AWS_SECRET_ACCESS_KEY": "belle-test-secret", "AWS_DEFAULT_REGION": "us-east-1"}
    boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                 aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1").create_bucket(Bucket=BUCKET)
    yield env
    server.stop()


@pytest.fixture
def store(s3_server, monkeypatch):
    import fsspec

    for name, value in s3_server.items():
        monkeypatch.setenv(name, value)
    fsspec.filesystem("s3").clear_instance_cache()  # a cached client could carry another test's endpoint
    return ArtifactStore(f"s3://{BUCKET}/run-{uuid.uuid4().hex[:8]}")


def bucket_keys(s3_server, prefix: str) -> set[str]:
    import boto3

    client = boto3.client("s3", endpoint_url=s3_server["AWS_ENDPOINT_URL"], region_name="us-east-1",
                          aws_access_key_id=s3_server["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=s3_server["AWS_SECRET_ACCESS_KEY"])
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def test_files_and_streams_round_trip(store, s3_server, tmp_path):
    source = tmp_path / "data.jsonl"
    source.write_bytes("".join(json.dumps({"i": i, "text": "你好" * i}, ensure_ascii=False) + "\n"
                               for i in range(200)).encode())
    stored = store.put_file(source, "teams/t/files/data.jsonl")
    assert stored.uri == f"{store.root_url}/teams/t/files/data.jsonl"
    assert stored.bytes == source.stat().st_size
    assert store.exists(stored.uri) and store.local_path(stored.uri) is None
    with store.open(stored.uri) as handle:
        assert handle.read() == source.read_bytes()
    key = stored.uri.removeprefix(f"s3://{BUCKET}/")
    assert key in bucket_keys(s3_server, key)  # really in the bucket, not a local file

    streamed = store.put_stream(io.BytesIO(b"x" * 3_000_000), "teams/t/files/big.bin")
    assert streamed.bytes == 3_000_000
    with pytest.raises(ValueError):
        store.put_stream(io.BytesIO(b"y" * 2048), "teams/t/files/too-big.bin", max_bytes=1024)
    assert not store.exists(store.uri("teams/t/files/too-big.bin"))
    store.delete(streamed.uri)
    assert not store.exists(streamed.uri)


def test_folders_round_trip_and_local_folder_downloads_once(store, tmp_path):
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "config.json").write_text('{"a": 1}')
    (model / "sub" / "weights.bin").write_bytes(bytes(range(256)) * 1000)
    stored = store.put_dir(model, "teams/t/models/m1")
    assert stored.bytes == len(b'{"a": 1}') + 256_000

    copy = tmp_path / "copy"
    store.get_dir(stored.uri, copy)
    assert sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*") if p.is_file()) == \
        ["config.json", "sub/weights.bin"]
    assert (copy / "sub" / "weights.bin").read_bytes() == (model / "sub" / "weights.bin").read_bytes()

    cache = tmp_path / "cache" / "m1"
    folder, downloaded = store.local_folder(stored.uri, cache)
    assert downloaded and Path(folder) == cache and (cache / "config.json").read_text() == '{"a": 1}'
    assert not Path(str(cache) + ".partial").exists()
    assert store.local_folder(stored.uri, cache) == (str(cache), False)


@pytest.mark.integration
def test_an_import_job_reads_and_writes_the_s3_store(s3_server, settings, tmp_path):
    """A real job end to end on S3: the gateway stores the upload in the bucket, a datagen worker
    process (with only the environment to find the store) imports it, the dataset lands there."""
    from fastapi.testclient import TestClient

    from belle_gateway.app import create_app
    from belle_gateway.settings import GatewaySettings
    from belle_shared.db.engine import make_engine, make_session_factory
    from belle_shared.teams import create_team

    root = f"s3://{BUCKET}/job-{uuid.uuid4().hex[:8]}"
    s3_settings = settings.model_copy(update={"artifact_root": root, "key_prefix": f"{settings.key_prefix}-s3"})
    os.environ.update(s3_server)  # the in-process gateway's s3fs reads the same variables as the worker
    try:
        engine = make_engine(s3_settings)
        with make_session_factory(engine)() as session:
            _, key = create_team(session, name=f"s3-{uuid.uuid4().hex[:8]}", secret=s3_settings.secret_key)
            session.commit()
        engine.dispose()
        headers = {"Authorization": f"Bearer {key}"}
        worker = WorkerProcess(s3_settings, tmp_path / "worker.log", **s3_server)
        try:
            with TestClient(create_app(GatewaySettings(**s3_settings.model_dump()))) as client:
                rows = [{"instruction": f"把数字 {i} 写成中文", "input": "", "output": f"答案 {i}"} for i in range(20)]
                upload = client.post("/v1/files", headers=headers, data={"purpose": "import"},
                                     files={"file": ("rows.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n"
                                                                           for r in rows).encode())})
                assert upload.status_code in (200, 201), upload.text
                job = client.post("/v1/jobs", headers=headers, json={"type": "import", "file_id": upload.json()["id"],
                                                                     "name": "on-s3"}).json()
                done = wait_for(lambda: (lambda j: j if j["status"] in ("succeeded", "failed") else None)(
                    client.get(f"/v1/jobs/{job['id']}", headers=headers).json()), timeout=30, message="import job")
                assert done["status"] == "succeeded", done
                datasets = client.get("/v1/datasets", headers=headers).json()["data"]
                (dataset,) = [d for d in datasets if d["name"] == "on-s3"]
                content = client.get(f"/v1/datasets/{dataset['id']}/content", headers=headers)
                assert len(content.text.strip().splitlines()) == 20
        finally:
            worker.stop()
        prefix = root.removeprefix(f"s3://{BUCKET}/")
        keys = bucket_keys(s3_server, prefix)
        assert any("/files/" in k for k in keys) and len(keys) >= 2, keys
    finally:
        for name in s3_server:
            os.environ.pop(name, None)
