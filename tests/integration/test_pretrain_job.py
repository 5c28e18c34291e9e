"""Continued pre-training jobs end to end (belle_shared.pretraining): plain text and JSONL uploads of
purpose `pretrain`, a vocabulary grown from the text with LoRA training the new rows, full training
without one, and what is refused before anything is queued. Its own module (the tests control every
trainer worker on the `train` queue)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import events, jsonl, shared_tiny_model, upload, wait_status

pytestmark = pytest.mark.integration

TRAINER = "belle_trainer.worker"
CORPUS = Path(__file__).resolve().parents[2] / "services/trainer/belle_trainer/data/tokenizer_corpus.txt"


@pytest.fixture(scope="module")
def base_model(tmp_path_factory, session_factory):
    return shared_tiny_model(tmp_path_factory.mktemp("models") / "tiny", session_factory, "tiny-llama-pretrain-test")


def _documents(count: int) -> list[str]:
    """Chinese documents of the shipped corpus (its documents are separated by two blank lines)."""
    docs = [d.strip() for d in CORPUS.read_text(encoding="utf-8").split("\n\n\n") if d.strip()]
    chinese = [d for d in docs if sum("\u4e00" <= ch <= "\u9fff" for ch in d) > len(d) / 3]
    return chinese[:count]


def _hyperparameters() -> dict:
    return {"epochs": 1, "batch_size": 4, "gradient_accumulation_steps": 1, "max_length": 128}


def test_lora_pretraining_with_a_grown_vocabulary(client, team, start_worker, base_model):
    _, headers = team
    start_worker(module=TRAINER)
    text = "\n\n".join(_documents(120)).encode("utf-8")
    file = upload(client, headers, content=text, filename="corpus.txt", purpose="pretrain")
    assert file["purpose"] == "pretrain"
    spec = {"type": "pretrain", "base_model": base_model, "training_file_id": file["id"], "method": "lora",
            "zero_stage": 0, "vocabulary": {"max_new_tokens": 300, "min_frequency": 2},
            "hyperparameters": _hyperparameters()}
    job = client.post("/v1/jobs", headers=headers, json=spec).json()
    job = wait_status(client, headers, job["id"], timeout=300)
    assert job["status"] == "succeeded", job["error"]
    vocabulary = job["result"]["vocabulary"]
    assert vocabulary["added_tokens"] > 0
    assert vocabulary["vocab_size_after"] == vocabulary["vocab_size_before"] + vocabulary["added_tokens"]
    assert vocabulary["tokens_per_char_after"] < vocabulary["tokens_per_char_before"]
    assert job["result"]["objective"] == "pretrain" and job["result"]["trained_tokens"] > 0
    kinds = [e["kind"] for e in events(client, headers, job["id"])]
    assert "vocabulary" in kinds and "metrics" in kinds

    # The model chats like any other: its tokenizer is the grown one, its template the base's.
    name = job["result"]["fine_tuned_model"]
    reply = client.post("/v1/chat/completions", headers=headers, json={
        "model": name, "messages": [{"role": "user", "content": "今天天气怎么样？"}], "max_tokens": 8,
        "temperature": 0}).json()
    assert reply["choices"][0]["message"]["content"] is not None, reply


def test_full_pretraining_from_jsonl_text(client, team, start_worker, base_model):
    _, headers = team
    start_worker(module=TRAINER)
    file = upload(client, headers, content=jsonl([{"text": d} for d in _documents(40)]), filename="docs.jsonl",
                  purpose="pretrain")
    spec = {"type": "pretrain", "base_model": base_model, "training_file_id": file["id"], "zero_stage": 0,
            "hyperparameters": _hyperparameters()}
    job = client.post("/v1/jobs", headers=headers, json=spec).json()
    job = wait_status(client, headers, job["id"], timeout=300)
    assert job["status"] == "succeeded", job["error"]
    assert "vocabulary" not in job["result"] and job["result"]["steps"] > 0


def test_what_cannot_work_is_refused_before_it_is_queued(client, team, base_model):
    _, headers = team
    tuned = upload(client, headers, [{"instruction": "a", "output": "b"}], purpose="fine-tune")
    refused = client.post("/v1/jobs", headers=headers, json={"type": "pretrain", "base_model": base_model,
                                                            "training_file_id": tuned["id"]})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "training_file_id"
    assert refused.json()["error"]["code"] == "wrong_file_purpose"
    no_text = client.post("/v1/files", headers=headers, data={"purpose": "pretrain"},
                          files={"file": ("rows.jsonl", jsonl([{"body": "没有 text 字段"}]))})
    assert no_text.status_code == 400 and "text" in no_text.json()["error"]["message"]
    text = upload(client, headers, content="一段文字。".encode(), filename="t.txt", purpose="pretrain")
    bad_vocab = client.post("/v1/jobs", headers=headers, json={"type": "pretrain", "base_model": base_model,
                                                              "training_file_id": text["id"],
                                                              "vocabulary": {"max_new_tokens": 0}})
    assert bad_vocab.status_code == 400 and bad_vocab.json()["error"]["param"] == "vocabulary.max_new_tokens"
    missing = client.post("/v1/jobs", headers=headers, json={"type": "pretrain", "base_model": "no-such-model",
                                                            "training_file_id": text["id"]})
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "base_model"
