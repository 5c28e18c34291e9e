"""Fine-tuning jobs end to end: gateway -> Redis -> trainer worker -> torchrun training of the tiny
model -> checkpoints and the fine-tuned model recorded; DPO from an uploaded preference file; cancel;
resume after a killed worker.

Its own module (the tests control every trainer worker on the `train` queue)."""

from __future__ import annotations

import random
import time

import pytest

from belle_teacher.tasks import generate_task
from helpers import events, shared_tiny_model, upload, wait_for, wait_status

pytestmark = pytest.mark.integration

TRAINER = "belle_trainer.worker"


@pytest.fixture(scope="module")
def base_model(tmp_path_factory, session_factory):
    return shared_tiny_model(tmp_path_factory.mktemp("models") / "tiny", session_factory, "tiny-llama-train-test")


def _rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        task = generate_task(rng, "zh")
        question = task.instruction + ("\n" + task.input if task.input else "")
        rows.append({"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": task.output}]})
    return rows


def _spec(base_model: str, file_id: str, **overrides) -> dict:
    spec = {"type": "train", "base_model": base_model, "training_file_id": file_id, "method": "lora",
            "zero_stage": 0, "packing": True,
            "hyperparameters": {"epochs": 2, "batch_size": 4, "gradient_accumulation_steps": 1, "max_length": 128}}
    spec.update(overrides)
    return spec


def test_lora_fine_tune_records_model_and_checkpoints(client, team, start_worker, base_model):
    _, headers = team
    start_worker(module=TRAINER)
    data = upload(client, headers, _rows(48), purpose="fine-tune")
    job = client.post("/v1/jobs", headers=headers, json=_spec(base_model, data["id"])).json()
    job = wait_status(client, headers, job["id"], timeout=240)
    assert job["status"] == "succeeded", job["error"]
    result = job["result"]
    assert result["fine_tuned_model"].startswith(f"ft:{base_model}:")
    assert result["steps"] > 0 and result["trained_tokens"] > 0

    kinds = [e["kind"] for e in events(client, headers, job["id"])]
    assert "metrics" in kinds and "checkpoint" in kinds
    models = client.get("/v1/models", headers=headers).json()["data"]
    assert result["fine_tuned_model"] in [m["id"] for m in models]
    checkpoints = client.get(f"/v1/fine_tuning/jobs/{job['id']}/checkpoints", headers=headers).json()["data"]
    assert checkpoints and all(c["step_number"] > 0 for c in checkpoints)


def test_dpo_job_from_an_uploaded_preference_file(client, team, start_worker, base_model):
    """OpenAI's DPO rows, converted by the worker into canonical pairs; the steps report the reward
    margin and accuracy, and the result the objective."""
    _, headers = team
    start_worker(module=TRAINER)
    rng = random.Random(3)
    rows = [{"input": {"messages": [{"role": "user", "content": f"把{rng.randint(0, 999)}逐位写成中文数字"}]},
             "preferred_output": [{"role": "assistant", "content": "好的，答案是一二三。"}],
             "non_preferred_output": [{"role": "assistant", "content": str(rng.randint(10**5, 10**9))}]}
            for _ in range(32)]
    data = upload(client, headers, rows, purpose="fine-tune")
    spec = _spec(base_model, data["id"], objective="dpo", validation_split=0.1,
                 hyperparameters={"epochs": 1, "batch_size": 8, "gradient_accumulation_steps": 1, "max_length": 128,
                                  "learning_rate": 3e-3})
    job = client.post("/v1/jobs", headers=headers, json=spec).json()
    job = wait_status(client, headers, job["id"], timeout=240)
    assert job["status"] == "succeeded", job["error"]
    result = job["result"]
    assert result["objective"] == "dpo" and result["steps"] > 0 and 0 <= result["reward_accuracy"] <= 1
    messages = [e["message"] for e in events(client, headers, job["id"])]
    assert "train.jsonl: 32 rows" in messages
    assert any(m.startswith("step ") and ", reward margin " in m and ", accuracy " in m for m in messages), messages


def test_cancel_stops_training_within_seconds(client, team, start_worker, base_model):
    _, headers = team
    start_worker(module=TRAINER)
    data = upload(client, headers, _rows(400, seed=1), purpose="fine-tune")
    spec = _spec(base_model, data["id"], method="full",
                 hyperparameters={"epochs": 50, "batch_size": 1, "gradient_accumulation_steps": 1, "max_length": 128})
    job = client.post("/v1/jobs", headers=headers, json=spec).json()
    wait_for(lambda: any(e["kind"] == "metrics" for e in events(client, headers, job["id"])), timeout=180,
             message="the first training step")
    assert client.post(f"/v1/jobs/{job['id']}/cancel", headers=headers).status_code == 200
    started = time.monotonic()
    job = wait_status(client, headers, job["id"], timeout=60)
    assert job["status"] == "cancelled"
    assert time.monotonic() - started < 20
    pid = next(e["data"]["pid"] for e in events(client, headers, job["id"]) if (e["data"] or {}).get("pid"))
    wait_for(lambda: not _alive(pid), timeout=10, message="the training process group to exit")


def test_killed_worker_resumes_from_the_last_checkpoint(client, team, start_worker, base_model):
    _, headers = team
    worker = start_worker(module=TRAINER)
    data = upload(client, headers, _rows(80, seed=2), purpose="fine-tune")
    spec = _spec(base_model, data["id"], method="full",
                 hyperparameters={"epochs": 2, "batch_size": 1, "gradient_accumulation_steps": 1, "max_length": 128})
    job = client.post("/v1/jobs", headers=headers, json=spec).json()
    wait_for(lambda: any(e["kind"] == "checkpoint" for e in events(client, headers, job["id"])), timeout=240,
             message="the first checkpoint")
    worker.kill()
    start_worker(module=TRAINER)
    job = wait_status(client, headers, job["id"], timeout=300)
    assert job["status"] == "succeeded", job["error"]
    assert job["attempts"] == 2
    starts = [e for e in events(client, headers, job["id"]) if (e["data"] or {}).get("total_steps")]
    assert starts[-1]["data"]["resumed_from_step"] and starts[-1]["data"]["resumed_from_step"] > 0


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
