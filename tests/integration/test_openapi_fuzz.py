"""The gateway against its own OpenAPI document, fuzzed by schemathesis: no 5xx from any input, and every
status, content type, header and body it answers is one the document describes (a client generated from
it can trust it). Every route but chat generation (its malformed bodies are test_chat_api.py's), with a
team's API key, on a gateway of its own: its own database and Redis key prefix, so the jobs the fuzzer
submits reach no worker of the other tests.

Bounded: a fixed number of examples per operation (about a minute on 2 cores; `--max-time` is not a cap in
schemathesis 4 but a budget it fills). The seed is
fixed so a failure reproduces; `BELLE_FUZZ_SEED=<n>` tries other inputs and `BELLE_FUZZ_EXAMPLES=<n>`
more of them. A failure prints schemathesis's report: the check, the response, a curl line to reproduce."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psycopg
import pytest
import redis

from belle_shared.db.engine import make_engine, make_session_factory
from belle_shared.db.migrate import upgrade
from belle_shared.teams import create_team
from conftest import PG_ADMIN_URL, REDIS_URL, RUN_ID
from helpers import LiveGateway, jsonl, upload, write_recipe_rows

pytestmark = pytest.mark.integration

SEED = os.environ.get("BELLE_FUZZ_SEED", "20261206")
EXAMPLES = os.environ.get("BELLE_FUZZ_EXAMPLES", "100")
MAX_SECONDS = 300  # a hang, not the plan: the run takes about a minute

# Every check of schemathesis's but these, which cannot hold for this API by design:
# `positive_data_acceptance` (a schema-valid request may name a file or model that does not exist: a 400
# naming the field is right) and `unsupported_method` (GET /v1/evals/judge reaches GET /v1/evals/{eval_id},
# a 400 for a non-UUID id, where it expects a 405).
CHECKS_OFF = ["positive_data_acceptance", "unsupported_method"]


@pytest.fixture(scope="module")
def fuzz_settings(settings, tmp_path_factory):
    """Settings of a gateway of this module's own: a database and a key prefix no worker reads."""
    name = f"belle_test_{RUN_ID}_fuzz"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    own = settings.model_copy(update={
        "database_url": settings.database_url.rsplit("/", 1)[0] + f"/{name}",
        "key_prefix": f"{settings.key_prefix}-fuzz",
        "artifact_root": str(tmp_path_factory.mktemp("fuzz-artifacts")),
    })
    upgrade(own)
    yield own
    broker = redis.Redis.from_url(REDIS_URL)
    keys = list(broker.scan_iter(f"{own.key_prefix}:*"))
    if keys:
        broker.delete(*keys)
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _seed(fuzz_settings, tmp_path) -> tuple[str, dict[str, list[str]]]:
    """A team with one of everything (an uploaded file, a secret, a finished pipeline's jobs, dataset and
    models): its API key, and the ids the fuzzer mixes into path and query parameters."""
    from fastapi.testclient import TestClient

    from belle_gateway.app import create_app
    from belle_gateway.settings import GatewaySettings

    engine = make_engine(fuzz_settings)
    try:
        with make_session_factory(engine)() as session:
            team, key = create_team(session, name="fuzz", secret=fuzz_settings.secret_key)
            rows = write_recipe_rows(session, team.id)
            data = tmp_path / "dataset.jsonl"
            data.write_bytes(jsonl([{"instruction": "1+1", "output": "2"}]))
            rows["dataset"].artifact.uri = data.as_uri()  # content the dataset routes can read
            session.commit()
            ids = {"job": [str(rows[k].id) for k in ("datagen", "train", "quant", "eval")],
                   "pipeline": [str(rows["pipeline"].id)], "dataset": [str(rows["dataset"].id)],
                   "eval": [str(rows["eval"].id)], "model": [rows["tuned"].name, rows["quantized"].name],
                   "fine_tuning": [str(rows["train"].id)]}
    finally:
        engine.dispose()
    headers = {"Authorization": f"Bearer {key}"}
    with TestClient(create_app(GatewaySettings(**fuzz_settings.model_dump(), run_sweeper=False))) as client:
        ids["file"] = [upload(client, headers, [{"instruction": "a", "output": "b"}])["id"]]
        assert client.put("/v1/secrets/JUDGE_API_KEY", headers=headers, json={"value": "sk-test"}).status_code == 200
        # The seed is what workers leave: every route that reads it answers (else a 5xx below would be
        # the seed's fault, not the gateway's).
        for kind, route in [("job", "/v1/jobs/{}"), ("job", "/v1/jobs/{}/events"), ("pipeline", "/v1/pipelines/{}"),
                            ("dataset", "/v1/datasets/{}/content"), ("eval", "/v1/evals/{}"),
                            ("eval", "/v1/evals/compare?ids={}"),
                            ("model", "/v1/models/{}/lineage"), ("fine_tuning", "/v1/fine_tuning/jobs/{}"),
                            ("fine_tuning", "/v1/fine_tuning/jobs/{}/checkpoints"), ("file", "/v1/files/{}/content")]:
            for value in ids[kind]:
                response = client.get(route.format(value), headers=headers)
                assert response.status_code == 200, (route, response.text)
    return key, ids


def _config(ids: dict[str, list[str]]) -> str:
    """schemathesis.toml: half the time a path or query id is one that exists, so routes get past the 404."""
    bindings = {"path.job_id": "job", "path.pipeline_id": "pipeline", "path.dataset_id": "dataset",
                "path.eval_id": "eval", "path.model": "model", "path.fine_tuning_job_id": "fine_tuning",
                "path.file_id": "file", "query.after": "job", "query.ids": "eval"}
    lines = []
    for kind, values in ids.items():
        lines += [f"[dictionaries.{kind}]", f"values = {json.dumps(values)}", ""]
    lines.append("[parameters]")
    lines += [f'"{param}" = {{ dictionary = "{kind}", probability = 0.5 }}' for param, kind in bindings.items()]
    # A multipart field has no type on the wire: a one-item array of strings, or an object as a file's
    # bytes, arrive as a valid upload, so "schema-violating request accepted" cannot apply to uploads.
    # The stateful phase counts `offset=[0.0]` (sent as offset=0.0, which JSON Schema itself counts as the
    # integer 0) as a schema-violating request the list routes accepted; the other phases know better.
    lines += ["", "[checks]"] + [f"{name}.enabled = false" for name in CHECKS_OFF]
    lines += ["", "[phases.stateful.checks]", "negative_data_rejection.enabled = false"]
    lines += ["", "[[operations]]", 'include-path = "/v1/files"', 'include-method = "POST"',
              "checks.negative_data_rejection.enabled = false"]
    return "\n".join(lines) + "\n"


def test_no_input_gets_a_server_error_or_an_undocumented_answer(fuzz_settings, tmp_path):
    from belle_gateway.settings import GatewaySettings

    key, ids = _seed(fuzz_settings, tmp_path)
    config = tmp_path / "schemathesis.toml"
    config.write_text(_config(ids))
    gateway = LiveGateway(GatewaySettings(**fuzz_settings.model_dump()))
    try:
        done = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run",
             f"{gateway.url}/openapi.json", "--header", f"Authorization: Bearer {key}",
             "--exclude-path", "/v1/chat/completions",
             "--max-examples", EXAMPLES, "--seed", SEED, "--workers", "2",
             "--request-timeout", "30", "--continue-on-failure", "--max-failures", "50", "--no-color"],
            capture_output=True, text=True, timeout=MAX_SECONDS, cwd=tmp_path)
    finally:
        gateway.stop()
    report = done.stdout + done.stderr
    print(report[report.find("Test Phases:"):])  # (shown with -s: the phases' times and the case count)
    assert done.returncode == 0, report[-20000:]
    summary = report[report.find("Test cases:"):]
    generated = int(summary.split()[2])
    assert generated > 1000, f"the fuzzer ran too few cases to mean anything: {summary}"
