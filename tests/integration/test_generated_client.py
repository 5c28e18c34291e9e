"""A client generated from the gateway's OpenAPI document (openapi-python-client, as a team would make one)
uploads a file, submits a job with the typed job spec, reads it back, and gets a refused spec back as the
typed error: the document describes the request bodies and the errors the gateway really answers."""

from __future__ import annotations

import importlib
import io
import json
import subprocess
import sys

import pytest

from helpers import LiveGateway, jsonl

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def generated(client, tmp_path_factory):
    """The package openapi-python-client writes from GET /openapi.json, importable as `belle_client`."""
    folder = tmp_path_factory.mktemp("generated")
    document = folder / "openapi.json"
    document.write_text(json.dumps(client.get("/openapi.json").json()))
    config = folder / "config.yaml"
    config.write_text("post_hooks: []\npackage_name_override: belle_client\n")  # (no ruff run on the output)
    done = subprocess.run([sys.executable, "-m", "openapi_python_client", "generate", "--path", str(document),
                           "--config", str(config), "--meta", "none", "--output-path", str(folder / "belle_client")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    # What the generator could not express is only the JSONL download's content type (bytes are returned).
    warnings = [line for line in done.stdout.splitlines() if line.startswith("WARNING")]
    assert all("/content" in line for line in warnings), done.stdout
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module("belle_client")
    finally:
        sys.path.remove(str(folder))
        for name in [n for n in sys.modules if n == "belle_client" or n.startswith("belle_client.")]:
            del sys.modules[name]


@pytest.fixture(scope="module")
def live(gateway_settings):
    gateway = LiveGateway(gateway_settings)
    yield gateway
    gateway.stop()


def test_a_generated_client_uploads_submits_and_reads_a_job(generated, live, team):
    from belle_client.api.files import upload_v1_files_post
    from belle_client.api.jobs import create_v1_jobs_post, get_v1_jobs_job_id_get
    from belle_client.models import BodyUploadV1FilesPost, Error, ImportSpec, JobPublic
    from belle_client.types import File

    _, headers = team
    key = headers["Authorization"].split()[1]
    api = generated.AuthenticatedClient(base_url=live.url, token=key)

    rows = jsonl([{"instruction": "1+1", "output": "2"}])
    body = BodyUploadV1FilesPost(file=File(payload=io.BytesIO(rows), file_name="rows.jsonl"), purpose="import")
    uploaded = upload_v1_files_post.sync_detailed(client=api, body=body)
    assert uploaded.status_code == 201, uploaded.content
    file_id = uploaded.parsed.id

    submitted = create_v1_jobs_post.sync(client=api, body=ImportSpec(file_id=file_id, name="generated-client"))
    assert isinstance(submitted, JobPublic), submitted
    assert submitted.type_ == "import" and submitted.status in ("queued", "running", "succeeded")
    read = get_v1_jobs_job_id_get.sync(client=api, job_id=submitted.id)
    assert isinstance(read, JobPublic) and read.id == submitted.id

    refused = create_v1_jobs_post.sync_detailed(client=api, body=ImportSpec(file_id="not-a-file-id"))
    assert refused.status_code == 400 and isinstance(refused.parsed, Error), refused.content
    assert refused.parsed.error.param == "file_id" and refused.parsed.error.type_ == "invalid_request_error"
