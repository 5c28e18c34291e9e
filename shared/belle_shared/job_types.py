"""The job-type registry: one declaration per job type, from which everything else is derived.

A ``JobType`` names a job type's spec (a ``JobSpec`` subclass with a ``type`` literal), the queue its
service's worker consumes, the result keys that later pipeline steps may refer to, and the checks a
submitted spec must pass before it is queued. From the registered types come the gateway's
validation (``spec_adapter``: the union of the specs, discriminated on ``type``), the routing
(``queue_for``), the queues every Celery app declares (``queues``), the types a deployment serves by
default, pipelines' references (``outputs``), the OpenAPI document and the web pages' type list
(``GET /v1/job_types``). The built-in types are declared at the bottom of this module.

Adding a job type is one ``register_job_type`` call, made on import of the module that declares it,
in the gateway and in the worker that runs it (``BELLE_JOB_TYPE_MODULES`` names such modules for a
type that lives outside this package), plus the worker's function for it
(``belle_shared.worker.JobRegistry.job``). Nothing else lists job types.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any, Union, get_args

from pydantic import BaseModel, Field, TypeAdapter

from belle_shared import spec_checks
from belle_shared.spec_checks import SpecCheck  # noqa: F401  (the type of JobType.checks)
from belle_shared.pretraining import PretrainSpec
from belle_shared.specs import (
    DatagenSpec, EvalSpec, ImportSpec, JobSpec, ModelImportSpec, PreferencePairsSpec, QuantizeSpec, TrainSpec,
)


@dataclass(frozen=True)
class JobType:
    """Everything the platform needs to know about one job type, except how its worker runs it."""

    spec: type[JobSpec]
    queue: str
    outputs: tuple[str, ...] = ()
    checks: tuple[SpecCheck, ...] = ()
    # What the type is for, one line; default: the first line of the spec's docstring.
    summary: str = field(default="")

    @property
    def name(self) -> str:
        return _type_literal(self.spec)

    @property
    def description(self) -> str:
        return self.summary or (self.spec.__doc__ or "").strip().split("\n")[0]


class UnknownJobType(KeyError):
    """A job type no module has registered."""


_TYPES: dict[str, JobType] = {}
_adapter: TypeAdapter | None = None


def _type_literal(spec: type[BaseModel]) -> str:
    annotation = spec.model_fields["type"].annotation if "type" in spec.model_fields else None
    values = get_args(annotation)
    if len(values) != 1 or not isinstance(values[0], str):
        raise TypeError(f"{spec.__name__}: a job spec needs a field `type: Literal[\"<name>\"]`")
    return values[0]


def register_job_type(job_type: JobType) -> JobType:
    """Add a job type. Registering the same declaration again (a module imported twice) is a no-op;
    another declaration under a registered name is an error."""
    global _adapter
    if not issubclass(job_type.spec, JobSpec):
        raise TypeError(f"{job_type.spec.__name__} must subclass belle_shared.specs.JobSpec")
    name = job_type.name
    if name == "pipeline":
        raise ValueError("'pipeline' is the pipelines' own row type")
    if not name.replace("_", "").isalnum() or not name[0].isalpha():
        raise ValueError(f"job type {name!r}: letters, digits and underscores, starting with a letter")
    existing = _TYPES.get(name)
    if existing is not None and existing != job_type:
        raise ValueError(f"job type {name!r} is already registered (spec {existing.spec.__name__})")
    if not job_type.queue.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"job type {name!r}: queue {job_type.queue!r} must be a plain name")
    _TYPES[name] = job_type
    _adapter = None
    return job_type


def import_job_type_modules(modules: Iterable[str]) -> None:
    """Import modules that register job types of their own (``BELLE_JOB_TYPE_MODULES``)."""
    for module in modules:
        importlib.import_module(module)


def job_types() -> dict[str, JobType]:
    """Every registered job type by name, in registration order."""
    return dict(_TYPES)


def get_job_type(name: str) -> JobType:
    try:
        return _TYPES[name]
    except KeyError:
        raise UnknownJobType(f"unknown job type {name!r} (known: {', '.join(_TYPES)})") from None


def job_type_names() -> tuple[str, ...]:
    return tuple(_TYPES)


def queue_for(name: str) -> str:
    return get_job_type(name).queue


def queues() -> tuple[str, ...]:
    """The queues of the registered types, each once, in registration order."""
    return tuple(dict.fromkeys(t.queue for t in _TYPES.values()))


def outputs(name: str) -> tuple[str, ...]:
    return get_job_type(name).outputs


def spec_adapter() -> TypeAdapter:
    """Validates any registered job spec, chosen by its ``type`` (rebuilt when a type is added)."""
    global _adapter
    if _adapter is None:
        specs = tuple(t.spec for t in _TYPES.values())
        union: Any = Annotated[Union[specs], Field(discriminator="type")] if len(specs) > 1 else specs[0]  # noqa: UP007
        _adapter = TypeAdapter(union)
    return _adapter


def parse_spec(data: dict) -> JobSpec:
    """Validate a stored or submitted spec; raises pydantic.ValidationError."""
    return spec_adapter().validate_python(data)


def run_spec_checks(session, team, spec: JobSpec, store, settings) -> None:
    """The type's submit-time checks; the first that fails raises ``SpecRefused``."""
    for check in get_job_type(spec.type).checks:
        check(session, team, spec, store, settings)


# ------------------------------------------------------------------------------ the built-in types

# One queue per service. Dataset import is cheap CPU work and lives with data generation; converting
# weights (model_import) needs torch and transformers, which the trainer's worker has.
register_job_type(JobType(ImportSpec, queue="datagen", outputs=("dataset_id",), checks=(spec_checks.check_import,)))
register_job_type(JobType(DatagenSpec, queue="datagen", outputs=("dataset_id",), checks=(spec_checks.check_datagen,)))
register_job_type(JobType(TrainSpec, queue="train", outputs=("model_id",), checks=(spec_checks.check_train,)))
register_job_type(JobType(QuantizeSpec, queue="quantize", outputs=("model_id",), checks=(spec_checks.check_quantize,)))
register_job_type(JobType(EvalSpec, queue="eval", outputs=(), checks=(spec_checks.check_eval,)))
register_job_type(JobType(PreferencePairsSpec, queue="eval", outputs=("dataset_id",),
                          checks=(spec_checks.check_preference_pairs,)))
register_job_type(JobType(ModelImportSpec, queue="train", outputs=("model_id",),
                          checks=(spec_checks.check_model_import,)))
register_job_type(JobType(PretrainSpec, queue="train", outputs=("model_id",), checks=(spec_checks.check_pretrain,)))
