"""The native decode-attention kernel (`serving/native_attention.py`), compiled here with the machine's C
compiler, against PyTorch's `scaled_dot_product_attention` row by row; and what happens without a compiler."""

from __future__ import annotations

import logging

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from belle_gateway.serving import native_attention  # noqa: E402
from belle_gateway.serving.native_attention import load_decode_attention  # noqa: E402


@pytest.fixture(scope="module")
def kernel():
    loaded = load_decode_attention()
    assert loaded is not None, "this machine has a C compiler: the kernel must compile and pass its check"
    return loaded


def _reference(query, keys, values, lengths, scale):
    rows = []
    for row, length in enumerate(lengths.tolist()):
        rows.append(F.scaled_dot_product_attention(
            query[row:row + 1, :, None], keys[row:row + 1, :, :length], values[row:row + 1, :, :length],
            scale=scale, enable_gqa=True)[0, :, 0])
    return torch.stack(rows)


# Head dims: 64 and 128 (compiled for that size), 96 (any multiple of 16), 40 and 8 (the scalar path).
@pytest.mark.parametrize("heads,kv_heads,dim", [(4, 4, 64), (8, 2, 128), (3, 1, 96), (6, 3, 40), (2, 1, 8)])
def test_every_row_equals_scaled_dot_product_attention_over_its_own_slot(kernel, heads, kv_heads, dim):
    generator = torch.Generator().manual_seed(heads * dim)
    slots, capacity = 7, 300
    # Lengths from 1 to the whole slot, around multiples of 16 (the kernel's vector width) and not.
    lengths = torch.tensor([1, 15, 16, 17, 255, 300], dtype=torch.int64)
    query = torch.randn(len(lengths), heads, dim, generator=generator) * 3  # peaked softmaxes too
    keys = torch.randn(slots, kv_heads, capacity, dim, generator=generator)
    values = torch.randn(slots, kv_heads, capacity, dim, generator=generator)
    got = kernel(query, keys, values, lengths, dim ** -0.5)
    expected = _reference(query, keys, values, lengths, dim ** -0.5)
    assert got.shape == (len(lengths), heads, dim)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=2e-6)


def test_columns_past_a_rows_length_are_never_read(kernel):
    query = torch.randn(2, 2, 16)
    keys, values = torch.randn(2, 2, 32, 16), torch.randn(2, 2, 32, 16)
    lengths = torch.tensor([5, 20])
    before = kernel(query, keys, values, lengths, 0.25)
    keys[0, :, 5:], values[0, :, 5:] = float("nan"), float("nan")
    keys[1, :, 20:], values[1, :, 20:] = float("nan"), float("nan")
    after = kernel(query, keys, values, lengths, 0.25)
    assert torch.equal(before, after)


def test_bad_arguments_are_refused_with_what_was_wrong(kernel):
    query = torch.randn(2, 4, 16)
    keys, values = torch.randn(2, 4, 8, 16), torch.randn(2, 4, 8, 16)
    with pytest.raises(ValueError, match="lengths must be 1..8"):
        kernel(query, keys, values, torch.tensor([3, 9]), 1.0)  # past the slot's capacity
    with pytest.raises(ValueError, match="lengths must be 1..8"):
        kernel(query, keys, values, torch.tensor([0, 2]), 1.0)
    with pytest.raises(ValueError, match="contiguous float32"):
        kernel(query.double(), keys, values, torch.tensor([3, 2]), 1.0)
    with pytest.raises(ValueError, match="contiguous float32"):
        kernel(query, keys[:, :, :4], values[:, :, :4], torch.tensor([3, 2]), 1.0)  # not contiguous


def test_the_compiled_library_is_reused_from_the_cache(kernel, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = load_decode_attention()
    assert first is not None and first.path.parent == tmp_path / "belle" / "native"
    built = first.path.stat().st_mtime_ns
    second = load_decode_attention()
    assert second.path == first.path and second.path.stat().st_mtime_ns == built
    assert not list(first.path.parent.glob("*.tmp"))


def test_without_a_compiler_the_engine_keeps_pytorchs_attention(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # nothing compiled there yet
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    with caplog.at_level(logging.WARNING, logger=native_attention.__name__):
        assert load_decode_attention() is None
    assert "native decode attention unavailable" in caplog.text
    assert "no-such-cc" in caplog.text
