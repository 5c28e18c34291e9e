"""OpenAI's files API complete: content and delete, with the official `openai` SDK over a real port and
with the HTTP client. A file an unfinished job reads cannot be deleted; datasets made from a deleted
file keep working; another team's file is a 404."""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid

import httpx
import openai
import pytest
import redis
from openai import OpenAI
from sqlalchemy import select

from belle_shared.db.models import Dataset, File, Job, JobStatus
from belle_shared.jobs import request_cancel
from belle_shared.teams import create_team
from helpers import LiveGateway, jsonl, upload, wait_status, write_recipe_rows

pytestmark = pytest.mark.integration

ROWS = [{"instruction": "把 3 写成中文", "input": "", "output": "三"}, {"instruction": "1+1?", "output": "2"}]


@pytest.fixture(scope="module")
def live(settings, session_factory):
    """The gateway on a real port, sending job messages to a broker prefix of this module's own (no
    worker reads it); the jobs it left queued are cancelled at the end."""
    from belle_gateway.settings import GatewaySettings

    prefix = f"{settings.key_prefix}-filesapi"
    gateway = LiveGateway(GatewaySettings(**{**settings.model_dump(), "run_sweeper": False, "key_prefix": prefix}))
    started = dt.datetime.now(dt.timezone.utc)
    yield gateway.url
    gateway.stop()
    with session_factory() as session:
        for job in session.scalars(select(Job).where(Job.created_at >= started, Job.status == JobStatus.queued)):
            if (job.spec or {}).get("type") == "import":
                request_cancel(session, job=job)
        session.commit()
    broker = redis.Redis.from_url(settings.broker_url)
    keys = list(broker.scan_iter(f"{prefix}:*"))
    if keys:
        broker.delete(*keys)


@pytest.fixture
def sdk(live, team) -> OpenAI:
    _, headers = team
    return OpenAI(base_url=f"{live}/v1", api_key=headers["Authorization"].split()[1], max_retries=0)


def _stored_path(session_factory, file_id) -> str:
    with session_factory() as session:
        return session.get(File, uuid.UUID(str(file_id))).uri


def test_sdk_reads_back_and_deletes_a_file(sdk, session_factory):
    body = jsonl(ROWS)
    created = sdk.files.create(file=("训练 data.jsonl", body), purpose="fine-tune")
    content = sdk.files.content(created.id)
    assert content.content == body
    assert content.response.headers["content-type"] == "application/jsonl"
    assert content.response.headers["content-length"] == str(len(body))
    assert "utf-8''%E8%AE%AD%E7%BB%83%20data.jsonl" in content.response.headers["content-disposition"]
    path = _stored_path(session_factory, created.id)
    assert os.path.exists(path)

    deleted = sdk.files.delete(created.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (created.id, "file", True)
    assert not os.path.exists(path)
    for call in (lambda: sdk.files.retrieve(created.id), lambda: sdk.files.content(created.id),
                 lambda: sdk.files.delete(created.id)):
        with pytest.raises(openai.NotFoundError):
            call()
    assert created.id not in [f.id for f in sdk.files.list()]


def test_prompt_file_content_is_text_with_its_filename(live, team):
    _, headers = team
    text = "Write about {topic}.\n"
    created = httpx.post(f"{live}/v1/files", headers=headers, files={"file": ("prompt.txt", text.encode())},
                         data={"purpose": "prompt"}).json()
    response = httpx.get(f"{live}/v1/files/{created['id']}/content", headers=headers)
    assert response.status_code == 200 and response.text == text
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["content-disposition"] == 'attachment; filename="prompt.txt"'


def test_a_file_a_queued_job_reads_cannot_be_deleted_until_the_job_ends(live, team, sdk):
    _, headers = team
    created = sdk.files.create(file=("data.jsonl", jsonl(ROWS)), purpose="import")
    job = httpx.post(f"{live}/v1/jobs", headers=headers, json={"type": "import", "file_id": created.id})
    assert job.status_code == 201, job.text
    job_id = job.json()["id"]

    with pytest.raises(openai.ConflictError) as refused:
        sdk.files.delete(created.id)
    error = refused.value.body
    assert error["code"] == "file_in_use" and error["param"] == "file_id"
    assert f"queued import job {job_id}" in error["message"]
    assert sdk.files.content(created.id).content == jsonl(ROWS)  # still there, whole

    assert httpx.post(f"{live}/v1/jobs/{job_id}/cancel", headers=headers).json()["status"] == "cancelled"
    assert sdk.files.delete(created.id).deleted is True
    # The ended job keeps the id in its spec.
    assert httpx.get(f"{live}/v1/jobs/{job_id}", headers=headers).json()["spec"]["file_id"] == created.id


def test_any_spec_field_naming_the_file_blocks_the_delete_nested_ones_too(client, team, session_factory):
    owner, headers = team
    files = [upload(client, headers, ROWS, purpose=p) for p in ("fine-tune", "eval", "datagen")]
    with session_factory() as session, session.begin():
        running = Job(team_id=owner.id, type="train", status=JobStatus.running,
                      spec={"type": "train", "validation_file_id": files[0]["id"]})
        # A pipeline whose later step (not created yet: it waits for a running one) reads the file. Its
        # spec is a valid one, or the gateway's sweeper would fail the pipeline and free the file.
        pipeline = Job(id=uuid.uuid4(), team_id=owner.id, type="pipeline", status=JobStatus.running, spec={
            "type": "pipeline", "steps": [
                {"name": "data", "spec": {"type": "import", "file_id": str(uuid.uuid4())}},
                {"name": "eval", "after": ["data"], "spec": {"type": "eval", "model_ids": ["m"], "mode": "reference",
                                                            "eval_file_id": files[1]["id"]}}]})
        first_step = Job(team_id=owner.id, type="import", status=JobStatus.running, parent_id=pipeline.id,
                         pipeline_step="data", spec={"type": "import", "file_id": str(uuid.uuid4())})
        ended = Job(team_id=owner.id, type="datagen", status=JobStatus.succeeded,
                    spec={"type": "datagen", "seed_file_id": files[2]["id"]})
        # Not a file field: an id that happens to be equal does not count.
        other = Job(team_id=owner.id, type="datagen", status=JobStatus.queued,
                    spec={"type": "datagen", "note": files[2]["id"]})
        session.add_all([running, pipeline, ended, other])
        session.flush()
        session.add(first_step)
    try:
        error = client.delete(f"/v1/files/{files[0]['id']}", headers=headers)
        assert error.status_code == 409 and f"running train job {running.id}" in error.json()["error"]["message"]
        error = client.delete(f"/v1/files/{files[1]['id']}", headers=headers)
        assert error.status_code == 409 and f"running pipeline job {pipeline.id}" in error.json()["error"]["message"]
        assert client.delete(f"/v1/files/{files[2]['id']}", headers=headers).json() == {
            "id": files[2]["id"], "object": "file", "deleted": True}
    finally:
        with session_factory() as session, session.begin():
            for job_id in (running.id, pipeline.id, other.id, first_step.id):
                session.get(Job, job_id).status = JobStatus.cancelled


def test_datasets_and_lineage_outlive_their_source_file(client, team, session_factory):
    owner, headers = team
    file = upload(client, headers, ROWS)
    with session_factory() as session, session.begin():
        rows = write_recipe_rows(session, owner.id)
        rows["dataset"].source_file_id = uuid.UUID(file["id"])
        dataset_id, model = rows["dataset"].id, rows["tuned"].name
    assert client.get(f"/v1/datasets/{dataset_id}", headers=headers).json()["source_file_id"] == file["id"]

    assert client.delete(f"/v1/files/{file['id']}", headers=headers).status_code == 200
    dataset = client.get(f"/v1/datasets/{dataset_id}", headers=headers)
    assert dataset.status_code == 200 and dataset.json()["source_file_id"] is None
    with session_factory() as session:
        assert session.get(Dataset, dataset_id) is not None
    lineage = client.get(f"/v1/models/{model}/lineage", headers=headers)
    assert lineage.status_code == 200, lineage.text
    link = lineage.json()["chain"][0]["dataset"]
    assert link["id"] == str(dataset_id) and link["source_file_id"] is None


def test_another_teams_file_is_a_404_for_content_and_delete(client, team, session_factory, settings):
    _, headers = team
    file = upload(client, headers, ROWS)
    with session_factory() as session:
        _, key = create_team(session, name=f"team-{uuid.uuid4().hex[:8]}", secret=settings.secret_key)
        session.commit()
    other = {"Authorization": f"Bearer {key}"}
    for response in (client.get(f"/v1/files/{file['id']}/content", headers=other),
                     client.delete(f"/v1/files/{file['id']}", headers=other)):
        assert response.status_code == 404 and response.json()["error"]["code"] == "file_not_found"
    assert client.get(f"/v1/files/{file['id']}/content", headers=headers).content == jsonl(ROWS)


def test_content_whose_stored_object_is_gone_is_a_404_not_a_500(client, team, session_factory):
    _, headers = team
    file = upload(client, headers, ROWS)
    os.unlink(_stored_path(session_factory, file["id"]))
    response = client.get(f"/v1/files/{file['id']}/content", headers=headers)
    assert response.status_code == 404 and response.json()["error"]["code"] == "file_content_missing"
    assert client.delete(f"/v1/files/{file['id']}", headers=headers).json()["deleted"] is True


def test_a_utf8_byte_order_mark_is_dropped_at_upload_so_every_reader_sees_plain_utf8(client, team, module_worker):
    """Editors on Windows start a file with a BOM; the upload keeps the file and drops the mark, and the
    import reads the first row like any other (it was refused as "not valid JSON" at line 1)."""
    _, headers = team
    body = "\ufeff" + json.dumps({"instruction": "你好", "output": "你好！"}, ensure_ascii=False) + "\n"
    response = client.post("/v1/files", headers=headers, data={"purpose": "import"},
                           files={"file": ("bom.jsonl", body.encode("utf-8"))})
    assert response.status_code == 201, response.text
    file = response.json()
    assert file["lines"] == 1 and file["bytes"] == len(body.encode("utf-8")) - 3
    content = client.get(f"/v1/files/{file['id']}/content", headers=headers)
    assert content.content == body[1:].encode("utf-8")
    job = wait_status(client, headers, client.post("/v1/jobs", headers=headers, json={
        "type": "import", "file_id": file["id"]}).json()["id"])
    assert job["status"] == "succeeded" and job["result"]["rows"] == 1, job["error"]
