"""The demo's pipeline file and the values `belle demo` fills in (no stack needed)."""

from __future__ import annotations

import pytest

from belle_cli import demo
from belle_shared.pipelines import PipelineSpec


def _load(**options):
    return demo.load_demo_pipeline(teacher_url="http://127.0.0.1:1/v1", base_model="demo-base",
                                   eval_file_id="00000000-0000-0000-0000-000000000001",
                                   options=demo.DemoOptions(**options))


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
