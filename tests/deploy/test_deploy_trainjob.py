"""belle_trainer.kubernetes_launch: the Kubeflow Trainer v2 TrainJob for a TrainSpec (validated offline
against the TrainJob schema of trainer_schemas, its Kubernetes parts against Kubernetes' own), that
it names the TrainingRuntime deploy/k8s ships, the reading of its status, and the create / follow /
cancel loop against an in-memory stand-in of the Kubernetes custom-objects API (no cluster here; the
stand-in has the client's method names and 404 errors)."""

from __future__ import annotations

import copy
import json
import threading
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from deploy_tools import K8S
from kubernetes.client.exceptions import ApiException
from trainer_schemas import errors as schema_errors

from belle_shared.errors import JobCancelled, JobError
from belle_shared.specs import TrainSpec
from belle_trainer import kubernetes_launch as kl
from belle_trainer.worker import TrainerSettings

CONFIG = kl.LaunchConfig(image="registry.example.com/belle-trainer:1", namespace="belle", gpus_per_node=8)
RUN_DIR = Path("/shared/work/job")
RUNTIME_FILE = K8S / "components" / "multi-node-training" / "training-runtime.yaml"


def spec(num_processes: int) -> TrainSpec:
    return TrainSpec(base_model="m", dataset_id=uuid.uuid4(), num_processes=num_processes)


def test_settings_choose_the_launcher():
    settings = TrainerSettings(trainer_launcher="kubernetes", trainer_gpus_per_node=8)
    assert not kl.wanted(spec(8), settings) and kl.wanted(spec(16), settings)
    assert not kl.wanted(spec(16), TrainerSettings())  # local by default, whatever the size
    with pytest.raises(JobError) as error:
        kl.LaunchConfig.from_settings(settings)
    assert error.value.code == "launcher_misconfigured" and "BELLE_TRAINER_IMAGE" in error.value.message


def test_settings_make_the_launch_config(monkeypatch):
    monkeypatch.setenv("BELLE_TRAINER_POD_ENV", '{"NCCL_SOCKET_IFNAME": "eth0"}')
    settings = TrainerSettings(trainer_launcher="kubernetes", trainer_gpus_per_node=8, trainer_image="img:1",
                               trainer_namespace="team-a", trainer_runtime_kind="ClusterTrainingRuntime",
                               trainer_runtime="torch-distributed")
    config = kl.LaunchConfig.from_settings(settings)
    assert (config.image, config.namespace, config.gpus_per_node) == ("img:1", "team-a", 8)
    assert (config.runtime_kind, config.runtime) == ("ClusterTrainingRuntime", "torch-distributed")
    assert config.env == (("NCCL_SOCKET_IFNAME", "eth0"),)
    # The runtime's torch policy owns torchrun's rendezvous variables; the controller refuses them.
    reserved = TrainerSettings(trainer_image="img:1", trainer_pod_env={"PET_NNODES": "2", "X": "1"})
    with pytest.raises(JobError) as error:
        kl.LaunchConfig.from_settings(reserved)
    assert error.value.code == "launcher_misconfigured" and "PET_NNODES" in error.value.message


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
    assert not schema_errors(manifest), schema_errors(manifest)
    assert manifest["apiVersion"] == "trainer.kubeflow.org/v1alpha1" and manifest["kind"] == "TrainJob"
    assert manifest["metadata"]["name"] == kl.job_name(job_id) and len(manifest["metadata"]["name"]) <= 40
    assert manifest["metadata"]["namespace"] == "belle"
    assert manifest["metadata"]["labels"]["belle.dev/job-id"] == str(job_id)
    assert manifest["spec"]["runtimeRef"] == {"apiGroup": "trainer.kubeflow.org", "kind": "TrainingRuntime",
                                              "name": "belle-torch-distributed"}
    trainer = manifest["spec"]["trainer"]
    assert trainer["image"] == CONFIG.image
    assert trainer["numNodes"] == 3 and trainer["numProcPerNode"] == 8
    assert trainer["resourcesPerNode"]["limits"]["nvidia.com/gpu"] == 8
    command = trainer["command"]
    assert command[:3] == ["python", "-m", "torch.distributed.run"]
    assert command[-2:] == ["--config", str(RUN_DIR / "run.json")]
    # Nodes, ranks and the rendezvous come from the runtime's PET_* variables, not the command.
    assert not [arg for arg in command if arg.startswith(("--nnodes", "--nproc", "--node_rank", "--master", "--rdzv"))]
    assert "env" not in trainer  # nothing extra unless configured
    one_node = kl.build_manifest(spec(8), job_id=job_id, team_id=team_id, run_dir=RUN_DIR, config=CONFIG)
    assert one_node["spec"]["trainer"]["numNodes"] == 1 and one_node["spec"]["trainer"]["numProcPerNode"] == 8
    with_env = kl.LaunchConfig(image="i", namespace="belle", gpus_per_node=8, env=(("NCCL_DEBUG", "INFO"),))
    manifest = kl.build_manifest(spec(16), job_id=job_id, team_id=team_id, run_dir=RUN_DIR, config=with_env)
    assert manifest["spec"]["trainer"]["env"] == [{"name": "NCCL_DEBUG", "value": "INFO"}]
    assert not schema_errors(manifest), schema_errors(manifest)


def test_a_broken_manifest_is_caught():
    """The schema is not a rubber stamp: a misspelt field, a wrong type, a bad name all fail."""
    manifest = kl.build_manifest(spec(16), job_id=uuid.uuid4(), team_id=uuid.uuid4(), run_dir=RUN_DIR, config=CONFIG)
    misspelt = copy.deepcopy(manifest)
    misspelt["spec"]["trainer"]["numNode"] = misspelt["spec"]["trainer"].pop("numNodes")
    wrong_type = copy.deepcopy(manifest)
    wrong_type["spec"]["trainer"]["numProcPerNode"] = "eight"
    bad_resources = copy.deepcopy(manifest)
    bad_resources["spec"]["trainer"]["resourcesPerNode"]["limit"] = {}
    bad_name = copy.deepcopy(manifest)
    bad_name["metadata"]["name"] = "Belle_Train"
    for broken in (misspelt, wrong_type, bad_resources, bad_name):
        assert schema_errors(broken)


def test_the_trainjob_names_the_runtime_deploy_k8s_ships():
    """The launcher's default runtime is the TrainingRuntime of the multi-node-training component, a
    torch runtime whose `node` job and container are where Kubeflow Trainer puts the TrainJob's trainer."""
    runtime = yaml.safe_load(RUNTIME_FILE.read_text())
    assert not schema_errors(runtime), schema_errors(runtime)
    assert runtime["kind"] == kl.LaunchConfig.runtime_kind == TrainerSettings().trainer_runtime_kind
    assert runtime["metadata"]["name"] == kl.LaunchConfig.runtime == TrainerSettings().trainer_runtime
    assert "torch" in runtime["spec"]["mlPolicy"]
    (job,) = runtime["spec"]["template"]["spec"]["replicatedJobs"]
    assert job["name"] == kl.NODE
    assert job["template"]["metadata"]["labels"]["trainer.kubeflow.org/trainjob-ancestor-step"] == "trainer"
    pod = job["template"]["spec"]["template"]
    assert [c["name"] for c in pod["spec"]["containers"]] == [kl.NODE]
    assert pod["metadata"]["labels"]["belle.dev/role"] == "training"  # the network policy's selector
    assert pod["spec"]["restartPolicy"] == "Never" and job["template"]["spec"]["backoffLimit"] == 0


def condition(kind: str, status: str = "True", message: str = "") -> dict:
    return {"type": kind, "status": status, "reason": kind, "message": message,
            "lastTransitionTime": "2026-01-01T00:00:00Z"}


def status(*conditions: dict, ready: int | None = None, active: int = 0) -> dict:
    """A TrainJob's status: its conditions and, once the JobSet exists, the nodes' child Job."""
    result: dict = {"conditions": list(conditions)}
    if ready is not None:
        result["jobsStatus"] = [{"name": "node", "ready": ready, "succeeded": 0, "failed": 0, "active": active,
                                 "suspended": 0}]
    return result


RUNNING = status(ready=1, active=1)


@pytest.mark.parametrize(("state", "phase"), [
    ({}, "pending"),
    (status(ready=0, active=0), "pending"),
    (status(ready=0, active=1), "pending"),  # pods scheduled, not all ready
    (RUNNING, "running"),
    (status(condition("Suspended", message="Kueue holds it"), ready=0), "pending"),
    (status(condition("Suspended", "False"), ready=1, active=1), "running"),  # resumed
    (status(condition("Complete")), "succeeded"),
    (status(condition("Complete", "False"), ready=1, active=1), "running"),
    (status(condition("Failed", message="pod node-0-1 OOMKilled")), "failed"),
    (status(condition("Complete"), condition("Failed", message="OOMKilled")), "failed"),
])
def test_status(state, phase):
    result = kl.job_state({"status": state})
    assert result.phase == phase
    assert result.finished == (phase in ("succeeded", "failed"))
    if phase == "failed":
        assert "OOMKilled" in result.message
    if state.get("conditions") and state["conditions"][0]["type"] == "Suspended" and phase == "pending":
        assert "Kueue holds it" in result.message


class FakeCustomObjects:
    """In-memory stand-in for kubernetes.client.CustomObjectsApi: create / get / delete by name, 404
    as ApiException; `script` gives the status each successive `get` reports."""

    def __init__(self, script: list[dict], existing: dict | None = None):
        self.objects: dict[str, dict] = {}
        self.script = script
        self.created: list[dict] = []
        self.deleted: list[str] = []
        if existing:
            self.objects[existing["metadata"]["name"]] = existing

    def create_namespaced_custom_object(self, group, version, namespace, plural, body):
        assert (group, version, plural) == ("trainer.kubeflow.org", "v1alpha1", "trainjobs")
        assert not schema_errors(body)
        self.created.append(body)
        self.objects[body["metadata"]["name"]] = copy.deepcopy(body)

    def get_namespaced_custom_object(self, group, version, namespace, plural, name):
        if name not in self.objects:
            raise ApiException(status=404, reason="Not Found")
        if self.script:
            self.objects[name]["status"] = self.script.pop(0)
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


def run(api, ctx, run_dir: Path, on_event=lambda record: None):
    return kl.run_trainjob(spec(16), ctx, run_dir, on_event=on_event, log_path=run_dir / "train.log",
                           api=api, config=CONFIG, poll_seconds=0.01)


def test_follows_a_job_to_success_forwards_progress_and_deletes_it(tmp_path):
    ctx = Context()
    write_progress(tmp_path, {"event": "stale", "from": "an earlier attempt"})
    api = FakeCustomObjects([{}, RUNNING, RUNNING, status(condition("Complete"))])
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
    assert run(api, ctx, tmp_path, on_event) == (0, None)
    assert [r["event"] for r in seen] == ["start", "done"]  # the stale log was removed before the job started
    assert len(api.created) == 1 and api.created[0]["metadata"]["name"] == kl.job_name(ctx.job_id)
    phases = [data.get("phase") for _, data in ctx.events if "phase" in data]
    assert phases == ["pending", "running", "succeeded"]
    assert [json.loads(line)["phase"] for line in (tmp_path / "train.log").read_text().splitlines()] == phases
    assert ctx.events[0][1]["trainjob"] == kl.job_name(ctx.job_id) and ctx.events[0][1]["nodes"] == 2
    # A finished, successful TrainJob is removed: its results are in the run folder.
    assert api.deleted == [kl.job_name(ctx.job_id)] and not api.objects


def test_a_failed_job_returns_the_controllers_message_and_is_kept(tmp_path):
    ctx = Context()
    api = FakeCustomObjects([RUNNING, status(condition("Failed", message="pod node-0-1 OOMKilled"))])
    code, error = run(api, ctx, tmp_path)
    assert code == 1 and "OOMKilled" in error
    assert api.deleted == [] and kl.job_name(ctx.job_id) in api.objects  # its pods keep their logs


def test_a_deleted_job_fails(tmp_path):
    ctx = Context()
    api = FakeCustomObjects([RUNNING])
    original_get = api.get_namespaced_custom_object

    def get_then_vanish(*args):
        result = original_get(*args)
        api.objects.clear()  # someone ran kubectl delete
        return result

    api.get_namespaced_custom_object = get_then_vanish
    code, error = run(api, ctx, tmp_path)
    assert code == 1 and "was deleted" in error


def test_a_redelivered_job_follows_the_running_trainjob_instead_of_starting_another(tmp_path):
    ctx = Context()
    existing = kl.build_manifest(spec(16), job_id=ctx.job_id, team_id=ctx.team_id, run_dir=tmp_path, config=CONFIG)
    existing["status"] = RUNNING
    write_progress(tmp_path, {"event": "start", "total_steps": 5})
    api = FakeCustomObjects([RUNNING, RUNNING, status(condition("Complete"))], existing=existing)
    seen = []
    code, _ = run(api, ctx, tmp_path, seen.append)
    assert code == 0 and api.created == []
    assert api.deleted == [existing["metadata"]["name"]]  # only once it succeeded
    assert [r["event"] for r in seen] == ["start"]  # the running job's progress so far is kept
    assert "following the running" in ctx.events[0][0]


def test_a_finished_failed_job_of_an_earlier_attempt_is_replaced(tmp_path):
    ctx = Context()
    existing = kl.build_manifest(spec(16), job_id=ctx.job_id, team_id=ctx.team_id, run_dir=tmp_path, config=CONFIG)
    api = FakeCustomObjects([status(condition("Failed")), status(condition("Complete"))], existing=existing)
    code, _ = run(api, ctx, tmp_path)
    name = existing["metadata"]["name"]
    assert code == 0 and len(api.created) == 1
    assert api.deleted == [name, name]  # the earlier attempt's, then this one's after its success


def test_cancel_deletes_the_trainjob(tmp_path):
    ctx = Context()
    api = FakeCustomObjects([RUNNING] * 1000)
    timer = threading.Timer(0.2, ctx.cancel)
    timer.start()
    with pytest.raises(JobCancelled):
        run(api, ctx, tmp_path)
    assert api.deleted == [kl.job_name(ctx.job_id)] and not api.objects
