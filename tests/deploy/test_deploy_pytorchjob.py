"""belle_trainer.kubernetes_launch: the PyTorchJob manifest for a TrainSpec (its pod templates
validated against the Kubernetes PodTemplateSpec schema offline), the reading of its status
conditions, and the create / follow / cancel loop against an in-memory stand-in of the Kubernetes
custom-objects API (no cluster here; the stand-in has the client's method names and 404 errors)."""

from __future__ import annotations

import copy
import functools
import json
import threading
import uuid
from pathlib import Path
from types import SimpleNamespace

import jsonschema
import kubernetes_validate
import pytest
import referencing
from kubernetes.client.exceptions import ApiException

from belle_shared.errors import JobCancelled, JobError
from belle_shared.specs import TrainSpec
from belle_trainer import kubernetes_launch as kl
from belle_trainer.worker import TrainerSettings

CONFIG = kl.LaunchConfig(image="registry.example.com/belle-trainer:1", namespace="belle", gpus_per_node=8,
                         shared_claim="belle-trainer-shared", shared_mount_path="/shared")
RUN_DIR = Path("/shared/work/job")


def spec(num_processes: int) -> TrainSpec:
    return TrainSpec(base_model="m", dataset_id=uuid.uuid4(), num_processes=num_processes)


@functools.cache
def pod_template_validator():
    version = kubernetes_validate.utils.latest_version()
    folder = f"kubernetes-json-schema/v{version}-local-strict"
    definitions = kubernetes_validate.utils.schema_contents(f"{folder}/_definitions.json", version)
    schema = kubernetes_validate.utils.schema_contents(f"{folder}/podtemplatespec-v1.json", version)
    registry = referencing.Resource.from_contents(definitions) @ referencing.Registry()
    return jsonschema.Draft202012Validator(schema, registry=registry)


def test_settings_choose_the_launcher():
    settings = TrainerSettings(trainer_launcher="kubernetes", trainer_gpus_per_node=8)
    assert not kl.wanted(spec(8), settings) and kl.wanted(spec(16), settings)
    assert not kl.wanted(spec(16), TrainerSettings())  # local by default, whatever the size
    with pytest.raises(JobError) as error:
        kl.LaunchConfig.from_settings(settings)
    assert error.value.code == "launcher_misconfigured" and "BELLE_TRAINER_IMAGE" in error.value.message


def test_node_layout_fills_whole_nodes():
    assert kl.node_layout(4, 8) == (1, 4)
    assert kl.node_layout(16, 8) == (2, 8)
    assert kl.node_layout(32, 8) == (4, 8)
    with pytest.raises(JobError) as error:
        kl.node_layout(12, 8)
    assert error.value.param == "num_processes" and "16" in error.value.message


def test_manifest_for_three_nodes():
    job_id, team_id = uuid.uuid4(), uuid.uuid4()
    manifest = kl.build_manifest(spec(24), job_id=job_id, team_id=team_id, run_dir=RUN_DIR, config=CONFIG)
    assert manifest["apiVersion"] == "kubeflow.org/v1" and manifest["kind"] == "PyTorchJob"
    assert manifest["metadata"]["name"] == kl.job_name(job_id) and len(manifest["metadata"]["name"]) <= 40
    assert manifest["metadata"]["namespace"] == "belle"
    replicas = manifest["spec"]["pytorchReplicaSpecs"]
    assert set(replicas) == {"Master", "Worker"}
    assert replicas["Master"]["replicas"] == 1 and replicas["Worker"]["replicas"] == 2
    validator = pod_template_validator()
    for replica in replicas.values():
        errors = list(validator.iter_errors(replica["template"]))
        assert not errors, [e.message for e in errors]
        (container,) = replica["template"]["spec"]["containers"]
        assert container["name"] == "pytorch"  # the operator's convention
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 8
        command = container["command"]
        assert command[command.index("--nnodes") + 1] == "3"
        assert command[command.index("--nproc_per_node") + 1] == "8"
        assert command[-2:] == ["--config", str(RUN_DIR / "run.json")]
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        assert "/shared" in mounts and str(RUN_DIR).startswith("/shared/")
        assert replica["template"]["metadata"]["labels"]["belle.dev/role"] == "training"
    one_node = kl.build_manifest(spec(8), job_id=job_id, team_id=team_id, run_dir=RUN_DIR, config=CONFIG)
    assert set(one_node["spec"]["pytorchReplicaSpecs"]) == {"Master"}


def test_a_broken_pod_template_is_caught():
    manifest = kl.build_manifest(spec(16), job_id=uuid.uuid4(), team_id=uuid.uuid4(), run_dir=RUN_DIR, config=CONFIG)
    template = copy.deepcopy(manifest["spec"]["pytorchReplicaSpecs"]["Master"]["template"])
    template["spec"]["containers"][0]["volumeMount"] = []
    assert list(pod_template_validator().iter_errors(template))


def condition(kind: str, status: str = "True", at: str = "2026-01-01T00:00:00Z", message: str = "") -> dict:
    return {"type": kind, "status": status, "lastTransitionTime": at, "message": message}


@pytest.mark.parametrize(("conditions", "phase"), [
    ([], "pending"),
    ([condition("Created")], "pending"),
    ([condition("Created", at="2026-01-01T00:00:00Z"), condition("Running", at="2026-01-01T00:01:00Z")], "running"),
    ([condition("Running", at="2026-01-01T00:01:00Z"), condition("Restarting", at="2026-01-01T00:02:00Z")], "restarting"),
    ([condition("Running", "False"), condition("Succeeded")], "succeeded"),
    ([condition("Running", at="2026-01-01T00:09:00Z"), condition("Failed", at="2026-01-01T00:05:00Z", message="OOMKilled")],
     "failed"),
])
def test_status_conditions(conditions, phase):
    state = kl.job_state({"status": {"conditions": conditions}})
    assert state.phase == phase
    assert state.finished == (phase in ("succeeded", "failed"))
    if phase == "failed":
        assert state.message == "OOMKilled"


class FakeCustomObjects:
    """In-memory stand-in for kubernetes.client.CustomObjectsApi: create / get / delete by name, 404
    as ApiException; `script` gives the conditions each successive `get` reports."""

    def __init__(self, script: list[list[dict]], existing: dict | None = None):
        self.objects: dict[str, dict] = {}
        self.script = script
        self.created: list[dict] = []
        self.deleted: list[str] = []
        if existing:
            self.objects[existing["metadata"]["name"]] = existing

    def create_namespaced_custom_object(self, group, version, namespace, plural, body):
        assert (group, version, plural) == ("kubeflow.org", "v1", "pytorchjobs")
        self.created.append(body)
        self.objects[body["metadata"]["name"]] = copy.deepcopy(body)

    def get_namespaced_custom_object(self, group, version, namespace, plural, name):
        if name not in self.objects:
            raise ApiException(status=404, reason="Not Found")
        if self.script:
            self.objects[name]["status"] = {"conditions": self.script.pop(0)}
        return copy.deepcopy(self.objects[name])

    def delete_namespaced_custom_object(self, group, version, namespace, plural, name, body=None):
        self.deleted.append(name)
        if self.objects.pop(name, None) is None:
            raise ApiException(status=404, reason="Not Found")


class Context:
    """The parts of a JobContext the launcher uses."""

    def __init__(self):
        self.job_id, self.team_id = uuid.uuid4(), uuid.uuid4()
        self.settings = SimpleNamespace()
        self.events: list[tuple[str, dict]] = []
        self.cancelled = threading.Event()
        self._callbacks = []

    def event(self, message, **data):
        self.events.append((message, data))

    def on_cancel(self, callback):
        self._callbacks.append(callback)

    def cancel(self):
        self.cancelled.set()
        for callback in self._callbacks:
            callback()

    def check_cancelled(self):
        if self.cancelled.is_set():
            raise JobCancelled()


def write_progress(run_dir: Path, *records: dict) -> None:
    with (run_dir / "progress.jsonl").open("a") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")


def test_follows_a_job_to_success_and_forwards_progress(tmp_path):
    ctx = Context()
    write_progress(tmp_path, {"event": "stale", "from": "an earlier attempt"})
    running = [condition("Created"), condition("Running", at="2026-01-01T00:01:00Z")]
    api = FakeCustomObjects([[], running, running, running + [condition("Succeeded", at="2026-01-01T00:09:00Z")]])
    seen = []

    def on_event(record):
        seen.append(record)
        if record["event"] == "start":  # rank 0 writes while the worker follows
            write_progress(tmp_path, {"event": "done", "step": 10})

    original_get = api.get_namespaced_custom_object

    def get_and_train(*args):
        result = original_get(*args)
        if len(api.script) == 2:
            write_progress(tmp_path, {"event": "start", "total_steps": 10})
        return result

    api.get_namespaced_custom_object = get_and_train
    code, error = kl.run_pytorchjob(spec(16), ctx, tmp_path, on_event=on_event, log_path=tmp_path / "train.log",
                                    api=api, config=CONFIG, poll_seconds=0.01)
    assert (code, error) == (0, None)
    assert [r["event"] for r in seen] == ["start", "done"]  # the stale log was removed before the job started
    assert len(api.created) == 1 and api.created[0]["metadata"]["name"] == kl.job_name(ctx.job_id)
    phases = [data.get("phase") for _, data in ctx.events if "phase" in data]
    assert phases == ["pending", "running", "succeeded"]
    assert [json.loads(line)["phase"] for line in (tmp_path / "train.log").read_text().splitlines()] == phases


def test_a_failed_job_returns_the_operators_message(tmp_path):
    ctx = Context()
    api = FakeCustomObjects([[condition("Running")], [condition("Failed", message="pod master-0 OOMKilled")]])
    code, error = kl.run_pytorchjob(spec(16), ctx, tmp_path, on_event=lambda r: None, log_path=tmp_path / "log",
                                    api=api, config=CONFIG, poll_seconds=0.01)
    assert code == 1 and "OOMKilled" in error


def test_a_redelivered_job_follows_the_running_pytorchjob_instead_of_starting_another(tmp_path):
    ctx = Context()
    existing = kl.build_manifest(spec(16), job_id=ctx.job_id, team_id=ctx.team_id, run_dir=tmp_path, config=CONFIG)
    existing["status"] = {"conditions": [condition("Running")]}
    write_progress(tmp_path, {"event": "start", "total_steps": 5})
    api = FakeCustomObjects([[condition("Running")], [condition("Running")], [condition("Succeeded")]], existing=existing)
    seen = []
    code, _ = kl.run_pytorchjob(spec(16), ctx, tmp_path, on_event=seen.append, log_path=tmp_path / "log",
                                api=api, config=CONFIG, poll_seconds=0.01)
    assert code == 0 and api.created == [] and api.deleted == []
    assert [r["event"] for r in seen] == ["start"]  # the running job's progress so far is kept
    assert "following the running" in ctx.events[0][0]


def test_a_finished_failed_job_of_an_earlier_attempt_is_replaced(tmp_path):
    ctx = Context()
    existing = kl.build_manifest(spec(16), job_id=ctx.job_id, team_id=ctx.team_id, run_dir=tmp_path, config=CONFIG)
    api = FakeCustomObjects([[condition("Failed")], [condition("Succeeded")]], existing=existing)
    code, _ = kl.run_pytorchjob(spec(16), ctx, tmp_path, on_event=lambda r: None, log_path=tmp_path / "log",
                                api=api, config=CONFIG, poll_seconds=0.01)
    assert code == 0 and api.deleted == [existing["metadata"]["name"]] and len(api.created) == 1


def test_cancel_deletes_the_pytorchjob(tmp_path):
    ctx = Context()
    api = FakeCustomObjects([[condition("Running")]] * 1000)
    timer = threading.Timer(0.2, ctx.cancel)
    timer.start()
    with pytest.raises(JobCancelled):
        kl.run_pytorchjob(spec(16), ctx, tmp_path, on_event=lambda r: None, log_path=tmp_path / "log",
                          api=api, config=CONFIG, poll_seconds=0.01)
    assert api.deleted == [kl.job_name(ctx.job_id)] and not api.objects
