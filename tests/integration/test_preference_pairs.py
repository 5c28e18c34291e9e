"""preference_pairs jobs end to end: gateway -> Redis -> evaluator worker -> the generation subprocess
sampling a tiny local model, scored by the reference metric or the offline teacher as judge, recorded
as a preference dataset.

The prompts are the offline teacher's parity questions (`belle_teacher.evalset.make_eval_set`: "is 6313
odd or even?", reference 奇数 or 偶数, metric `exact_match_cased`). A random-init model never answers
them right, so every answer would score 0 and every prompt tie. The model here is the tiny LLaMA made
into a fair coin (`coin_model`): whatever the prompt, its next token is 奇数 or 偶数 with probability
1/2 each, so with one new token each sampled answer is right or wrong by chance, and a prompt gives a
pair (the right answer chosen, the wrong one rejected, gap 1) unless its four samples came out the
same. Its own module: it runs its own evaluator worker."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from belle_shared.artifacts import ArtifactStore
from belle_shared.models import register_model
from belle_shared.teams import create_team
from belle_teacher.evalset import make_eval_set
from conftest import WorkerProcess
from helpers import events, upload, wait_for, wait_status
from teacher import start_teacher

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WORDS = ("奇数", "偶数")
PROMPTS = 8
SAMPLES = 4
ROWS = make_eval_set(PROMPTS, seed=0, kinds=["parity"])


def coin_model(folder: Path, words: tuple[str, ...]) -> Path:
    """The tiny LLaMA, its weights changed so that its next token is one of ``words`` (one token each),
    evenly, whatever came before: residual dimension 0 is 1 for every token and no layer writes to it,
    the final norm keeps only that dimension, and the head maps it to logit 0 for the words and -10
    (times the norm's positive scale) for every other token."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from belle_trainer.tiny import init_tiny_model

    path = init_tiny_model(folder, arch="llama", seed=0)
    tokenizer = AutoTokenizer.from_pretrained(path)
    ids = [tokenizer.encode(word, add_special_tokens=False) for word in words]
    assert all(len(i) == 1 for i in ids), ids
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    with torch.no_grad():
        model.model.embed_tokens.weight[:, 0] = 1.0
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight[0, :] = 0.0
            layer.mlp.down_proj.weight[0, :] = 0.0
        model.model.norm.weight.zero_()
        model.model.norm.weight[0] = 1.0
        model.lm_head.weight.zero_()
        model.lm_head.weight[:, 0] = -10.0
        for (token,) in ids:
            model.lm_head.weight[token, 0] = 0.0
    model.save_pretrained(path, safe_serialization=True)
    return path


@pytest.fixture(scope="module")
def setup(client, settings, session_factory, tmp_path_factory):
    """A team with the coin model and the parity prompts uploaded, the teacher, and an evaluator worker."""
    model_path = coin_model(tmp_path_factory.mktemp("models") / "coin", WORDS)
    with session_factory() as session:
        team, key = create_team(session, name=f"team-{uuid.uuid4().hex[:8]}", secret=settings.secret_key)
        model = register_model(session, team_id=team.id, name=f"coin-{uuid.uuid4().hex[:6]}", uri=str(model_path))
        session.commit()
        ids = {"team": team.id, "model_id": str(model.id), "model": model.name, "model_uri": str(model_path)}
    headers = {"Authorization": f"Bearer {key}"}
    file = upload(client, headers, ROWS, filename="parity.jsonl", purpose="eval")
    teacher_model = f"judge-{uuid.uuid4().hex[:8]}"  # the judge's cache key holds it: no other test's replies
    worker = WorkerProcess(settings, tmp_path_factory.mktemp("pairs-logs") / "evaluator.log",
                           module="belle_evaluator.worker")
    try:
        with start_teacher(seed=0, model=teacher_model) as teacher:
            yield {**ids, "headers": headers, "file_id": file["id"],
                   "judge": {"base_url": teacher.base_url, "model": teacher_model}}
    finally:
        worker.stop()


def _spec(setup: dict, **change) -> dict:
    return {"type": "preference_pairs", "model_id": setup["model"], "prompt_file_id": setup["file_id"],
            "samples_per_prompt": SAMPLES, "generation": {"max_new_tokens": 1, "temperature": 1.0},
            "scoring": "reference", "batch_size": 8, "seed": 0, **change}


def _submit(client, setup: dict, **change) -> dict:
    response = client.post("/v1/jobs", headers=setup["headers"], json=_spec(setup, **change))
    assert response.status_code == 201, response.text
    return wait_status(client, setup["headers"], response.json()["id"], timeout=120)


def _read_jsonl(settings, uri: str) -> list[dict]:
    with ArtifactStore(settings.resolved_artifact_root).open(uri) as handle:
        return [json.loads(line) for line in handle.read().decode("utf-8").splitlines() if line.strip()]


def _dataset(client, setup: dict, job: dict) -> tuple[dict, list[dict]]:
    """The job's dataset over HTTP, and its rows."""
    dataset = client.get(f"/v1/datasets/{job['result']['dataset_id']}", headers=setup["headers"]).json()
    content = client.get(f"/v1/datasets/{dataset['id']}/content", headers=setup["headers"])
    assert content.status_code == 200
    return dataset, [json.loads(line) for line in content.text.splitlines() if line.strip()]


def _check_pairs(pairs: list[dict], samples: list[dict]) -> None:
    """Every pair is canonical, its chosen answer the right one and its rejected one the wrong one."""
    by_question = {s["question"]: s for s in samples}
    for pair in pairs:
        assert set(pair) == {"conversations", "chosen", "rejected"}
        (turn,) = pair["conversations"]
        assert turn["from"] == "human"
        sample = by_question[turn["value"]]
        assert pair["chosen"] == sample["std_answer"] != pair["rejected"]
        assert {pair["chosen"], pair["rejected"]} == set(WORDS)
        scores = {a["answer"]: a["score"] for a in sample["answers"]}
        assert scores[pair["chosen"]] == 1.0 > scores[pair["rejected"]] == 0.0


@pytest.fixture(scope="module")
def referenced(client, setup) -> dict:
    job = _submit(client, setup)
    assert job["status"] == "succeeded", job["error"]
    return job


def test_reference_scoring_records_a_preference_dataset_of_right_over_wrong(client, setup, settings, session_factory,
                                                                           referenced):
    from belle_shared.db.models import Artifact, Dataset

    result = referenced["result"]
    dataset, pairs = _dataset(client, setup, referenced)
    assert (dataset["format"], dataset["job_id"], dataset["name"]) == ("preferences", referenced["id"],
                                                                     f"pairs-{setup['model']}")
    assert dataset["source_file_id"] == setup["file_id"]
    assert result["dataset_id"] == dataset["id"] and result["name"] == dataset["name"]
    stats = dataset["stats"]
    samples = _read_jsonl(settings, stats["samples_uri"])
    assert [s["line"] for s in samples] == list(range(1, PROMPTS + 1))
    assert all(len(s["answers"]) == SAMPLES and {a["answer"] for a in s["answers"]} <= set(WORDS) for s in samples)

    # Two answers only, one right and one wrong: a prompt is a pair unless its samples all came out the same.
    identical = sum(len({a["answer"] for a in s["answers"]}) == 1 for s in samples)
    assert 0 < len(pairs) == PROMPTS - identical == dataset["rows"] == result["rows"] == result["pairs"]
    _check_pairs(pairs, samples)
    assert [s["outcome"] for s in samples].count("pair") == len(pairs)
    assert stats["dropped"] == result["dropped"] == {"tie": 0, "below_gap": 0, "identical": identical, "unscored": 0}
    assert (stats["ties_dropped"], result["ties_dropped"], stats["dropped_total"]) == (0, 0, identical)
    assert (stats["prompts"], stats["samples_per_prompt"], stats["answers"], stats["empty_answers"]) == (
        PROMPTS, SAMPLES, PROMPTS * SAMPLES, 0)
    assert stats["scored_by"] == {"exact_match_cased": PROMPTS * SAMPLES} and stats["unparsable"] == 0
    assert stats["score_gap"] == {"mean": 1.0, "min": 1.0}
    assert (stats["best_score_mean"], stats["worst_score_mean"]) == (1.0, 0.0)
    assert (stats["scoring"], stats["judge"], stats["judge_totals"]) == ("reference", None, None)
    assert stats["model"] == {"id": setup["model_id"], "name": setup["model"]} == result["model"]
    assert (stats["seed"], stats["batch_size"], stats["prompt_file"]) == (0, 8, {"id": setup["file_id"],
                                                                                 "name": "parity.jsonl"})

    with session_factory() as session:
        kinds = sorted(a.kind for a in session.scalars(select(Artifact).where(
            Artifact.job_id == uuid.UUID(referenced["id"]))))
        assert kinds == ["dataset", "preference_samples"]
        assert session.scalar(select(func.count()).select_from(Dataset).where(
            Dataset.job_id == uuid.UUID(referenced["id"]))) == 1

    kinds = [(e["kind"], e["message"]) for e in events(client, setup["headers"], referenced["id"])]
    messages = [m for _, m in kinds]
    assert any(m.startswith(f"sampling {SAMPLES} answers from {setup['model']} to each of {PROMPTS} prompts")
               for m in messages), messages
    assert ("progress", f"{setup['model']}: {PROMPTS * SAMPLES}/{PROMPTS * SAMPLES} answers") in kinds
    assert any(m.startswith(f"dataset 'pairs-{setup['model']}': {len(pairs)} pairs from {PROMPTS} prompts")
               for m in messages), messages


def test_the_same_seed_gives_the_same_pairs_and_another_seed_other_answers(client, setup, settings, referenced):
    first, _ = _dataset(client, setup, referenced)
    again = _submit(client, setup)
    assert again["status"] == "succeeded", again["error"]
    second, _ = _dataset(client, setup, again)
    assert second["id"] != first["id"] and second["sha256"] == first["sha256"]
    assert second["stats"]["dropped"] == first["stats"]["dropped"]

    other = _submit(client, setup, seed=1)
    assert other["status"] == "succeeded", other["error"]
    answers = [[[a["answer"] for a in s["answers"]] for s in _read_jsonl(settings, d["stats"]["samples_uri"])]
               for d in (first, _dataset(client, setup, other)[0])]
    assert answers[0] != answers[1]


def test_judge_scoring_with_the_offline_teacher_picks_the_same_pairs(client, setup, settings, referenced):
    job = _submit(client, setup, scoring="judge", judge=setup["judge"])
    assert job["status"] == "succeeded", job["error"]
    dataset, pairs = _dataset(client, setup, job)
    stats = dataset["stats"]
    samples = _read_jsonl(settings, stats["samples_uri"])
    _check_pairs(pairs, samples)
    # The same seed samples the same answers, and the teacher judges parity by recomputing it: the
    # reference run's pairs exactly.
    assert dataset["sha256"] == _dataset(client, setup, referenced)[0]["sha256"]
    assert stats["scored_by"] == {"judge": PROMPTS * SAMPLES} and stats["scoring"] == "judge"
    assert stats["judge"] == job["result"]["judge"] == setup["judge"]
    totals = stats["judge_totals"]
    # Each prompt has two possible answers, and identical prompts are sent once.
    distinct = sum(len({a["answer"] for a in s["answers"]}) for s in samples)
    assert (totals["judged"], totals["sent"], totals["unparsable"]) == (PROMPTS * SAMPLES, distinct, 0)
    for sample in samples:
        for answer in sample["answers"]:
            assert answer["scored_by"] == "judge" and answer["judge_reply"].startswith(f"得分: {answer['score']:g}")
    kinds = [(e["kind"], e["message"]) for e in events(client, setup["headers"], job["id"])]
    assert ("progress", f"judged {PROMPTS * SAMPLES}/{PROMPTS * SAMPLES} (0 from the cache)") in kinds


def test_auto_scoring_uses_the_reference_where_a_row_names_its_metric_and_the_judge_elsewhere(client, setup):
    rows = [dict(row) for row in ROWS[:4]]
    for row in rows[::2]:
        del row["metric"]  # parity is "classification": without a metric of its own, auto asks the judge
    file = upload(client, setup["headers"], rows, filename="mixed.jsonl", purpose="eval")
    job = _submit(client, setup, prompt_file_id=file["id"], scoring="auto", judge=setup["judge"])
    assert job["status"] == "succeeded", job["error"]
    stats = client.get(f"/v1/datasets/{job['result']['dataset_id']}", headers=setup["headers"]).json()["stats"]
    assert stats["scored_by"] == {"exact_match_cased": 2 * SAMPLES, "judge": 2 * SAMPLES}
    assert stats["prompts"] == 4 and stats["pairs"] + stats["dropped"]["identical"] == 4


def test_no_pair_at_all_fails_the_job_with_the_counts(client, setup):
    # Right minus wrong is 1, never more than a min_score_gap of 1.
    job = _submit(client, setup, min_score_gap=1.0, max_prompts=2)
    assert job["status"] == "failed"
    error = job["error"]
    assert error["code"] == "no_pairs" and "none of the 2 prompts gave a pair" in error["message"]
    dropped = error["details"]["dropped"]
    assert dropped["below_gap"] + dropped["identical"] == 2 and dropped["below_gap"] >= 1
    datasets = client.get("/v1/datasets", headers=setup["headers"]).json()["data"]
    assert job["id"] not in {d["job_id"] for d in datasets}


def test_a_job_cancelled_while_sampling_stops_its_generation_and_records_nothing(client, setup, session_factory):
    import os

    from belle_shared.db.models import Dataset

    # 16 answers of 64 tokens to each prompt, one at a time: far longer than the cancel takes.
    response = client.post("/v1/jobs", headers=setup["headers"], json=_spec(
        setup, samples_per_prompt=16, batch_size=1, generation={"max_new_tokens": 64, "temperature": 1.0}))
    job_id = response.json()["id"]

    def generating():
        found = [e for e in events(client, setup["headers"], job_id) if (e["data"] or {}).get("pid")]
        return found[0]["data"]["pid"] if found else None

    pid = wait_for(generating, timeout=60, message="the generation subprocess")
    assert client.post(f"/v1/jobs/{job_id}/cancel", headers=setup["headers"]).status_code == 200
    job = wait_status(client, setup["headers"], job_id, timeout=60)
    assert job["status"] == "cancelled", job
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Dataset).where(Dataset.job_id == uuid.UUID(job_id))) == 0

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(gone, timeout=10, message=f"the generation subprocess {pid} to end")


def test_a_redelivered_job_returns_the_recorded_dataset(setup, referenced, settings, session_factory, tmp_path):
    from belle_evaluator.pairs import run_pairs
    from belle_shared.db.models import Dataset
    from belle_shared.job_types import parse_spec
    from belle_shared.worker import JobContext, WorkerRuntime

    ctx = JobContext(job_id=uuid.UUID(referenced["id"]), team_id=setup["team"], attempt=2,
                     runtime=WorkerRuntime(settings))
    # No answers: an empty work root proves nothing is sampled again.
    assert run_pairs(parse_spec(referenced["spec"]), ctx, work_root=tmp_path) == referenced["result"]
    assert list(tmp_path.iterdir()) == []
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Dataset).where(
            Dataset.job_id == uuid.UUID(referenced["id"]))) == 1


def test_a_model_trained_on_the_pairs_leads_back_to_the_job_that_made_them(client, setup, session_factory,
                                                                        referenced):
    """What a DPO train job records (the model's dataset and parent): the lineage then shows the
    dataset, made by this preference_pairs job, whose spec names the sampled model."""
    from belle_shared.db.models import ModelKind

    with session_factory() as session:
        tuned = register_model(session, team_id=setup["team"], name=f"dpo-{uuid.uuid4().hex[:6]}",
                               uri=setup["model_uri"], kind=ModelKind.fine_tuned)
        tuned.parent_model_id = uuid.UUID(setup["model_id"])
        tuned.dataset_id = uuid.UUID(referenced["result"]["dataset_id"])
        session.commit()
        name = tuned.name
    lineage = client.get(f"/v1/models/{name}/lineage", headers=setup["headers"]).json()
    assert [n["model"]["id"] for n in lineage["chain"]] == [name, setup["model"]]
    link = lineage["chain"][0]["dataset"]
    assert (link["id"], link["rows"], link["source_file_id"]) == (referenced["result"]["dataset_id"],
                                                                  referenced["result"]["rows"], setup["file_id"])
    assert link["dropped"] == referenced["result"]["dropped"]
    assert (link["made_by"]["id"], link["made_by"]["type"]) == (referenced["id"], "preference_pairs")
    # The lineage itself names the model that answered and the judge (none: scored by reference answers).
    assert link["format"] == "preferences" and link["judge"] is None
    assert link["sampled_from"] == {"id": setup["model_id"], "name": setup["model"]}
    made_by = client.get(f"/v1/jobs/{link['made_by']['id']}", headers=setup["headers"]).json()
    assert made_by["spec"]["model_id"] == setup["model"]
    assert made_by["result"]["model"] == {"id": setup["model_id"], "name": setup["model"]}
