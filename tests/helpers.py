"""Helpers for tests that drive the gateway over HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import time


def wait_for(predicate, *, timeout: float = 30.0, interval: float = 0.1, message: str = "condition"):
    """Poll until ``predicate()`` returns something truthy; returns it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def jsonl(rows) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def upload(client, headers, rows=None, *, content: bytes | None = None, filename="data.jsonl", purpose="import") -> dict:
    body = content if content is not None else jsonl(rows)
    response = client.post("/v1/files", headers=headers, files={"file": (filename, body)}, data={"purpose": purpose})
    assert response.status_code == 201, response.text
    return response.json()


def wait_status(client, headers, job_id: str, statuses=("succeeded", "failed", "cancelled"), timeout: float = 60.0) -> dict:
    def current():
        job = client.get(f"/v1/jobs/{job_id}", headers=headers).json()
        return job if job["status"] in statuses else None

    return wait_for(current, timeout=timeout, message=f"job {job_id} to reach {statuses}")


def events(client, headers, job_id: str) -> list[dict]:
    return client.get(f"/v1/jobs/{job_id}/events", headers=headers, params={"limit": 1000}).json()["data"]


def big_import_rows(n: int):
    """Rows that take the import job several seconds, so a test can act while it runs."""
    return ({"instruction": f"把数字 {i} 写成中文", "input": "", "output": f"答案 {i}"} for i in range(n))


def lcs_length(a, b) -> int:
    """Textbook O(n*m) longest common subsequence of two sequences (strings or token lists): the
    reference definition the project's fast LCS and de-duplication are checked against."""
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l_f(a, b) -> float:
    """ROUGE-L F-measure with precision and recall weighted equally: 2·LCS / (|a| + |b|); 0 if either is empty."""
    return 2 * lcs_length(a, b) / (len(a) + len(b)) if a and b else 0.0


class LiveGateway:
    """The gateway app under uvicorn in a thread, on a free port."""

    def __init__(self, settings):
        import socket
        import threading

        import uvicorn

        from belle_gateway.app import create_app

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.app = create_app(settings)
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        wait_for(lambda: self.server.started, timeout=30, message="gateway to start")

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


def shared_tiny_model(folder, session_factory, name: str) -> str:
    """A tiny random-init LLaMA built in `folder` and registered as a shared base model; its name."""
    from belle_shared.models import register_model
    from belle_trainer.tiny import init_tiny_model

    path = init_tiny_model(folder, arch="llama", seed=0)
    with session_factory() as session:
        model = register_model(session, team_id=None, name=name, uri=str(path))
        session.commit()
        return model.name


def write_recipe_rows(session, team_id, *, dataset_name: str = "generated", steps=("data", "train", "quant", "judge")):
    """The rows a finished datagen -> train -> quantize -> eval pipeline leaves, written as the workers
    write them: a shared base model; a datagen job and its dataset (120 rows, some dropped); a train
    job and the fine-tuned model; a quantize job and the quantized model; an eval job (its scores are
    the caller's); every job a step of one succeeded pipeline. Returns the rows by role."""
    import uuid

    from belle_shared.db.models import Artifact, Dataset, Job, JobStatus, Model, ModelKind
    from belle_shared.db.types import utcnow
    from belle_shared.job_types import spec_adapter

    def job(job_type, *, parent_id=None, step=None, spec=None, result=None):
        now = utcnow()
        row = Job(id=uuid.uuid4(), team_id=team_id, type=job_type, status=JobStatus.succeeded,
                  spec=spec or {"type": job_type}, parent_id=parent_id, pipeline_step=step, created_at=now,
                  started_at=now, finished_at=now, result=result)
        session.add(row)
        session.flush()
        return row

    def spec(**fields) -> dict:
        """A spec as the gateway stores one: validated, with its defaults."""
        return spec_adapter().validate_python(fields).model_dump(mode="json")

    base = Model(id=uuid.uuid4(), team_id=None, name=f"base-{uuid.uuid4().hex[:8]}", kind=ModelKind.base,
                 uri="file:///base", details={})
    session.add(base)
    pipeline = job("pipeline", spec={"type": "pipeline", "name": "recipe", "steps": [
        {"name": name, "spec": {"type": "import", "file_id": str(uuid.uuid4())}} for name in steps]})
    teacher = {"base_url": "http://127.0.0.1:9/v1", "model": "teacher"}
    datagen = job("datagen", parent_id=pipeline.id, step=steps[0], spec=spec(type="datagen", teacher=teacher))
    artifact = Artifact(id=uuid.uuid4(), team_id=team_id, job_id=datagen.id, kind="dataset", uri="file:///x")
    session.add(artifact)
    session.flush()
    dataset = Dataset(id=uuid.uuid4(), team_id=team_id, name=dataset_name, rows=120, artifact_id=artifact.id,
                      stats={"dropped": {"too_short": 3, "duplicate": 2}}, job_id=datagen.id)
    session.add(dataset)
    session.flush()
    train = job("train", parent_id=pipeline.id, step=steps[1],
                spec=spec(type="train", base_model=base.name, dataset_id=str(dataset.id)))
    tuned = Model(id=uuid.uuid4(), team_id=team_id, name=f"ft:{base.name}:t::{uuid.uuid4().hex[:8]}",
                  kind=ModelKind.fine_tuned, uri="file:///ft", parent_model_id=base.id, job_id=train.id,
                  dataset_id=dataset.id)
    quant = job("quantize", parent_id=pipeline.id, step=steps[2], spec=spec(type="quantize", model_id=tuned.name))
    quantized = Model(id=uuid.uuid4(), team_id=team_id, name=tuned.name + "-gptq4", kind=ModelKind.quantized,
                      uri="file:///q", parent_model_id=tuned.id, job_id=quant.id, dataset_id=dataset.id)
    session.add_all([tuned, quantized])
    session.flush()
    evaluation = job("eval", parent_id=pipeline.id, step=steps[3],
                     spec=spec(type="eval", model_ids=[quantized.name], mode="judge", judge=teacher))
    return {"pipeline": pipeline, "datagen": datagen, "dataset": dataset, "train": train, "quant": quant,
            "eval": evaluation, "base": base, "tuned": tuned, "quantized": quantized}


def measure_in_fresh_process(folder: str, dataset_uri: str, spec: dict) -> dict:
    """Perplexity of the folder on the job's held-out split, and a generation, in a new interpreter."""
    script = f"""
import json
from transformers import AutoModelForCausalLM, AutoTokenizer
from belle_quantizer.measure import perplexity
from belle_quantizer.quantize import encode, read_conversations, split_samples
from pathlib import Path
spec = json.loads({json.dumps(json.dumps(spec))})
model = AutoModelForCausalLM.from_pretrained({folder!r})
tokenizer = AutoTokenizer.from_pretrained({folder!r})
_, held_out = split_samples(read_conversations(Path({dataset_uri!r})), calibration=spec["calibration_samples"],
                            held_out=spec["eval_samples"], seed=spec["seed"])
samples = encode(tokenizer, held_out, spec["calibration_length"])
out = model.generate(input_ids=__import__("torch").tensor([samples[0]["ids"][:10]]), max_new_tokens=8, min_new_tokens=8,
                     do_sample=False)
print(json.dumps({{**perplexity(model, samples), "generated": out.shape[1] - 10,
                   "layer": type(model.model.layers[0].mlp.down_proj).__name__}}))
"""
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def trained_pieces(tokenizer, sample) -> list[str]:
    """The runs of trained tokens of an encoded sample (labels not IGNORE_INDEX), each decoded."""
    from belle_shared.chat_template import IGNORE_INDEX

    pieces, current = [], []
    for token, label in zip(sample.input_ids, sample.labels):
        if label == IGNORE_INDEX:
            if current:
                pieces.append(tokenizer.decode(current))
            current = []
        else:
            current.append(token)
    if current:
        pieces.append(tokenizer.decode(current))
    return pieces
