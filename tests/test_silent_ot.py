"""Silent OT (issue 18): GGM single-point COTs and the LPN local code against numpy
references on every ISA path, the correlation of the extension, the sender's view, a dead peer."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from kernel_helpers import on_every_isa, run_both
from safelight import _core, ot
from safelight.errors import PeerUnavailableError
from safelight.ot import silent

pytestmark = pytest.mark.kernels

# small iterations for tests: 8 trees of depth 6 (512 outputs) from 64 + 48 base COTs
SMALL = silent.LpnParams(n=512, k=64, trees=8, depth=6)
SMALL_BOOT = silent.LpnParams(n=256, k=32, trees=8, depth=5)
LEFT = hashlib.sha256(b"safelight silent ggm left v1").digest()[:16]
RIGHT = hashlib.sha256(b"safelight silent ggm right v1").digest()[:16]


def _aes(key: bytes, blocks: np.ndarray) -> np.ndarray:
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return np.frombuffer(enc.update(blocks.tobytes()) + enc.finalize(), np.uint64).reshape(-1, 2)


def _tree(root: np.ndarray, depth: int) -> list[np.ndarray]:
    """Every level of the GGM tree in numpy (level 0: the root)."""
    levels = [root.reshape(1, 2)]
    for _ in range(depth):
        x = levels[-1]
        children = np.empty((2 * len(x), 2), np.uint64)
        children[0::2], children[1::2] = _aes(LEFT, x) ^ x, _aes(RIGHT, x) ^ x
        levels.append(children)
    return levels


def _blocks(rng, n):
    return rng.integers(0, 2**64, (n, 2), dtype=np.uint64)


def _lpn_reference(base, seed, row_begin, rows):
    enc = Cipher(algorithms.AES(bytes(seed)), modes.ECB()).encryptor()
    counters = np.arange(3 * row_begin, 3 * (row_begin + rows), dtype=np.uint64)
    blocks = np.zeros((len(counters), 2), np.uint64)
    blocks[:, 1] = counters.byteswap()  # nonce 0 || big-endian counter
    words = np.frombuffer(enc.update(blocks.tobytes()), np.uint32).reshape(rows, 12)[:, :10]
    cols = (words.astype(np.uint64) * np.uint64(len(base))) >> np.uint64(32)
    return np.bitwise_xor.reduce(base[cols.astype(np.int64)], axis=1)


@settings(max_examples=10, deadline=None)
@given(st.integers(1, 9), st.integers(1, 5), st.integers(0, 2**32 - 1))
def test_ggm_trees_equal_the_numpy_tree_on_every_path(depth, trees, seed):
    rng = np.random.default_rng(seed)
    roots, delta = _blocks(rng, trees), _blocks(rng, 1)[0] | np.array([1, 0], np.uint64)

    def check(_isa):
        leaves = np.empty((trees << depth, 2), np.uint64)
        sums = np.empty((trees * depth * 2, 2), np.uint64)
        psi = np.empty((trees, 2), np.uint64)
        _core.silent_ggm_expand(roots, depth, delta, leaves, sums, psi, 1)
        for t in range(trees):
            levels = _tree(roots[t], depth)
            expected = levels[-1] & silent.LSB_MASK
            np.testing.assert_array_equal(leaves[t << depth : (t + 1) << depth], expected)
            for lv in range(depth):
                got = sums[2 * (depth * t + lv) : 2 * (depth * t + lv) + 2]
                want = [np.bitwise_xor.reduce(levels[lv + 1][side::2], axis=0) for side in (0, 1)]
                np.testing.assert_array_equal(got, np.stack(want))
            np.testing.assert_array_equal(psi[t], np.bitwise_xor.reduce(expected, axis=0) ^ delta)

    on_every_isa(check)


@settings(max_examples=10, deadline=None)
@given(st.integers(1, 9), st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_the_punctured_tree_gives_every_leaf_and_delta_at_alpha(depth, trees, seed):
    rng = np.random.default_rng(seed)
    roots, delta = _blocks(rng, trees), _blocks(rng, 1)[0] | np.array([1, 0], np.uint64)
    leaves = np.empty((trees << depth, 2), np.uint64)
    sums = np.empty((trees * depth, 2, 2), np.uint64)
    psi = np.empty((trees, 2), np.uint64)
    _core.silent_ggm_expand(roots, depth, delta, leaves, sums, psi, 1)
    alphas = rng.integers(0, 1 << depth, trees).astype(np.uint32)
    bits = (alphas[:, None] >> np.arange(depth - 1, -1, -1)) & 1  # the path's side per level
    keys = np.ascontiguousarray(sums[np.arange(trees * depth), (1 - bits).reshape(-1)])
    expected = leaves.copy()
    expected[(np.arange(trees) << depth) + alphas] ^= delta

    def check(_isa):
        got = np.empty_like(leaves)
        _core.silent_ggm_punctured(keys, alphas, psi, depth, got, 1)
        np.testing.assert_array_equal(got, expected)
        assert ((got[:, 0] & 1) == 0).sum() == len(got) - trees  # lsb = 1 exactly at the alphas

    on_every_isa(check)


@settings(max_examples=10, deadline=None)
@given(st.integers(1, 5000), st.integers(0, 3000), st.integers(1, 700), st.integers(0, 2**32 - 1))
def test_lpn_encode_equals_the_numpy_code_on_every_path(k, row_begin, rows, seed):
    rng = np.random.default_rng(seed)
    base = _blocks(rng, k)
    matrix_seed = rng.integers(0, 256, 16, dtype=np.uint8)
    start = _blocks(rng, rows)
    expected = start ^ _lpn_reference(base, matrix_seed, row_begin, rows)

    def check(_isa):
        out = start.copy()
        _core.silent_lpn_encode(base, matrix_seed, row_begin, out, 1)
        np.testing.assert_array_equal(out, expected)

    on_every_isa(check)


def _pair(params=SMALL, bootstrap=SMALL_BOOT, timeout=30):
    a, b = ot.pipe_pair(timeout=timeout)
    sender = silent.SilentSender(params=params, bootstrap=bootstrap)
    receiver = silent.SilentReceiver(params=params, bootstrap=bootstrap)
    run_both(lambda: sender.setup(a), lambda: receiver.setup(b))
    return sender, receiver, a, b


def test_extension_gives_correlated_ots_across_iterations(isa):
    sender, receiver, _, _ = _pair()
    delta = sender.delta
    assert delta[0] & 1 == 1
    for n in (10, 1000, 3 * SMALL.n, 1):  # within, across and many iterations
        z, (w, x) = run_both(lambda n=n: sender.extend(n), lambda n=n: receiver.extend(n))
        assert z.shape == w.shape == (n, 2) and ((z[:, 0] & 1) == 0).all()
        np.testing.assert_array_equal(w, z ^ (x.astype(np.uint64)[:, None] * delta[None, :]))
    assert sender.iteration >= 4


def test_main_parameters_give_a_fraction_of_a_bit_per_ot():
    p = silent.MAIN
    assert p.n - p.base == 10_001_981
    bits = (2 * p.trees * p.depth + p.trees) * 128 / (p.n - p.base)
    assert bits < 0.45
    assert silent.BOOTSTRAP.n >= p.base


def test_choices_are_balanced_and_the_senders_view_is_the_same_for_any_receiver():
    """The receiver sends nothing after the IKNP bootstrap, whose view is tested in test_ot;
    its choices come out uniform, and the sender's blocks do not depend on them."""
    sender, receiver, _, _ = _pair()
    z, (w, x) = run_both(lambda: sender.extend(20_000), lambda: receiver.extend(20_000))
    counts = np.bincount(x, minlength=2)
    assert stats.chisquare(counts).pvalue > 1e-4
    ones = np.unpackbits(z.view(np.uint8), bitorder="little").reshape(len(z), 128)[:, 1:].mean(axis=0)
    assert np.abs(ones - 0.5).max() < 0.02
    for bit in (0, 1):  # the sender's blocks look alike whatever the receiver's choice
        part = np.unpackbits(z[x == bit].view(np.uint8)).mean()
        assert abs(part - 127 / 256) < 0.01


def test_a_peer_dying_mid_extension_gives_a_clear_error():
    sender, receiver, a, b = _pair(timeout=1.0)
    sender.extend(SMALL.n - SMALL.base + 5, a)  # leaves the receiver behind: its tree message waits
    # the sender is gone: the receiver's next iteration sees its first message, then silence
    receiver.extend(SMALL.n - SMALL.base, b)
    a.close()
    with pytest.raises(PeerUnavailableError, match="silent OT iteration"):
        receiver.extend(SMALL.n, b)
