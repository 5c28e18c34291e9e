"""Multi-node training on Kubernetes: a `train` job larger than one node becomes a Kubeflow PyTorchJob.

With ``BELLE_TRAINER_LAUNCHER=kubernetes`` and a spec whose ``num_processes`` exceeds
``BELLE_TRAINER_GPUS_PER_NODE``, the trainer worker does not start torchrun itself: it creates a
PyTorchJob (the Kubeflow training operator's resource) of ``num_processes / gpus_per_node`` pods,
each running ``torchrun --nproc_per_node <gpus_per_node> -m belle_trainer.train`` with the c10d
rendezvous at the master pod, and follows it. The run folder lives on a ReadWriteMany claim that
the worker and every pod mount at the same path, so the pods read ``run.json`` and the data the
worker prepared, rank 0 writes ``progress.jsonl`` and checkpoints there, and the worker turns them
into job events exactly as for a local run.

A cancel deletes the PyTorchJob (its pods go with it). A redelivered job (its worker died) finds the
PyTorchJob of the same name still running and follows it instead of starting a second one; a failed
one is replaced, and training resumes from the newest checkpoint in the run folder.

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

GROUP, VERSION, PLURAL, KIND = "kubeflow.org", "v1", "pytorchjobs", "PyTorchJob"
POLL_SECONDS = 2.0
STATUS_EVERY_SECONDS = 10.0
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@dataclass(frozen=True)
class LaunchConfig:
    """Where and how training pods run (from the trainer's settings, BELLE_TRAINER_*)."""

    image: str
    namespace: str
    gpus_per_node: int
    shared_claim: str
    shared_mount_path: str
    models_claim: str | None = "belle-models"
    models_mount_path: str = "/models"
    cpu_per_node: str = "8"
    memory_per_node: str = "64Gi"
    shm_size: str = "16Gi"
    gpu_node_selector: tuple[tuple[str, str], ...] = (("nvidia.com/gpu.present", "true"),)

    @classmethod
    def from_settings(cls, settings: Any) -> "LaunchConfig":
        missing = [name for name in ("trainer_image", "trainer_shared_claim")
                   if not getattr(settings, name, None)]
        if missing:
            raise JobError("launcher_misconfigured", "BELLE_TRAINER_LAUNCHER=kubernetes needs "
                           + ", ".join(f"BELLE_{name.upper()}" for name in missing))
        namespace = getattr(settings, "trainer_namespace", None)
        if not namespace and SERVICE_ACCOUNT_NAMESPACE.exists():
            namespace = SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
        return cls(image=settings.trainer_image, namespace=namespace or "default",
                   gpus_per_node=settings.trainer_gpus_per_node, shared_claim=settings.trainer_shared_claim,
                   shared_mount_path=str(settings.trainer_shared_mount_path),
                   models_claim=getattr(settings, "trainer_models_claim", "belle-models") or None)


def wanted(spec: TrainSpec, settings: Any) -> bool:
    """Whether this job runs as a PyTorchJob: the kubernetes launcher is on and one node is too small."""
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
    """The PyTorchJob's name: stable per BELLE job (a redelivered job finds it), short enough for the
    pod and service names the operator derives from it (63 characters)."""
    return f"belle-train-{str(job_id).replace('-', '')[:16]}"


def build_manifest(spec: TrainSpec, *, job_id: Any, team_id: Any, run_dir: Path, config: LaunchConfig) -> dict:
    """The PyTorchJob for this run: one Master and (nodes - 1) Workers, each a GPU node's worth of ranks."""
    nodes, per_node = node_layout(spec.num_processes, config.gpus_per_node)
    name = job_name(job_id)
    labels = {"app.kubernetes.io/part-of": "belle", "app.kubernetes.io/component": "training",
              "belle.dev/role": "training", "belle.dev/job-id": str(job_id)}
    # c10d rendezvous at the master pod: the operator sets MASTER_ADDR and MASTER_PORT in every pod,
    # and Kubernetes expands $(VAR) in args from the container's environment.
    command = ["python", "-m", "torch.distributed.run",
               "--nnodes", str(nodes), "--nproc_per_node", str(per_node),
               "--rdzv_backend", "c10d", "--rdzv_endpoint", "$(MASTER_ADDR):$(MASTER_PORT)", "--rdzv_id", name,
               "-m", "belle_trainer.train", "--config", str(run_dir / "run.json")]
    volume_mounts = [{"name": "shared", "mountPath": config.shared_mount_path},
                     {"name": "dshm", "mountPath": "/dev/shm"}]
    volumes = [{"name": "shared", "persistentVolumeClaim": {"claimName": config.shared_claim}},
               {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": config.shm_size}}]
    if config.models_claim:
        volume_mounts.append({"name": "models", "mountPath": config.models_mount_path, "readOnly": True})
        volumes.append({"name": "models", "persistentVolumeClaim": {"claimName": config.models_claim,
                                                                     "readOnly": True}})

    def replica(count: int) -> dict:
        return {
            "replicas": count,
            # A failed rank fails the job; the worker decides what happens next (resume on retry).
            "restartPolicy": "Never",
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
                                        "fsGroup": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
                    "nodeSelector": dict(config.gpu_node_selector),
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                    "containers": [{
                        # The operator finds the training container by this name.
                        "name": "pytorch",
                        "image": config.image,
                        "command": command,
                        "workingDir": str(run_dir),
                        "resources": {
                            "requests": {"cpu": config.cpu_per_node, "memory": config.memory_per_node},
                            "limits": {"memory": config.memory_per_node, "nvidia.com/gpu": per_node},
                        },
                        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                        "volumeMounts": volume_mounts,
                    }],
                    "volumes": volumes,
                },
            },
        }

    replicas = {"Master": replica(1)}
    if nodes > 1:
        replicas["Worker"] = replica(nodes - 1)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {"name": name, "namespace": config.namespace, "labels": labels,
                     "annotations": {"belle.dev/team-id": str(team_id), "belle.dev/num-processes": str(spec.num_processes)}},
        "spec": {
            "runPolicy": {"backoffLimit": 0, "cleanPodPolicy": "Running", "ttlSecondsAfterFinished": 3600},
            "pytorchReplicaSpecs": replicas,
        },
    }


# ------------------------------------------------------------------------------------ status


@dataclass(frozen=True)
class JobState:
    phase: str  # pending | running | restarting | succeeded | failed
    message: str

    @property
    def finished(self) -> bool:
        return self.phase in ("succeeded", "failed")


_PHASES = {"Created": "pending", "Running": "running", "Restarting": "restarting",
           "Succeeded": "succeeded", "Failed": "failed"}


def job_state(resource: dict | None) -> JobState:
    """Reads a PyTorchJob's status conditions. A terminal condition (Succeeded, Failed) that is True
    wins; otherwise the newest True condition says where it is; no conditions yet: pending."""
    conditions = [c for c in ((resource or {}).get("status") or {}).get("conditions") or []
                  if str(c.get("status")) == "True" and c.get("type") in _PHASES]
    for terminal in ("Failed", "Succeeded"):
        for condition in conditions:
            if condition["type"] == terminal:
                return JobState(_PHASES[terminal], condition.get("message") or condition.get("reason") or terminal)
    if not conditions:
        return JobState("pending", "waiting for the training operator")
    newest = max(enumerate(conditions), key=lambda item: (item[1].get("lastTransitionTime") or "", item[0]))[1]
    return JobState(_PHASES[newest["type"]], newest.get("message") or newest.get("reason") or newest["type"])


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


def run_pytorchjob(spec: TrainSpec, ctx: JobContext, run_dir: Path, *, on_event: Callable[[dict[str, Any]], None],
                   log_path: Path, api: Any = None, config: LaunchConfig | None = None,
                   poll_seconds: float = POLL_SECONDS) -> tuple[int, str | None]:
    """Create (or adopt) the job's PyTorchJob and follow it until it ends.

    Returns (0, None) when it succeeded, (1, the operator's message) when it failed. Progress lines
    go to `on_event` as they appear; a cancel deletes the PyTorchJob and raises JobCancelled.
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
                log.exception("could not delete PyTorchJob %s/%s", namespace, name)

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
    ctx.event(f"{'following the running' if adopted else 'created'} PyTorchJob {namespace}/{name}: {nodes} node(s) "
              f"x {per_node} GPU(s)", kind="status", pytorchjob=name, namespace=namespace, nodes=nodes,
              processes_per_node=per_node)

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
                    state = JobState("failed", f"PyTorchJob {name} was deleted")
                else:
                    state = job_state(resource)
                if state.phase != last_phase:
                    last_phase = state.phase
                    status_log.write(json.dumps({"phase": state.phase, "message": state.message}) + "\n")
                    status_log.flush()
                    ctx.event(f"PyTorchJob {name}: {state.phase} ({state.message})", kind="status",
                              phase=state.phase)
                if state.finished:
                    for event in follower.new_events():
                        on_event(event)
                    return (0, None) if state.phase == "succeeded" else (1, state.message)
            time.sleep(poll_seconds)


def _wait_gone(get: Callable[[], dict | None], poll_seconds: float, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while get() is not None:
        if time.monotonic() > deadline:
            raise JobError("launcher_failed", "an earlier PyTorchJob of this job is still being deleted")
        time.sleep(poll_seconds)
