"""How far a running job has got, read from its events, and the display that shows it.

`JobProgress` reads one job's events (`GET /v1/jobs/{id}/events`) into what a progress bar needs: what
is counted (`unit`), how many of how many, a detail (loss, speed, rows dropped) and the time left at
the speed so far. Each job type's events have their own shape; `READERS` maps a job type to the
function that reads them (a type without one gets the generic reader: `done` of `total` in a
progress event, else the latest message). What the workers emit:

    datagen       progress {accepted, target, dropped, rows_per_second, ...}          rows of target
    import        progress {lines, rows, dropped}                                     lines read
    train         status {total_steps} (start; budget: {max_seconds, seconds_per_step})
                  metrics {step, loss, tokens_per_second, ...}; metrics {eval_loss}   steps of total
    quantize      status {stage}; progress {done, total, stage: "gptq"}               layers quantized
    eval          status {questions, models}; progress {model, done, total}           answers per model
                  progress {done, total, cache_hits}                                  questions judged
    preference_pairs  as eval (one model; its answers are every sample of every prompt)  answers, judged
    model_import  status {stage}                                                      (stages only)

`ProgressDisplay` shows one bar per running job on a terminal (rich), and plain time-stamped lines,
at most one per job every few seconds, where the output is not a terminal (a log, CI, a test).
`belle jobs submit --follow`, `belle models import`, `belle pipeline run|retry` and `belle demo` all
show their jobs through it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn

# Event kinds whose message says what a job is doing now (shown while nothing is being counted).
MESSAGE_KINDS = ("status", "progress", "log", "message")


def duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _at(event: dict) -> float:
    return datetime.fromisoformat(event["created_at"]).timestamp()


@dataclass
class JobProgress:
    """One job's progress so far. `add` each event in order; `unit` is empty while nothing is
    counted (then `message` says what the job is doing)."""

    job_type: str | None = None
    unit: str = ""                     # what is counted: "rows", "steps", "layers", "answers", "judged"
    label: str = ""                    # which count, where a job counts several: a model's name, "GPTQ"
    completed: int | None = None
    total: int | None = None
    detail: str = ""                   # loss and speed, rows dropped...
    seconds_left: float | None = None
    message: str = ""                  # the latest status or progress message
    seconds_per_unit: float | None = None  # a speed known before any is measured (training's time budget)
    memo: dict[str, Any] = field(default_factory=dict)  # what a reader keeps between events
    _since: tuple[int, float] | None = field(default=None, repr=False)  # (count, time) the speed is measured from
    _last: float | None = field(default=None, repr=False)  # when the count last moved

    def add(self, event: dict) -> bool:
        """Read one event; True when it only moved a count (the bar shows it: no need to print it)."""
        data = event.get("data") or {}
        counted = READERS.get(self.job_type or "", read_generic)(self, event, data)
        if not counted and event.get("kind") in MESSAGE_KINDS:
            self.message = event["message"]
        return counted

    # ------------------------------------------------------------------ used by the readers

    def begin(self, unit: str, label: str = "", *, total: int | None = None) -> None:
        """Start counting something (a new phase resets the count, its total and its speed)."""
        if (unit, label) != (self.unit, self.label):
            self.unit, self.label, self.detail = unit, label, ""
            self.completed = self.total = self.seconds_left = self.seconds_per_unit = None
            self._since = self._last = None
        if total is not None:
            self.total = total
            self.seconds_left = self.estimate()

    def stop_counting(self) -> None:
        self.begin("")

    def count(self, completed: int, at: float, *, total: int | None = None) -> None:
        if total is not None:
            self.total = total
        if self._since is None or completed < self._since[0]:
            self._since = (completed, at)
        self.completed, self._last = completed, at
        self.seconds_left = self.estimate()

    def estimate(self) -> float | None:
        """Seconds left at the speed measured since the phase began (or the speed known before one is)."""
        if not self.total or self.completed is None:
            return None
        if self._since is None or self._last is None:
            done, seconds = 0, 0.0
        else:
            done, seconds = self.completed - self._since[0], self._last - self._since[1]
        if done > 0 and seconds > 0:
            return max(0.0, (self.total - self.completed) * seconds / done)
        if self.seconds_per_unit:
            return max(0.0, (self.total - self.completed) * self.seconds_per_unit)
        return None

    # --------------------------------------------------------------------------- showing it

    @property
    def counting(self) -> bool:
        return bool(self.unit)

    @property
    def fraction(self) -> float | None:
        """Share done, 0..1; None while nothing is counted or the total is unknown."""
        if not self.counting or not self.total:
            return None
        return min(1.0, (self.completed or 0) / self.total)

    @property
    def count_text(self) -> str:
        if not self.counting or (self.completed is None and not self.total):
            return ""
        done = f"{self.completed or 0:,}"
        if not self.total:
            return f"{done} {self.unit}"
        return f"{done}/{self.total:,} {self.unit} ({self.fraction:.0%})"

    @property
    def left_text(self) -> str:
        return f"~{duration(self.seconds_left)} left" if self.seconds_left is not None else ""

    @property
    def line(self) -> str:
        """All of it as one line of text: the plain display's line, the bar's text in a sentence."""
        if not self.counting:
            return self.message
        parts = [p for p in (self.count_text, self.detail, self.left_text) if p]
        return (f"{self.label}: " if self.label else "") + ", ".join(parts)


# ------------------------------------------------------------------------------------- readers
# One per job type: (progress, event, event data) -> whether the event was a count update.

Reader = Callable[[JobProgress, dict, dict], bool]


def read_generic(p: JobProgress, event: dict, data: dict) -> bool:
    """`done` of `total` in a progress event: the contract for a job type without its own reader."""
    if event.get("kind") == "progress" and isinstance(data.get("done"), int):
        p.begin(data.get("unit") or "done")
        p.count(data["done"], _at(event), total=data.get("total"))
        return True
    return False


def read_datagen(p: JobProgress, event: dict, data: dict) -> bool:
    if event.get("kind") == "status" and isinstance(data.get("rows"), int):  # resuming from a checkpoint
        p.begin("rows")
        p.count(data["rows"], _at(event))
        return False
    if event.get("kind") != "progress" or not isinstance(data.get("accepted"), int):
        return False
    p.begin("rows")
    p.count(data["accepted"], _at(event), total=data.get("target"))
    rate = data.get("rows_per_second")
    p.detail = ", ".join([f"{data.get('dropped', 0):,} dropped"] + ([f"{rate:.1f} rows/s"] if rate else []))
    return True


def read_import(p: JobProgress, event: dict, data: dict) -> bool:
    if event.get("kind") != "progress" or not isinstance(data.get("lines"), int):
        return False
    p.begin("lines read")
    p.count(data["lines"], _at(event))
    p.detail = f"{data.get('rows', 0):,} rows kept, {data.get('dropped', 0):,} dropped"
    return True


def read_train(p: JobProgress, event: dict, data: dict) -> bool:
    kind = event.get("kind")
    if isinstance(data.get("total_steps"), int):  # the start, and the time budget's fitted total
        p.begin("steps", total=data["total_steps"])
        if isinstance(data.get("seconds_per_step"), (int, float)):
            p.seconds_per_unit = data["seconds_per_step"]
        if isinstance(data.get("resumed_from_step"), int) and p.completed is None:
            p.completed = data["resumed_from_step"]
        p.seconds_left = p.estimate()
        return False
    if kind == "metrics" and "eval_loss" in data:
        p.memo["eval_loss"] = data["eval_loss"]
        return False  # a held-out loss is worth a line of its own
    if kind == "metrics" and isinstance(data.get("step"), int):
        p.begin("steps")
        p.count(data["step"], _at(event))
        parts = [f"loss {data['loss']:.3f}" if data.get("loss") is not None else "loss -"]
        if data.get("tokens_per_second"):
            parts.append(f"{data['tokens_per_second']:,.0f} tok/s")
        if p.memo.get("eval_loss") is not None:
            parts.append(f"eval loss {p.memo['eval_loss']:.3f}")
        p.detail = ", ".join(parts)
        return True
    return False


def read_quantize(p: JobProgress, event: dict, data: dict) -> bool:
    if event.get("kind") == "status" and data.get("stage"):
        # GPTQ counts layers; measuring and the round-to-nearest baseline have nothing to count.
        if data["stage"] == "gptq":
            p.begin("layers", "GPTQ")
        else:
            p.stop_counting()
        return False
    if event.get("kind") == "progress" and isinstance(data.get("done"), int):
        p.begin("layers", "GPTQ")
        p.count(data["done"], _at(event), total=data.get("total"))
        return True
    return False


def read_eval(p: JobProgress, event: dict, data: dict) -> bool:
    if event.get("kind") == "status" and isinstance(data.get("models"), list):
        p.memo["models"] = list(data["models"])
        return False
    if event.get("kind") != "progress" or not isinstance(data.get("done"), int):
        return False
    if data.get("model"):
        models = p.memo.get("models", [])
        which = f" ({models.index(data['model']) + 1}/{len(models)})" if data["model"] in models else ""
        p.begin("answers", f"{data['model']}{which}")
    else:
        p.begin("judged")
        if data.get("cache_hits"):
            p.detail = f"{data['cache_hits']:,} from the cache"
    p.count(data["done"], _at(event), total=data.get("total"))
    return True


READERS: dict[str, Reader] = {
    "datagen": read_datagen,
    "import": read_import,
    "train": read_train,
    "quantize": read_quantize,
    "eval": read_eval,
    "preference_pairs": read_eval,
    # model_import reports stages only: its bar pulses with the stage's message.
}


# ------------------------------------------------------------------------------------- display


class ProgressDisplay:
    """One progress bar per running job on a terminal (pulsing, with the job's latest message, while
    it counts nothing); elsewhere (a log, CI, a captured test) plain lines `HH:MM:SS name: line`, one
    when a job starts counting something new, then at most one every `every` seconds, and one when
    the count reaches its total. Lines printed through `print` (the events the caller shows) go above
    the bars."""

    def __init__(self, console: Console, *, every: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self.console = console
        self.every = every
        self.clock = clock
        self.live = console.is_interactive
        self._bars: Progress | None = None
        self._tasks: dict[str, tuple[TaskID, bool]] = {}        # key -> (rich task, counting)
        self._printed: dict[str, tuple[tuple, float, str]] = {}  # key -> (phase, when, line)

    def __enter__(self) -> ProgressDisplay:
        if self.live:
            self._bars = Progress(
                SpinnerColumn(), TextColumn("[bold]{task.fields[name]}[/bold] {task.fields[label]}"),
                BarColumn(bar_width=30), TextColumn("{task.fields[text]}"), console=self.console, transient=True)
            self._bars.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bars is not None:
            self._bars.stop()

    def print(self, text: str, **kwargs: Any) -> None:
        self.console.print(text, highlight=False, **kwargs)

    def update(self, key: str, name: str, progress: JobProgress) -> None:
        """Show `progress` as job `key`'s bar (named `name`: a pipeline step, a job type)."""
        if self._bars is None:
            self._plain(key, name, progress)
            return
        text = ", ".join(p for p in (progress.count_text, progress.detail, progress.left_text) if p) \
            if progress.counting else progress.message[:100]
        fields = {"name": escape(name), "label": escape(progress.label), "text": escape(text)}
        task = self._tasks.get(key)
        if task is not None and task[1] != progress.counting:
            self._bars.remove_task(task[0])  # a bar does not turn back into a pulsing one: make a new one
            task = None
        if task is None:
            task = (self._bars.add_task("", total=progress.total if progress.counting else None, **fields),
                    progress.counting)
            self._tasks[key] = task
        if progress.counting:
            self._bars.update(task[0], total=progress.total or None, completed=progress.completed or 0, **fields)
        else:
            self._bars.update(task[0], **fields)

    def remove(self, key: str) -> None:
        """The job ended: its bar goes."""
        task = self._tasks.pop(key, None)
        if task is not None and self._bars is not None:
            self._bars.remove_task(task[0])
        self._printed.pop(key, None)

    def _plain(self, key: str, name: str, progress: JobProgress) -> None:
        if not progress.counting or progress.completed is None:
            return  # the caller prints the events that say what the job does
        line = progress.line
        phase = (progress.unit, progress.label)
        now = self.clock()
        last = self._printed.get(key)
        if last is not None and last[0] == phase:
            finished = progress.total is not None and progress.completed >= progress.total
            if last[2] == line or (now - last[1] < self.every and not finished):
                return
        self._printed[key] = (phase, now, line)
        self.print(f"{time.strftime('%H:%M:%S')} {escape(name)}: {escape(line)}")
