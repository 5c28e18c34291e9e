"""The time budget's fits, on a clock the test drives: the first fit from the speed of the first steps,
a refit when the machine slows down mid-run, and the stop at the budget."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from belle_trainer import time_budget
from belle_trainer.time_budget import TimeBudget


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _run(monkeypatch, seconds_per_step, *, budget: float, planned: int):
    """Steps at the speeds given (a function of the step) until the callback stops the run; returns the
    fits reported, the steps run and the learning rate of each step."""
    clock = Clock()
    monkeypatch.setattr(time_budget.time, "perf_counter", clock)
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=1.0)
    from transformers import get_scheduler

    scheduler = get_scheduler("cosine", optimizer, num_warmup_steps=0, num_training_steps=planned)
    fits = []
    budget_cb = TimeBudget(budget, scheduler_name="cosine", warmup_ratio=0.0, on_fit=lambda n, s: fits.append((n, s)))
    state = SimpleNamespace(global_step=0, max_steps=planned)
    control = SimpleNamespace(should_training_stop=False, should_log=False)
    budget_cb.on_train_begin(None, state, control)
    rates = []
    while not control.should_training_stop:
        clock.now += seconds_per_step(state.global_step)
        optimizer.step()
        scheduler.step()
        state.global_step += 1
        rates.append(optimizer.param_groups[0]["lr"])
        budget_cb.on_step_end(None, state, control, lr_scheduler=scheduler, optimizer=optimizer)
    return fits, state, rates, clock.now


def test_a_steady_run_is_fitted_once_and_decays_to_its_end(monkeypatch):
    fits, state, rates, elapsed = _run(monkeypatch, lambda step: 0.1, budget=10.0, planned=10_000)
    assert len(fits) == 1 and fits[0][0] == pytest.approx(100, abs=2)
    assert state.global_step == fits[0][0] and elapsed <= 10.0 + 1e-9
    assert rates[-1] < 0.01  # the cosine schedule ran to its end over the fitted steps


def test_a_run_that_slows_down_mid_way_is_refitted_and_still_decays(monkeypatch):
    # 0.1 s per step for the first 30 steps, then twice as slow (another job started beside it).
    fits, state, rates, elapsed = _run(monkeypatch, lambda step: 0.1 if step < 30 else 0.2, budget=10.0,
                                       planned=10_000)
    assert fits[0][0] == pytest.approx(100, abs=2)  # the first fit believed the first speed
    assert len(fits) >= 2 and fits[-1][0] < fits[0][0] and fits[-1][1] == pytest.approx(0.2)
    # It ends at its refitted total, at the budget, with the schedule near its end; fitted once, it would
    # have stopped at the budget around step 65 of 100, at ~0.3 of the peak.
    assert state.global_step >= fits[-1][0] - 1 and elapsed <= 10.0 + 0.2
    assert rates[-1] < 0.1


def test_a_budget_spent_before_the_speed_is_measured_ends_the_run(monkeypatch):
    fits, state, _, _ = _run(monkeypatch, lambda step: 6.0, budget=10.0, planned=50)
    assert state.global_step == 2 and fits == [(2, pytest.approx(6.0))]
