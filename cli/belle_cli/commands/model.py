"""`belle model ...`: local model folders, built on this machine (needs the trainer installed)."""

from __future__ import annotations

from pathlib import Path

import typer

from belle_cli.commands.common import console, fail, out

app = typer.Typer(help="Local model folders (needs the trainer installed).", no_args_is_help=True)


@app.command("init")
def model_init(out_dir: Path = typer.Option(..., "--out", help="Folder to write (new or empty)."),
               arch: str = typer.Option("llama", "--arch", help="llama or bloom."),
               hidden_size: int = typer.Option(128, "--hidden-size"),
               num_layers: int = typer.Option(2, "--num-layers"),
               num_heads: int = typer.Option(4, "--num-heads"),
               vocab_size: int = typer.Option(4096, "--vocab-size", help="Tokenizer vocabulary (byte-level BPE)."),
               max_position: int = typer.Option(2048, "--max-position", help="Longest sequence (LLaMA)."),
               seed: int = typer.Option(0, "--seed", help="Same seed, same weights."),
               force: bool = typer.Option(False, "--force", help="Write into a folder that is not empty.")):
    """Build a tiny random-init LLaMA or BLOOM with a BELLE chat tokenizer, without downloads."""
    import importlib.util

    if importlib.util.find_spec("belle_trainer") is None:
        fail("`belle model init` needs the trainer: pip install -c constraints.txt -e services/trainer")
    try:
        from belle_trainer.tiny import init_tiny_model

        with console.status(f"building a tiny {arch} model"):
            path = init_tiny_model(out_dir, arch=arch, hidden_size=hidden_size, num_layers=num_layers,
                                   num_heads=num_heads, vocab_size=vocab_size, seed=seed,
                                   max_position=max_position, overwrite=force)
    except ImportError as exc:
        fail(f"the trainer's dependencies are missing ({exc}): pip install -c constraints.txt -e services/trainer")
    except (ValueError, FileExistsError) as exc:
        fail(str(exc))
    out.print(str(path), soft_wrap=True)  # a path is one line at any terminal width
