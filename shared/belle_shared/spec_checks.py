"""Checks a spec must pass before its job is queued: references that exist and belong to the team,
and whatever else can be known before a worker runs it (a job that is sure to fail is refused now).

Each job type names its checks in its declaration (``belle_shared.job_types``); a check raises
``SpecRefused`` naming the offending field, which the gateway answers as a 400 (409 for a name
taken). In a pipeline, an id that an earlier step will produce is a stand-in (``is_pending_output``)
when the pipeline is submitted: the checks skip it, and whatever depends on it (the base model's
modules, say).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from belle_shared.artifacts import ArtifactStore
from belle_shared.errors import SpecRefused
from belle_shared.db.models import Dataset, File, Model, ModelKind, Team
from belle_shared.eval_sets import EvalSetError, iter_eval_rows
from belle_shared.formats import RowError, to_conversation
from belle_shared.preferences import to_preference
from belle_shared.models import find_model
from belle_shared.model_sources import ModelSourceError, import_name, inspect_gguf, is_gguf_file, resolve_import_path
from belle_shared.models import ModelExists, check_model_name, check_name_free, inspect_model_folder
from belle_shared.settings import Settings
from belle_shared.specs import (
    PROMPT_PLACEHOLDERS, DatagenSpec, EvalSpec, ImportSpec, JobSpec, ModelImportSpec, PreferencePairsSpec,
    QuantizeSpec, TrainSpec, is_pending_output,
)

# (session, team, spec, store, settings): raises SpecRefused, returns nothing.
SpecCheck = Callable[[Session, Team, JobSpec, ArtifactStore, Settings], None]


def require_team_file(session: Session, team: Team, file_id, param: str, *, purposes: tuple[str, ...] = ()) -> File:
    # FOR SHARE until the submission commits: a concurrent `DELETE /v1/files/{id}` (which locks the row
    # FOR UPDATE) then either sees the new job and refuses, or ran first and this finds no file.
    file = session.scalar(select(File).where(File.id == file_id, File.team_id == team.id).with_for_update(read=True))
    if file is None:
        raise SpecRefused(f"{param}: no file with id {file_id}", param=param, code="file_not_found")
    if purposes and file.purpose not in purposes:
        raise SpecRefused(f"{param}: file {file.filename!r} was uploaded with purpose {file.purpose!r}; "
                          f"this field takes a file uploaded with purpose {' or '.join(map(repr, purposes))}",
                          param=param, code="wrong_file_purpose")
    return file


def check_import(session: Session, team: Team, spec: ImportSpec, store: ArtifactStore, settings: Settings) -> None:
    require_team_file(session, team, spec.file_id, "file_id")


def check_datagen(session: Session, team: Team, spec: DatagenSpec, store: ArtifactStore, settings: Settings) -> None:
    if spec.seed_file_id is not None:
        require_team_file(session, team, spec.seed_file_id, "seed_file_id", purposes=("datagen",))
    if spec.topics_file_id is not None:
        if spec.mode != "dialogue":
            raise SpecRefused("topics_file_id: topics are used only with mode 'dialogue'",
                              param="topics_file_id", code="invalid_value")
        require_team_file(session, team, spec.topics_file_id, "topics_file_id", purposes=("prompt",))
    if spec.prompt_file_id is not None:
        prompt = require_team_file(session, team, spec.prompt_file_id, "prompt_file_id", purposes=("prompt",))
        with store.open(prompt.uri, "rb") as f:
            template = f.read().decode("utf-8")  # checked as UTF-8 text at upload
        missing = [p for p in PROMPT_PLACEHOLDERS[spec.mode] if p not in template]
        if missing:
            raise SpecRefused(f"prompt_file_id: the template {prompt.filename!r} lacks {', '.join(missing)}, "
                              f"which mode {spec.mode!r} fills in", param="prompt_file_id", code="invalid_prompt")


# Rows of a fine-tuning file converted before its job is queued: enough to catch a file in the wrong
# format at once, few enough that a large file costs nothing to check. Later bad rows are dropped
# (and counted) by the trainer.
TRAIN_FILE_CHECK_ROWS = 20


def require_team_dataset(session: Session, team: Team, dataset_id, param: str) -> Dataset:
    dataset = session.scalar(select(Dataset).where(Dataset.id == dataset_id, Dataset.team_id == team.id))
    if dataset is None:
        raise SpecRefused(f"{param}: no dataset with id {dataset_id}", param=param, code="dataset_not_found")
    return dataset


def check_fine_tune_rows(store: ArtifactStore, file: File, param: str, rows: int | None = TRAIN_FILE_CHECK_ROWS,
                         *, preferences: bool = False) -> None:
    """The file's first ``rows`` rows (None: all) must convert to conversations, or to preference pairs;
    the error names line and field."""
    convert, what = (to_preference, "a preference dataset") if preferences else (to_conversation, "a fine-tuning dataset")
    checked = 0
    with store.open(file.uri, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                convert(json.loads(raw))  # JSON objects, checked at upload
            except RowError as exc:
                where = f"line {number}" + (f", field {exc.field}" if exc.field else "")
                raise SpecRefused(f"{param}: file {file.filename!r} is not {what}: {where}: "
                                  f"{exc.message}", param=param, code="invalid_training_row") from None
            checked += 1
            if rows is not None and checked >= rows:
                return


def _check_dataset_kind(dataset: Dataset, spec: TrainSpec, param: str) -> None:
    """DPO trains on preference pairs, supervised fine-tuning on conversations: the other kind is refused."""
    pairs = dataset.format == "preferences"
    if spec.objective == "dpo" and not pairs:
        raise SpecRefused(f"{param}: dataset {dataset.name!r} holds conversations; objective 'dpo' trains on "
                          "preference pairs (import a preference file, or make pairs with a preference_pairs job)",
                          param=param, code="wrong_dataset_kind")
    if spec.objective == "sft" and pairs:
        raise SpecRefused(f"{param}: dataset {dataset.name!r} holds preference pairs; train on it with objective "
                          "'dpo'", param=param, code="wrong_dataset_kind")


def check_train(session: Session, team: Team, spec: TrainSpec, store: ArtifactStore, settings: Settings) -> None:
    for param in ("training_file_id", "validation_file_id"):
        file_id = getattr(spec, param)
        if file_id is not None:
            file = require_team_file(session, team, file_id, param, purposes=("fine-tune",))
            # A bad pair would fail the run (pairs are not dropped): every one is checked now.
            dpo = spec.objective == "dpo"
            check_fine_tune_rows(store, file, param, None if dpo else TRAIN_FILE_CHECK_ROWS, preferences=dpo)
    for param in ("dataset_id", "validation_dataset_id"):
        dataset_id = getattr(spec, param)
        if dataset_id is not None and not is_pending_output(dataset_id):
            _check_dataset_kind(require_team_dataset(session, team, dataset_id, param), spec, param)
    if is_pending_output(spec.base_model):
        return
    model = _trainable_base(session, team, spec)
    details = model.details or {}
    if spec.chat_template == "base" and details.get("chat_template") is False:
        raise SpecRefused(f"chat_template: {model.name!r} has no chat template of its own; use 'belle' (BELLE's "
                          "format, saved with the model) or 'auto'", param="chat_template", code="no_chat_template")
    known = details.get("module_names")
    if spec.method == "lora":
        targets = spec.lora.target_modules
        if targets is not None and not targets:
            raise SpecRefused("lora.target_modules: empty list; leave it unset for the architecture's defaults",
                              param="lora.target_modules", code="invalid_value")
        if targets and known:
            # peft matches a target against the last part of a module's dotted name.
            unknown = [t for t in targets if t.rsplit(".", 1)[-1] not in known]
            if unknown:
                raise SpecRefused(f"lora.target_modules: {model.name!r} ({details.get('model_type', 'this model')}) "
                                  f"has no module {', '.join(map(repr, unknown))}; its linear layers are "
                                  f"{', '.join(known)}", param="lora.target_modules", code="unknown_target_module")
        if not targets and "module_names" in details and not known:
            raise SpecRefused(f"lora.target_modules: no default LoRA targets for architecture "
                              f"{details.get('model_type')!r}; name the modules to adapt",
                              param="lora.target_modules", code="missing_target_modules")

    _check_max_length(model, spec)


def _trainable_base(session: Session, team: Team, spec) -> Model:
    """The registered model a train or pretrain spec starts from; SpecRefused if none or a quantized one."""
    model = find_model(session, team.id, spec.base_model)
    if model is None:
        raise SpecRefused(f"base_model: no model {spec.base_model!r} (GET /v1/models lists them)",
                          param="base_model", code="model_not_found")
    if model.kind == ModelKind.quantized:
        raise SpecRefused(f"base_model: {model.name!r} is a quantized model and cannot be trained; use the "
                          "model it was quantized from", param="base_model", code="model_not_trainable")
    return model


def _check_max_length(model: Model, spec) -> None:
    limit = (model.details or {}).get("max_position_embeddings")
    if isinstance(limit, int) and spec.hyperparameters.max_length > limit:
        given = "max_length" in spec.hyperparameters.model_fields_set
        what = f"{spec.hyperparameters.max_length}" if given else f"the default ({spec.hyperparameters.max_length})"
        raise SpecRefused(f"hyperparameters.max_length: {what} is longer than {model.name!r} can attend to "
                          f"({limit} positions); set it to at most {limit}", param="hyperparameters.max_length",
                          code="invalid_value")


def check_pretrain(session: Session, team: Team, spec, store: ArtifactStore, settings: Settings) -> None:
    """A `pretrain` spec (belle_shared.pretraining): its text files, and a base model it can train."""
    from belle_shared.pretraining import PRETRAIN_PURPOSE

    for param in ("training_file_id", "validation_file_id"):
        if getattr(spec, param) is not None:
            require_team_file(session, team, getattr(spec, param), param, purposes=(PRETRAIN_PURPOSE,))
    if is_pending_output(spec.base_model):
        return
    _check_max_length(_trainable_base(session, team, spec), spec)


def _inherited_detail(session: Session, model: Model, key: str, depth: int = 8):
    """A detail of the model or, when it lacks it (a fine-tuned model), of the model it came from."""
    while model is not None and depth:
        value = (model.details or {}).get(key)
        if value is not None:
            return value
        model = session.get(Model, model.parent_model_id) if model.parent_model_id else None
        depth -= 1
    return None


def check_quantize(session: Session, team: Team, spec: QuantizeSpec, store: ArtifactStore, settings: Settings) -> None:
    if is_pending_output(spec.model_id):
        if spec.dataset_id is not None and not is_pending_output(spec.dataset_id):
            require_team_dataset(session, team, spec.dataset_id, "dataset_id")
        return
    model = find_model(session, team.id, spec.model_id)
    if model is None:
        raise SpecRefused(f"model_id: no model {spec.model_id!r} (GET /v1/models lists them)",
                          param="model_id", code="model_not_found")
    details = model.details or {}
    if model.kind == ModelKind.quantized or details.get("quantization_method"):
        raise SpecRefused(f"model_id: {model.name!r} is already quantized "
                          f"({details.get('quantization_method') or 'gptq'}); quantize the model it was made from",
                          param="model_id", code="model_already_quantized")
    if is_pending_output(spec.dataset_id):
        dataset = None
    elif spec.dataset_id is not None:
        dataset = require_team_dataset(session, team, spec.dataset_id, "dataset_id")
    elif model.dataset_id is not None:
        dataset = session.get(Dataset, model.dataset_id)
    else:
        raise SpecRefused(f"dataset_id: {model.name!r} was not trained on a recorded dataset; give a dataset "
                          "for calibration", param="dataset_id", code="dataset_required")
    needed = spec.calibration_samples + spec.eval_samples
    if dataset is not None and dataset.rows < needed:
        raise SpecRefused(f"calibration_samples: dataset {dataset.name!r} has {dataset.rows} rows; this job needs "
                          f"{spec.calibration_samples} for calibration plus {spec.eval_samples} held out (eval_samples)",
                          param="calibration_samples", code="dataset_too_small")
    widths = _inherited_detail(session, model, "linear_in_features")
    if spec.group_size not in (None, -1) and widths:
        bad = [width for width in widths if width % spec.group_size]
        if bad:
            fits = max(2**k for k in range(16) if all(w % 2**k == 0 for w in widths))
            raise SpecRefused(f"group_size: {spec.group_size} does not divide the input width "
                              f"{', '.join(map(str, bad))} of {model.name!r}'s linear layers (widths: "
                              f"{', '.join(map(str, widths))}); the largest power of two that fits is {fits}, or use -1",
                              param="group_size", code="invalid_group_size")


def check_eval_file(store: ArtifactStore, file: File, param: str) -> Counter[str]:
    """Every row of an uploaded eval set must pass the row checks; returns its questions per class.

    Eval sets are small (hundreds to a few thousand questions), so all of it is read: a typo in a
    class name on the last line is a 400 now, not a failed job after the models have answered."""
    classes: Counter[str] = Counter()
    try:
        with store.open(file.uri, "rb") as f:
            for row in iter_eval_rows(f, source=param):
                classes[row.cls] += 1
    except EvalSetError as exc:
        raise SpecRefused(f"{param}: line {exc.line}: {exc.message}", param=param, code="invalid_eval_row") from None
    if not classes:
        raise SpecRefused(f"{param}: file {file.filename!r} has no questions", param=param, code="empty_eval_set")
    return classes


def check_eval(session: Session, team: Team, spec: EvalSpec, store: ArtifactStore, settings: Settings) -> None:
    seen: dict[str, int] = {}  # model id -> its first index: a name and an id of one model are one model
    for index, ref in enumerate(spec.model_ids):
        if is_pending_output(ref):
            continue
        param = f"model_ids[{index}]"
        model = find_model(session, team.id, ref)
        if model is None:
            raise SpecRefused(f"{param}: no model {ref!r} (GET /v1/models lists them)", param=param,
                              code="model_not_found")
        first = seen.setdefault(str(model.id), index)
        if first != index:
            raise SpecRefused(f"{param}: {ref!r} is model {model.name!r}, named already as model_ids[{first}]; "
                              "each model is evaluated once", param=param, code="duplicate_model")
    if spec.eval_file_id is not None:
        file = require_team_file(session, team, spec.eval_file_id, "eval_file_id", purposes=("eval",))
        classes = check_eval_file(store, file, "eval_file_id")
        # The class filter is canonical already (EvalSpec); a filter that keeps nothing is a mistake.
        if spec.classes and not any(cls in classes for cls in spec.classes):
            raise SpecRefused(f"classes: eval file {file.filename!r} has no questions of class "
                           f"{', '.join(map(repr, spec.classes))} (its classes: {', '.join(sorted(classes))})",
                           param="classes", code="no_questions")
    # A judge for modes judge and pairwise is EvalSpec's own rule (a 400 before these checks run).


def check_preference_pairs(session: Session, team: Team, spec: PreferencePairsSpec, store: ArtifactStore,
                           settings: Settings) -> None:
    if not is_pending_output(spec.model_id):
        model = find_model(session, team.id, spec.model_id)
        if model is None:
            raise SpecRefused(f"model_id: no model {spec.model_id!r} (GET /v1/models lists them)", param="model_id",
                              code="model_not_found")
    file = require_team_file(session, team, spec.prompt_file_id, "prompt_file_id", purposes=("eval",))
    check_eval_file(store, file, "prompt_file_id")
    if spec.judge is not None:
        return
    # Without a judge every prompt is scored by its reference answer: reference scoring needs one on every
    # row, auto needs a `metric` on every row (a row without one would go to the judge).
    with store.open(file.uri, "rb") as f:
        for row in iter_eval_rows(f, source="prompt_file_id"):
            if spec.max_prompts is not None and row.line > spec.max_prompts:
                break
            if not row.std_answer.strip() or (spec.scoring == "auto" and row.metric is None):
                need = "a reference answer (std_answer)" if spec.scoring == "reference" else 'a "metric"'
                raise SpecRefused(f"judge: line {row.line} of {file.filename!r} has no {need}, so it needs a judge "
                                  "to score its answers; give `judge` or a prompt set whose rows have one",
                                  param="judge", code="judge_required")


def check_model_import(session: Session, team: Team, spec: ModelImportSpec, store: ArtifactStore,
                       settings: Settings) -> None:
    source = None
    if spec.path is not None:
        local = store.local_path(store.uri(f"teams/{team.id}"))
        try:
            source = resolve_import_path(spec.path, roots=settings.resolved_model_roots,
                                         team_folder=Path(local) if local else None)
            if source.is_dir():
                inspect_model_folder(str(source))
            elif is_gguf_file(source):
                inspect_gguf(source)
            else:
                raise ModelSourceError(f"{source.name}: neither a GGUF file nor a Hugging Face model folder")
        except (ModelSourceError, ValueError) as exc:
            raise SpecRefused(f"path: {exc}", param="path", code="invalid_model") from None
    name = import_name(name=spec.name, bundled=spec.bundled, path=source)
    try:
        check_model_name(name)
        check_name_free(session, team_id=team.id, name=name)
    except ModelExists as exc:
        raise SpecRefused(f"name: {exc}" + ("" if spec.name else "; give another `name`"),
                          param="name", code="model_exists", status=409 if spec.name else 400) from None
    except ValueError as exc:
        raise SpecRefused(f"name: {exc}", param="name", code="invalid_name") from None
