"""The CLI's progress bars: each job type's events (made by the workers' own code where it is cheap to
run, shaped as `GET /v1/jobs/{id}/events` serves them) -> what the bar shows; the display on a
terminal and in a log; following a job and a pipeline against a stand-in gateway."""

from __future__ import annotations

import io
import re
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from rich.console import Console

from belle_cli.progress import JobProgress, ProgressDisplay

T0 = datetime(2026, 12, 4, 10, 0, tzinfo=timezone.utc)


class RecordingContext:
    """A job context that keeps the events a worker adds, as the gateway serves them; `clock` is the
    seconds since T0 the next event is stamped with."""

    def __init__(self):
        self.events: list[dict] = []
        self.clock = 0.0

    def event(self, message: str, *, kind: str = "log", level: str = "info", **data) -> None:
        self.events.append({"id": len(self.events) + 1, "object": "job.event", "level": level, "kind": kind,
                            "message": message, "data": data or None,
                            "created_at": (T0 + timedelta(seconds=self.clock)).isoformat()})

    def progress(self, message: str, **metrics) -> None:
        self.event(message, kind="progress", **metrics)

    def check_cancelled(self) -> None:
        pass


def _read(job_type: str, events: list[dict]) -> tuple[JobProgress, list[bool]]:
    progress = JobProgress(job_type)
    return progress, [progress.add(e) for e in events]


def test_a_dataset_being_generated_counts_rows_of_the_target():
    from belle_datagen.generator import _report

    ctx = RecordingContext()
    gen = SimpleNamespace(spec=SimpleNamespace(target_count=600),
                          progress=SimpleNamespace(accepted=150, replies=40, dropped={"too_short": 5, "dup": 7},
                                                   total_tokens=9000, cost_usd=0.0))
    ctx.event("generating 600 rows with belle-teacher at http://127.0.0.1:8100/v1, 8 requests in flight",
              kind="status")
    ctx.clock = 10
    _report(gen, ctx, inflight=8, rate=15.0)
    gen.progress.accepted = 300
    ctx.clock = 20
    _report(gen, ctx, inflight=8, rate=15.0)

    progress, counted = _read("datagen", ctx.events)
    assert counted == [False, True, True]
    assert (progress.unit, progress.completed, progress.total, progress.fraction) == ("rows", 300, 600, 0.5)
    assert progress.detail == "12 dropped, 15.0 rows/s"
    assert progress.seconds_left == pytest.approx(20.0)  # 150 rows in 10 s, 300 to go
    assert progress.line == "300/600 rows (50%), 12 dropped, 15.0 rows/s, ~20s left"


def test_training_shows_step_of_the_fitted_total_loss_speed_and_time_left(monkeypatch):
    import belle_trainer.job as train_job

    monkeypatch.setattr(train_job, "STEP_EVENT_EVERY_SECONDS", 0.0)
    ctx = RecordingContext()
    follower = train_job._ProgressFollower(ctx, run_dir=None, spec=None)
    follower.handle({"event": "start", "total_steps": 120, "num_train_samples": 960, "num_eval_samples": 40,
                     "world_size": 1, "resumed_from_step": None, "trainable_parameters": 10, "total_parameters": 10,
                     "dropped_samples": 0})
    progress, _ = _read("train", ctx.events)
    assert (progress.unit, progress.total, progress.completed, progress.fraction) == ("steps", 120, None, 0.0)
    assert progress.line == "0/120 steps (0%)"

    def step(at: float, number: int, loss: float, speed: float) -> None:
        ctx.clock = at
        follower.handle({"event": "step", "step": number, "epoch": 0.1, "loss": loss, "learning_rate": 1e-3,
                         "tokens_per_second": speed, "trained_tokens": 1000 * number})

    step(10, 10, 2.5, 900.0)
    ctx.clock = 11  # the time budget fits the schedule to the speed measured so far
    follower.handle({"event": "budget", "total_steps": 50, "planned_steps": 120, "seconds_per_step": 0.8,
                     "max_seconds": 40.0})
    progress, counted = _read("train", ctx.events)
    assert counted == [False, True, False]
    # One step seen: the time left is the budget's speed, 40 steps at 0.8 s.
    assert (progress.total, progress.seconds_left) == (50, pytest.approx(32.0))

    step(20, 20, 1.25, 1000.0)
    ctx.clock = 21
    follower.handle({"event": "eval", "step": 20, "eval_loss": 1.5})
    progress, counted = _read("train", ctx.events)
    assert counted[-2:] == [True, False]  # the held-out loss is printed as a line of its own
    assert progress.fraction == pytest.approx(0.4)
    # 10 steps in 10 s measured, 30 to go.
    assert progress.line == "20/50 steps (40%), loss 1.250, 1,000 tok/s, ~30s left"
    # A diverged loss is null in the event (the trainer's follower cannot format it today: made by hand).
    ctx.clock = 30
    ctx.event("step 30: loss nan", kind="metrics", step=30, epoch=0.2, loss=None, learning_rate=1e-3,
              tokens_per_second=None, trained_tokens=30000)
    assert _read("train", ctx.events)[0].line == "30/50 steps (60%), loss -, eval loss 1.500, ~20s left"


def test_quantization_counts_layers_during_gptq_only(monkeypatch):
    import belle_quantizer.job as quantize_job

    monkeypatch.setattr(quantize_job, "LAYER_EVENT_EVERY_SECONDS", 0.0)
    ctx = RecordingContext()
    follower = quantize_job._Follower(ctx)
    follower.handle({"event": "start", "calibration_samples": 128, "eval_samples": 32, "device": "cpu",
                     "dtype": "float32", "quantized_modules": 28, "group_size": 128, "group_size_from": "auto"})
    follower.handle({"event": "stage", "stage": "measure_source", "message": "measuring the source model"})
    progress, _ = _read("quantize", ctx.events)
    assert not progress.counting and progress.fraction is None and progress.line == "measuring the source model"

    ctx.clock = 5
    follower.handle({"event": "stage", "stage": "gptq", "message": "GPTQ 4-bit, group size 128, 128 calibration "
                     "samples on cpu"})
    for done, at in ((1, 8), (2, 11)):
        ctx.clock = at
        follower.handle({"event": "layer", "done": done, "total": 4})
    progress, counted = _read("quantize", ctx.events)
    assert counted == [False, False, False, True, True]
    assert (progress.label, progress.unit, progress.completed, progress.total) == ("GPTQ", "layers", 2, 4)
    assert progress.line == "GPTQ: 2/4 layers (50%), ~6s left"

    follower.handle({"event": "stage", "stage": "measure_gptq", "message": "reloading the quantized folder in a "
                     "fresh process"})
    progress, _ = _read("quantize", ctx.events)
    assert not progress.counting and progress.line == "reloading the quantized folder in a fresh process"


def test_an_eval_counts_each_models_answers_then_the_questions_judged():
    from belle_evaluator.grading import judge_in_chunks
    from belle_evaluator.job import _AnswerFollower

    ctx = RecordingContext()
    ctx.event("evaluating demo-base, ft:demo on 60 questions of held_out.jsonl (mode judge)", kind="status",
              questions=60, mode="judge", models=["demo-base", "ft:demo"])
    for name in ("demo-base", "ft:demo"):
        follower = _AnswerFollower(ctx, name)
        follower.handle({"event": "start", "total": 60, "model_type": "llama", "device": "cpu"})
        for done in (20, 40):
            ctx.clock += 10
            follower.handle({"event": "progress", "done": done, "total": 60})
    progress, counted = _read("eval", ctx.events)
    assert counted == [False] + [False, True, True] * 2
    assert (progress.label, progress.unit, progress.completed, progress.total) == ("ft:demo (2/2)", "answers", 40, 60)
    assert progress.line == "ft:demo (2/2): 40/60 answers (67%), ~10s left"

    async def ask(prompts):
        judge.totals.sent += len(prompts)
        return [0.5] * len(prompts)

    judge = SimpleNamespace(totals=SimpleNamespace(cache_hits=30, sent=0))
    ctx.clock += 5
    judge_in_chunks(ask, ["a prompt"] * 120, ctx, judge)
    progress = _read("eval", ctx.events)[0]
    assert (progress.label, progress.unit, progress.completed, progress.total) == ("", "judged", 120, 120)
    assert progress.line == "120/120 judged (100%), 30 from the cache"


def test_preference_pairs_count_the_answers_sampled_then_the_answers_judged():
    from belle_evaluator.grading import judge_in_chunks
    from belle_evaluator.job import _AnswerFollower

    ctx = RecordingContext()
    ctx.event("sampling 4 answers from ft:demo to each of 30 prompts of prompts.jsonl (scoring judge)",
              kind="status", questions=30, prompts=30, samples_per_prompt=4, models=["ft:demo"], scoring="judge")
    follower = _AnswerFollower(ctx, "ft:demo")
    follower.handle({"event": "start", "total": 120, "model_type": "llama", "device": "cpu"})
    ctx.clock += 10
    follower.handle({"event": "progress", "done": 60, "total": 120})
    progress, counted = _read("preference_pairs", ctx.events)
    assert counted == [False, False, True]
    assert progress.line == "ft:demo (1/1): 60/120 answers (50%)"

    async def ask(prompts):
        return [1.0] * len(prompts)

    judge = SimpleNamespace(totals=SimpleNamespace(cache_hits=0, sent=0))
    judge_in_chunks(ask, ["a prompt"] * 120, ctx, judge)
    progress = _read("preference_pairs", ctx.events)[0]
    assert (progress.unit, progress.completed, progress.total) == ("judged", 120, 120)


def test_an_import_counts_lines_without_a_total_and_unknown_types_read_done_of_total():
    event = {"id": 3, "kind": "progress", "level": "info", "message": "read 3000 lines",
             "created_at": T0.isoformat(), "data": {"lines": 3000, "rows": 2990, "dropped": 10}}
    progress, counted = _read("import", [event])
    assert counted == [True] and progress.fraction is None
    assert progress.line == "3,000 lines read, 2,990 rows kept, 10 dropped"

    stage = {**event, "kind": "status", "message": "converting the GGUF weights", "data": {"stage": "convert"}}
    progress, counted = _read("model_import", [stage])  # stages only: a pulsing bar with the message
    assert counted == [False] and not progress.counting and progress.line == "converting the GGUF weights"

    generic = {**event, "message": "3/8 shards", "data": {"done": 3, "total": 8, "unit": "shards"}}
    assert _read("some_new_type", [generic])[0].line == "3/8 shards (38%)"


# ------------------------------------------------------------------------------------- display


def _console(terminal: bool) -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=terminal, force_interactive=terminal, width=160), buffer


def _steps(*points: tuple[int, float]) -> list[JobProgress]:
    """A training job's progress after each of `points` (step, seconds)."""
    progress = JobProgress("train")
    progress.add({"kind": "status", "message": "100 steps", "created_at": T0.isoformat(), "data": {"total_steps": 100}})
    states = []
    for number, at in points:
        progress.add({"kind": "metrics", "message": f"step {number}", "data": {"step": number, "loss": 1.0},
                      "created_at": (T0 + timedelta(seconds=at)).isoformat()})
        states.append(replace(progress))
    return states


def test_in_a_log_the_display_prints_a_line_per_job_at_most_every_few_seconds():
    console, buffer = _console(terminal=False)
    now = [0.0]
    with ProgressDisplay(console, every=10.0, clock=lambda: now[0]) as display:
        assert not display.live
        for (at, state) in zip((0, 3, 6, 12), _steps((1, 0), (2, 3), (3, 6), (4, 12))):
            now[0] = at
            display.update("job-1", "train", state)
        display.print("a line of its own")
        now[0] = 13
        display.update("job-1", "train", _steps((1, 0), (100, 13))[1])  # the last step: printed at once
        layers = JobProgress("quantize")
        layers.begin("layers", "GPTQ")  # nothing counted yet: no line
        display.update("job-2", "quantize", layers)
    lines = buffer.getvalue().splitlines()
    assert len(lines) == 4, lines  # steps 1 and 4 (10 s apart), the printed line, the last step
    assert re.fullmatch(r"\d\d:\d\d:\d\d train: 1/100 steps \(1%\), loss 1\.000", lines[0])
    assert lines[1].endswith("train: 4/100 steps (4%), loss 1.000, ~6m24s left")
    assert lines[2] == "a line of its own"
    assert lines[3].endswith("train: 100/100 steps (100%), loss 1.000, ~0s left")
    assert "\x1b[" not in buffer.getvalue()  # no cursor moves or colours in a log


def test_on_a_terminal_each_running_job_has_a_bar_until_it_ends():
    console, buffer = _console(terminal=True)
    message = JobProgress("quantize", message="measuring the source model [fp32]")
    with ProgressDisplay(console) as display:
        assert display.live
        display.update("job-1", "train", _steps((30, 30))[0])
        display.update("job-2", "quantize", message)
        assert [t.total for t in display._bars.tasks] == [100, None]  # a pulsing bar while nothing is counted
        assert display._bars.tasks[0].completed == 30
        display._bars.refresh()
        display.remove("job-1")
        assert [t.fields["name"] for t in display._bars.tasks] == ["quantize"]
    shown = buffer.getvalue()
    assert "30/100 steps (30%)" in shown and "measuring the source model [fp32]" in shown


# ----------------------------------------------------------------------------------- following


class FakeGateway:
    """The client calls `follow_job` and `watch_pipeline` make, answered from lists."""

    def __init__(self, events: list[dict], jobs: list[dict] | None = None, pipelines: list[dict] | None = None):
        self._events, self._jobs, self._pipelines = events, jobs or [], pipelines or []
        self.polls = 0

    def follow(self, job_id, after=0):
        yield from (e for e in self._events if e["id"] > after)

    def job(self, job_id):
        return self._jobs.pop(0) if len(self._jobs) > 1 else self._jobs[0]

    def pipeline(self, pipeline_id):
        self.polls += 1
        return self._pipelines.pop(0) if len(self._pipelines) > 1 else self._pipelines[0]

    def events(self, job_id, after=0, limit=100):
        # Two more events each poll, from the second one on (the first sees the step pending).
        seen = [e for e in self._events if after < e["id"] <= 2 * (self.polls - 1)]
        return {"data": seen[:limit], "has_more": len(seen) > limit}


def test_following_a_job_prints_its_events_and_a_progress_line_instead_of_each_count():
    from belle_cli.follow import follow_job

    ctx = RecordingContext()
    ctx.event("job queued", kind="status", status="queued")
    ctx.event("running on w1 (attempt 1)", kind="status", status="running", attempt=1, worker="w1")
    for lines in (1000, 2000):
        ctx.progress(f"read {lines} lines", lines=lines, rows=lines, dropped=0)
    ctx.event("dataset 'x': 2000 rows, 0 dropped", kind="metrics", dataset_id="d", rows=2000, dropped={})
    ctx.event("job succeeded", kind="status", status="succeeded")
    console, buffer = _console(terminal=False)
    final = follow_job(FakeGateway(ctx.events, jobs=[{"id": "j", "status": "succeeded"}]), "j", console,
                       job_type="import")
    assert final["status"] == "succeeded"
    shown = buffer.getvalue()
    assert "read 1000 lines" not in shown  # counts go to the progress line
    assert re.search(r"\d\d:\d\d:\d\d import: 1,000 lines read, 1,000 rows kept, 0 dropped", shown)
    assert "status   job succeeded" in shown and "metrics  dataset 'x': 2000 rows" in shown


def test_watching_a_pipeline_prints_step_changes_warnings_and_each_running_steps_progress():
    from belle_cli.follow import watch_pipeline

    ctx = RecordingContext()
    ctx.event("120 steps over 960 samples on 1 process(es)", kind="status", total_steps=120)
    ctx.clock = 10
    ctx.event("step 12: loss 2.0000", kind="metrics", step=12, loss=2.0)
    ctx.event("the teacher is slow", level="warning")
    ctx.clock = 20
    ctx.event("step 24: loss 1.0000", kind="metrics", step=24, loss=1.0)
    ctx.clock = 30
    ctx.event("model ft:x recorded: train loss 1.0", kind="metrics", model_id="m")  # seen once the step ended
    ctx.event("job succeeded", kind="status", status="succeeded")

    def pipeline(status, train):
        return {"id": "p", "status": status, "error": None, "steps": [
            {"name": "data", "type": "datagen", "status": "succeeded", "job_id": "j1"},
            {"name": "train", "type": "train", "status": train, "job_id": "j2" if train != "pending" else None,
             "reason": "waiting for 'data'" if train == "pending" else None}]}

    gateway = FakeGateway(ctx.events, pipelines=[pipeline("running", "pending"), pipeline("running", "running"),
                                                 pipeline("running", "running"), pipeline("succeeded", "succeeded")])
    console, buffer = _console(terminal=False)
    final = watch_pipeline(gateway, "p", console, interval=0)
    assert final["status"] == "succeeded"
    shown = buffer.getvalue()
    assert "step train: pending: waiting for 'data'" in shown
    assert "step train: running (job j2)" in shown and "step train: succeeded (job j2)" in shown
    assert re.search(r"\d\d:\d\d:\d\d train: 120 steps over 960 samples on 1 process\(es\)\n", shown)
    assert re.search(r"\d\d:\d\d:\d\d train: the teacher is slow\n", shown)
    assert "step 12: loss" not in shown  # the count is on the progress line
    assert "job succeeded" not in shown  # the step's status line says it
    assert shown.index("train: model ft:x recorded") < shown.index("step train: succeeded")
    assert re.search(r"\d\d:\d\d:\d\d train: 12/120 steps \(10%\), loss 2\.000", shown)


def test_a_diverged_loss_is_reported_not_a_crash_of_the_follower(monkeypatch):
    # The trainer writes a non-finite loss as null; the job must keep following its run.
    import belle_trainer.job as train_job

    monkeypatch.setattr(train_job, "STEP_EVENT_EVERY_SECONDS", 0.0)
    ctx = RecordingContext()
    follower = train_job._ProgressFollower(ctx, run_dir=None, spec=None)
    follower.handle({"event": "step", "step": 3, "epoch": 0.1, "loss": None, "learning_rate": 1e-3,
                     "tokens_per_second": 10.0, "trained_tokens": 30})
    follower.handle({"event": "eval", "step": 3, "eval_loss": None})
    messages = [event["message"] for event in ctx.events]
    assert messages == ["step 3: loss n/a (diverged)", "step 3: eval loss n/a (diverged)"], ctx.events
