"""Quantization jobs end to end: gateway -> Redis -> quantizer worker -> GPTQModel on a tiny model that
was trained a few hundred steps by the real trainer; the folder reloads in a fresh process and the
recorded numbers are the measured ones. Bad input is refused at submit time or fails the job clearly.

Its own module: it runs its own datagen, trainer and quantizer workers."""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path

import pytest

from belle_shared.models import register_model
from belle_shared.teams import create_team
from belle_teacher.tasks import generate_task
from conftest import WorkerProcess
from helpers import events, measure_in_fresh_process, upload, wait_status

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]  # beside another test file under `make test`

ROWS = 320


def _rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        task = generate_task(rng, "zh")
        question = task.instruction + ("\n" + task.input if task.input else "")
        rows.append({"instruction": question, "input": "", "output": task.output})
    return rows


@pytest.fixture(scope="module")
def trained(client, settings, session_factory, tmp_path_factory):
    """A team, its imported dataset and a tiny LLaMA fully fine-tuned on it for 320 steps."""
    from belle_trainer.tiny import init_tiny_model

    logs = tmp_path_factory.mktemp("quantize-logs")
    base_path = init_tiny_model(tmp_path_factory.mktemp("models") / "tiny", arch="llama", seed=0)
    with session_factory() as session:
        _, key = create_team(session, name=f"team-{uuid.uuid4().hex[:8]}", secret=settings.secret_key)
        base = register_model(session, team_id=None, name=f"tiny-quantize-{uuid.uuid4().hex[:6]}", uri=str(base_path))
        session.commit()
        base_name = base.name
    headers = {"Authorization": f"Bearer {key}"}

    workers = [WorkerProcess(settings, logs / "datagen.log"),
               WorkerProcess(settings, logs / "trainer.log", module="belle_trainer.worker")]
    try:
        file = upload(client, headers, _rows(ROWS, seed=0))
        imported = wait_status(client, headers, client.post("/v1/jobs", headers=headers, json={
            "type": "import", "file_id": file["id"]}).json()["id"], timeout=60)
        assert imported["status"] == "succeeded", imported["error"]
        dataset_id = imported["result"]["dataset_id"]
        job = client.post("/v1/jobs", headers=headers, json={
            "type": "train", "base_model": base_name, "dataset_id": dataset_id, "method": "full", "zero_stage": 0,
            "packing": False, "validation_split": 0.0,
            "hyperparameters": {"epochs": 2, "batch_size": 2, "gradient_accumulation_steps": 1, "max_length": 96,
                                "learning_rate": 2e-3, "warmup_ratio": 0.02}}).json()
        job = wait_status(client, headers, job["id"], timeout=600)
        assert job["status"] == "succeeded", job["error"]
        assert job["result"]["steps"] >= 300
    finally:
        for worker in workers:
            worker.stop()
    quantizer = WorkerProcess(settings, logs / "quantizer.log", module="belle_quantizer.worker")
    yield {"headers": headers, "model": job["result"]["fine_tuned_model"], "dataset_id": dataset_id,
           "base": base_name}
    quantizer.stop()


def _quantize(client, headers, **spec) -> dict:
    response = client.post("/v1/jobs", headers=headers, json={"type": "quantize", **spec})
    assert response.status_code == 201, response.text
    return wait_status(client, headers, response.json()["id"], timeout=400)


# 4 bits on a real model (group size 64, chosen by the quantizer): tests/integration/test_real_model.py.
@pytest.mark.parametrize("bits", [8])
def test_quantize_job_records_a_model_that_reloads(client, trained, session_factory, bits):
    headers = trained["headers"]
    job = _quantize(client, headers, model_id=trained["model"], bits=bits, group_size=32,
                    calibration_samples=64, eval_samples=32, calibration_length=96)
    assert job["status"] == "succeeded", job["error"]
    result = job["result"]
    name = result["quantized_model"]
    assert name.startswith(f"{trained['model']}:gptq-w{bits}g32:")

    models = {m["id"]: m for m in client.get("/v1/models", headers=headers).json()["data"]}
    assert name in models

    from belle_shared.db.models import Dataset, Model

    with session_factory() as session:
        model = session.get(Model, uuid.UUID(result["model_id"]))
        parent = session.get(Model, model.parent_model_id)
        dataset = session.get(Dataset, model.dataset_id)
        folder, parent_folder, dataset_uri = model.uri, parent.uri, dataset.artifact.uri
        assert model.kind == "quantized" and parent.name == trained["model"]
        assert str(model.dataset_id) == trained["dataset_id"]  # calibrated on the data it was trained on
        spec = job["spec"]

    from belle_quantizer.measure import folder_bytes

    report = json.loads((Path(folder) / "quantization_report.json").read_text())
    assert report == model.details["quantization_report"]
    # Sizes are those of the folders on disk.
    assert report["size"]["quantized_bytes"] == folder_bytes(folder)
    assert report["size"]["source_bytes"] == folder_bytes(parent_folder)
    # The GPTQ layout, computed by hand for the tiny LLaMA's layers (in, out) x 2 layers: packed weights
    # (bits per weight), a float16 scale and a packed zero point per group of 32 inputs per output,
    # and one int32 group index per input.
    layers = 2 * ([(128, 128)] * 4 + [(128, 352)] * 2 + [(352, 128)])
    packed = sum(i * o * bits / 8 + (i // 32) * o * (2 + bits / 8) + 4 * i for i, o in layers)
    fp16 = sum(2 * i * o for i, o in layers)
    assert report["size"]["linear_fp16_bytes"] == fp16
    assert report["size"]["linear_quantized_bytes"] == packed
    assert report["size"]["linear_compression"] == pytest.approx(fp16 / packed, abs=1e-3)
    assert json.loads((Path(folder) / "config.json").read_text())["quantization_config"]["bits"] == bits

    # The recorded perplexity is what a fresh process measures on the same held-out rows.
    measured = measure_in_fresh_process(folder, dataset_uri, spec)
    assert measured["perplexity"] == pytest.approx(report["perplexity"]["gptq"], rel=1e-4)
    assert measured["generated"] == 8
    assert measured["layer"] != "Linear"  # a GPTQ kernel, not a plain float layer
    assert report["generation_check"]["tokens"] == 32

    # The gateway serves it: its engine loads the GPTQ folder from the registry.
    reply = client.post("/v1/chat/completions", headers=headers, json={
        "model": name, "messages": [{"role": "user", "content": "12 加 30 等于几？"}], "temperature": 0,
        "max_tokens": 12})
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"] and reply.json()["usage"]["completion_tokens"] > 0
    served = client.app.state.chat.pool._handles[result["model_id"]].loaded.module_classes
    assert measured["layer"] in served  # served with the GPTQ kernels a fresh process loads

    perplexity = report["perplexity"]
    assert perplexity["source"] < 30  # the model learned the task family (random init: ~4000)
    assert perplexity["gptq"] >= perplexity["source"] * 0.98
    assert perplexity["gptq_increase"] == pytest.approx(perplexity["gptq"] - perplexity["source"])
    kinds = {(e["data"] or {}).get("variant") for e in events(client, headers, job["id"]) if e["kind"] == "metrics"}
    assert {"source", "gptq", "rtn"} <= kinds


def test_bad_quantize_requests_are_refused_with_the_field(client, trained):
    headers = trained["headers"]

    def refused(spec: dict, param: str, code: str) -> str:
        response = client.post("/v1/jobs", headers=headers, json={"type": "quantize", **spec})
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert (error["param"], error["code"]) == (param, code), error
        return error["message"]

    message = refused({"model_id": trained["model"], "group_size": 128}, "group_size", "invalid_group_size")
    assert "352" in message and "32" in message  # the MLP width 352 and the largest group size that fits
    refused({"model_id": "no-such-model"}, "model_id", "model_not_found")
    refused({"model_id": trained["model"], "group_size": 32, "calibration_samples": ROWS}, "calibration_samples",
            "dataset_too_small")
    refused({"model_id": trained["base"], "group_size": 32}, "dataset_id", "dataset_required")
    response = client.post("/v1/jobs", headers=headers, json={"type": "quantize", "model_id": trained["model"],
                                                               "group_size": 48})
    assert response.status_code == 400 and "power of two" in response.text

    quantized = [m for m in client.get("/v1/models", headers=headers).json()["data"] if ":gptq-" in m["id"]]
    if quantized:
        refused({"model_id": quantized[0]["id"], "group_size": 32}, "model_id", "model_already_quantized")


def test_group_size_error_from_the_worker_names_the_layers(client, trained, session_factory):
    """A model whose widths the gateway cannot know (no config details) fails in the worker, clearly."""
    from belle_shared.db.models import Model

    headers = trained["headers"]
    with session_factory() as session:
        model = session.scalar(__import__("sqlalchemy").select(Model).where(Model.name == trained["model"]))
        copy = Model(team_id=model.team_id, name=f"{model.name}-copy", kind="fine_tuned", uri=model.uri,
                     dataset_id=model.dataset_id, details={})
        session.add(copy)
        session.commit()
        name = copy.name
    job = _quantize(client, headers, model_id=name, group_size=64, calibration_samples=16, eval_samples=8)
    assert job["status"] == "failed"
    assert job["error"]["code"] == "invalid_group_size" and job["error"]["param"] == "group_size"
    assert "down_proj (352)" in job["error"]["message"]
