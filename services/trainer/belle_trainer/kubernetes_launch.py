"""Multi-node training on Kubernetes: a `train` job larger than one node becomes a Kubeflow TrainJob.

With ``BELLE_TRAINER_LAUNCHER=kubernetes`` and a spec whose ``num_processes`` exceeds
``BELLE_TRAINER_GPUS_PER_NODE``, the trainer worker does not start torchrun itself: it creates a
TrainJob (Kubeflow Trainer v2, ``trainer.kubeflow.org/v1alpha1``) of ``num_processes / gpus_per_node``
nodes, each running ``torchrun -m belle_trainer.train`` with ``gpus_per_node`` ranks, and follows it.

The TrainJob carries only what varies per job: the trainer image, the command, the number of nodes,
the processes and resources per node, and extra environment. Everything else about the pods is the
``runtimeRef``'s: the TrainingRuntime ``belle-torch-distributed`` (deploy/k8s/components/
multi-node-training) puts them on GPU nodes, hardened, with the volumes mounted, and its torch policy
gives each node torchrun's rendezvous (``PET_NNODES``, ``PET_NPROC_PER_NODE``, ``PET_NODE_RANK``,
``PET_MASTER_ADDR``, ``PET_MASTER_PORT``), so the command names none of it. The run folder lives on
a ReadWriteMany claim that the worker and every pod mount at the same path, so the pods read
``run.json`` and the data the worker prepared, rank 0 writes ``progress.jsonl`` and checkpoints
there, and the worker turns them into job events exactly as for a local run.

A cancel deletes the TrainJob (its JobSet and pods go with it); so does a success (the pods of a
failed one stay until the runtime's JobSet TTL, for their logs). A redelivered job (its worker died)
finds the TrainJob of the same name still running and follows it instead of starting a second one; a
finished one is replaced, and training resumes from the newest checkpoint in the run folder.

The ``kubernetes`` client is imported only here and only when a job needs it (the optional extra
``belle-trainer[kubernetes]``); the worker still never imports torch.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from belle_shared.errors import JobError
from belle_shared.progress import PROGRESS_FILE, ProgressTail
from belle_shared.specs import TrainSpec
from belle_shared.worker import JobContext

log = logging.getLogger(__name__)

GROUP, VERSION, PLURAL, KIND = "trainer.kubeflow.org", "v1alpha1", "trainjobs", "TrainJob"
# The replicated job and container of the training nodes in a torch runtime (Kubeflow Trainer's names).
NODE = "node"
# Set by the runtime's torch policy; the trainer's webhook refuses a TrainJob that sets them.
RESERVED_ENV = ("PET_NNODES", "PET_NPROC_PER_NODE", "PET_NODE_RANK", "PET_MASTER_ADDR", "PET_MASTER_PORT")
POLL_SECONDS = 2.0
STATUS_EVERY_SECONDS = 10.0
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@dataclass(frozen=True)
class LaunchConfig:
    """Where and how training nodes run (from the trainer's settings, BELLE_TRAINER_*)."""

    image: str
    namespace: str
    gpus_per_node: int
    runtime: str = "belle-torch-distributed"
    runtime_kind: str = "TrainingRuntime"
    cpu_per_node: str = "8"
    memory_per_node: str = "64Gi"
    env: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_settings(cls, settings: Any) -> "LaunchConfig":
        if not getattr(settings, "trainer_image", None):
            raise JobError("launcher_misconfigured", "BELLE_TRAINER_LAUNCHER=kubernetes needs BELLE_TRAINER_IMAGE")
        env = dict(getattr(settings, "trainer_pod_env", None) or {})
        reserved = sorted(set(env) & set(RESERVED_ENV))
        if reserved:
            raise JobError("launcher_misconfigured", f"BELLE_TRAINER_POD_ENV must not set {', '.join(reserved)}: "
                           "the TrainingRuntime's torch policy sets them")
        namespace = getattr(settings, "trainer_namespace", None)
        if not namespace and SERVICE_ACCOUNT_NAMESPACE.exists():
            namespace = SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
        return cls(image=settings.trainer_image, namespace=namespace or "default",
                   gpus_per_node=settings.trainer_gpus_per_node,
                   runtime=getattr(settings, "trainer_runtime", cls.runtime),
                   runtime_kind=getattr(settings, "trainer_runtime_kind", cls.runtime_kind),
                   env=tuple(sorted(env.items())))


def wanted(spec: TrainSpec, settings: Any) -> bool:
    """Whether this job runs as a TrainJob: the kubernetes launcher is on and one node is too small."""
    return (getattr(settings, "trainer_launcher", "local") == "kubernetes"
            and spec.num_processes > getattr(settings, "trainer_gpus_per_node", 1))


def node_layout(num_processes: int, gpus_per_node: int) -> tuple[int, int]:
    """(nodes, processes per node). Every node runs the same number of ranks, so the processes must
    fill whole nodes (or fit in one)."""
    if num_processes <= gpus_per_node:
        return 1, num_processes
    if num_processes % gpus_per_node:
        raise JobError("invalid_num_processes",
                       f"num_processes {num_processes} does not fill whole nodes of {gpus_per_node} GPUs; use a "
                       f"multiple of {gpus_per_node} (e.g. {math.ceil(num_processes / gpus_per_node) * gpus_per_node})",
                       param="num_processes")
    return num_processes // gpus_per_node, gpus_per_node


def job_name(job_id: Any) -> str:
    """The TrainJob's name: stable per BELLE job (a redelivered job finds it), a DNS label short
    enough for the JobSet, pod and host names the controller derives from it (63 characters)."""
    return f"belle-train-{str(job_id).replace('-', '')[:16]}"


def build_manifest(spec: TrainSpec, *, job_id: Any, team_id: Any, run_dir: Path, config: LaunchConfig) -> dict:
    """The TrainJob for this run: `nodes` training nodes of the runtime, each a GPU node's worth of ranks."""
    nodes, per_node = node_layout(spec.num_processes, config.gpus_per_node)
    labels = {"app.kubernetes.io/part-of": "belle", "app.kubernetes.io/component": "training",
              "belle.dev/role": "training", "belle.dev/job-id": str(job_id)}
    trainer: dict[str, Any] = {
        "image": config.image,
        # torchrun takes --nnodes, --nproc_per_node, --node_rank and the master's address from the
        # PET_* variables the runtime's torch policy sets in every node.
        "command": ["python", "-m", "torch.distributed.run",
                    "-m", "belle_trainer.train", "--config", str(run_dir / "run.json")],
        "numNodes": nodes,
        "numProcPerNode": per_node,
        "resourcesPerNode": {
            "requests": {"cpu": config.cpu_per_node, "memory": config.memory_per_node},
            "limits": {"memory": config.memory_per_node, "nvidia.com/gpu": per_node},
        },
    }
    if config.env:
        trainer["env"] = [{"name": name, "value": value} for name, value in config.env]
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {"name": job_name(job_id), "namespace": config.namespace, "labels": labels,
                     "annotations": {"belle.dev/team-id": str(team_id), "belle.dev/num-processes": str(spec.num_processes)}},
        "spec": {
            "runtimeRef": {"apiGroup": GROUP, "kind": config.runtime_kind, "name": config.runtime},
            "trainer": trainer,
        },
    }


# ------------------------------------------------------------------------------------ status


@dataclass(frozen=True)
class JobState:
    phase: str  # pending | running | succeeded | failed
    message: str

    @property
    def finished(self) -> bool:
        return self.phase in ("succeeded", "failed")


def job_state(resource: dict | None) -> JobState:
    """Reads a TrainJob's status. A True Failed or Complete condition ends it (Failed wins); a True
    Suspended one (a queue such as Kueue holding it) is pending; otherwise the nodes' child Job says:
    running once every node's pod is ready (JobSet counts the Job ready), pending before."""
    status = (resource or {}).get("status") or {}
    true = {c.get("type"): c for c in status.get("conditions") or [] if str(c.get("status")) == "True"}

    def said(condition: dict, default: str) -> str:
        return condition.get("message") or condition.get("reason") or default

    if "Failed" in true:
        return JobState("failed", said(true["Failed"], "Failed"))
    if "Complete" in true:
        return JobState("succeeded", said(true["Complete"], "Complete"))
    if "Suspended" in true:
        return JobState("pending", f"suspended: {said(true['Suspended'], 'Suspended')}")
    nodes = next((job for job in status.get("jobsStatus") or [] if job.get("name") == NODE), None)
    if nodes is None:
        return JobState("pending", "waiting for the Kubeflow Trainer controller")
    if (nodes.get("ready") or 0) + (nodes.get("succeeded") or 0) >= 1:
        return JobState("running", "every node is running")
    return JobState("pending", "starting the nodes' pods" if nodes.get("active") else "waiting for the nodes' pods")


# ---------------------------------------------------------------------------------- the client


def custom_objects_api():
    """The Kubernetes API for custom resources: in-cluster credentials, else ~/.kube/config."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.CustomObjectsApi()


def _not_found(exc: Exception) -> bool:
    return getattr(exc, "status", None) == 404


def run_trainjob(spec: TrainSpec, ctx: JobContext, run_dir: Path, *, on_event: Callable[[dict[str, Any]], None],
                 log_path: Path, api: Any = None, config: LaunchConfig | None = None,
                 poll_seconds: float = POLL_SECONDS) -> tuple[int, str | None]:
    """Create (or adopt) the job's TrainJob and follow it until it ends.

    Returns (0, None) when it succeeded (and deletes it), (1, the controller's message) when it failed
    (and leaves it, with its pods, for a look). Progress lines go to `on_event` as they appear; a
    cancel deletes the TrainJob and raises JobCancelled.
    """
    config = config or LaunchConfig.from_settings(ctx.settings)
    api = api if api is not None else custom_objects_api()
    manifest = build_manifest(spec, job_id=ctx.job_id, team_id=ctx.team_id, run_dir=run_dir, config=config)
    name, namespace = manifest["metadata"]["name"], config.namespace

    def get() -> dict | None:
        try:
            return api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except Exception as exc:
            if _not_found(exc):
                return None
            raise

    def delete() -> None:
        try:
            api.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name,
                                                body={"propagationPolicy": "Foreground"})
        except Exception as exc:
            if not _not_found(exc):
                log.exception("could not delete TrainJob %s/%s", namespace, name)

    existing = get()
    adopted = existing is not None and not job_state(existing).finished
    if existing is not None and not adopted:
        # An earlier attempt's job that ended: start afresh (training resumes from its checkpoint).
        delete()
        _wait_gone(get, poll_seconds)
    if not adopted:
        (run_dir / PROGRESS_FILE).unlink(missing_ok=True)
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, manifest)
    nodes, per_node = node_layout(spec.num_processes, config.gpus_per_node)
    ctx.on_cancel(delete)
    ctx.event(f"{'following the running' if adopted else 'created'} TrainJob {namespace}/{name}: {nodes} node(s) "
              f"x {per_node} GPU(s), runtime {config.runtime}", kind="status", trainjob=name, namespace=namespace,
              nodes=nodes, processes_per_node=per_node, runtime=config.runtime)

    follower = ProgressTail(run_dir / PROGRESS_FILE)
    last_phase, last_status_check = None, 0.0
    with open(log_path, "a", encoding="utf-8") as status_log:
        while True:
            for event in follower.new_events():
                on_event(event)
            ctx.check_cancelled()
            now = time.monotonic()
            if now - last_status_check >= min(STATUS_EVERY_SECONDS, poll_seconds * 5):
                last_status_check = now
                resource = get()
                if resource is None:
                    state = JobState("failed", f"TrainJob {name} was deleted")
                else:
                    state = job_state(resource)
                if state.phase != last_phase:
                    last_phase = state.phase
                    status_log.write(json.dumps({"phase": state.phase, "message": state.message}) + "\n")
                    status_log.flush()
                    ctx.event(f"TrainJob {name}: {state.phase} ({state.message})", kind="status",
                              phase=state.phase)
                if state.finished:
                    for event in follower.new_events():
                        on_event(event)
                    if state.phase == "succeeded":
                        delete()  # its checkpoints and final model are in the run folder
                        return 0, None
                    return 1, state.message
            time.sleep(poll_seconds)


def _wait_gone(get: Callable[[], dict | None], poll_seconds: float, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while get() is not None:
        if time.monotonic() > deadline:
            raise JobError("launcher_failed", "an earlier TrainJob of this job is still being deleted")
        time.sleep(poll_seconds)
