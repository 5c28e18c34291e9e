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

