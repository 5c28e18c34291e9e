"""Kubeflow Trainer v2's TrainJob and TrainingRuntime (trainer.kubeflow.org/v1alpha1) are CRDs, absent
from the Kubernetes schemas: the fields this project writes, as JSON schemas written from the API's Go
types (kubeflow/trainer, pkg/apis/trainer/v1alpha1: trainjob_types.go, trainingruntime_types.go;
the fields used here are the same from v2.0 to v2.3). Each object this project writes is closed (a
misspelt field fails); the Kubernetes types inside them (ObjectMeta, EnvVar, ResourceRequirements,
the replicated jobs' JobTemplateSpec with its pod template) are checked against kubernetes-validate's
own strict schemas."""

from __future__ import annotations

import functools

import jsonschema
import kubernetes_validate
import referencing


def _k8s(name: str) -> dict:
    return {"$ref": f"https://kubernetes.io/api/_definitions.json#/$defs/{name}"}


_OBJECT_META = _k8s("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
_GROUP = "trainer.kubeflow.org/v1alpha1"
_RUNTIME_KINDS = ["TrainingRuntime", "ClusterTrainingRuntime"]
_COMMAND = {"type": "array", "maxItems": 128, "items": {"type": "string"}}

# TrainJobSpec; `trainer` is the Trainer struct. numProcPerNode is an int32 since v2.2 (v2.0 and v2.1
# took an int or a string): this project writes an int. numNodes and numProcPerNode must be >= 1 (the
# CRD's own rules). The TrainJob's name is a DNS label of at most 63 characters (its CEL rules).
TRAINJOB = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"], "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": _GROUP},
        "kind": {"const": "TrainJob"},
        "metadata": {"allOf": [_OBJECT_META, {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string", "pattern": "^[a-z]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63}}}]},
        "spec": {
            "type": "object", "required": ["runtimeRef"], "additionalProperties": False,
            "properties": {
                "runtimeRef": {
                    "type": "object", "required": ["name"], "additionalProperties": False,
                    "properties": {
                        "name": {"type": "string", "minLength": 1, "maxLength": 253},
                        "apiGroup": {"const": "trainer.kubeflow.org"},
                        "kind": {"enum": _RUNTIME_KINDS},
                    },
                },
                "trainer": {
                    "type": "object", "additionalProperties": False,
                    "properties": {
                        "image": {"type": "string", "maxLength": 500},
                        "command": _COMMAND,
                        "args": _COMMAND,
                        "env": {"type": "array", "maxItems": 128, "items": _k8s("io.k8s.api.core.v1.EnvVar")},
                        "numNodes": {"type": "integer", "minimum": 1},
                        "resourcesPerNode": _k8s("io.k8s.api.core.v1.ResourceRequirements"),
                        "numProcPerNode": {"type": "integer", "minimum": 1},
                    },
                },
                "suspend": {"type": "boolean"},
                "activeDeadlineSeconds": {"type": "integer", "minimum": 1},
                "managedBy": {"type": "string"},
            },
        },
        "status": {"type": "object"},
    },
}

# TrainingRuntimeSpec: mlPolicy, podGroupPolicy and the JobSet template (JobSetSpec of JobSet
# v1alpha2, whose replicated jobs are Kubernetes JobTemplateSpecs).
_JOBSET_SPEC = {
    "type": "object", "required": ["replicatedJobs"], "additionalProperties": False,
    "properties": {
        "replicatedJobs": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["name", "template"], "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "groupName": {"type": "string"},
                "replicas": {"type": "integer", "minimum": 0},
                "dependsOn": {"type": "array"},
                "template": _k8s("io.k8s.api.batch.v1.JobTemplateSpec"),
            }}},
        "ttlSecondsAfterFinished": {"type": "integer", "minimum": 0},
        "network": {"type": "object"},
        "successPolicy": {"type": "object"},
        "failurePolicy": {"type": "object"},
        "startupPolicy": {"type": "object"},
        "suspend": {"type": "boolean"},
        "coordinator": {"type": "object"},
        "managedBy": {"type": "string"},
        "volumeClaimPolicies": {"type": "array"},
    },
}
TRAINING_RUNTIME = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"], "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": _GROUP},
        "kind": {"enum": _RUNTIME_KINDS},
        "metadata": _OBJECT_META,
        "spec": {
            "type": "object", "required": ["template"], "additionalProperties": False,
            "properties": {
                "mlPolicy": {
                    "type": "object", "additionalProperties": False,
                    "properties": {
                        "numNodes": {"type": "integer", "minimum": 1},
                        "torch": {"type": "object", "additionalProperties": False,
                                  "properties": {"envInjection": {"type": "object"}}},
                        **{source: {"type": "object"} for source in ("mpi", "flux", "jax", "xgboost")},
                    },
                    "maxProperties": 2,  # numNodes and one policy source
                },
                "podGroupPolicy": {"type": "object"},
                "template": {
                    "type": "object", "required": ["spec"], "additionalProperties": False,
                    "properties": {"metadata": _OBJECT_META, "spec": _JOBSET_SPEC},
                },
            },
        },
    },
}


@functools.cache
def _registry() -> referencing.Registry:
    version = kubernetes_validate.utils.latest_version()
    definitions = kubernetes_validate.utils.schema_contents(
        f"kubernetes-json-schema/v{version}-local-strict/_definitions.json", version)
    return referencing.Resource.from_contents(definitions) @ referencing.Registry()


def validator(kind: str) -> jsonschema.Draft202012Validator:
    """A validator for a TrainJob, TrainingRuntime or ClusterTrainingRuntime."""
    schema = TRAINJOB if kind == "TrainJob" else TRAINING_RUNTIME
    return jsonschema.Draft202012Validator(schema, registry=_registry())


def errors(doc: dict) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator(doc["kind"]).iter_errors(doc)]
