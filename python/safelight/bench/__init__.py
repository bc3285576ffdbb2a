"""The project's own benchmarks, each measured against an in-run reference.

Run them with ``safelight bench [NAME ...] [--json]``. Every benchmark times
safelight and a reference implementation (numpy, ``cryptography``, plain TCP,
scipy, Microsoft SEAL) the same way in the same process, so the ratio between the
two is meaningful on any machine even where absolute figures are not.

The library never imports this package; it sits above every other layer (only the
command line imports it). Its modules:

- :mod:`~safelight.bench.registry`: :func:`register`, :func:`result`, the timing helpers,
  :func:`run` and :func:`main` (how to write a benchmark: its docstring);
- one module per area: :mod:`~safelight.bench.kernels` (ring, PRG, GEMM, NTT),
  :mod:`~safelight.bench.transport`, :mod:`~safelight.bench.secure` (filtering, secure
  arithmetic, ReLU, denoising), :mod:`~safelight.bench.he`, :mod:`~safelight.bench.garbling`
  (garbled circuits, OT), :mod:`~safelight.bench.store` (the encrypted store) and
  :mod:`~safelight.bench.search` (private image search).

Importing the package registers every benchmark. The workloads and references that the
pytest-benchmark suite in ``benchmarks/`` shares with ``safelight bench`` are re-exported
here (``from safelight import bench; bench.ring_operands()``).
"""

from __future__ import annotations

from . import batch as batch  # registers the batch benchmarks
from . import features as features  # registers the feature-detection benchmarks
from . import garbling, he, kernels, secure, store, transport
from . import search as search  # registers the search benchmarks
from . import watermark as watermark  # registers the watermark benchmarks
from .garbling import GC_BATCH, GC_K, OT_N, gc_stream_seconds
from .he import HE_MUL_BITS, HE_MUL_REPEATS, HE_MUL_T_BITS, he_mul_workload
from .kernels import (
    GEMM_N,
    NTT_NUMPY_BITS,
    NTT_SIZES,
    PRG_BYTES,
    PRG_SEED,
    RING_N,
    numpy_ntt_forward,
    prg_buffers,
    prg_reference,
    prg_status,
    ring_operands,
    seal_ntt_us,
)
from .registry import (
    EXIT_FAILED,
    EXIT_USAGE,
    GB,
    REGISTRY,
    Benchmark,
    best_time,
    kernel_isa,
    known_names,
    main,
    paired_times,
    register,
    render_table,
    resolve,
    result,
    run,
    set_order,
    time_once,
)
from .secure import (
    CONV_SHAPE,
    CONV_WEIGHT,
    DENOISE_SIGMA,
    FILTER_IMAGE,
    FILTER_KERNEL,
    MUL_N,
    RELU_N,
    filter_image,
    plaintext_conv_nchw,
)
from .transport import TRANSPORT_BYTES, Link, transport_certs, transport_payload

# The order of the table and of a full run: the order in which the benchmarks were added,
# issue by issue (a benchmark missing here follows these in registration order).
TABLE_ORDER = (
    "ring_add",
    "ring_mul",
    "prg",
    "transport_tls",
    "filter_512",
    "gemm",
    "mul_1m",
    "mul_1m_rss3",
    "conv_layer",
    "conv_layer_nodealer",
    "he_filter_256",
    "gc_garble",
    "ot",
    "relu_1m",
    "relu_1m_rss3",
    "denoise_256",
    "denoise_256_rss3",
    "denoise_512",
    "store_put",
    "store_query_100k",
    *(f"ntt_{n}" for n in kernels.NTT_SIZES),
    *(f"he_mul_{n}" for n in he.HE_MUL_BITS),
)
set_order(TABLE_ORDER)

__all__ = [
    "CONV_SHAPE",
    "CONV_WEIGHT",
    "DENOISE_SIGMA",
    "EXIT_FAILED",
    "EXIT_USAGE",
    "FILTER_IMAGE",
    "FILTER_KERNEL",
    "GB",
    "GC_BATCH",
    "GC_K",
    "GEMM_N",
    "HE_MUL_BITS",
    "HE_MUL_REPEATS",
    "HE_MUL_T_BITS",
    "MUL_N",
    "NTT_NUMPY_BITS",
    "NTT_SIZES",
    "OT_N",
    "PRG_BYTES",
    "PRG_SEED",
    "REGISTRY",
    "RELU_N",
    "RING_N",
    "TABLE_ORDER",
    "TRANSPORT_BYTES",
    "Benchmark",
    "Link",
    "best_time",
    "filter_image",
    "garbling",
    "gc_stream_seconds",
    "he",
    "he_mul_workload",
    "kernel_isa",
    "kernels",
    "known_names",
    "main",
    "numpy_ntt_forward",
    "paired_times",
    "plaintext_conv_nchw",
    "prg_buffers",
    "prg_reference",
    "prg_status",
    "register",
    "render_table",
    "resolve",
    "result",
    "ring_operands",
    "run",
    "seal_ntt_us",
    "secure",
    "set_order",
    "store",
    "time_once",
    "transport",
    "transport_certs",
    "transport_payload",
]
