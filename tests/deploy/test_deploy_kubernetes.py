"""deploy/k8s: every manifest kustomize renders is valid against the Kubernetes schemas (offline,
kubernetes-validate's bundled schemas), KEDA's resources have the fields KEDA needs, Kubeflow
Trainer's TrainingRuntime matches its API (trainer_schemas), and the pieces refer to each other
correctly (accounts, config, queues, GPUs, the training runtime's claims and image)."""

from __future__ import annotations

import functools

import jsonschema
import kubernetes_validate
import pytest
from deploy_tools import K8S, kustomize
from trainer_schemas import errors as trainer_schema_errors

from belle_shared.job_types import queues as registered_queues

# The oldest Kubernetes release the manifests are meant for, and the newest the schemas know.
KUBERNETES_VERSIONS = ("1.29", kubernetes_validate.utils.latest_version())
TARGETS = ("base", "overlays/development", "overlays/production")
WORKERS = {"belle-datagen": "datagen", "belle-trainer": "train", "belle-quantizer": "quantize",
           "belle-evaluator": "eval"}

# KEDA is a CRD, absent from the Kubernetes schemas: the fields this project relies on, written
# from KEDA's documentation (keda.sh/v1alpha1).
_NAME = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string", "minLength": 1}}}
KEDA_SCHEMAS = {
    "ScaledObject": {
        "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "keda.sh/v1alpha1"},
            "spec": {
                "type": "object", "required": ["scaleTargetRef", "triggers"], "additionalProperties": False,
                "properties": {
                    "scaleTargetRef": _NAME,
                    "minReplicaCount": {"type": "integer", "minimum": 0},
                    "maxReplicaCount": {"type": "integer", "minimum": 1},
                    "pollingInterval": {"type": "integer", "minimum": 1},
                    "cooldownPeriod": {"type": "integer", "minimum": 0},
                    "advanced": {"type": "object"},
                    "triggers": {"type": "array", "minItems": 1, "items": {
                        "type": "object", "required": ["type", "metadata"],
                        "properties": {
                            "type": {"type": "string"},
                            "authenticationRef": _NAME,
                            "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
                        }}},
                },
            },
        },
    },
    "TriggerAuthentication": {
        "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "keda.sh/v1alpha1"},
            "spec": {"type": "object", "properties": {"secretTargetRef": {"type": "array", "items": {
                "type": "object", "required": ["parameter", "name", "key"], "additionalProperties": False,
                "properties": {k: {"type": "string"} for k in ("parameter", "name", "key")}}}}},
        },
    },
}


@functools.cache
def rendered(target: str) -> list[dict]:
    return kustomize(K8S / target)


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


@pytest.mark.parametrize("target", TARGETS)
def test_every_manifest_is_valid_against_the_kubernetes_schemas(target):
    docs = rendered(target)
    assert docs
    checked = 0
    for doc in docs:
        if doc["kind"] in KEDA_SCHEMAS:
            jsonschema.validate(doc, KEDA_SCHEMAS[doc["kind"]])
            continue
        if doc["apiVersion"].startswith("trainer.kubeflow.org/"):
            assert not trainer_schema_errors(doc), (doc["metadata"]["name"], trainer_schema_errors(doc))
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{target}: {doc['kind']}/{doc['metadata']['name']} (Kubernetes {version}): {exc.message} "
                            f"at {'/'.join(map(str, exc.path))}")
        checked += 1
    assert checked >= 15


def test_a_broken_manifest_is_caught():
    """The validator is not a rubber stamp: a misspelt field and a wrong type both fail."""
    deployment = by_kind(rendered("base"), "Deployment")["belle-gateway"]
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)
    wrong_type = {**deployment, "spec": {**deployment["spec"], "replicas": "two"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong_type, KUBERNETES_VERSIONS[-1], strict=True)


@pytest.mark.parametrize("target", TARGETS)
def test_pods_run_hardened_with_probes_resources_and_their_own_account(target):
    docs = rendered(target)
    accounts = set(by_kind(docs, "ServiceAccount"))
    for kind in ("Deployment", "StatefulSet", "Job"):
        for name, doc in by_kind(docs, kind).items():
            pod = doc["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True, name
            if name.startswith("belle-"):
                assert pod["serviceAccountName"] in accounts, name
            for container in pod["containers"]:
                assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
                assert container["securityContext"]["capabilities"]["drop"] == ["ALL"], name
                assert container["resources"]["limits"]["memory"], name
                assert container["resources"]["requests"], name
                if kind != "Job":
                    assert "livenessProbe" in container, name


@pytest.mark.parametrize("target", TARGETS)
def test_belle_pods_read_config_and_secrets_from_the_configmap_and_secret(target):
    docs = rendered(target)
    for name in ("belle-gateway", *WORKERS):
        container = by_kind(docs, "Deployment")[name]["spec"]["template"]["spec"]["containers"][0]
        sources = {(next(iter(ref)), ref[next(iter(ref))]["name"]) for ref in container["envFrom"]}
        assert sources == {("configMapRef", "belle-config"), ("secretRef", "belle-secrets")}, name
    assert "belle-config" in by_kind(docs, "ConfigMap")
    if target == "overlays/development":
        secret = by_kind(docs, "Secret")["belle-secrets"]
        assert {"BELLE_SECRET_KEY", "BELLE_DATABASE_URL", "BELLE_BROKER_URL", "REDIS_PASSWORD",
                "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "FLOWER_BASIC_AUTH", "POSTGRES_PASSWORD"} <= set(secret["data"])


def test_one_worker_deployment_per_queue_and_the_gateway_waits_for_migrations():
    docs = rendered("base")
    deployments = by_kind(docs, "Deployment")
    queues = {doc["metadata"]["labels"].get("belle.dev/queue") for doc in deployments.values()} - {None}
    assert queues == set(registered_queues())
    init = deployments["belle-gateway"]["spec"]["template"]["spec"]["initContainers"][0]
    assert init["command"][:4] == ["python", "-m", "belle_shared.db.migrate", "--wait"]
    migrate = by_kind(docs, "Job")["belle-migrate"]["spec"]["template"]["spec"]["containers"][0]
    assert migrate["command"] == ["python", "-m", "belle_shared.db.migrate"]


def test_production_scales_workers_on_their_queue_lists():
    docs = rendered("overlays/production")
    deployments = by_kind(docs, "Deployment")
    config = by_kind(docs, "ConfigMap")["belle-config"]["data"]
    scaled = by_kind(docs, "ScaledObject")
    assert set(scaled) == set(WORKERS)
    auth = by_kind(docs, "TriggerAuthentication")
    for name, scaled_object in scaled.items():
        assert scaled_object["spec"]["scaleTargetRef"]["name"] == name
        target = deployments[name]
        queue = target["metadata"]["labels"]["belle.dev/queue"]
        (trigger,) = scaled_object["spec"]["triggers"]
        assert trigger["type"] == "redis"
        # kombu keeps a queue's waiting messages in the list "<key prefix>:<queue>".
        assert trigger["metadata"]["listName"] == f"{config['BELLE_KEY_PREFIX']}:{queue}"
        assert trigger["metadata"]["addressFromEnv"] in config
        assert trigger["authenticationRef"]["name"] in auth
    for gpu_worker in ("belle-trainer", "belle-quantizer"):
        behavior = scaled[gpu_worker]["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        assert behavior["scaleDown"]["selectPolicy"] == "Disabled"


def test_gpu_workers_get_gpus_and_gpu_nodes_only_in_production():
    production = by_kind(rendered("overlays/production"), "Deployment")
    development = by_kind(rendered("overlays/development"), "Deployment")
    for name in ("belle-trainer", "belle-quantizer"):
        pod = production[name]["spec"]["template"]["spec"]
        assert int(pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"]) >= 1
        assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
        assert "nvidia.com/gpu" not in development[name]["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    for name in ("belle-gateway", "belle-datagen"):
        assert "nvidia.com/gpu" not in production[name]["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]


def test_production_trainer_launches_multi_node_jobs_with_rights_on_trainjobs_only():
    docs = rendered("overlays/production")
    deployment = by_kind(docs, "Deployment")["belle-trainer"]
    trainer = deployment["spec"]["template"]["spec"]
    (worker,) = trainer["containers"]
    env = {e["name"]: e for e in worker["env"]}
    assert env["BELLE_TRAINER_LAUNCHER"]["value"] == "kubernetes"
    assert int(env["BELLE_TRAINER_GPUS_PER_NODE"]["value"]) == int(worker["resources"]["limits"]["nvidia.com/gpu"])
    assert by_kind(docs, "PersistentVolumeClaim")["belle-trainer-shared"]["spec"]["accessModes"] == ["ReadWriteMany"]
    (rule,) = by_kind(docs, "Role")["belle-trainer-trainjobs"]["rules"]
    assert rule["apiGroups"] == ["trainer.kubeflow.org"] and rule["resources"] == ["trainjobs"]
    assert {"create", "get", "delete"} <= set(rule["verbs"])
    binding = by_kind(docs, "RoleBinding")["belle-trainer-trainjobs"]
    assert binding["subjects"][0]["name"] == trainer["serviceAccountName"]
    assert by_kind(docs, "ServiceAccount")["belle-trainer"]["automountServiceAccountToken"] is True
    assert by_kind(rendered("base"), "ServiceAccount")["belle-trainer"]["automountServiceAccountToken"] is False
    # The runtime the TrainJobs name is in the same namespace, and its pods see what the worker sees:
    # the run-folder claim at the same path (BELLE_TRAINER_WORK_DIR inside it), the same models claim,
    # the same image, the same GPU nodes.
    runtime = by_kind(docs, "TrainingRuntime")[env["BELLE_TRAINER_RUNTIME"]["value"]]
    assert runtime["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    assert "torch" in runtime["spec"]["mlPolicy"]
    (job,) = runtime["spec"]["template"]["spec"]["replicatedJobs"]
    pod = job["template"]["spec"]["template"]["spec"]
    (node,) = pod["containers"]

    def mounted_claims(pod_spec: dict, container: dict) -> dict[str, str]:
        claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod_spec["volumes"]
                  if "persistentVolumeClaim" in v}
        return {claims[m["name"]]: m["mountPath"] for m in container["volumeMounts"] if m["name"] in claims}

    worker_claims, node_claims = mounted_claims(trainer, worker), mounted_claims(pod, node)
    shared = node_claims["belle-trainer-shared"]
    assert worker_claims["belle-trainer-shared"] == shared
    assert env["BELLE_TRAINER_WORK_DIR"]["value"].startswith(shared + "/")
    assert worker_claims["belle-models"] == node_claims["belle-models"]
    assert env["BELLE_TRAINER_IMAGE"]["value"] == node["image"] == worker["image"]
    assert pod["nodeSelector"] == trainer["nodeSelector"] and pod["tolerations"] == trainer["tolerations"]
    # Hardened like every other pod, and labelled for the network policy that lets the nodes talk.
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["automountServiceAccountToken"] is False
    assert node["securityContext"]["allowPrivilegeEscalation"] is False
    assert node["securityContext"]["capabilities"]["drop"] == ["ALL"]
    policy = by_kind(docs, "NetworkPolicy")["belle-training-pods"]["spec"]["podSelector"]["matchLabels"]
    assert policy.items() <= job["template"]["spec"]["template"]["metadata"]["labels"].items()


def test_development_runs_its_own_data_services_and_production_does_not():
    development = rendered("overlays/development")
    assert set(by_kind(development, "StatefulSet")) == {"postgres", "redis", "minio"}
    assert all(doc["metadata"].get("namespace") == "belle-dev" for doc in development if doc["kind"] != "Namespace")
    production = rendered("overlays/production")
    assert not by_kind(production, "StatefulSet")
    ingress = by_kind(production, "Ingress")["belle-gateway"]
    assert ingress["spec"]["tls"][0]["secretName"]
    assert by_kind(production, "NetworkPolicy")["belle-default-deny-ingress"]["spec"]["podSelector"] == {}
