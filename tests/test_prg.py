"""PRG engine: AES-128-CTR keystream, every instruction-set path against `cryptography`.

The keystream of ``_core.prg_fill(key, out, nonce, counter)`` must equal, byte for
byte, AES-128-CTR of zero bytes with IV = nonce (8 bytes big-endian) || counter
(8 bytes big-endian), on every path in ``_core.available_isas()``.
"""

from __future__ import annotations

import contextlib
import os
import random

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from safelight import _core

pytestmark = pytest.mark.kernels

ISAS = list(_core.available_isas())
U64_MAX = 2**64 - 1
MIB = 1 << 20
SIZES = [0, 1, 15, 16, 17, 63, 64, 65, 127, 128, 129, 255, 256, 511, 512, 513, 1000, 4096, 4097, MIB + 13]


def reference(key: bytes, nonce: int, counter: int, nbytes: int) -> bytes:
    iv = nonce.to_bytes(8, "big") + counter.to_bytes(8, "big")
    return Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor().update(b"\0" * nbytes)


def blocks(nbytes: int) -> int:
    return (nbytes + 15) // 16


def last_counter(nbytes: int) -> int:
    """Largest counter prg_fill accepts for nbytes: counter + blocks must stay <= 2^64 - 1."""
    return U64_MAX - blocks(nbytes)


@contextlib.contextmanager
def using(isa: str):
    """Runs the body on one path, then restores the path that was active."""
    original = _core.isa()
    _core.set_isa(isa)
    try:
        yield isa
    finally:
        _core.set_isa(original)


@pytest.fixture(params=ISAS)
def isa(request):
    with using(request.param) as name:
        yield name


def fill_bytes(key: bytes, nbytes: int, nonce: int, counter: int, pad: int = 0) -> bytes:
    """prg_fill into the middle of a guarded bytearray (unaligned when pad is odd)."""
    guard = 7
    buf = bytearray(b"\xa5" * (pad + nbytes + guard))
    view = memoryview(buf)[pad : pad + nbytes]
    _core.prg_fill(key, view, nonce, counter)
    assert buf[:pad] == b"\xa5" * pad, "wrote before the buffer"
    assert buf[pad + nbytes :] == b"\xa5" * guard, "wrote past the end of the buffer"
    return bytes(buf[pad : pad + nbytes])


# ---------------------------------------------------------------------------
# Byte-for-byte equality with cryptography
# ---------------------------------------------------------------------------


def test_known_answer(isa):
    # FIPS-197 appendix C.1 key; CTR block 0 = AES_k(00112233...eeff).
    key = bytes(range(16))
    nonce = int.from_bytes(bytes.fromhex("0011223344556677"), "big")
    counter = int.from_bytes(bytes.fromhex("8899aabbccddeeff"), "big")
    out = bytearray(16)
    _core.prg_fill(key, out, nonce, counter)
    assert out.hex() == "69c4e0d86a7b0430d8cdb78070b4c55a"


@pytest.mark.parametrize("nbytes", SIZES)
def test_matches_cryptography_sizes(isa, nbytes):
    rng = random.Random(nbytes)
    key = rng.randbytes(16)
    nonce = rng.getrandbits(64)
    top = last_counter(nbytes)
    for counter in (0, 1, rng.getrandbits(32), 2**32 - 1, rng.randrange(top + 1), top):
        got = fill_bytes(key, nbytes, nonce, counter, pad=counter % 3)
        assert got == reference(key, nonce, counter, nbytes), (isa, nbytes, counter)


@pytest.mark.parametrize("nbytes", [1, 16, 17, 4096, MIB + 13])
def test_counter_up_to_the_last_block(isa, nbytes):
    key = os.urandom(16)
    nonce = U64_MAX  # all-ones nonce: a carry out of the counter would be visible
    counter = last_counter(nbytes)
    assert fill_bytes(key, nbytes, nonce, counter, pad=1) == reference(key, nonce, counter, nbytes)


def test_threaded_fill_equals_serial_pieces(isa):
    # >= 1 MiB is split over threads at 4096-byte boundaries; the pieces must
    # line up with fills that each start at their own block counter.
    key, nonce, counter = os.urandom(16), 12345, 2**40 + 3
    nbytes = 3 * MIB + 4096 + 5
    whole = fill_bytes(key, nbytes, nonce, counter)
    piece = MIB - 4096  # under the threading threshold, multiple of 16
    parts = []
    for off in range(0, nbytes, piece):
        n = min(piece, nbytes - off)
        parts.append(fill_bytes(key, n, nonce, counter + off // 16))
    assert whole == b"".join(parts)
    assert whole == reference(key, nonce, counter, nbytes)


def test_every_path_agrees():
    key, nonce, counter, nbytes = os.urandom(16), 99, 2**63 - 7, 3 * 4096 + 77
    outs = {}
    for name in ISAS:
        with using(name):
            outs[name] = fill_bytes(key, nbytes, nonce, counter)
    assert len(set(outs.values())) == 1, sorted(outs)


@st.composite
def fill_cases(draw):
    nbytes = draw(st.one_of(st.integers(0, 300), st.integers(0, 5000)))
    top = last_counter(nbytes)
    counter = draw(
        st.one_of(
            st.integers(0, top),
            st.integers(0, 64).map(lambda d: top - d),  # near 2^64
            st.integers(2**32 - 64, 2**32 + 64),  # crossing a 32-bit boundary
        )
    )
    key = draw(st.binary(min_size=16, max_size=16))
    nonce = draw(st.integers(0, U64_MAX))
    pad = draw(st.integers(0, 63))
    return key, nonce, counter, nbytes, pad


@pytest.mark.parametrize("isa_name", ISAS)
@settings(max_examples=60, deadline=None)
@given(case=fill_cases())
def test_matches_cryptography_hypothesis(isa_name, case):
    key, nonce, counter, nbytes, pad = case
    with using(isa_name):
        got = fill_bytes(key, nbytes, nonce, counter, pad=pad)
    assert got == reference(key, nonce, counter, nbytes)


# ---------------------------------------------------------------------------
# In-place fills of numpy arrays and bytearrays
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("count", [0, 1, 2, 3, 8, 511, 513, (MIB + 64) // 8])
def test_fills_uint64_array_in_place(isa, count):
    key, nonce, counter = os.urandom(16), 7, 2**50 + 1
    arr = np.full(count, 0xDEADBEEF, dtype=np.uint64)
    before = arr.ctypes.data
    assert _core.prg_fill(key, arr, nonce, counter) is None
    assert arr.ctypes.data == before
    expected = np.frombuffer(reference(key, nonce, counter, 8 * count), dtype="<u8")
    np.testing.assert_array_equal(arr, expected)


def test_fills_2d_and_other_dtypes(isa):
    key, nonce, counter = os.urandom(16), 2**63, 5
    arr = np.zeros((33, 7), dtype=np.uint64)
    _core.prg_fill(key, arr, nonce, counter)
    assert arr.tobytes() == reference(key, nonce, counter, arr.nbytes)
    u8 = np.zeros(1001, dtype=np.uint8)
    _core.prg_fill(key, u8, nonce, counter)
    assert u8.tobytes() == reference(key, nonce, counter, 1001)
    u32 = np.zeros(77, dtype=np.uint32)[1:]  # contiguous, offset by 4 bytes
    _core.prg_fill(key, u32, nonce, counter)
    assert u32.tobytes() == reference(key, nonce, counter, u32.nbytes)


def test_fills_bytearray_in_place(isa):
    key, nonce, counter = os.urandom(16), 1, 0
    buf = bytearray(4097)
    _core.prg_fill(key, buf, nonce, counter)
    assert bytes(buf) == reference(key, nonce, counter, 4097)
    buf2 = bytearray(100)
    _core.prg_fill(key, memoryview(buf2)[3:50], nonce, counter)
    assert buf2[:3] == bytes(3) and buf2[50:] == bytes(50)
    assert bytes(buf2[3:50]) == reference(key, nonce, counter, 47)


def test_defaults_are_nonce_zero_counter_zero(isa):
    key = os.urandom(16)
    buf = bytearray(100)
    _core.prg_fill(key, buf)
    assert bytes(buf) == reference(key, 0, 0, 100)
    _core.prg_fill(seed=key, out=buf, nonce=3, counter=4)
    assert bytes(buf) == reference(key, 3, 4, 100)


def test_same_inputs_same_stream_different_inputs_differ(isa):
    key = os.urandom(16)
    a, b = fill_bytes(key, 256, 1, 0), fill_bytes(key, 256, 1, 0)
    assert a == b
    assert fill_bytes(key, 256, 2, 0) != a
    assert fill_bytes(key, 256, 1, 1)[:240] == a[16:]
    assert fill_bytes(bytes(16) if key != bytes(16) else b"\1" * 16, 256, 1, 0) != a


# ---------------------------------------------------------------------------
# Rejections
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 1, 15, 17, 32])
def test_rejects_wrong_seed_length(isa, length):
    buf = bytearray(32)
    with pytest.raises(ValueError):
        _core.prg_fill(b"k" * length, buf)
    assert buf == bytearray(32)


def test_rejects_read_only_buffers(isa):
    key = os.urandom(16)
    with pytest.raises((TypeError, BufferError)):
        _core.prg_fill(key, b"\0" * 32)
    with pytest.raises((TypeError, BufferError)):
        _core.prg_fill(key, memoryview(bytearray(32)).toreadonly())
    ro = np.zeros(4, dtype=np.uint64)
    ro.flags.writeable = False
    # numpy itself refuses a writable view of a read-only array with ValueError.
    with pytest.raises((TypeError, BufferError, ValueError)):
        _core.prg_fill(key, ro)
    assert not ro.any()


def test_rejects_non_contiguous(isa):
    arr = np.zeros((4, 4), dtype=np.uint64)
    with pytest.raises(TypeError):
        _core.prg_fill(os.urandom(16), arr[:, ::2])
    assert not arr.any()


@pytest.mark.parametrize("nbytes", [1, 16, 17, 4096, MIB + 13])
def test_rejects_counter_wrap(isa, nbytes):
    key = os.urandom(16)
    buf = bytearray(nbytes)
    last_ok = last_counter(nbytes)
    for counter in (last_ok + 1, U64_MAX):
        with pytest.raises(ValueError):
            _core.prg_fill(key, buf, 0, counter)
    assert buf == bytearray(nbytes)
    _core.prg_fill(key, buf, 0, last_ok)  # the very last block is still allowed


def test_empty_fill_at_top_counter_is_allowed(isa):
    _core.prg_fill(os.urandom(16), bytearray(0), U64_MAX, U64_MAX)


@pytest.mark.parametrize("nonce,counter", [(-1, 0), (0, -1), (2**64, 0), (0, 2**64)])
def test_rejects_out_of_range_nonce_or_counter(nonce, counter):
    with pytest.raises((TypeError, ValueError, OverflowError)):
        _core.prg_fill(os.urandom(16), bytearray(16), nonce, counter)
