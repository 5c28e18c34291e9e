"""One native call for the attention of every decoding row of a packed batch, on a CPU.

A packed batch's decoding rows each attend to their own slot of the cache, with their own length. Done
with `scaled_dot_product_attention`, that is one call per row and layer (64 calls per step for 16 rows
and 4 layers), and on a CPU each call costs far more than its arithmetic: PyTorch's flash kernel is
built for blocks of queries, not one, and every call goes through Python. Measured on the Intel Xeon of
docs/benchmarks.md ("fifth round"), attention was half of a 16-row decoding step. The cost that cannot go
away is reading every row's keys and values once; `native/decode_attention.c` does little else: one
call per layer for all decoding rows, streaming through each row's cache in order.

The C file is compiled on first use with the machine's C compiler (`$CC`, else `cc`), for the CPU it
runs on (`-march=native`), into a per-user cache (`$XDG_CACHE_HOME/belle/native`, else the temporary
directory), keyed by the source, the compiler and the CPU; a load is then one `ctypes` open. It is
checked against `scaled_dot_product_attention` before use. Without a compiler, or if the check fails,
`load_decode_attention()` returns None and the engine keeps one `scaled_dot_product_attention` per row.

Results are float32 attention like PyTorch's, summed in another order (and with its own `exp`, within
about 1 ulp): they differ from `generate`'s by about 1e-7, the size of the difference the batch's matrix
products already have, so greedy replies still equal `generate`'s unless two logits tie that closely.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("native") / "decode_attention.c"
FLAGS = ["-O3", "-fPIC", "-shared", "-fno-math-errno"]


class DecodeAttention:
    """The compiled kernel: `(query, keys, values, lengths, scale) -> output` (see `__call__`)."""

    def __init__(self, library_path: Path):
        self.path = library_path
        function = ctypes.CDLL(str(library_path)).belle_decode_attention  # CDLL calls release the GIL
        pointer, count = ctypes.c_void_p, ctypes.c_int64
        function.argtypes = [pointer, pointer, pointer, pointer, pointer, count, count, count, count, count,
                             ctypes.c_float]
        function.restype = ctypes.c_int
        self._function = function

    def __call__(self, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, lengths: torch.Tensor,
                 scale: float) -> torch.Tensor:
        """query: [rows, heads, dim]; keys, values: [slots, kv heads, capacity, dim] (slot r is row r's);
        lengths: [rows] int64, cached tokens each row attends to. Float32 CPU tensors, contiguous.
        Returns [rows, heads, dim]."""
        rows, heads, dim = query.shape
        slots, kv_heads, capacity, key_dim = keys.shape
        if (query.dtype != torch.float32 or keys.dtype != torch.float32 or values.dtype != torch.float32
                or lengths.dtype != torch.int64 or values.shape != keys.shape or key_dim != dim or slots < rows
                or lengths.shape != (rows,) or not all(t.is_contiguous() for t in (query, keys, values, lengths))):
            raise ValueError("decode attention takes contiguous float32 query [rows, heads, dim], keys and values "
                             "[slots, kv heads, capacity, dim] and int64 lengths [rows]")
        out = torch.empty_like(query)
        status = self._function(query.data_ptr(), keys.data_ptr(), values.data_ptr(), out.data_ptr(),
                                lengths.data_ptr(), rows, heads, kv_heads, capacity, dim, scale)
        if status != 0:
            raise ValueError(f"decode attention refused its arguments (lengths must be 1..{capacity}; heads "
                             f"{heads} a multiple of kv heads {kv_heads}) or had no memory for its scores")
        return out


def load_decode_attention() -> DecodeAttention | None:
    """The kernel, compiled if needed and checked; None (logged) where it cannot be had here."""
    try:
        kernel = DecodeAttention(_compiled_library())
        _check(kernel)
    except Exception as exc:  # no compiler, an unusual platform, a failed check: PyTorch's attention
        log.warning("native decode attention unavailable, keeping one scaled_dot_product_attention per row: %s",
                    exc)
        return None
    return kernel


def _compiled_library() -> Path:
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not compiler:
        raise RuntimeError("no C compiler found (set CC, or install gcc)")
    source = SOURCE.read_bytes()
    identity = hashlib.sha256(source + compiler.encode() + _cpu_identity().encode()).hexdigest()[:16]
    target = _cache_dir() / f"decode_attention-{identity}.so"
    if target.exists():
        return target
    # Built under a name of its own and renamed into place: processes compiling at once each succeed.
    partial = target.with_suffix(f".{os.getpid()}.tmp")
    errors = []
    for arch in (["-march=native"], []):  # some compilers (older Apple clang) have no -march=native
        done = subprocess.run([compiler, *FLAGS, *arch, "-o", str(partial), str(SOURCE), "-lm"],
                              capture_output=True, text=True)
        if done.returncode == 0:
            os.replace(partial, target)
            log.info("compiled %s into %s", SOURCE.name, target)
            return target
        errors.append(done.stderr.strip()[-500:])
    raise RuntimeError(f"{compiler} could not compile {SOURCE.name}: {errors[-1]}")


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    for folder in (Path(base) / "belle" / "native", Path(tempfile.gettempdir()) / f"belle-native-{os.getuid()}"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if os.access(folder, os.W_OK):
                return folder
        except OSError:
            continue
    raise RuntimeError("no writable folder for the compiled kernel")


def _cpu_identity() -> str:
    """What -march=native depends on: a library built on one CPU must not be loaded on another."""
    try:
        with open("/proc/cpuinfo") as info:
            lines = [line for line in info if line.startswith(("model name", "flags", "Features"))]
        return platform.machine() + "".join(sorted(set(lines)))
    except OSError:
        return platform.machine() + platform.processor()


def _check(kernel: DecodeAttention) -> None:
    """The kernel computes what `scaled_dot_product_attention` does (to float32 rounding), or raise."""
    generator = torch.Generator().manual_seed(0)
    heads, kv_heads, capacity, dim = 4, 2, 40, 24  # grouped heads, a dim that is not a multiple of 16
    lengths = torch.tensor([1, 17, 40], dtype=torch.int64)
    query = torch.randn(3, heads, dim, generator=generator)
    keys, values = (torch.randn(3, kv_heads, capacity, dim, generator=generator) for _ in range(2))
    got = kernel(query, keys, values, lengths, 0.3)
    for row, length in enumerate(lengths.tolist()):
        expected = F.scaled_dot_product_attention(
            query[row:row + 1, :, None], keys[row:row + 1, :, :length], values[row:row + 1, :, :length],
            scale=0.3, enable_gqa=True)[0, :, 0]
        if not torch.allclose(got[row], expected, rtol=1e-5, atol=1e-6):
            raise RuntimeError(f"native decode attention differs from PyTorch's by "
                               f"{float((got[row] - expected).abs().max()):.3g}")
