"""The trainer worker: consumes the `train` queue (`train`, `pretrain` and `model_import` jobs). One job at a time;
training and model conversion run in subprocesses.

    belle-trainer-worker                 # or: python -m belle_trainer.worker
    BELLE_TRAINER_WORK_DIR=/scratch/belle belle-trainer-worker

Settings come from BELLE_* environment variables (see belle_shared.settings). This process does not
import torch; `belle_trainer.train` (launched under torchrun per job) does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from belle_shared.pretraining import PretrainSpec
from belle_shared.settings import Settings
from belle_shared.specs import ModelImportSpec, TrainSpec
from belle_shared.worker import JobContext, JobRegistry, WorkerSettings, run_worker
from belle_trainer.import_job import run_model_import
from belle_trainer.job import run_train


class TrainerSettings(WorkerSettings):
    trainer_work_dir: Path | None = Field(
        None, description="Local folder for run folders (checkpoints, logs) and cached base models; "
        "default: <data dir>/trainer. Needs room for a few checkpoints of the largest model.")
    # Multi-node training on Kubernetes (belle_trainer.kubernetes_launch; deploy/k8s/components/multi-node-training).
    trainer_launcher: Literal["local", "kubernetes"] = Field(
        "local", description="`local`: every job trains under torchrun in this worker's machine. `kubernetes`: a "
        "job with more processes than BELLE_TRAINER_GPUS_PER_NODE runs as a Kubeflow Trainer TrainJob over several "
        "nodes.")
    trainer_gpus_per_node: int = Field(
        1, ge=1, description="GPUs of one node (and of this worker): larger jobs go multi-node, with this many "
        "processes per node (num_processes must then be a multiple of it).")
    trainer_image: str | None = Field(None, description="Image of the training pods (the trainer image).")
    trainer_namespace: str | None = Field(
        None, description="Namespace of the TrainJobs (and of a TrainingRuntime they name); default: this pod's own.")
    trainer_runtime: str = Field(
        "belle-torch-distributed", description="The training runtime a TrainJob names: the shape of its pods "
        "(GPU nodes, security, the shared run-folder claim mounted where BELLE_TRAINER_WORK_DIR is, the models "
        "claim) and torchrun's rendezvous.")
    trainer_runtime_kind: Literal["TrainingRuntime", "ClusterTrainingRuntime"] = Field(
        "TrainingRuntime", description="`TrainingRuntime`: the runtime is in BELLE_TRAINER_NAMESPACE; "
        "`ClusterTrainingRuntime`: a cluster-wide one.")
    trainer_pod_env: dict[str, str] = Field(
        default_factory=dict, description="Extra environment of the training pods, a JSON object (e.g. NCCL "
        "settings of this cluster's network); not the PET_* variables, which the runtime sets.")


def work_root(settings: Settings) -> Path:
    return getattr(settings, "trainer_work_dir", None) or Path(settings.data_dir) / "trainer"


registry = JobRegistry()


# Training is long: no soft limit; the hard limit stays under the broker's visibility timeout (48 h).
@registry.job("train", time_limit=47 * 3600)
def train(spec: TrainSpec, ctx: JobContext) -> dict:
    return run_train(spec, ctx, work_root=work_root(ctx.settings))


# Continued pre-training (belle_shared.pretraining): the same run machinery as `train`.
@registry.job("pretrain", time_limit=47 * 3600)
def pretrain(spec: PretrainSpec, ctx: JobContext) -> dict:
    return run_train(spec, ctx, work_root=work_root(ctx.settings))


# Converting a GGUF file or fetching the bundled model takes a minute on a CPU; a 70B one, an hour.
@registry.job("model_import", time_limit=6 * 3600)
def model_import(spec: ModelImportSpec, ctx: JobContext) -> dict:
    return run_model_import(spec, ctx, work_root=work_root(ctx.settings))


def main() -> None:
    run_worker(registry, queue="train", settings=TrainerSettings())


if __name__ == "__main__":
    main()
