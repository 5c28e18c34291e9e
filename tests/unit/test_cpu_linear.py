"""The batching engine's linear layers on oneDNN (`serving/cpu_linear.py`), on tiny local models."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from belle_gateway.serving.cpu_kernels import CpuKernels  # noqa: E402
from belle_gateway.serving.cpu_linear import OneDNNLinear, onednn_available, use_onednn_linears  # noqa: E402
from belle_gateway.serving.engine import LoadedModel, make_batch  # noqa: E402
from belle_gateway.serving.packed import PackedBatch  # noqa: E402
from belle_gateway.serving.padded import PaddedBatch  # noqa: E402


class _QuantLinear(nn.Linear):
    """Stands for a layer with kernels of its own (a GPTQ layer): never replaced."""


def _tiny(tmp_path_factory, arch: str) -> LoadedModel:
    from belle_trainer.tiny import init_tiny_model

    return LoadedModel(init_tiny_model(tmp_path_factory.mktemp(f"onednn-{arch}") / arch, arch=arch, seed=5,
                                       max_position=256))


def test_this_torch_build_has_the_onednn_operators():
    assert onednn_available()  # the CPU wheel the constraints pin: the engine's fast path is really taken


def test_layers_are_replaced_and_compute_the_same_products():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 96), nn.ReLU(), nn.Linear(96, 37, bias=False), _QuantLinear(37, 8))  # odd sizes too
    x = torch.randn(5, 7, 64)
    with torch.inference_mode():
        expected = model(x)
    assert use_onednn_linears(model, rows=16) == 2
    assert [type(m).__name__ for m in model] == ["OneDNNLinear", "ReLU", "OneDNNLinear", "_QuantLinear"]
    assert model[0].bias is not None and model[2].bias is None
    with torch.inference_mode():
        for rows in (1, 3, 35):  # any number of rows, not only the layout's hint
            got = model(x.reshape(35, 64)[:rows])
            assert got.shape == (rows, 8)
            torch.testing.assert_close(got, expected.reshape(35, 8)[:rows], rtol=1e-4, atol=1e-5)


def test_half_precision_layers_are_left_alone():
    model = nn.Sequential(nn.Linear(16, 16).to(torch.bfloat16))
    assert use_onednn_linears(model, rows=4) == 0
    assert type(model[0]) is nn.Linear


def test_make_batch_moves_a_loaded_model_to_onednn_unless_told_not_to(tmp_path_factory):
    llama = _tiny(tmp_path_factory, "llama")
    assert "Linear" in llama.module_classes
    batch = make_batch(llama, 4, CpuKernels(onednn_linear=False))
    assert isinstance(batch, PackedBatch) and "OneDNNLinear" not in llama.module_classes

    batch = make_batch(llama, 4)
    assert isinstance(batch, PackedBatch)
    assert llama.module_classes.get("OneDNNLinear", 0) > 0 and "Linear" not in llama.module_classes
    assert isinstance(llama.model.lm_head, OneDNNLinear)

    bloom = _tiny(tmp_path_factory, "bloom")  # biases everywhere, and the padded batch
    assert isinstance(make_batch(bloom, 4), PaddedBatch)
    assert "Linear" not in bloom.module_classes
