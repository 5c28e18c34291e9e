"""The demo's pipeline file and the values `belle demo` fills in (no stack needed)."""

from __future__ import annotations

import pytest

from belle_cli import demo
from belle_shared.pipelines import PipelineSpec


def _load(**options):
    """The tiny model's pipeline (the real model's: test_the_real_models_pipeline_...)."""
    return demo.load_demo_pipeline(teacher_url="http://127.0.0.1:1/v1", base_model="demo-base",
                                   eval_file_id="00000000-0000-0000-0000-000000000001",
                                   options=demo.DemoOptions(model="tiny", **options))


def _train(spec):
    return next(step["spec"] for step in spec["steps"] if step["name"] == "train")


def test_the_filled_pipeline_is_a_valid_spec():
    spec = _load(rows=123, epochs=2)
    PipelineSpec.model_validate(spec)
    assert spec["steps"][0]["spec"]["target_count"] == 123 and _train(spec)["hyperparameters"]["epochs"] == 2


@pytest.mark.parametrize(("flags", "native"), [
    ("fpu sse avx512f avx512_bf16 amx_tile", True),
    ("fpu sse amx_bf16 amx_tile", True),
    ("fpu sse avx2 avx512f", False),
])
def test_native_bf16_is_read_from_the_cpu_flags(tmp_path, flags, native):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: a cpu\nflags\t\t: {flags}\n")
    assert demo.cpu_has_native_bf16(str(cpuinfo)) is native
    assert demo.cpu_has_native_bf16(str(tmp_path / "missing")) is False


@pytest.mark.parametrize("native", [True, False])
def test_training_precision_follows_the_cpu(monkeypatch, native):
    monkeypatch.setattr(demo, "cpu_has_native_bf16", lambda: native)
    assert _train(_load())["hyperparameters"]["precision"] == ("bf16" if native else "auto")


def test_the_real_models_pipeline_imports_it_first_and_uses_it_throughout():
    spec = demo.load_demo_pipeline(teacher_url="http://127.0.0.1:1/v1", base_model=None,
                                   eval_file_id="00000000-0000-0000-0000-000000000001",
                                   options=demo.DemoOptions(model="smollm2", train_seconds=90, rows=500))
    PipelineSpec.model_validate(spec)
    steps = {step["name"]: step["spec"] for step in spec["steps"]}
    assert steps["base"] == {"type": "model_import", "bundled": "smollm2"}
    assert steps["train"]["base_model"] == "${base.model_id}"
    assert steps["evaluate"]["model_ids"][0] == "${base.model_id}"
    assert steps["train"]["hyperparameters"]["max_seconds"] == 90 and steps["data"]["target_count"] == 500
    assert demo.DemoOptions().model == "smollm2" and demo.DemoOptions().eval_questions == 60
    with pytest.raises(ValueError, match="model must be one of"):
        demo.DemoOptions(model="gpt-5")


def test_training_is_sized_by_time_in_both_demos():
    for model in demo.PIPELINE_FILES:
        options = demo.DemoOptions(model=model)
        base = "demo-base" if model == "tiny" else None
        spec = demo.load_demo_pipeline(teacher_url="http://127.0.0.1:1/v1", base_model=base,
                                       eval_file_id="00000000-0000-0000-0000-000000000001", options=options)
        assert _train(spec)["hyperparameters"]["max_seconds"] > 0


def test_a_running_training_step_shows_step_of_total_loss_speed_and_time_left():
    from belle_cli.pipelines import StepProgress

    progress = StepProgress()

    def event(kind, message, seconds, **data):
        return {"kind": kind, "message": message, "data": data, "created_at": f"2026-12-04T10:00:{seconds:02d}+00:00"}

    progress.add(event("status", "120 steps over 960 samples on 1 process(es)", 0, total_steps=120))
    assert progress.line.startswith("120 steps")
    progress.add(event("metrics", "step 10: loss 2.5", 10, step=10, loss=2.5, tokens_per_second=900.0))
    progress.add(event("status", "time budget 60s: 50 of 120 steps", 11, total_steps=50))
    progress.add(event("metrics", "step 20: loss 1.25", 20, step=20, loss=1.25, tokens_per_second=1000.0))
    # 10 steps in 10 s, 30 to go (the fitted total).
    assert progress.line == "step 20/50, loss 1.250, 1,000 tok/s, ~30s left"
