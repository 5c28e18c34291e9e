"""The training entry point: one fine-tuning run (full or LoRA, DeepSpeed ZeRO 0-3) described by a
run folder's `run.json`, reporting to `RUN/progress.jsonl`.

    torchrun --nproc_per_node N --master_addr 127.0.0.1 --master_port P \\
        -m belle_trainer.train --config RUN/run.json
    python -m belle_trainer.train --config RUN/run.json          # one process, no launcher needed

On a machine without a GPU the N processes train on the CPU and talk over gloo. Outputs (rank 0):
`progress.jsonl` (see belle_trainer.progress), `checkpoints/checkpoint-<step>/` (the newest two,
resumed from when run.json says `"resume": true`), `final/` (a plain model folder with the tokenizer,
LoRA merged in, ZeRO-3 shards gathered, and `belle_training.json`) and, for LoRA, `adapter/`.
The spec's objective is supervised fine-tuning (`sft`), DPO (`dpo`, belle_trainer.dpo: the data, no
packing, trl's DPOTrainer) or continued pre-training (a `pretrain` job: plain-text documents, every token
trained, the base's chat template kept); the rest of a run is the same.
Everything else goes to stderr, stdout included: the worker follows the progress file.
Exit status 0 after a `done` event, 1 after an `error` event.

Over 400 lines on purpose: `run()` is one run from data to saved model, in order, with the places
where SFT, DPO and continued pre-training differ marked; split up, the order of its steps (arguments
before the model under ZeRO-3, the merge after the shards are gathered) would be harder to see.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import logging
import os
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Any

from belle_shared.worker_watch import exit_with_worker
from belle_trainer.errors import BadOptionError, RunError
from belle_trainer.progress import PROGRESS_FILE, ProgressWriter

log = logging.getLogger("belle_trainer.train")

FINAL_DIR = "final"
ADAPTER_DIR = "adapter"
TRAINING_FILE = "belle_training.json"
# Checkpoints: every epoch (ProgressEvents) and every quarter of the run (a ratio, which the
# Trainer turns into ceil(total_steps / 4) steps); the newest two are kept.
SAVE_EVERY = 0.25
KEEP_CHECKPOINTS = 2
# Log lines: a ratio of the total steps, so that runs of up to 50 steps log every step and longer
# ones about 50 times.
LOG_EVERY = 0.02


def _stdout_to_stderr() -> None:
    """Send everything written to stdout (print() in the Trainer's PrinterCallback, DeepSpeed's
    logger, C++ op builds) to stderr, at the file-descriptor level so child compilers follow."""
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), 1)
    sys.stdout = sys.stderr


def _die_with_launcher() -> None:
    """Under torchrun, be killed when the launcher dies. torchrun starts each worker in a session
    of its own (start_new_session=True), so the SIGKILL a worker sends to torchrun's process group on
    cancel never reaches the training processes: they would train on as orphans, and a resumed run
    would then share the run folder with them. Linux only (prctl PR_SET_PDEATHSIG)."""
    if "TORCHELASTIC_RUN_ID" not in os.environ or not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_PDEATHSIG = 1
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        log.warning("cannot ask to die with the launcher (errno %d)", ctypes.get_errno())
    elif os.getppid() != parent or parent == 1:  # the launcher died before the prctl
        os._exit(1)


def _single_process_env() -> None:
    """Without a launcher, make this process rank 0 of 1 (DeepSpeed needs the distributed env)."""
    if "RANK" in os.environ or "LOCAL_RANK" in os.environ:
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": "0", "LOCAL_RANK": "0",
                       "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1"})


def _skip_cpu_shm_comm() -> None:
    """On a CPU-only machine, let DeepSpeed all-reduce over plain gloo instead of JIT-compiling its
    shared-memory op with g++ at the first start (measured: ~60 s on 2 cores, on every fresh
    machine or container). That op speeds up all-reduces of large tensors between CPU processes;
    CPU training here is for tiny models, where the compile costs more than a whole run. GPU runs
    use NCCL and are unaffected. DeepSpeed has no option for this: `TorchBackend` calls the module's
    `build_shm_op()`, which is replaced (a no-op if a DeepSpeed release renames it)."""
    import importlib

    # Not `import deepspeed.comm.torch as ...`: the package's `torch` attribute is torch itself.
    ds_torch_comm = importlib.import_module("deepspeed.comm.torch")
    if hasattr(ds_torch_comm, "build_shm_op"):
        ds_torch_comm.build_shm_op = lambda: None


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameters; under ZeRO-3 a parameter's local tensor is empty and its real
    size is `ds_numel`."""
    trainable = total = 0
    for parameter in model.parameters():
        n = getattr(parameter, "ds_numel", None) or parameter.numel()
        total += n
        if parameter.requires_grad:
            trainable += n
    return trainable, total


def _prepare_checkpoints(root: Path, *, resume: bool, is_main: bool) -> Path | None:
    """The checkpoint to resume from (newest complete one), or None. Rank 0 deletes folders cut
    short by a kill, or every checkpoint when the run starts over."""
    from belle_trainer.checkpoints import newest_complete, remove_incomplete

    if not resume:
        if is_main and root.exists():
            shutil.rmtree(root)
        return None
    newest = newest_complete(root)
    if is_main:
        for path in remove_incomplete(root):
            log.warning("removed incomplete checkpoint %s", path)
    return newest


def training_arguments(config, *, checkpoint_root: Path, on_gpu: bool, bf16: bool, evaluate: bool):
    """The HF TrainingArguments of a run: the spec's hyper-parameters, the DeepSpeed config, the
    logging, evaluation and checkpoint schedule of the progress contract. For DPO trl's DPOConfig,
    a TrainingArguments with the same values and DPO's options."""
    from belle_trainer.ds_config import build_ds_config

    spec, hp = config.spec, config.spec.hyperparameters

    arguments = dict(
        output_dir=str(checkpoint_root),
        deepspeed=build_ds_config(spec.zero_stage, spec.offload, on_gpu=on_gpu),
        use_cpu=not on_gpu,  # with DeepSpeed and 2+ CPU processes the Trainer needs it said
        bf16=bf16,
        per_device_train_batch_size=hp.batch_size,
        per_device_eval_batch_size=hp.batch_size,
        gradient_accumulation_steps=hp.gradient_accumulation_steps,
        num_train_epochs=hp.epochs,
        learning_rate=config.learning_rate,
        lr_scheduler_type=hp.lr_scheduler,
        warmup_steps=hp.warmup_ratio,  # below 1: a share of the total steps
        weight_decay=hp.weight_decay,
        seed=hp.seed,
        data_seed=hp.seed,
        logging_strategy="steps",
        logging_steps=LOG_EVERY,
        eval_strategy="epoch" if evaluate else "no",  # and once more at the end (run)
        save_strategy="steps",
        save_steps=SAVE_EVERY,  # and at the end of every epoch (ProgressEvents)
        save_total_limit=KEEP_CHECKPOINTS,
        label_names=["labels"],  # peft models hide the signature the Trainer reads this from
        remove_unused_columns=False,
        include_num_input_tokens_seen="no",  # the trainers count non-pad tokens themselves (TokenCounting)
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    if spec.objective == "dpo":
        from belle_trainer.dpo import dpo_arguments

        return dpo_arguments(config, **arguments)
    from transformers import TrainingArguments

    return TrainingArguments(**arguments)


def run(config, writer: ProgressWriter, *, rank: int, world_size: int) -> dict[str, Any]:
    """Train as `config` says; returns the done event."""
    import deepspeed
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    from belle_trainer.checkpoints import CHECKPOINTS_DIR
    from belle_trainer.hf_trainer import BelleTrainer, ProgressEvents, barrier, train_loss_from_history
    from belle_trainer.lora import apply_lora, merge_adapter
    from belle_trainer.packing import PackingUnsupported, enable_packing, pack
    from belle_trainer.train_data import Collator, ListDataset, load_run_data, load_text_data, pad_token_id

    spec, hp = config.spec, config.spec.hyperparameters
    dpo = spec.objective == "dpo"
    pretrain = spec.objective == "pretrain"
    is_main = rank == 0
    run_dir = config.output_dir
    set_seed(hp.seed)
    if spec.num_processes != world_size:
        log.warning("the spec asks for %d processes, this run has %d", spec.num_processes, world_size)

    # Data first: a file with nothing to train on fails in seconds, before any model is loaded.
    tokenizer = AutoTokenizer.from_pretrained(config.base_model_path)
    if pretrain:  # plain text: the base's chat template (if any) travels with the model untouched
        template, end_of_turn = "unchanged", tokenizer.eos_token
        data = load_text_data(tokenizer, config.train_file, config.validation_file, max_length=hp.max_length,
                              validation_split=spec.validation_split, seed=hp.seed)
    else:
        template, end_of_turn = _chat_template(tokenizer, spec.chat_template)
        log.info("training in the %s chat template; replies end with %r", template, end_of_turn)
        if dpo:
            from belle_trainer.dpo import load_pairs

            data = load_pairs(tokenizer, config.train_file, config.validation_file, max_length=hp.max_length,
                              validation_split=spec.validation_split, seed=hp.seed)
        else:
            data = load_run_data(tokenizer, config.train_file, config.validation_file, max_length=hp.max_length,
                                 validation_split=spec.validation_split, seed=hp.seed, end_of_turn=end_of_turn)

    on_gpu = torch.cuda.is_available()
    bf16 = hp.precision == "bf16" or (hp.precision == "auto" and on_gpu and torch.cuda.is_bf16_supported())
    if not on_gpu:
        _skip_cpu_shm_comm()
    checkpoint_root = run_dir / CHECKPOINTS_DIR
    resume_from = _prepare_checkpoints(checkpoint_root, resume=config.resume, is_main=is_main)

    # TrainingArguments before the model: under ZeRO-3 from_pretrained then loads each weight
    # straight into its shard (zero.Init) instead of whole into every process.
    args = training_arguments(config, checkpoint_root=checkpoint_root, on_gpu=on_gpu, bf16=bf16,
                              evaluate=bool(data.validation))
    # On CPU the Trainer's accelerate state starts torch.distributed (gloo) without DeepSpeed's
    # comm layer, which then counts one process: ZeRO-3's zero.Init would reject the batch size
    # (8 != 2 * 2 * 1). Wrapping the existing process group in DeepSpeed's comm first avoids that.
    args.device  # noqa: B018 - sets up the process group
    deepspeed.init_distributed()
    model = AutoModelForCausalLM.from_pretrained(config.base_model_path, dtype=torch.float32)
    model.config.use_cache = False  # no KV cache in training

    packing = spec.packing and not dpo  # DPO batches a pair's two replies side by side, unpacked
    if packing:
        try:
            enable_packing(model)
        except PackingUnsupported as exc:
            log.warning("training without packing: %s", exc)
            packing = False
    train_items = pack(data.train, hp.max_length) if packing else data.train
    log.info("%d training samples in %d sequences, %d validation samples, %d rows dropped",
             len(data.train), len(train_items), len(data.validation), data.dropped)

    if spec.method == "lora":
        # A grown vocabulary: the new tokens' rows of the embeddings (and output layer) train too.
        new_tokens = range(config.new_tokens_from, len(tokenizer)) if config.new_tokens_from is not None else None
        model = apply_lora(model, r=spec.lora.r, alpha=spec.lora.alpha, dropout=spec.lora.dropout,
                           targets=spec.lora.target_modules, trainable_tokens=new_tokens)
    trainable, total = count_parameters(model)

    events = ProgressEvents(writer, run_dir=run_dir, resumed=resume_from is not None, start_fields={
        "num_train_samples": len(data.train), "num_eval_samples": len(data.validation), "world_size": world_size,
        "trainable_parameters": trainable, "total_parameters": total, "dropped_samples": data.dropped})
    callbacks = [events]
    if hp.max_seconds is not None:
        from belle_trainer.time_budget import TimeBudget

        def fitted(steps: int, per_step: float) -> None:
            writer.write("budget", total_steps=steps, planned_steps=events.total_steps, seconds_per_step=per_step,
                         max_seconds=hp.max_seconds)

        callbacks.append(TimeBudget(hp.max_seconds, scheduler_name=hp.lr_scheduler, warmup_ratio=hp.warmup_ratio,
                                    on_fit=fitted))
    if dpo:
        from belle_trainer.dpo import DATA_DIR, dpo_trainer

        trainer = dpo_trainer(model, args, data, tokenizer, callbacks=callbacks, data_dir=run_dir / DATA_DIR,
                              is_main=is_main)
    else:
        trainer = BelleTrainer(
            model=model,
            args=args,
            train_dataset=ListDataset(train_items),
            eval_dataset=ListDataset(data.validation) if data.validation else None,
            data_collator=Collator(pad_token_id(tokenizer), mask_dtype=torch.bfloat16 if bf16 else torch.float32),
            processing_class=tokenizer,
            callbacks=callbacks,
        )

    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    trainer.sync_tokens()  # the tokens after the last log line
    step = trainer.state.global_step
    if data.validation and (events.last_eval is None or events.last_eval[0] != step):
        trainer.evaluate()
    train_seconds = time.perf_counter() - started

    final_dir, adapter_dir = run_dir / FINAL_DIR, run_dir / ADAPTER_DIR
    if is_main:  # a finished run started again (resume) saves over its old outputs
        shutil.rmtree(final_dir, ignore_errors=True)
        shutil.rmtree(adapter_dir, ignore_errors=True)
    barrier()
    if spec.method == "lora":
        trainer.save_model(str(adapter_dir))  # every process: ZeRO-3 gathers the adapter's shards
        barrier()
        if is_main:
            unset_hf_deepspeed_config()  # the merge loads the base model whole, not into shards
            merge_adapter(config.base_model_path, adapter_dir, final_dir)
    else:
        trainer.save_model(str(final_dir))  # every process: ZeRO-3 gathers the shards
    train_seconds_total = time.perf_counter() - started

    eval_loss = events.last_eval[1] if events.last_eval else None
    train_loss = train_loss_from_history(trainer.state.log_history)
    done = {"step": step, "train_loss": train_loss, "eval_loss": eval_loss, "model_path": FINAL_DIR,
            "adapter_path": ADAPTER_DIR if spec.method == "lora" else None,
            "train_seconds": round(train_seconds, 3), "trained_tokens": int(trainer.state.num_input_tokens_seen),
            "objective": spec.objective}
    if dpo:
        from belle_trainer.dpo import reward_metrics

        done.update(reward_metrics(trainer.state.log_history))
    if is_main:
        # The template the model was trained in travels with it: chat and the evaluator render with it.
        tokenizer.save_pretrained(final_dir)
        _stop_on_end_of_turn(final_dir, tokenizer.convert_tokens_to_ids(end_of_turn))
        # The Trainer's pickled arguments: not part of a model folder (and a pickle to load).
        (final_dir / "training_args.bin").unlink(missing_ok=True)
        _write_training_record(final_dir / TRAINING_FILE, config, done, world_size=world_size, packing=packing,
                               precision="bf16" if bf16 else "fp32", save_seconds=train_seconds_total - train_seconds,
                               chat_template=template, end_of_turn=end_of_turn)
    return writer.write("done", **done)


def _chat_template(tokenizer: Any, choice: str) -> tuple[str, str]:
    """Set the run's chat template on the tokenizer (see belle_shared.chat_template.choose_template);
    returns its name and the end-of-turn token replies are trained to end with."""
    from belle_shared.chat_template import TemplateError, choose_template, end_of_turn_token

    try:
        return choose_template(tokenizer, choice), end_of_turn_token(tokenizer)
    except TemplateError as exc:
        raise BadOptionError(f"chat_template: {exc}") from exc


def _stop_on_end_of_turn(model_dir: Path, end_of_turn_id: int) -> None:
    """Make the saved generation config stop on the end-of-turn token the replies were trained to end
    with (chat models often end a turn with a token other than their EOS)."""
    from transformers import GenerationConfig

    try:
        generation = GenerationConfig.from_pretrained(model_dir)
    except OSError:  # no generation_config.json saved
        return
    current = generation.eos_token_id
    ids = list(current) if isinstance(current, (list, tuple)) else ([current] if current is not None else [])
    if end_of_turn_id not in ids:
        generation.eos_token_id = [end_of_turn_id, *ids] if ids else end_of_turn_id
        generation.save_pretrained(model_dir)


def _write_training_record(path: Path, config, done: dict[str, Any], **extra: Any) -> None:
    """`final/belle_training.json`: what was trained from what, how, and how it ended."""
    import torch
    import transformers

    from belle_trainer.progress import OPTIONAL_FIELDS

    metrics = ("step", "train_loss", "eval_loss", "train_seconds", "trained_tokens", *OPTIONAL_FIELDS["done"])
    record = {
        "spec": config.spec.model_dump(mode="json"),
        "objective": config.spec.objective,
        "base_model_path": str(config.base_model_path),
        "learning_rate": config.learning_rate,
        "metrics": {key: done[key] for key in metrics if key in done},
        **extra,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
    }
    if config.spec.objective == "dpo":
        import trl

        record["versions"]["trl"] = trl.__version__
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _shutdown_distributed() -> None:
    """Leave together and close the process group before the interpreter exits. Without it a
    process that finishes first (while rank 0 still writes the final model) sometimes aborts in
    the C++ teardown ("terminate called without an active exception", SIGABRT; seen 1 in 4
    ZeRO-3 offload runs on CPU), and torchrun then fails the whole run after its `done` event."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _error_message(exc: BaseException) -> str:
    if isinstance(exc, RunError):
        return str(exc)
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return f"out of memory: {exc}".strip().rstrip(":")
    return f"{type(exc).__name__}: {exc}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m belle_trainer.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, type=Path, help="the run folder's run.json")
    options = parser.parse_args(argv)

    _die_with_launcher()
    exit_with_worker()
    faulthandler.enable()  # a crash in C++ (SIGSEGV, SIGABRT) prints the Python stack to the run's stderr
    from belle_trainer.run_lock import hold_run_lock

    _run_lock = hold_run_lock(options.config.parent)  # noqa: F841  held until this process ends
    _stdout_to_stderr()
    _single_process_env()
    rank, world_size = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    logging.basicConfig(stream=sys.stderr, level=logging.INFO if rank == 0 else logging.WARNING,
                        format=f"%(asctime)s [rank {rank}] %(levelname)s %(name)s: %(message)s")
    # Until run.json is read, its folder is the run folder (the worker writes it there).
    writer = ProgressWriter(options.config.parent / PROGRESS_FILE, enabled=rank == 0)
    try:
        from belle_trainer.run_config import load_run_config

        config = load_run_config(options.config)
        writer = ProgressWriter(config.output_dir / PROGRESS_FILE, enabled=rank == 0)
        config.output_dir.mkdir(parents=True, exist_ok=True)
        run(config, writer, rank=rank, world_size=world_size)
        _shutdown_distributed()
        return 0
    except Exception as exc:  # every failure is reported; the traceback goes to stderr
        log.exception("training failed")
        writer.write("error", message=_error_message(exc))
        return 1


def _exit_now(code: int) -> None:
    """Leave without the interpreter's teardown once everything is written and flushed. A rank that
    finishes first still aborted now and then while C++ objects were destroyed at exit ("terminate called
    without an active exception", SIGABRT, after the barrier and destroy_process_group below; seen 1 in ~20
    two-process LoRA ZeRO-3 runs on CPU with another job beside it), and torchrun then failed the whole
    run after its `done` event. Nothing is left to clean up at that point: progress lines are flushed as
    they are written, the model is saved and the process group is closed."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    _exit_now(main())
