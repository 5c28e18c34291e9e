"""The whole recipe on a real pretrained model (SmolLM2-135M-Instruct, the bundled model), through the
queue: a `model_import` job registers it, LoRA trains it in its own ChatML template and a full fine-tune
in BELLE's, GPTQ quantizes it to 4 bits with a group size that divides its 576-wide layers, the
evaluator scores base, fine-tuned and 4-bit models (exact match), chat streams from each, and lineage
leads back to the import. Training takes a handful of steps; what takes minutes is the demo's
(`belle demo --model smollm2`) and the benchmarks'.

Its own module: it runs its own datagen, trainer, quantizer and evaluator workers."""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path

import pytest

from belle_shared.teams import create_team
from belle_teacher.evalset import make_eval_set
from belle_teacher.tasks import generate_task, question_of
from conftest import WorkerProcess
from helpers import events, upload, wait_status
from teacher import start_teacher

# Each test may take minutes on 2 cores (GPTQ over 210 layers; a full fine-tune), twice that beside another test file.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

WORKERS = ("belle_datagen.worker", "belle_trainer.worker", "belle_quantizer.worker", "belle_evaluator.worker")


# Three kinds of the offline teacher's family that a pretrained model picks up in a few dozen rows; the
# eval questions are held out of the training rows.
KINDS = ["extreme", "parity", "case"]
EVAL_QUESTIONS = make_eval_set(24, seed=11, kinds=KINDS)


def _rows(n: int, seed: int) -> list[dict]:
    holdout = frozenset(row["question"] for row in EVAL_QUESTIONS)
    rng = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < n:
        task = generate_task(rng, "zh", kind=rng.choice(KINDS), avoid=holdout)
        question = question_of(task.instruction, task.input)
        if question not in seen and question not in holdout:
            seen.add(question)
            rows.append({"instruction": question, "input": "", "output": task.output})
    return rows


@pytest.fixture(scope="module")
def recipe(client, settings, session_factory, real_model, tmp_path_factory):
    """A team, the workers, and what the tests make along the way (filled in as they run, in order)."""
    with session_factory() as session:
        _, key = create_team(session, name=f"team-{uuid.uuid4().hex[:8]}", secret=settings.secret_key)
        session.commit()
    logs = tmp_path_factory.mktemp("real-model-logs")
    workers = [WorkerProcess(settings, logs / f"{module}.log", module=module) for module in WORKERS]
    try:
        yield {"headers": {"Authorization": f"Bearer {key}"}}
    finally:
        for worker in workers:
            worker.stop()


def _job(client, headers, spec: dict, timeout: float = 300) -> dict:
    response = client.post("/v1/jobs", headers=headers, json=spec)
    assert response.status_code == 201, response.text
    job = wait_status(client, headers, response.json()["id"], timeout=timeout)
    assert job["status"] == "succeeded", job["error"]
    return job


def _chat(client, headers, model: str, question: str) -> tuple[str, str]:
    """A streamed greedy reply: (text, finish reason)."""
    body = {"model": model, "messages": [{"role": "user", "content": question}], "temperature": 0,
            "max_tokens": 48, "stream": True}
    text, finish = "", None
    with client.stream("POST", "/v1/chat/completions", headers=headers, json=body) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            choice = json.loads(line[6:])["choices"][0]
            text += choice["delta"].get("content") or ""
            finish = choice.get("finish_reason") or finish
    return text, finish


def test_import_the_bundled_model(client, recipe, session_factory):
    headers = recipe["headers"]
    job = _job(client, headers, {"type": "model_import", "bundled": "smollm2"})
    result = job["result"]
    assert result["model"] == "smollm2-135m-instruct" and result["model_type"] == "llama"
    assert result["end_of_turn"] == "<|im_end|>" and result["chat_template"] is True
    assert 130e6 < result["parameters"] < 140e6
    model = client.get("/v1/models/smollm2-135m-instruct", headers=headers).json()
    assert model["kind"] == "base" and model["owned_by"] != "belle"
    assert model["details"]["hidden_size"] == 576 and model["details"]["import"]["source"]["format"] == "gguf"
    stages = [e["data"].get("stage") for e in events(client, headers, job["id"]) if e["data"]]
    assert "copy" not in stages  # the converted folder goes from the cache to the store directly
    lineage = client.get("/v1/models/smollm2-135m-instruct/lineage", headers=headers).json()
    assert lineage["chain"][0]["made_by"]["id"] == job["id"]

    # Imported twice under one name: a 409 before anything is queued.
    again = client.post("/v1/jobs", headers=headers, json={"type": "model_import", "bundled": "smollm2",
                                                           "name": "smollm2-135m-instruct"})
    assert again.status_code == 409 and again.json()["error"]["param"] == "name"

    # The real model answers in real language, and stops at its end-of-turn token.
    text, finish = _chat(client, headers, "smollm2-135m-instruct", "What is the capital of France?")
    assert "Paris" in text and finish == "stop"
    recipe["base"] = result["model"]


def test_import_a_hugging_face_folder_by_a_path_under_a_model_root(client, recipe, settings, real_model):
    """A folder (here the converted SmolLM2, without its import record) named relative to a model root is
    copied into the store, checked by loading, and registered under the folder's name."""
    import shutil

    root = settings.resolved_model_roots[0]
    folder = root / f"smol-hf-{uuid.uuid4().hex[:6]}"
    shutil.copytree(real_model, folder, ignore=shutil.ignore_patterns("belle_import.json"))
    headers = recipe["headers"]
    job = _job(client, headers, {"type": "model_import", "path": folder.name})
    assert job["result"]["model"] == folder.name and job["result"]["source"]["format"] == "huggingface"
    assert job["result"]["end_of_turn"] == "<|im_end|>"
    stored = _folder(client, headers, folder.name)
    assert stored != folder and (stored / "model.safetensors").is_file()  # a copy in the artifact store


def test_lora_trains_in_the_bases_own_template(client, recipe):
    headers = recipe["headers"]
    file = upload(client, headers, _rows(48, seed=1))
    imported = _job(client, headers, {"type": "import", "file_id": file["id"]}, timeout=60)
    recipe["dataset_id"] = imported["result"]["dataset_id"]
    job = _job(client, headers, {
        "type": "train", "base_model": recipe["base"], "dataset_id": recipe["dataset_id"], "method": "lora",
        "zero_stage": 0, "validation_split": 0.0, "lora": {"r": 16, "alpha": 32, "dropout": 0.0},
        "hyperparameters": {"epochs": 2, "batch_size": 4, "gradient_accumulation_steps": 1, "max_length": 160,
                            "learning_rate": 2e-3, "warmup_ratio": 0.05}})
    losses = [e["data"]["loss"] for e in events(client, headers, job["id"])
              if e["kind"] == "metrics" and e["data"] and e["data"].get("loss") is not None]
    assert len(losses) >= 12 and losses[-1] < losses[0] / 4  # it learns (what it learns: the eval below)
    name = job["result"]["fine_tuned_model"]

    folder = _folder(client, headers, name)
    base_folder = _folder(client, headers, recipe["base"])
    record = json.loads((folder / "belle_training.json").read_text())
    assert (record["chat_template"], record["end_of_turn"]) == ("base", "<|im_end|>")
    assert (folder / "chat_template.jinja").read_text() == (base_folder / "chat_template.jinja").read_text()
    assert _changed(folder, base_folder, "model.layers.0.self_attn.q_proj.weight")  # the adapter was merged in
    recipe["lora"] = name


def test_full_fine_tune_in_belles_template(client, recipe):
    from belle_shared.chat_template import BELLE_TEMPLATE_SPACE_IN_REPLY

    headers = recipe["headers"]
    # Sized by time: a few steps of the 12 an epoch holds, the schedule fitted to them (a `budget` event).
    job = _job(client, headers, {
        "type": "train", "base_model": recipe["base"], "dataset_id": recipe["dataset_id"], "method": "full",
        "chat_template": "belle", "zero_stage": 0, "validation_split": 0.0, "packing": False,
        "hyperparameters": {"epochs": 1, "batch_size": 4, "gradient_accumulation_steps": 1, "max_length": 128,
                            "learning_rate": 1e-5, "max_seconds": 12}})
    fits = [e["data"] for e in events(client, headers, job["id"]) if e["data"] and "planned_steps" in e["data"]]
    assert fits and all(fit["total_steps"] < fit["planned_steps"] == 12 for fit in fits)  # a refit if the pace changed
    assert job["result"]["steps"] <= fits[-1]["total_steps"]
    name = job["result"]["fine_tuned_model"]
    folder = _folder(client, headers, name)
    assert json.loads((folder / "belle_training.json").read_text())["chat_template"] == "belle"
    # BELLE's format, spelt for a byte-level BPE: the space after "Assistant:" belongs to the reply.
    assert (folder / "chat_template.jinja").read_text() == BELLE_TEMPLATE_SPACE_IN_REPLY
    text, _ = _chat(client, headers, name, "What is the capital of France?")
    assert text and not text.startswith(" ")  # the template's space is not sent


def test_gptq_picks_a_group_size_that_divides_576(client, recipe):
    headers = recipe["headers"]
    refused = client.post("/v1/jobs", headers=headers, json={"type": "quantize", "model_id": recipe["lora"],
                                                             "group_size": 128, "calibration_samples": 4,
                                                             "eval_samples": 4})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "group_size"
    assert "576" in refused.json()["error"]["message"] and "64" in refused.json()["error"]["message"]

    job = _job(client, headers, {"type": "quantize", "model_id": recipe["lora"], "bits": 4, "calibration_samples": 4,
                                 "eval_samples": 4, "calibration_length": 128}, timeout=600)
    result = job["result"]
    assert result["quantized_model"].startswith(f"{recipe['lora']}:gptq-w4g64:")
    folder = _folder(client, headers, result["quantized_model"])
    report = json.loads((folder / "quantization_report.json").read_text())
    assert report["group_size"] == {"value": 64, "from": "auto"}
    # The GPTQ layout computed by hand for SmolLM2's 30 layers (in, out): q and o 576x576, k and v 576x192
    # (3 KV heads), gate and up 576x1536, down 1536x576. Packed 4-bit weights, a float16 scale and a packed
    # zero point per group of 64 inputs per output, and one int32 group index per input.
    layers = 30 * [(576, 576), (576, 192), (576, 192), (576, 576), (576, 1536), (576, 1536), (1536, 576)]
    assert report["size"]["linear_fp16_bytes"] == sum(2 * i * o for i, o in layers)
    assert report["size"]["linear_quantized_bytes"] == sum(i * o / 2 + (i // 64) * o * 2.5 + 4 * i for i, o in layers)
    perplexity = report["perplexity"]
    # A real model loses something to 4 bits, GPTQ less than round-to-nearest.
    assert perplexity["source"] < perplexity["gptq"] < perplexity["rtn"]
    # The quantizer's probe reloaded the folder in a fresh process, with GPTQ layers. (That the recorded
    # perplexity is what a process of the test's own measures is checked on the tiny model, in
    # test_quantize_job.py: here it would cost another load of gptqmodel and the model.)
    assert report["generation_check"]["layer_type"] != "Linear" and report["generation_check"]["tokens"] > 0

    text, finish = _chat(client, headers, result["quantized_model"], "What is the capital of France?")
    assert text and finish in ("stop", "length")
    recipe["gptq"] = result["quantized_model"]


def test_the_fine_tuned_model_answers_held_out_questions_and_so_does_its_4_bit_copy(client, recipe):
    """The proof that fine-tuning works, on a real model: exact match on held-out questions of the kinds it
    was trained on (measured while writing this test: base 0%, LoRA 54% after 2 epochs of 48 rows)."""
    headers = recipe["headers"]
    file = upload(client, headers, EVAL_QUESTIONS, filename="eval.jsonl", purpose="eval")
    models = [recipe["base"], recipe["lora"], recipe["gptq"]]
    job = _job(client, headers, {"type": "eval", "mode": "reference", "eval_file_id": file["id"], "model_ids": models,
                                 "generation": {"max_new_tokens": 16}, "batch_size": 12}, timeout=300)
    overall = job["result"]["overall"]
    base, tuned, quantized = (overall[m] for m in models)
    print(f"exact match on {len(EVAL_QUESTIONS)} held-out questions: base {base:.3f}, LoRA {tuned:.3f}, "
          f"4-bit {quantized:.3f}")
    assert base <= 0.05  # it answers at length, in its own words
    assert tuned >= base + 0.25
    assert quantized >= base + 0.15  # 4 calibration samples only: the 4-bit copy keeps most of it
    # The LLM-judge mode too, with the offline teacher as the judge: it scores an answer 1 exactly when
    # it is the reference answer, so the judge's score equals exact match (up to the case it ignores).
    judge_model = f"judge-{uuid.uuid4().hex[:8]}"  # the judgments cache is keyed by it: none from other tests
    with start_teacher(seed=0, model=judge_model) as teacher:
        judge = {"base_url": teacher.base_url, "model": judge_model}
        judged = _job(client, headers, {"type": "eval", "mode": "judge", "judge": judge, "eval_file_id": file["id"],
                                        "model_ids": [recipe["lora"]], "max_questions": 8,
                                        "generation": {"max_new_tokens": 16}, "batch_size": 8}, timeout=300)
    scores = client.get(f"/v1/evals/{judged['id']}", headers=headers).json()["scores"][recipe["lora"]]
    assert scores["overall"]["judge"]["count"] == 8 and scores["overall"]["judge"]["score"] > 0

    lineage = client.get(f"/v1/models/{recipe['gptq']}/lineage", headers=headers).json()
    assert [link["model"]["id"] for link in lineage["chain"]] == [recipe["gptq"], recipe["lora"], recipe["base"]]
    assert lineage["chain"][-1]["made_by"]["type"] == "model_import"


def _folder(client, headers, name: str) -> Path:
    """The model's folder (the artifact store is a local folder in the tests)."""
    from sqlalchemy import select

    from belle_shared.db.models import Model

    model_id = client.get(f"/v1/models/{name}", headers=headers).json()["belle_id"]
    with client.app.state.session_factory() as session:
        return Path(session.scalar(select(Model.uri).where(Model.id == uuid.UUID(model_id))))


def _changed(folder: Path, base: Path, tensor: str) -> bool:
    from safetensors import safe_open

    def load(path: Path):
        for file in sorted(path.glob("*.safetensors")):
            with safe_open(str(file), "pt") as f:
                if tensor in f.keys():
                    return f.get_tensor(tensor).float()
        raise AssertionError(f"{tensor} not in {path}")

    return not bool((load(folder) == load(base)).all())
