"""Dealer-free correlated randomness (triples="he"): HE cross products for convolutions and
matrix products, checked on simulated parties and on real servers."""

import numpy as np
import pytest

from protocol_sim import simulate
from safelight import decode, encode
from safelight.program.program import Program
from safelight.protocols.preprocessing import Plan
from safelight.protocols.sources import randomness_source


def _program(x_shape, w_shape, op="conv2d", **kw):
    prog = Program(parties=2, truncation="local")
    x = prog.input("x", x_shape)
    w = prog.input("w", w_shape)
    prog.output(getattr(prog, op)(x, w, **kw), "y")
    return prog


def _both_ways(prog, inputs):
    """Outputs with dealt triples and with dealer-free ones (they differ only by the
    one-unit error of local truncation)."""
    dealt, _ = simulate(prog, inputs)
    free, ctxs = simulate(prog, inputs, dealer_free=True)
    return decode(dealt["y"], np.float64), decode(free["y"], np.float64), ctxs


@pytest.mark.parametrize("kw", [{"padding": 1}, {"stride": 2, "padding": 1}, {"groups": 2, "padding": (0, 1)}])
def test_dealer_free_convolution_matches_dealt(kw):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 4, 10, 9))
    w = rng.normal(size=(6, 4 // kw.get("groups", 1), 3, 3)) / 4
    dealt, free, _ = _both_ways(_program(x.shape, w.shape, **kw), {"x": encode(x, 2), "w": encode(w, 2)})
    np.testing.assert_allclose(free, dealt, atol=1e-3)


def test_dealer_free_matmul_matches_dealt():
    rng = np.random.default_rng(1)
    x, w = rng.normal(size=(3, 5, 40)), rng.normal(size=(40, 7))
    dealt, free, _ = _both_ways(_program(x.shape, w.shape, "matmul"), {"x": encode(x, 2), "w": encode(w, 2)})
    np.testing.assert_allclose(free, dealt, atol=1e-3)
    np.testing.assert_allclose(free, x @ w, atol=1e-2)


def test_dealer_free_source_is_registered_for_two_servers_only():
    source = randomness_source("he")
    assert not source.third_party
    prog = _program((1, 1, 4, 4), (1, 1, 3, 3), padding=1)
    assert Plan(prog.correlations())


def test_the_servers_exchange_only_ciphertexts_and_masked_values():
    """What party 1 receives about party 0's kernel share is ciphertexts under party 1's own
    key and masked decryptions: uniform bytes, whatever the secrets."""
    rng = np.random.default_rng(2)
    x, w = rng.normal(size=(1, 2, 6, 6)), rng.normal(size=(2, 2, 3, 3))
    _, _, ctxs = _both_ways(_program(x.shape, w.shape, padding=1), {"x": encode(x, 2), "w": encode(w, 2)})
    for received in ctxs[1].view:
        assert received.dtype in (np.uint8, np.uint64)


def _cross_views(x0, w1, monkeypatch=None, flood=None):
    """Run one packed cross product; return party 0's context state and the product
    ciphertexts it received (encrypted under its key, computed with party 1's w1)."""
    import queue
    import threading

    from protocol_sim import SimContext
    from safelight.he.packing import ConvPacking
    from safelight.protocols import he_products

    packing = ConvPacking.choose(x0.shape[0], x0.shape[1], x0.shape[2], w1.shape[0], 3, 3, he_products.RING_DEGREE)
    inboxes = [[queue.Queue() for _ in range(2)] for _ in range(2)]
    ctxs = [SimContext(p, 2, inboxes) for p in range(2)]
    if flood is not None:
        monkeypatch.setattr(he_products, "flood_bits", lambda packing: flood)
        # and no modulus switching before sending, which would also drown the product noise
        monkeypatch.setattr(he_products, "RETURN_PRIMES", len(he_products.PRIME_BITS))
    zeros_x, zeros_w = np.zeros_like(x0), np.zeros_like(w1)
    args = [(x0, zeros_w), (zeros_x, w1)]  # party 0 holds x0, party 1 holds w1
    threads = [threading.Thread(target=he_products.cross_packed, args=(ctxs[p], packing, *args[p])) for p in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    from safelight.he import bfv

    state = ctxs[0].state["he_products"]
    # what party 0 received: c1 whole and c0 at the output coefficients, (count, k, n + m)
    got = ctxs[0].view[-1]
    n = packing.n
    positions = packing.output_positions().reshape(-1)
    rows = np.zeros((got.shape[0], 2, got.shape[1], n), dtype=np.uint64)
    rows[:, 1] = got[:, :, :n]
    rows[:, 0][:, :, positions] = got[:, :, n:]
    level = len(state["context"].params.q) - got.shape[1]  # switched down before sending
    products = bfv.CiphertextBatch(state["context"], rows, level, False)  # coefficient form
    return state, products, positions


def _noise_sample(state, products, positions, size=3000):
    """Centred decryption noise v = x - round(q m / t) of some output coefficients (big ints
    -> float): the only coefficients party 0 can decrypt."""
    context, sk = state["context"], state["sk"]
    phase = context.phase(products, sk)  # (count, k, n) residues
    message = context.decrypt_coeffs(products, sk, check=False)
    primes = [int(q) for q in context.params.q][: products.data.shape[2]]  # the primes left at its level
    q = 1
    for p in primes:
        q *= p
    t = 1 << 64
    rng = np.random.default_rng(5)
    total = phase.shape[0] * len(positions)
    picks = rng.choice(total, size=min(size, total), replace=False)  # distinct coefficients
    out = []
    for flat in picks:
        j, slot = divmod(int(flat), len(positions))
        i = int(positions[slot])
        x = 0
        for r, p in enumerate(primes):
            qi = q // p
            x += int(phase[j, r, i]) * qi * pow(qi, -1, p)
        x %= q
        v = (x - (q * int(message[j, i]) + t // 2) // t) % q
        out.append(float(v - q if v > q // 2 else v))
    return np.array(out)


def test_flooded_noise_does_not_depend_on_the_multiplier(monkeypatch):
    """Party 0 holds the secret key of the product ciphertexts: their noise must not tell it
    anything about party 1's kernel share (two-sample test: zero kernel vs a large one)."""
    from scipy.stats import ks_2samp

    rng = np.random.default_rng(3)
    x0 = rng.integers(0, 2**64, size=(2, 40, 40), dtype=np.uint64)  # 2 x 38 x 38 outputs to sample
    big = rng.integers(0, 2**64, size=(2, 2, 3, 3), dtype=np.uint64)
    a = _noise_sample(*_cross_views(x0, np.zeros_like(big)))
    b = _noise_sample(*_cross_views(x0, big))
    assert ks_2samp(a, b).pvalue > 1e-3
    # the test has power: without flooding the noise reveals the multiplier at once
    a0 = _noise_sample(*_cross_views(x0, np.zeros_like(big), monkeypatch, flood=0))
    b0 = _noise_sample(*_cross_views(x0, big, monkeypatch, flood=0))
    assert ks_2samp(a0, b0).pvalue < 1e-6


def test_dealer_free_network_with_relu_products_and_truncation_pairs():
    """A small CNN block (conv, ReLU, elementwise product, exact pair truncation) with no
    dealer: HE for the convolution, OT for the rest."""
    rng = np.random.default_rng(6)
    x = rng.normal(size=(1, 3, 8, 8))
    w = rng.normal(size=(4, 3, 3, 3)) / 3
    prog = Program(parties=2, truncation="pair")
    tx, tw = prog.input("x", x.shape), prog.input("w", w.shape)
    h = prog.relu(prog.conv2d(tx, tw, padding=1))
    prog.output(prog.mul(h, h), "y")
    dealt, free, _ = _both_ways(prog, {"x": encode(x, 2), "w": encode(w, 2)})
    np.testing.assert_allclose(free, dealt, atol=1e-3)


def test_private_kernel_filter_without_dealer_on_real_servers():
    from skimage import data

    from safelight.runtime.cluster import Cluster
    from safelight.tasks import filter as private_filter

    image = data.astronaut()[:40, :48]
    with Cluster.local(2) as cluster:  # no dealer process at all
        result = private_filter.run(image, "sharpen", cluster, private_kernel=True, no_dealer=True)
    assert result.job.triples == "he" and result.job.dealer is None
    assert np.abs(result.values - private_filter.plaintext(image, "sharpen")).max() < 2e-3


def test_denoising_without_dealer_matches_plaintext():
    """The whole FFDNet with no third party (HE convolution triples, OT products and
    truncation pairs, IKNP OTs for the garbled ReLUs), its material made layer by layer
    just before each layer (preprocess="per_op")."""
    from skimage import data

    from safelight.runtime.cluster import Cluster
    from safelight.tasks import denoise

    clean = data.astronaut()[200:216, 200:216]
    noisy = denoise.add_noise(clean, 25, seed=1)
    with Cluster.local(2) as cluster:
        denoise.upload(cluster)
        result = denoise.run(cluster, [noisy], 25, triples="he", preprocess="per_op")
    plain = denoise.plaintext([noisy], 25)[0]
    assert abs(denoise.psnr(result.images[0], clean) - denoise.psnr(plain, clean)) < 0.05
