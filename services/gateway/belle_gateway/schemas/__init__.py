"""The API's schemas, one module per resource. Routes return these, never ORM objects.

Each resource's request and response models live in its module (`schemas.jobs`, `schemas.fine_tuning`,
...); this package re-exports them, so `from belle_gateway.schemas import JobPublic` works. The chat
API's OpenAI-shaped models are the serving package's (`serving/protocol.py`), beside the engine.
"""

from belle_gateway.schemas.datasets import DatasetPublic, DatasetsPublic
from belle_gateway.schemas.eval_judge import (
    JudgeEndpointPublic,
    JudgePromptPublic,
    JudgePromptsPublic,
    JudgeRequest,
    JudgmentPublic,
)
from belle_gateway.schemas.evals import (
    EvalAnswerPublic,
    EvalCompareColumn,
    EvalComparePublic,
    EvalCompareRow,
    EvalDetailPublic,
    EvalItemPublic,
    EvalItemsPublic,
    EvalModelPublic,
    EvalPublic,
    EvalScorePublic,
    EvalsPublic,
)
from belle_gateway.schemas.files import FileDeleted, FilePublic, FilesPublic
from belle_gateway.schemas.fine_tuning import (
    EVENT_LEVELS,
    BelleOptions,
    Dpo,
    DpoHyperparameters,
    FineTuningErrorPublic,
    FineTuningHyperparametersPublic,
    FineTuningJobCheckpointPublic,
    FineTuningJobCheckpointsPublic,
    FineTuningJobCreate,
    FineTuningJobEventPublic,
    FineTuningJobEventsPublic,
    FineTuningJobPublic,
    FineTuningJobsPublic,
    Hyperparameters,
    Method,
    Supervised,
)
from belle_gateway.schemas.jobs import JobEventPublic, JobEventsPublic, JobPublic, JobsPublic
from belle_gateway.schemas.lineage import DatasetLink, EvalLink, JobLink, LineageNode, LineagePublic, PipelineLink
from belle_gateway.schemas.models import ModelCreate, ModelDeleted, ModelPublic, ModelsPublic
from belle_gateway.schemas.pipelines import PipelinePublic, PipelineStepPublic, PipelinesPublic
from belle_gateway.schemas.secrets import SecretPublic, SecretSet, SecretsPublic

__all__ = [
    "EVENT_LEVELS",
    # datasets
    "DatasetPublic", "DatasetsPublic",
    # eval judge
    "JudgeEndpointPublic", "JudgePromptPublic", "JudgePromptsPublic", "JudgeRequest", "JudgmentPublic",
    # evals
    "EvalAnswerPublic", "EvalCompareColumn", "EvalComparePublic", "EvalCompareRow", "EvalDetailPublic",
    "EvalItemPublic", "EvalItemsPublic", "EvalModelPublic", "EvalPublic", "EvalScorePublic", "EvalsPublic",
    # files
    "FileDeleted", "FilePublic", "FilesPublic",
    # fine-tuning
    "BelleOptions", "Dpo", "DpoHyperparameters", "FineTuningErrorPublic", "FineTuningHyperparametersPublic", "FineTuningJobCheckpointPublic",
    "FineTuningJobCheckpointsPublic", "FineTuningJobCreate", "FineTuningJobEventPublic", "FineTuningJobEventsPublic",
    "FineTuningJobPublic", "FineTuningJobsPublic", "Hyperparameters", "Method", "Supervised",
    # jobs
    "JobEventPublic", "JobEventsPublic", "JobPublic", "JobsPublic",
    # lineage
    "DatasetLink", "EvalLink", "JobLink", "LineageNode", "LineagePublic", "PipelineLink",
    # models
    "ModelCreate", "ModelDeleted", "ModelPublic", "ModelsPublic",
    # pipelines
    "PipelinePublic", "PipelineStepPublic", "PipelinesPublic",
    # secrets
    "SecretPublic", "SecretSet", "SecretsPublic",
]
