"""Training sized by time (`hyperparameters.max_seconds`): the run measures its own speed over its
first steps, fits the number of steps and the learning-rate schedule to the time left, and stops at
the budget even if the estimate was optimistic.

Why: the same recipe runs at very different speeds on different machines (a CPU without bf16
instructions trains a bf16-minded recipe ~20x slower; two "2-core" machines differ 2x), so a demo or
a team's nightly job sized in epochs can take twice its promise. Sized in seconds, the schedule still
decays to its end (cosine, linear) instead of being cut off at a high learning rate.

The first fit happens after `FIT_AFTER_SECONDS` of training (or `FIT_AFTER_STEPS` steps, whichever
comes later): steps = min(planned steps, steps done + time left / seconds per step so far). The run
fits again at each share of the budget in `REFIT_AT`, from the speed since the previous fit: a machine
whose load changes mid-run (another job starts beside it) would otherwise stop at the budget with the
schedule far from its end (seen: a run fitted at 0.4 s of an 8 s budget, then slowed down 2x by a
second process, ended at 0.9 of its peak learning rate). Every process of a run takes rank 0's numbers
(one broadcast), so all stop at the same step.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import torch
from transformers import TrainerCallback

log = logging.getLogger(__name__)

FIT_AFTER_STEPS = 2       # steps measured before the fit (the first one, with its warm-up, not counted)
FIT_AFTER_SECONDS = 0.05  # ... and at least this share of the budget
REFIT_AT = (0.25, 0.5, 0.75, 0.9)  # shares of the budget at which the fit is made again
REFIT_TOLERANCE = 0.03              # ... and changed only if the total moves by more than this share
LOG_LINES = 50            # progress lines over a fitted run


def _broadcast(values: list[float]) -> list[float]:
    """Rank 0's values on every process (no-op in a single process)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return values
    tensor = torch.tensor(values, dtype=torch.float64)
    torch.distributed.broadcast(tensor, src=0)
    return tensor.tolist()


def refit_schedule(scheduler: Any, optimizer: Any, *, name: str, total_steps: int, warmup_ratio: float) -> None:
    """Make a LambdaLR-based schedule (every schedule `transformers.get_scheduler` makes) span
    `total_steps` from now on, keeping its shape: its lambdas are swapped for those of a fresh schedule
    of the same kind, built on a stand-in optimizer with as many parameter groups (building it on the
    real one would reset its rates to the schedule's start). The rates the next step uses are set now
    from the new lambdas: left to the next `scheduler.step()`, the step right after a fit ran at the old
    schedule's rate, and a run that stopped at that step logged it as its last rate."""
    from transformers import get_scheduler

    stand_in = torch.optim.SGD([{"params": [torch.zeros(1, requires_grad=True)]}
                                for _ in optimizer.param_groups], lr=1.0)
    warmup = math.ceil(warmup_ratio * total_steps) if warmup_ratio < 1 else int(warmup_ratio)
    fresh = get_scheduler(name, stand_in, num_warmup_steps=warmup, num_training_steps=total_steps)
    scheduler.lr_lambdas = list(fresh.lr_lambdas)
    rates = [base * schedule(scheduler.last_epoch) for base, schedule in zip(scheduler.base_lrs, scheduler.lr_lambdas)]
    for group, rate in zip(optimizer.param_groups, rates):
        group["lr"] = rate
    scheduler._last_lr = rates


class TimeBudget(TrainerCallback):
    """Fits the run to `seconds` of training (see the module's docstring); `on_fit(total, seconds_per_step)`
    reports the fitted number of steps (rank 0 writes it as a progress event)."""

    def __init__(self, seconds: float, *, scheduler_name: str, warmup_ratio: float, on_fit=None):
        self.seconds = seconds
        self.scheduler_name = scheduler_name
        self.warmup_ratio = warmup_ratio
        self.on_fit = on_fit
        self.started: float | None = None
        self.first_step_done: float | None = None
        self.first_step: int = 0
        self.fitted_steps: int | None = None
        self.planned_steps: int | None = None  # the Trainer's total before any fit
        self._since: tuple[int, float] | None = None  # (step, time) the next fit measures the speed from
        self._refits = list(REFIT_AT)
        self._last_log = 0.0  # when the last progress line was asked for

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()
        self._last_log = self.started
        self.first_step = state.global_step
        self.planned_steps = state.max_steps

    def on_step_end(self, args, state, control, **kwargs):
        now = time.perf_counter()
        if self.first_step_done is None:
            self.first_step_done = now  # the first step pays for warm-up: measure from its end
            self.first_step = state.global_step
            self._since = (state.global_step, now)
        elapsed = now - self.started
        if self.fitted_steps is None:
            due = state.global_step - self.first_step >= FIT_AFTER_STEPS and elapsed >= FIT_AFTER_SECONDS * self.seconds
        else:
            due = bool(self._refits) and elapsed >= self._refits[0] * self.seconds and state.global_step > self._since[0]
        # Rank 0's clock decides for all (a fit is a collective; so is the stop).
        over, due = (value > 0 for value in _broadcast([float(elapsed >= self.seconds), float(due)]))
        if due:
            while self._refits and elapsed >= self._refits[0] * self.seconds:
                self._refits.pop(0)
            self._fit(state, kwargs, now, elapsed)
        if over and self.fitted_steps is None:
            # The budget ran out before the speed was measured: what was trained is the run.
            self.fitted_steps = state.global_step
            if self.on_fit is not None:
                self.on_fit(self.fitted_steps, (now - self.started) / max(1, state.global_step - self.first_step + 1))
        if state.global_step >= state.max_steps or over:
            control.should_training_stop = True
        # The Trainer's logging interval was set from the planned steps: log about LOG_LINES times over
        # the fitted ones instead (every step until the fit), and at the last step. A step that took
        # longer than a LOG_LINES-th of the budget is logged too: a run that slowed down after a fit
        # (the machine got busy) would otherwise report fewer lines than it has steps to show.
        every = max(1, round(self.fitted_steps / LOG_LINES)) if self.fitted_steps else 1
        slow = now - self._last_log >= self.seconds / LOG_LINES
        if state.global_step % every == 0 or slow or control.should_training_stop:
            control.should_log = True
            self._last_log = now
        return control

    def _fit(self, state, kwargs, now: float, elapsed: float) -> None:
        """Fit the steps and the schedule to the time left at the speed since the last fit."""
        since_step, since_time = self._since
        per_step = (now - since_time) / (state.global_step - since_step)
        self._since = (state.global_step, now)
        left = max(0, int((self.seconds - elapsed) / per_step))
        total, per_step = _broadcast([min(self.planned_steps, state.global_step + left), per_step])
        fitted = max(state.global_step, int(total))
        if self.fitted_steps is not None and abs(fitted - self.fitted_steps) <= max(1, REFIT_TOLERANCE * fitted):
            return  # the same pace, up to the clock's noise: the schedule stays as it is
        self.fitted_steps = fitted
        if fitted != state.max_steps:
            scheduler = kwargs.get("lr_scheduler")
            optimizer = kwargs.get("optimizer")
            if scheduler is not None and optimizer is not None and hasattr(scheduler, "lr_lambdas"):
                refit_schedule(scheduler, optimizer, name=self.scheduler_name, total_steps=fitted,
                               warmup_ratio=self.warmup_ratio)
            log.info("time budget %.0fs: %.3fs per step, %d of %d steps", self.seconds, per_step, fitted,
                     self.planned_steps)
            state.max_steps = fitted
        if self.on_fit is not None:
            self.on_fit(fitted, per_step)
