"""OpenAI's fine-tuning API on the gateway, driven by the official `openai` SDK over a real port.

No trainer runs here: a created job stays queued. What a trainer would record (checkpoints, a
result, an error) is written into the database directly, to check how it is shown.
"""

from __future__ import annotations

import datetime as dt
import uuid

import httpx
import openai
import pytest
import redis
from openai import OpenAI
from sqlalchemy import select

from belle_shared.db.models import Artifact, Dataset, Job, JobStatus
from belle_shared.jobs import add_event, request_cancel
from belle_shared.models import register_model
from belle_shared.teams import create_team
from helpers import LiveGateway, jsonl, wait_for
from test_models_api import LLAMA_CONFIG, make_folder

pytestmark = pytest.mark.integration

ROWS = [
    {"instruction": "把 3 写成中文", "input": "", "output": "三"},
    {"conversations": [{"from": "human", "value": "你好"}, {"from": "assistant", "value": "你好！"}]},
    {"messages": [{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "2"}]},
]


@pytest.fixture(scope="module")
def live(settings, session_factory, tmp_path_factory):
    """The gateway on a real port. Its job messages go to a broker prefix of this module's own, and
    the jobs still queued at the end are cancelled: a trainer worker that a later module starts must
    not pick up these jobs on fake models."""
    from belle_gateway.settings import GatewaySettings

    prefix = _prefix(settings)
    gateway_settings = GatewaySettings(**{**settings.model_dump(), "run_sweeper": False, "key_prefix": prefix,
                                          "enabled_job_types": ["import", "datagen", "train"],
                                          "model_roots": [str(tmp_path_factory.mktemp("roots"))]})
    started = dt.datetime.now(dt.timezone.utc)
    gateway = LiveGateway(gateway_settings)
    yield gateway.url
    gateway.stop()
    _cancel_queued(session_factory, since=started)
    broker = redis.Redis.from_url(settings.broker_url)
    keys = list(broker.scan_iter(f"{prefix}:*"))
    if keys:
        broker.delete(*keys)


def _prefix(settings) -> str:
    return f"{settings.key_prefix}-ftapi"


def _cancel_queued(session_factory, *, since: dt.datetime) -> None:
    with session_factory() as session:
        for job in session.scalars(select(Job).where(Job.type == "train", Job.created_at >= since,
                                                     Job.status == JobStatus.queued)):
            request_cancel(session, job=job)
        session.commit()


@pytest.fixture(scope="module")
def base_models(session_factory, tmp_path_factory) -> dict[str, str]:
    """Shared base models: a LLaMA, one with only 512 positions, an architecture without a LoRA table,
    and a quantized model."""
    root = tmp_path_factory.mktemp("models")
    tag = uuid.uuid4().hex[:6]
    llama = make_folder(root / "llama", {**LLAMA_CONFIG, "max_position_embeddings": 2048})
    neox = make_folder(root / "neox", {**LLAMA_CONFIG, "model_type": "gpt_neox"})
    short = make_folder(root / "short", LLAMA_CONFIG)  # 512 positions
    names = {"llama": f"llama-{tag}", "neox": f"neox-{tag}", "gptq": f"gptq-{tag}", "short": f"short-{tag}"}
    with session_factory() as session:
        register_model(session, team_id=None, name=names["short"], uri=str(short))
        register_model(session, team_id=None, name=names["llama"], uri=str(llama))
        register_model(session, team_id=None, name=names["neox"], uri=str(neox))
        register_model(session, team_id=None, name=names["gptq"], uri=str(llama), kind="quantized",
                       details={"model_type": "llama", "module_names": ["q_proj"]})
        session.commit()
    return names


@pytest.fixture
def sdk(live, team) -> OpenAI:
    _, headers = team
    return OpenAI(base_url=f"{live}/v1", api_key=headers["Authorization"].split()[1], max_retries=0)


def _team_name(sdk, session_factory, job) -> str:
    from belle_shared.db.models import Team

    with session_factory() as session:
        return session.get(Team, uuid.UUID(job.organization_id)).name


def _upload(sdk: OpenAI, rows, purpose="fine-tune", name="train.jsonl"):
    return sdk.files.create(file=(name, jsonl(rows)), purpose=purpose)


# -------------------------------------------------------------------------------- the happy path


def test_sdk_creates_a_job_with_openai_and_belle_fields(sdk, team, live, base_models):
    created, headers = team
    train, valid = _upload(sdk, ROWS), _upload(sdk, ROWS[:1], name="valid.jsonl")
    job = sdk.fine_tuning.jobs.create(
        model=base_models["llama"], training_file=train.id, validation_file=valid.id,
        hyperparameters={"n_epochs": 3, "batch_size": 2, "learning_rate_multiplier": 0.5},
        suffix="chat", seed=7, metadata={"project": "demo"},
        extra_body={"belle": {"method": "lora", "lora": {"r": 8, "target_modules": ["q_proj", "v_proj"]},
                              "zero_stage": 3, "offload": "optimizer", "packing": False, "num_processes": 2,
                              "max_length": 256, "gradient_accumulation_steps": 4, "precision": "bf16"}},
    )
    assert job.object == "fine_tuning.job" and job.status == "queued"
    assert job.model == base_models["llama"] and job.organization_id == str(created.id)
    assert job.training_file == train.id and job.validation_file == valid.id
    assert (job.hyperparameters.n_epochs, job.hyperparameters.batch_size) == (3, 2)
    assert job.hyperparameters.learning_rate_multiplier == pytest.approx(0.5)
    assert job.seed == 7 and job.metadata == {"project": "demo"} and job.result_files == []
    assert job.fine_tuned_model is None and job.finished_at is None and job.trained_tokens is None
    assert job.error is None and job.estimated_finish is None and job.integrations == []
    assert job.method.type == "supervised" and job.method.supervised.hyperparameters.n_epochs == 3
    assert abs(job.created_at - dt.datetime.now(dt.timezone.utc).timestamp()) < 600
    belle = job.model_extra["belle"]
    assert belle["job_id"] == job.id and belle["method"] == "lora" and belle["zero_stage"] == 3

    # The same job through the generic API: the spec the trainer will read.
    spec = httpx.get(f"{live}/v1/jobs/{job.id}", headers=headers).json()["spec"]
    assert spec["type"] == "train" and spec["base_model"] == base_models["llama"]
    assert spec["training_file_id"] == train.id and spec["validation_file_id"] == valid.id
    assert spec["method"] == "lora" and spec["lora"]["r"] == 8 and spec["lora"]["target_modules"] == ["q_proj", "v_proj"]
    hp = spec["hyperparameters"]
    assert (hp["epochs"], hp["batch_size"], hp["seed"], hp["max_length"]) == (3, 2, 7, 256)
    assert hp["learning_rate"] == pytest.approx(0.5 * 3e-4)  # BELLE's LoRA rate, scaled
    assert hp["gradient_accumulation_steps"] == 4 and hp["precision"] == "bf16"
    assert (spec["zero_stage"], spec["offload"], spec["packing"], spec["num_processes"]) == (3, "optimizer", False, 2)
    assert spec["suffix"] == "chat" and spec["metadata"] == {"project": "demo"}


def test_method_form_auto_values_and_a_dataset_as_training_file(sdk, team, session_factory, base_models):
    created, _ = team
    train = _upload(sdk, ROWS)
    job = sdk.fine_tuning.jobs.create(
        model=base_models["llama"], training_file=train.id,
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 1, "batch_size": "auto",
                                                                          "learning_rate_multiplier": 2}}},
    )
    assert job.hyperparameters.n_epochs == 1 and job.hyperparameters.batch_size == 1  # BELLE's default
    assert job.hyperparameters.learning_rate_multiplier == pytest.approx(2.0)
    defaults = sdk.fine_tuning.jobs.create(model=base_models["llama"], training_file=train.id,
                                           hyperparameters={"n_epochs": "auto"})
    assert (defaults.hyperparameters.n_epochs, defaults.hyperparameters.batch_size) == (2, 1)
    assert defaults.hyperparameters.learning_rate_multiplier == 1.0 and defaults.seed == 42

    # BELLE extension: a dataset id (from an import or datagen job) in place of a file id.
    with session_factory() as session:
        artifact = Artifact(team_id=created.id, kind="dataset", uri="/nowhere.jsonl")
        session.add(artifact)
        session.flush()
        dataset = Dataset(team_id=created.id, name="d", rows=3, stats={}, artifact_id=artifact.id)
        session.add(dataset)
        session.commit()
    from_dataset = sdk.fine_tuning.jobs.create(model=base_models["llama"], training_file=str(dataset.id))
    assert from_dataset.training_file == str(dataset.id) and from_dataset.status == "queued"


# Preference pairs in OpenAI's DPO format, and the same kind of pairs as BELLE/LLaMA-Factory write them.
PAIRS = [
    {"input": {"messages": [{"role": "user", "content": "把 3 写成中文"}]},
     "preferred_output": [{"role": "assistant", "content": "三"}],
     "non_preferred_output": [{"role": "assistant", "content": "3"}]},
    {"prompt": "你好", "chosen": "你好！", "rejected": "走开"},
    {"instruction": "1+1?", "input": "", "chosen": "2", "rejected": "11"},
]


def test_dpo_through_openais_method_trains_on_a_preference_file(sdk, team, live, session_factory, base_models):
    _, headers = team
    pairs = _upload(sdk, PAIRS, name="pairs.jsonl")
    job = sdk.fine_tuning.jobs.create(
        model=base_models["llama"], training_file=pairs.id,
        method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.25, "n_epochs": 1}}},
        extra_body={"belle": {"method": "lora"}})
    assert job.status == "queued" and job.method.type == "dpo"
    assert job.method.dpo.hyperparameters.beta == 0.25 and job.method.dpo.hyperparameters.n_epochs == 1
    spec = httpx.get(f"{live}/v1/jobs/{job.id}", headers=headers).json()["spec"]
    assert (spec["objective"], spec["dpo"]["beta"], spec["method"]) == ("dpo", 0.25, "lora")
    assert sdk.fine_tuning.jobs.create(model=base_models["llama"], training_file=pairs.id,
                                       method={"type": "dpo"}).method.dpo.hyperparameters.beta == 0.1

    def refused(**kwargs) -> openai.BadRequestError:
        with pytest.raises(openai.BadRequestError) as info:
            sdk.fine_tuning.jobs.create(model=base_models["llama"], **kwargs)
        return info.value

    # A malformed pair anywhere in the file is a 400 naming its line and field, before anything is queued.
    bad = _upload(sdk, PAIRS + [{"prompt": "q", "chosen": "a", "rejected": [{"role": "user", "content": "b"}]}])
    error = refused(training_file=bad.id, method={"type": "dpo"})
    assert error.body["param"] == "training_file" and "line 4, field rejected[0].role" in error.body["message"]
    # Supervised rows are not pairs; pairs are not supervised rows.
    error = refused(training_file=_upload(sdk, ROWS).id, method={"type": "dpo"})
    assert error.body["param"] == "training_file" and "not a preference dataset: line 1" in error.body["message"]
    error = refused(training_file=pairs.id, method={"type": "supervised"})
    assert error.body["param"] == "training_file" and "not a fine-tuning dataset" in error.body["message"]
    error = refused(training_file=pairs.id, method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0}}})
    assert error.body["param"] == "method.dpo.hyperparameters.beta"
    error = refused(training_file=pairs.id, method={"type": "reinforcement"})
    assert error.body["param"] == "method.type"


def test_list_paginates_newest_first_and_retrieve(sdk, base_models):
    train = _upload(sdk, ROWS)
    ids = [sdk.fine_tuning.jobs.create(model=base_models["llama"], training_file=train.id).id for _ in range(3)]
    page = sdk.fine_tuning.jobs.list(limit=2)
    assert [j.id for j in page.data] == ids[::-1][:2] and page.has_more is True
    assert [j.id for j in sdk.fine_tuning.jobs.list(limit=2)] == ids[::-1]  # the SDK follows `after`
    after = sdk.fine_tuning.jobs.list(after=ids[2], limit=10)
    assert [j.id for j in after.data] == ids[1::-1] and after.has_more is False
    job = sdk.fine_tuning.jobs.retrieve(ids[0])
    assert job.id == ids[0] and job.status == "queued"


def test_events_newest_first_checkpoints_and_cancel(sdk, team, session_factory, base_models):
    created, _ = team
    train = _upload(sdk, ROWS)
    job = sdk.fine_tuning.jobs.create(model=base_models["llama"], training_file=train.id, suffix="s1")
    with session_factory() as session:
        add_event(session, job_id=uuid.UUID(job.id), message="step 10", kind="metrics", data={"step": 10, "loss": 2.5})
        add_event(session, job_id=uuid.UUID(job.id), message="disk nearly full", level="warning")
        for step, loss in ((10, 2.5), (20, 1.5)):
            session.add(Artifact(team_id=created.id, job_id=uuid.UUID(job.id), kind="checkpoint",
                                 uri=f"/runs/{job.id}/checkpoint-{step}",
                                 details={"step": step, "metrics": {"train_loss": loss, "eval_loss": loss + 0.25,
                                                                    "learning_rate": 1e-4}}))
        session.commit()

    events = sdk.fine_tuning.jobs.list_events(job.id, limit=10)
    assert [e.message for e in events.data] == ["disk nearly full", "step 10", "job queued"]
    assert [e.level for e in events.data] == ["warn", "info", "info"]
    assert [e.type for e in events.data] == ["message", "metrics", "message"]
    assert events.data[1].data == {"step": 10, "loss": 2.5} and events.data[0].object == "fine_tuning.job.event"
    first = sdk.fine_tuning.jobs.list_events(job.id, limit=1)
    assert first.has_more is True and len(first.data) == 1
    assert [e.message for e in sdk.fine_tuning.jobs.list_events(job.id, limit=1)] == [
        "disk nearly full", "step 10", "job queued"]  # paging by `after`

    checkpoints = sdk.fine_tuning.jobs.checkpoints.list(job.id)
    assert [c.step_number for c in checkpoints.data] == [20, 10]
    newest = checkpoints.data[0]
    assert newest.object == "fine_tuning.job.checkpoint" and newest.fine_tuning_job_id == job.id
    assert newest.fine_tuned_model_checkpoint == (
        f"ft:{base_models['llama']}:{created.name}:s1:{uuid.UUID(job.id).hex[:8]}:ckpt-step-20")
    assert newest.metrics.train_loss == 1.5 and newest.metrics.full_valid_loss == 1.75
    assert newest.metrics.valid_loss == 1.75 and newest.metrics.step == 20
    assert isinstance(newest.created_at, int)
    assert [c.step_number for c in sdk.fine_tuning.jobs.checkpoints.list(job.id, limit=1)] == [20, 10]

    cancelled = sdk.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    assert sdk.fine_tuning.jobs.list_events(job.id, limit=1).data[0].message == "job cancelled before it started"
    with pytest.raises(openai.ConflictError) as info:
        sdk.fine_tuning.jobs.cancel(job.id)
    assert info.value.code == "job_finished"


def test_cancelling_a_running_job_shows_running_with_the_flag_until_the_worker_confirms(sdk, session_factory,
                                                                                       base_models):
    """OpenAI's status vocabulary has no `cancelling`: a running job asked to stop stays `running`, with
    `belle.cancel_requested` true and no `finished_at`, until its worker stops it (within a heartbeat),
    and then reads `cancelled`. A transient error in between does not send it back to `queued`."""
    from belle_shared.worker import Outcome, record_outcome

    train = _upload(sdk, ROWS)
    job = sdk.fine_tuning.jobs.create(model=base_models["llama"], training_file=train.id)
    with session_factory() as session:  # what a worker's claim writes
        row = session.get(Job, uuid.UUID(job.id))
        row.status, row.worker_id, row.attempts = JobStatus.running, "test-worker:1", 1
        session.commit()

    for _ in range(2):  # asking twice is the same answer, and one event
        asked = sdk.fine_tuning.jobs.cancel(job.id)
        assert asked.status == "running" and asked.finished_at is None and asked.model_extra["belle"]["cancel_requested"]
    assert sdk.fine_tuning.jobs.retrieve(job.id).status == "running"
    messages = [e.message for e in sdk.fine_tuning.jobs.list_events(job.id, limit=10).data]
    assert messages[0] == "cancellation requested" and messages.count("cancellation requested") == 1

    # The worker's attempt ends in a transient error just then: the job is cancelled, not retried.
    recorded = record_outcome(session_factory, job_id=uuid.UUID(job.id), worker_id="test-worker:1",
                              outcome=Outcome(JobStatus.queued, "transient error, retrying in 10s: 429", retry_in=10))
    assert recorded is not None and recorded.status == JobStatus.cancelled
    final = sdk.fine_tuning.jobs.retrieve(job.id)
    assert final.status == "cancelled" and final.finished_at is not None
    assert sdk.fine_tuning.jobs.list_events(job.id, limit=1).data[0].message == (
        "job cancelled instead of retried (transient error, retrying in 10s: 429)")
    with pytest.raises(openai.ConflictError):
        sdk.fine_tuning.jobs.cancel(job.id)


def test_a_finished_and_a_failed_job_read_as_openai_shows_them(sdk, session_factory, base_models):
    train = _upload(sdk, ROWS)
    done = sdk.fine_tuning.jobs.create(model=base_models["llama"], training_file=train.id)
    failed = sdk.fine_tuning.jobs.create(model=base_models["llama"], training_file=train.id)
    finished_at = dt.datetime.now(dt.timezone.utc)
    with session_factory() as session:
        job = session.get(Job, uuid.UUID(done.id))
        job.status, job.finished_at = JobStatus.succeeded, finished_at
        job.result = {"model_id": str(uuid.uuid4()), "fine_tuned_model": "ft:x:y::12345678", "trained_tokens": 1234,
                      "train_loss": 1.0, "eval_loss": 1.1, "steps": 8}
        bad = session.get(Job, uuid.UUID(failed.id))
        bad.status, bad.finished_at = JobStatus.failed, finished_at
        bad.error = {"code": "no_usable_rows", "message": "no row of the training file is usable",
                     "param": "training_file", "details": {"dropped": 3}}
        session.commit()
    got = sdk.fine_tuning.jobs.retrieve(done.id)
    assert got.status == "succeeded" and got.fine_tuned_model == "ft:x:y::12345678" and got.trained_tokens == 1234
    assert got.finished_at == int(finished_at.timestamp())
    got = sdk.fine_tuning.jobs.retrieve(failed.id)
    assert got.status == "failed" and got.error.code == "no_usable_rows" and got.error.param == "training_file"
    assert got.error.message == "no row of the training file is usable"


# ----------------------------------------------------------------------------------- bad input


def _refused(call, param: str, code: str | None = None, status=openai.BadRequestError):
    with pytest.raises(status) as info:
        call()
    assert info.value.param == param, (info.value.param, info.value.message)
    if code is not None:
        assert info.value.code == code, info.value.message
    return info.value


def test_bad_input_is_refused_before_anything_is_queued_naming_openais_field(sdk, team, live, base_models):
    _, headers = team
    train = _upload(sdk, ROWS)
    llama = base_models["llama"]
    create = sdk.fine_tuning.jobs.create

    _refused(lambda: create(model="no-such-model", training_file=train.id), "model", "model_not_found")
    _refused(lambda: create(model=base_models["gptq"], training_file=train.id), "model", "model_not_trainable")
    _refused(lambda: create(model=llama, training_file="file-abc"), "training_file", "file_not_found")
    _refused(lambda: create(model=llama, training_file=str(uuid.uuid4())), "training_file", "file_not_found")
    wrong = _upload(sdk, ROWS, purpose="import")
    err = _refused(lambda: create(model=llama, training_file=wrong.id), "training_file", "wrong_file_purpose")
    assert "purpose 'import'" in err.message
    bad_rows = _upload(sdk, [ROWS[0], {"conversations": [{"from": "human", "value": "hi"}, {"from": "assistant",
                                                                                             "value": "  "}]}])
    err = _refused(lambda: create(model=llama, training_file=bad_rows.id), "training_file", "invalid_training_row")
    assert "line 2" in err.message and "conversations[1].value" in err.message
    no_format = _upload(sdk, [{"prompt": "x", "completion": "y"}])
    err = _refused(lambda: create(model=llama, training_file=no_format.id), "training_file", "invalid_training_row")
    assert "line 1" in err.message
    _refused(lambda: create(model=llama, training_file=train.id, validation_file=bad_rows.id), "validation_file",
             "invalid_training_row")

    # Hyper-parameters, at the top level and inside method.
    _refused(lambda: create(model=llama, training_file=train.id, hyperparameters={"n_epochs": 0}),
             "hyperparameters.n_epochs")
    _refused(lambda: create(model=llama, training_file=train.id, hyperparameters={"n_epochs": 1000}),
             "hyperparameters.n_epochs")
    _refused(lambda: create(model=llama, training_file=train.id, hyperparameters={"batch_size": "big"}),
             "hyperparameters.batch_size")
    _refused(lambda: create(model=llama, training_file=train.id, hyperparameters={"learning_rate_multiplier": -1}),
             "hyperparameters.learning_rate_multiplier")
    _refused(lambda: create(model=llama, training_file=train.id,
                            method={"type": "supervised", "supervised": {"hyperparameters": {"batch_size": 0}}}),
             "method.supervised.hyperparameters.batch_size")
    _refused(lambda: create(model=llama, training_file=train.id, method={"type": "reinforcement"}), "method.type",
             "unsupported_method")
    _refused(lambda: create(model=llama, training_file=train.id, hyperparameters={"n_epochs": 1},
                            method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}}),
             "hyperparameters")
    _refused(lambda: create(model=llama, training_file=train.id, suffix="a:b"), "suffix")
    _refused(lambda: create(model=llama, training_file=train.id,
                            integrations=[{"type": "wandb", "wandb": {"project": "p"}}]), "integrations")

    # BELLE's extension fields are named as `belle.<field>`.
    def belle(**options):
        return lambda: create(model=llama, training_file=train.id, extra_body={"belle": options})

    err = _refused(belle(method="lora", lora={"target_modules": ["c_attn", "q_proj"]}), "belle.lora.target_modules",
                   "unknown_target_module")
    assert "'c_attn'" in err.message and "q_proj" in err.message
    _refused(lambda: create(model=base_models["neox"], training_file=train.id, extra_body={"belle": {"method": "lora"}}),
             "belle.lora.target_modules", "missing_target_modules")
    _refused(belle(lora={"r": 0}), "belle.lora.r")
    _refused(belle(zero_stage=5), "belle.zero_stage")
    _refused(belle(max_length=4096), "belle.max_length")  # longer than the model's 2048 positions
    err = _refused(lambda: create(model=base_models["short"], training_file=train.id), "belle.max_length")
    assert "the default (1024)" in err.message and "at most 512" in err.message
    assert create(model=base_models["short"], training_file=train.id,
                  extra_body={"belle": {"max_length": 512}}).status == "queued"
    _refused(belle(warmup_ratio=1.5), "belle.warmup_ratio")
    _refused(belle(precision="fp16"), "belle.precision")
    _refused(belle(offload="optimizer_and_parameters", zero_stage=2), "belle")
    _refused(lambda: create(model=llama, training_file=train.id, hyperparameters={"learning_rate_multiplier": 2},
                            extra_body={"belle": {"learning_rate": 1e-4}}), "hyperparameters.learning_rate_multiplier")
    _refused(belle(colour="blue"), "belle.colour")

    # Nothing else was queued.
    assert httpx.get(f"{live}/v1/jobs", headers=headers, params={"type": "train"}).json()["count"] == 1


def test_generic_job_api_names_spec_fields(team, live, base_models):
    _, headers = team
    with httpx.Client(base_url=live, headers=headers) as http:
        file = http.post("/v1/files", files={"file": ("t.jsonl", jsonl(ROWS))}, data={"purpose": "fine-tune"}).json()

        def submit(**spec):
            response = http.post("/v1/jobs", json={"type": "train", **spec})
            assert response.status_code == 400, response.text
            return response.json()["error"]

        error = submit(base_model="nothing", training_file_id=file["id"])
        assert (error["param"], error["code"]) == ("base_model", "model_not_found")
        error = submit(base_model=base_models["llama"], dataset_id=str(uuid.uuid4()))
        assert (error["param"], error["code"]) == ("dataset_id", "dataset_not_found")
        error = submit(base_model=base_models["llama"], training_file_id=file["id"],
                       validation_dataset_id=str(uuid.uuid4()))
        assert error["param"] == "validation_dataset_id"
        error = submit(base_model=base_models["llama"], training_file_id=file["id"], method="lora",
                       lora={"target_modules": ["nope"]})
        assert error["param"] == "lora.target_modules"
        error = submit(base_model=base_models["llama"], training_file_id=file["id"],
                       hyperparameters={"epochs": 0})
        assert error["param"] == "hyperparameters.epochs"
        ok = http.post("/v1/jobs", json={"type": "train", "base_model": base_models["llama"],
                                         "training_file_id": file["id"], "method": "lora",
                                         "lora": {"target_modules": ["model.layers.0.self_attn.q_proj"]}})
        assert ok.status_code == 201, ok.text


def test_teams_see_only_their_own_jobs_files_and_models(sdk, live, session_factory, settings, base_models, tmp_path):
    train = _upload(sdk, ROWS)
    job = sdk.fine_tuning.jobs.create(model=base_models["llama"], training_file=train.id)
    with session_factory() as session:
        other_team, key = create_team(session, name=f"team-{uuid.uuid4().hex[:8]}", secret=settings.secret_key)
        private = register_model(session, team_id=other_team.id, name=f"private-{uuid.uuid4().hex[:6]}",
                                 uri=str(make_folder(tmp_path / "p", {**LLAMA_CONFIG, "max_position_embeddings": 4096})))
        session.commit()
    other = OpenAI(base_url=f"{live}/v1", api_key=key, max_retries=0)
    for call in (lambda: other.fine_tuning.jobs.retrieve(job.id), lambda: other.fine_tuning.jobs.cancel(job.id),
                 lambda: other.fine_tuning.jobs.list_events(job.id), lambda: other.fine_tuning.jobs.checkpoints.list(job.id)):
        with pytest.raises(openai.NotFoundError):
            call()
    assert job.id not in {j.id for j in other.fine_tuning.jobs.list()}
    _refused(lambda: other.fine_tuning.jobs.list(after=job.id), "after", "invalid_value")
    # The other team cannot train on this team's file; this team cannot use the other's model.
    _refused(lambda: other.fine_tuning.jobs.create(model=base_models["llama"], training_file=train.id),
             "training_file", "file_not_found")
    _refused(lambda: sdk.fine_tuning.jobs.create(model=private.name, training_file=train.id), "model",
             "model_not_found")
    _refused(lambda: sdk.fine_tuning.jobs.create(model=str(private.id), training_file=train.id), "model",
             "model_not_found")
    assert other.fine_tuning.jobs.create(model=private.name, training_file=_upload(other, ROWS).id).status == "queued"


def test_other_job_types_are_not_fine_tuning_jobs(sdk, team, live):
    _, headers = team
    file = _upload(sdk, ROWS, purpose="import")
    job = httpx.post(f"{live}/v1/jobs", headers=headers, json={"type": "import", "file_id": file.id}).json()
    with pytest.raises(openai.NotFoundError):
        sdk.fine_tuning.jobs.retrieve(job["id"])
    assert job["id"] not in {j.id for j in sdk.fine_tuning.jobs.list()}


def test_a_deployment_without_train_jobs_says_so(settings, team, base_models):
    from fastapi.testclient import TestClient

    from belle_gateway.app import create_app
    from belle_gateway.settings import GatewaySettings

    _, headers = team
    app = create_app(GatewaySettings(**{**settings.model_dump(), "run_sweeper": False,
                                        "enabled_job_types": ["import", "datagen"]}))
    with TestClient(app) as client:
        _check_train_unavailable(client, headers, base_models)


def _check_train_unavailable(client, headers, base_models):
    file = client.post("/v1/files", headers=headers, files={"file": ("t.jsonl", jsonl(ROWS))},
                       data={"purpose": "fine-tune"}).json()
    response = client.post("/v1/fine_tuning/jobs", headers=headers,
                           json={"model": base_models["llama"], "training_file": file["id"]})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "job_type_unavailable" and error["param"] is None and "train" in error["message"]


def test_openapi_documents_the_routes(live):
    paths = httpx.get(f"{live}/openapi.json").json()["paths"]
    assert {"/v1/fine_tuning/jobs", "/v1/fine_tuning/jobs/{fine_tuning_job_id}/events",
            "/v1/fine_tuning/jobs/{fine_tuning_job_id}/checkpoints", "/v1/models"} <= set(paths)
    create = paths["/v1/fine_tuning/jobs"]["post"]
    assert create["summary"] and "train" in create["description"]


# ------------------------------------------------------------------------ with a real trainer


@pytest.mark.slow
def test_sdk_follows_a_real_lora_run_to_its_model(sdk, settings, session_factory, start_worker, tmp_path):
    """The trainer worker trains the tiny model; the SDK sees its events, checkpoints and model."""
    tiny = pytest.importorskip("belle_trainer.tiny")
    folder = tiny.init_tiny_model(tmp_path / "tiny", arch="llama")
    with session_factory() as session:
        base = register_model(session, team_id=None, name=f"tiny-{uuid.uuid4().hex[:6]}", uri=str(folder)).name
        session.commit()
    # Jobs the tests above left queued (on fake models) are cancelled: the worker drops their messages.
    _cancel_queued(session_factory, since=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1))
    start_worker(module="belle_trainer.worker", BELLE_KEY_PREFIX=_prefix(settings))
    rows = [{"messages": [{"role": "user", "content": f"{i} 加 {i} 等于几？"},
                          {"role": "assistant", "content": f"{i} 加 {i} 等于 {2 * i}。"}]} for i in range(40)]
    train = _upload(sdk, rows)
    job = sdk.fine_tuning.jobs.create(model=base, training_file=train.id, hyperparameters={"n_epochs": 2,
                                      "batch_size": 4}, suffix="e2e",
                                      extra_body={"belle": {"method": "lora", "zero_stage": 0, "max_length": 128,
                                                            "gradient_accumulation_steps": 1}})

    def finished():
        current = sdk.fine_tuning.jobs.retrieve(job.id)
        return current if current.status in ("succeeded", "failed", "cancelled") else None

    done = wait_for(finished, timeout=280, interval=1, message="the fine-tuning job to finish")
    assert done.status == "succeeded", done.error
    assert done.fine_tuned_model == f"ft:{base}:{_team_name(sdk, session_factory, done)}:e2e:{uuid.UUID(job.id).hex[:8]}"
    assert done.trained_tokens and done.trained_tokens > 0 and done.finished_at >= done.created_at

    events = list(sdk.fine_tuning.jobs.list_events(job.id, limit=100))
    assert events[0].data["status"] == "succeeded"  # newest first: the final status change leads
    metrics = [e for e in events if e.type == "metrics"]
    assert metrics and all(e.object == "fine_tuning.job.event" for e in events)
    assert [int(e.id) for e in events] == sorted((int(e.id) for e in events), reverse=True)

    checkpoints = sdk.fine_tuning.jobs.checkpoints.list(job.id).data
    assert checkpoints and checkpoints[0].step_number == max(c.step_number for c in checkpoints) > 0
    assert checkpoints[0].metrics.train_loss is not None
    assert checkpoints[0].fine_tuned_model_checkpoint.startswith(done.fine_tuned_model + ":ckpt-step-")

    model = sdk.models.retrieve(done.fine_tuned_model)
    assert model.model_extra["kind"] == "fine_tuned" and model.model_extra["parent"] == base

    # The fine-tuned LoRA model answers through the same SDK, rendered with its own chat template.
    reply = sdk.chat.completions.create(model=done.fine_tuned_model, temperature=0, max_tokens=12,
                                        messages=[{"role": "user", "content": "3 加 3 等于几？"}])
    assert reply.model == done.fine_tuned_model and reply.choices[0].message.content
    assert reply.usage.completion_tokens > 0
