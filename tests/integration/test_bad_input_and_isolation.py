"""Bad input is a 4xx that says what and where; a team never sees another team's data."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from belle_gateway.app import create_app
from helpers import jsonl, upload

pytestmark = pytest.mark.integration


def _error(response, status: int) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


# ------------------------------------------------------------------------------------ auth


def test_missing_and_invalid_keys_are_401(client):
    assert _error(client.get("/v1/jobs"), 401)["code"] == "missing_api_key"
    assert _error(client.get("/v1/jobs", headers={"Authorization": "Bearer belle-nope"}), 401)["code"] == "invalid_api_key"
    assert _error(client.get("/v1/files", headers={"Authorization": "Basic abc"}), 401)["type"] == "authentication_error"


# ------------------------------------------------------------------------------------ jobs


def test_malformed_json_body(client, team):
    _, headers = team
    error = _error(client.post("/v1/jobs", headers={**headers, "Content-Type": "application/json"},
                               content=b'{"type": "import",'), 400)
    assert error["code"] == "invalid_json" and "not valid JSON" in error["message"]


def test_body_that_is_not_an_object(client, team):
    _, headers = team
    error = _error(client.post("/v1/jobs", headers=headers, json=["import"]), 400)
    assert "JSON object" in error["message"]


def test_unknown_and_missing_job_type(client, team):
    _, headers = team
    error = _error(client.post("/v1/jobs", headers=headers, json={"type": "teleport"}), 400)
    assert error["param"] == "type" and "'teleport'" in error["message"] and "'import'" in error["message"]
    error = _error(client.post("/v1/jobs", headers=headers, json={"file_id": str(uuid.uuid4())}), 400)
    assert error["param"] == "type"


def test_wrong_field_types_name_the_field(client, team):
    _, headers = team
    error = _error(client.post("/v1/jobs", headers=headers, json={"type": "import", "file_id": "not-a-uuid"}), 400)
    assert error["param"] == "file_id" and error["message"].startswith("file_id:")
    error = _error(client.post("/v1/jobs", headers=headers,
                               json={"type": "import", "file_id": str(uuid.uuid4()), "max_rows": "many"}), 400)
    assert error["param"] == "max_rows"
    error = _error(client.post("/v1/jobs", headers=headers,
                               json={"type": "import", "file_id": str(uuid.uuid4()), "fromat": "auto"}), 400)
    assert error["param"] == "fromat" and error["code"] == "extra_forbidden"


def test_nested_field_path_in_error(client, team, gateway_settings):
    _, headers = team
    settings = gateway_settings.model_copy(update={"enabled_job_types": ["import", "train"], "run_sweeper": False})
    with TestClient(create_app(settings)) as c:
        error = _error(c.post("/v1/jobs", headers=headers, json={
            "type": "train", "base_model": "tiny", "dataset_id": str(uuid.uuid4()),
            "hyperparameters": {"epochs": -1}}), 400)
    assert error["param"] == "hyperparameters.epochs"


def test_job_type_not_served_by_this_deployment(team, gateway_settings):
    _, headers = team
    settings = gateway_settings.model_copy(update={"enabled_job_types": ["import", "train"], "run_sweeper": False})
    with TestClient(create_app(settings)) as c:
        error = _error(c.post("/v1/jobs", headers=headers, json={"type": "quantize", "model_id": "m"}), 400)
    assert error["code"] == "job_type_unavailable" and "import" in error["message"]


def test_unknown_file_id_is_refused_before_queueing(client, team):
    _, headers = team
    missing = str(uuid.uuid4())
    error = _error(client.post("/v1/jobs", headers=headers, json={"type": "import", "file_id": missing}), 400)
    assert error["param"] == "file_id" and missing in error["message"]
    assert client.get("/v1/jobs", headers=headers).json()["count"] == 0


def test_unknown_job_and_bad_job_id(client, team):
    _, headers = team
    missing = uuid.uuid4()
    assert _error(client.get(f"/v1/jobs/{missing}", headers=headers), 404)["param"] == "job_id"
    assert _error(client.post(f"/v1/jobs/{missing}/cancel", headers=headers), 404)["code"] == "job_not_found"
    assert _error(client.get(f"/v1/jobs/{missing}/events", headers=headers), 404)["code"] == "job_not_found"
    assert _error(client.get("/v1/jobs/42", headers=headers), 400)["param"] == "job_id"
    assert _error(client.get("/v1/jobs", headers=headers, params={"status": "sleeping"}), 400)["param"] == "status"
    assert _error(client.get("/v1/jobs", headers=headers, params={"limit": 0}), 400)["param"] == "limit"


# ----------------------------------------------------------------------------------- files


def _upload(client, headers, content: bytes, **data):
    return client.post("/v1/files", headers=headers, files={"file": ("x.jsonl", content)}, data=data)


def test_upload_that_is_not_jsonl_names_the_line(client, team):
    _, headers = team
    error = _error(_upload(client, headers, b'{"a": 1}\n\n{"b": 2\n'), 400)
    assert error["code"] == "invalid_jsonl" and error["message"].startswith("line 3:")
    error = _error(_upload(client, headers, b'{"a": 1}\n[1, 2]\n'), 400)
    assert error["message"] == "line 2: expected a JSON object, found list"
    error = _error(_upload(client, headers, '{"a": "é"}\n'.encode("latin-1")), 400)
    assert error["message"].startswith("line 1: not UTF-8")
    assert _error(_upload(client, headers, b""), 400)["code"] == "empty_file"
    assert _error(_upload(client, headers, b"\n  \n"), 400)["code"] == "empty_file"
    assert client.get("/v1/files", headers=headers).json()["data"] == []


def test_upload_over_the_size_limit_is_413(team, gateway_settings):
    _, headers = team
    small = gateway_settings.model_copy(update={"max_upload_bytes": 1000, "run_sweeper": False})
    with TestClient(create_app(small)) as c:
        error = _error(_upload(c, headers, jsonl({"instruction": "x" * 50, "output": "y"} for _ in range(40))), 413)
        assert error["code"] == "file_too_large" and "1000 bytes" in error["message"]
        ok = _upload(c, headers, jsonl([{"instruction": "x", "output": "y"}]))
        assert ok.status_code == 201


def test_body_over_the_size_limit_is_refused_from_its_content_length_alone(gateway_settings):
    # The gateway's outer layer answers before authentication or the body is read: no key is sent
    # here, and still the answer is the 413 (the route itself would have said 401).
    small = gateway_settings.model_copy(update={"max_upload_bytes": 1000, "run_sweeper": False})
    with TestClient(create_app(small)) as c:
        response = c.post("/v1/files", content=b"x" * (1000 + 1024 * 1024 + 1))
        error = _error(response, 413)
        assert error["code"] == "file_too_large" and error["param"] == "file"
        assert _error(c.post("/v1/files", content=b"x" * 10), 401)["code"] == "missing_api_key"


def test_upload_with_unknown_purpose(client, team):
    _, headers = team
    error = _error(_upload(client, headers, b'{"a": 1}\n', purpose="fun"), 400)
    assert error["param"] == "purpose"


def test_upload_without_file_field(client, team):
    _, headers = team
    error = _error(client.post("/v1/files", headers=headers, data={"purpose": "import"}), 400)
    assert error["param"] == "file"


# ------------------------------------------------------------------------------- isolation


def test_team_sees_only_its_own_files_jobs_and_datasets(client, team, session_factory, settings):
    from belle_shared.teams import create_team

    _, headers_a = team
    with session_factory() as session:
        _, key_b = create_team(session, name=f"other-{uuid.uuid4().hex[:6]}", secret=settings.secret_key)
        session.commit()
    headers_b = {"Authorization": f"Bearer {key_b}"}

    file = upload(client, headers_a, [{"instruction": "a", "output": "b"}])
    job = client.post("/v1/jobs", headers=headers_a, json={"type": "import", "file_id": file["id"]}).json()

    assert client.get(f"/v1/files/{file['id']}", headers=headers_b).status_code == 404
    assert client.get(f"/v1/jobs/{job['id']}", headers=headers_b).status_code == 404
    assert client.get(f"/v1/jobs/{job['id']}/events", headers=headers_b).status_code == 404
    assert client.post(f"/v1/jobs/{job['id']}/cancel", headers=headers_b).status_code == 404
    assert client.get("/v1/jobs", headers=headers_b).json()["count"] == 0
    assert client.get("/v1/files", headers=headers_b).json()["data"] == []
    # Team B cannot import team A's file either: the id is unknown to it.
    error = _error(client.post("/v1/jobs", headers=headers_b, json={"type": "import", "file_id": file["id"]}), 400)
    assert error["code"] == "file_not_found"
    # Team A still sees its own.
    assert client.get(f"/v1/jobs/{job['id']}", headers=headers_a).status_code == 200
    client.post(f"/v1/jobs/{job['id']}/cancel", headers=headers_a)


def test_keys_are_stored_hashed(session_factory, team):
    from sqlalchemy import select

    from belle_shared.db.models import ApiKey

    created, headers = team
    clear = headers["Authorization"].split()[1]
    with session_factory() as session:
        stored = session.scalars(select(ApiKey).where(ApiKey.team_id == created.id)).all()
    assert len(stored) == 1
    assert stored[0].key_hash != clear and clear not in stored[0].key_hash and len(stored[0].key_hash) == 64
    assert clear.startswith(stored[0].display_prefix)
