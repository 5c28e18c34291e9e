"""`GET /v1/models/{model}/lineage` on PostgreSQL: a quantized model followed back to its base.

The rows are written as the workers write them (`helpers.write_recipe_rows`: a datagen job and its
dataset, a training job and its fine-tuned model, a quantize job and its quantized model, an eval
job, all steps of one pipeline), so every link and the team boundary are checked exactly.
"""

from __future__ import annotations

import uuid

import pytest

from belle_shared.db.models import EvalResult
from helpers import write_recipe_rows

pytestmark = pytest.mark.integration


def test_a_quantized_model_leads_back_to_its_data_jobs_scores_and_pipeline(client, team, session_factory):
    owner, headers = team
    with session_factory() as session, session.begin():
        rows = write_recipe_rows(session, owner.id)
        for model, score in ((rows["base"], 0.0), (rows["tuned"], 0.95), (rows["quantized"], 0.93)):
            for task_class in ("overall", "math"):
                session.add(EvalResult(job_id=rows["eval"].id, model_id=model.id, task_class=task_class,
                                       metric="exact_match", score=score, count=40))
    pipeline, datagen, train, quant, evaluation, dataset, base, tuned, quantized = (rows[k] for k in (
        "pipeline", "datagen", "train", "quant", "eval", "dataset", "base", "tuned", "quantized"))

    response = client.get(f"/v1/models/{quantized.name}/lineage", headers=headers)
    assert response.status_code == 200, response.text
    lineage = response.json()
    assert lineage["model"] == quantized.name
    assert [n["model"]["id"] for n in lineage["chain"]] == [quantized.name, tuned.name, base.name]
    assert [n["model"]["kind"] for n in lineage["chain"]] == ["quantized", "fine_tuned", "base"]
    q, ft, b = lineage["chain"]
    assert q["made_by"]["id"] == str(quant.id) and q["made_by"]["pipeline_step"] == "quant"
    assert ft["made_by"]["id"] == str(train.id) and ft["made_by"]["type"] == "train"
    assert ft["dataset"]["id"] == str(dataset.id) and ft["dataset"]["rows"] == 120
    assert ft["dataset"]["made_by"]["id"] == str(datagen.id) and ft["dataset"]["dropped"]["too_short"] == 3
    assert b["made_by"] is None and b["dataset"] is None and b["model"]["owned_by"] == "belle"
    assert [e["overall"]["exact_match"] for e in (q["evals"] + ft["evals"] + b["evals"])] == [0.93, 0.95, 0.0]
    assert ft["evals"][0]["job_id"] == str(evaluation.id) and ft["evals"][0]["classes"]["math"]["exact_match"] == 0.95
    assert lineage["pipelines"] == [{"id": str(pipeline.id), "name": "recipe", "status": "succeeded"}]

    # By id too; another team sees neither the model nor its lineage.
    assert client.get(f"/v1/models/{quantized.id}/lineage", headers=headers).json()["model"] == quantized.name
    from belle_shared.teams import create_team

    with session_factory() as session:
        _, key = create_team(session, name=f"other-{uuid.uuid4().hex[:8]}", secret=client.app.state.settings.secret_key)
        session.commit()
    other = client.get(f"/v1/models/{quantized.name}/lineage", headers={"Authorization": f"Bearer {key}"})
    assert other.status_code == 404 and other.json()["error"]["code"] == "model_not_found"


def test_a_model_name_cannot_end_in_lineage(client, team):
    _, headers = team
    response = client.post("/v1/models", headers=headers, json={"name": "org/x/lineage", "path": "/nowhere"})
    assert response.status_code == 400 and response.json()["error"]["param"] == "name"
    assert "/lineage" in response.json()["error"]["message"]
