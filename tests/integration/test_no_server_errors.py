"""Input a fuzzer finds: numbers past a bigint, NUL and lone surrogates, and what a 500 does to the connection.
Each is a 4xx in OpenAI's shape naming the field; an unexpected error is a JSON 500 on a kept connection."""

from __future__ import annotations

import logging
import uuid

import httpx
import pytest

from belle_gateway.deps import get_team
from belle_shared.db.models import Job, JobStatus
from helpers import LiveGateway

pytestmark = pytest.mark.integration

TOO_BIG = str(2**63)  # one past PostgreSQL's bigint


def _error(response, status: int) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


@pytest.fixture
def train_job(session_factory, team):
    """A finished train job of the team's own (a row: no worker needed)."""
    created, _ = team
    with session_factory() as session:
        job = Job(id=uuid.uuid4(), team_id=created.id, type="train", status=JobStatus.succeeded,
                  spec={"type": "train", "base_model": "tiny"})
        session.add(job)
        session.commit()
        return str(job.id)


# ------------------------------------------------------------------------------------ numbers


@pytest.mark.parametrize("route", ["/v1/jobs", "/v1/files", "/v1/datasets", "/v1/pipelines", "/v1/evals"])
def test_offset_past_a_bigint_is_a_400_and_the_largest_one_works(client, team, route):
    _, headers = team
    error = _error(client.get(route, headers=headers, params={"offset": TOO_BIG}), 400)
    assert error["param"] == "offset" and error["type"] == "invalid_request_error"
    assert client.get(route, headers=headers, params={"offset": 2**63 - 1}).status_code == 200
    for huge in (TOO_BIG, "9" * 5000):
        assert _error(client.get(route, headers=headers, params={"limit": huge}), 400)["param"] == "limit"
        assert _error(client.get(route, headers=headers, params={"offset": huge}), 400)["param"] == "offset"


def test_event_ids_past_a_bigint_are_a_400(client, team, train_job):
    _, headers = team
    events = f"/v1/jobs/{train_job}/events"
    assert _error(client.get(events, headers=headers, params={"after": TOO_BIG}), 400)["param"] == "after"
    assert client.get(events, headers=headers, params={"after": 2**62}).json()["data"] == []
    for last_id in (TOO_BIG, "9" * 5000):  # (int() itself refuses over 4300 digits)
        response = client.get(events, headers={**headers, "Last-Event-ID": last_id}, params={"stream": "true"})
        assert _error(response, 400)["param"] == "Last-Event-ID"
    # A Last-Event-ID that is no id (a Latin-1 superscript digit, say) is ignored, as before.
    with client.stream("GET", events, headers={**headers, "Last-Event-ID": "²".encode("latin-1")}, params={"stream": "true"}) as r:
        assert r.status_code == 200 and "event: end" in r.read().decode()
    ft_events = f"/v1/fine_tuning/jobs/{train_job}/events"
    for after in (TOO_BIG, "9" * 5000, "²"):
        assert _error(client.get(ft_events, headers=headers, params={"after": after}), 400)["param"] == "after"
    assert client.get(ft_events, headers=headers, params={"after": str(2**62)}).json()["data"] == []


def test_chat_seed_and_max_tokens_past_what_the_sampler_takes_are_a_400(client, team):
    _, headers = team
    body = {"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]}
    for field, value in [("seed", 2**64), ("seed", -2**63 - 1), ("max_tokens", 2**31)]:
        error = _error(client.post("/v1/chat/completions", headers=headers, json={**body, field: value}), 400)
        assert error["param"] == field
    # The largest seed gets past validation (to the unknown model's 404).
    assert client.post("/v1/chat/completions", headers=headers, json={**body, "seed": 2**63 - 1}).status_code == 404


# ------------------------------------------------------------------------------ characters


def test_nul_in_a_stored_or_filesystem_string_is_a_400_naming_the_field(client, team):
    _, headers = team
    error = _error(client.post("/v1/models", headers=headers, json={"path": "models/a\u0000b", "name": "m"}), 400)
    assert error["param"] == "path" and error["code"] == "invalid_characters" and "NUL" in error["message"]
    error = _error(client.post("/v1/jobs", headers=headers, json={
        "type": "import", "file_id": str(uuid.uuid4()), "name": "x", "metadata": {"k": ["ok", "bad\u0000"]}}), 400)
    assert error["param"] == "metadata.k[1]"
    error = _error(client.post("/v1/jobs", headers=headers, json={"type": "import", "na\u0000me": 1}), 400)
    assert error["param"] == "na" + "\u0000" + "me" and "key contains" in error["message"]


def test_lone_surrogate_is_a_400_and_a_pair_or_an_escaped_backslash_is_text(client, team):
    _, headers = team
    raw = b'{"path": "models/x", "name": "bad\\ud800name"}'
    error = _error(client.post("/v1/models", headers={**headers, "Content-Type": "application/json"}, content=raw), 400)
    assert error["param"] == "name" and "surrogate" in error["message"]
    # A surrogate pair (an emoji, as json.dumps escapes it) and a literal backslash-u0000 pass this check:
    # the route answers them (a 4xx of its own about the path, not about the characters).
    for raw in (b'{"path": "models/\\ud83d\\ude00", "name": "m"}', b'{"path": "models/\\\\u0000", "name": "m"}'):
        response = client.post("/v1/models", headers={**headers, "Content-Type": "application/json"}, content=raw)
        assert 400 <= response.status_code < 500 and response.json()["error"]["code"] != "invalid_characters"


def test_nul_in_an_uploaded_filename_is_a_400(client, team):
    _, headers = team
    # Raw multipart: httpx would percent-encode the NUL in a filename.
    for name in (b"a\x00.jsonl", b"\x00"):  # (a surrogate cannot arrive here: the form is read as Latin-1)
        body = (b'--B\r\nContent-Disposition: form-data; name="file"; filename="' + name + b'"\r\n'
                b'Content-Type: application/octet-stream\r\n\r\n{"a": 1}\n\r\n--B--\r\n')
        response = client.post("/v1/files", headers={**headers, "Content-Type": "multipart/form-data; boundary=B"},
                               content=body)
        assert _error(response, 400)["param"] == "file"
    assert client.get("/v1/files", headers=headers).json()["data"] == []


def test_nul_in_the_url_is_a_400(client, team):
    _, headers = team
    assert _error(client.get("/v1/jobs?type=%00", headers=headers), 400)["param"] == "type"
    assert _error(client.get("/v1/evals/x/answers?class=a%00", headers=headers), 400)["param"] == "class"
    error = _error(client.get("/v1/models/a%00b", headers=headers), 400)
    assert error["code"] == "invalid_characters" and "URL path" in error["message"]


# ------------------------------------------------------------------------------ a 500


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


def test_an_unexpected_error_is_a_json_500_that_keeps_the_connection(gateway_settings):
    def boom():
        raise RuntimeError("a bug")

    records = _Records()
    loggers = [logging.getLogger(name) for name in ("uvicorn.error", "belle_gateway.errors")]
    for logger in loggers:
        logger.addHandler(records)
    gateway = LiveGateway(gateway_settings.model_copy(update={"run_sweeper": False}))
    try:
        gateway.app.dependency_overrides[get_team] = boom
        with httpx.Client(base_url=gateway.url, timeout=30) as http:
            failed = http.get("/v1/jobs")
            error = _error(failed, 500)
            assert error["code"] == "internal_error" and error["type"] == "api_error"
            assert failed.headers.get("connection", "").lower() != "close"
            again = http.get("/healthz")
            assert again.status_code == 200
            local = [r.extensions["network_stream"].get_extra_info("client_addr") for r in (failed, again)]
            assert local[0] == local[1], "the second request needed a new connection"
    finally:
        gateway.stop()
        for logger in loggers:
            logger.removeHandler(records)
    tracebacks = [r for r in records.records if r.exc_info]
    assert len(tracebacks) == 1 and "a bug" in str(tracebacks[0].exc_info[1])


# ------------------------------------------------------------------------------ specs


def test_specs_that_could_only_fail_in_the_worker_are_a_400(client, team):
    _, headers = team
    train = {"type": "train", "base_model": "tiny", "dataset_id": str(uuid.uuid4())}
    for seed in (-1, 1e30):
        error = _error(client.post("/v1/jobs", headers=headers, json={**train, "hyperparameters": {"seed": seed}}), 400)
        assert error["param"] == "hyperparameters.seed", error
    judge = {"base_url": "http://127.0.0.1:9/v1", "model": "judge"}
    error = _error(client.post("/v1/jobs", headers=headers, json={
        "type": "eval", "model_ids": ["m", "m"], "judge": judge}), 400)
    assert error["param"] == "model_ids" and "named twice" in error["message"]
    raw = b'{"type": "datagen", "teacher": {"base_url": "http://t/v1", "model": "m"}, "max_cost_usd": Infinity}'
    error = _error(client.post("/v1/jobs", headers={**headers, "Content-Type": "application/json"}, content=raw), 400)
    assert error["param"] == "max_cost_usd"
    assert client.get("/v1/jobs", headers=headers).json()["count"] == 0


def test_create_team_checks_the_name_before_the_database(session_factory, settings):
    from sqlalchemy import func, select

    from belle_shared.db.models import Team
    from belle_shared.teams import MAX_TEAM_NAME, InvalidTeamName, create_team

    with session_factory() as session:
        before = session.scalar(select(func.count()).select_from(Team))
        for name in ("", " ", "x" * 300, "a\x00b"):
            with pytest.raises(InvalidTeamName):
                create_team(session, name=name, secret=settings.secret_key)
        longest = uuid.uuid4().hex + "x" * (MAX_TEAM_NAME - 32)
        team, _ = create_team(session, name=longest, secret=settings.secret_key)
        session.commit()
        assert session.scalar(select(func.count()).select_from(Team)) == before + 1 and team.name == longest


def test_an_eval_naming_one_model_by_name_and_by_id_is_a_400(client, team, session_factory):
    from belle_shared.db.models import Model, ModelKind

    created, headers = team
    with session_factory() as session:
        model = Model(id=uuid.uuid4(), team_id=created.id, name=f"m-{uuid.uuid4().hex[:8]}", kind=ModelKind.base,
                      uri="file:///nowhere", details={})
        session.add(model)
        session.commit()
        name, model_id = model.name, str(model.id)
    error = _error(client.post("/v1/jobs", headers=headers, json={
        "type": "eval", "model_ids": [name, model_id], "mode": "reference"}), 400)
    assert error["param"] == "model_ids[1]" and error["code"] == "duplicate_model" and name in error["message"]
    assert client.get("/v1/jobs", headers=headers).json()["count"] == 0
