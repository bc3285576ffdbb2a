"""The arithmetic around the sign primitive (B2A, select, max trees, bitonic sorting), checked
in-process with the garbled-circuit sign replaced by an insecure test double that computes the
same boolean shares from both parties' inputs. The real sign protocol is tested in test_gc_ops."""

import threading

import numpy as np
import pytest

import safelight
from protocol_sim import simulate
from safelight.program.program import Program
from safelight.protocols import gc_sign


@pytest.fixture
def fake_sign(monkeypatch):
    """Both parties deposit their share; each gets a random XOR share of the sign bit."""
    lock = threading.Lock()
    board = {}
    barriers = {}

    def sign_bit_shares(ctx, x, bits, key):
        with lock:
            board[ctx.party] = x
            barrier = barriers.setdefault("b", threading.Barrier(ctx.parties, timeout=30))
        barrier.wait()
        total = sum(board.values()).astype(np.uint64)  # wraps mod 2^64
        neg = (total.view(np.int64) < 0).astype(np.uint64)
        rng = np.random.default_rng(int(total.reshape(-1)[0]) % 2**32 if total.size else 0)
        r = rng.integers(0, 2, size=total.shape).astype(np.uint64)
        barrier.wait()
        return [r, neg ^ r, np.zeros_like(r)][ctx.party]

    monkeypatch.setattr(gc_sign, "sign_bit_shares", sign_bit_shares)
    monkeypatch.setattr(gc_sign, "prepare", lambda ctx, key, size, bits: None)


def run(build, values, parties):
    p = Program(parties)
    t = {k: p.input(k, v.shape) for k, v in values.items()}
    p.output(build(p, t), "out")
    outs, _ = simulate(p, {k: safelight.encode(v, parties) for k, v in values.items()})
    return safelight.decode(outs["out"], np.float64)


@pytest.mark.parametrize("parties", [2, 3])
def test_relu_less_logic(fake_sign, parties):
    x = np.array([-3.5, -1e-4, 0.0, 1e-4, 2.25, 1000.0, -1000.0])
    y = np.array([0.0, 0.0, 0.0, 1.0, 2.25, -5.0, 7.0])
    got = run(lambda p, t: p.relu(t["x"]), {"x": x}, parties)
    np.testing.assert_allclose(got, np.maximum(x, 0), atol=2**-16)
    got = run(lambda p, t: p.less(t["x"], t["y"]), {"x": x, "y": y}, parties)
    np.testing.assert_array_equal(got, (x < y).astype(float))


@pytest.mark.parametrize("parties", [2, 3])
def test_max_pool_sort_topk_logic(fake_sign, parties):
    rng = np.random.default_rng(parties)
    x = np.round(rng.uniform(-50, 50, (2, 3, 6, 9)), 3)
    got = run(lambda p, t: p.max_pool2d(t["x"], 3), {"x": x}, parties)
    ref = x.reshape(2, 3, 2, 3, 3, 3).max(axis=(3, 5))
    np.testing.assert_allclose(got, ref, atol=2**-16)
    got = run(lambda p, t: p.max_pool2d(t["x"], 2, stride=1), {"x": x}, parties)
    ref = np.max([x[:, :, i : i + 5, j : j + 8] for i in range(2) for j in range(2)], axis=0)
    np.testing.assert_allclose(got, ref, atol=2**-16)
    v = np.round(rng.uniform(-50, 50, (3, 8)), 3)
    v[0, :3] = v[0, 3]  # ties
    got = run(lambda p, t: p.sort(t["v"]), {"v": v}, parties)
    np.testing.assert_allclose(got, np.sort(v, axis=-1), atol=2**-16)
    got = run(lambda p, t: p.topk(t["v"], 3), {"v": v}, parties)
    np.testing.assert_allclose(got, -np.sort(-v, axis=-1)[:, :3], atol=2**-16)
