"""BFV engine: round trips for every encryption mode and plaintext modulus, ciphertext
and plaintext arithmetic against a naive negacyclic product mod t, the dot-product
kernel path by path against the scalar reference, mod switching, noise budgets and
loud failure when they run out, noise flooding (statistical independence of the
noise from the plaintext multiplier), serialisation, and clear errors."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from kernel_helpers import with_isa
from safelight import _core
from safelight.errors import InputError, ProtocolError
from safelight.he import bfv, ntt_primes

SEED = bytes(range(16))


def seed(i):
    return bytes([i % 256]) * 16


def negacyclic_mod(a, b, t):
    """a * b mod (X^n + 1, t) for t = 2^k <= 2^64: uint64 convolution wraps mod 2^64."""
    a = np.asarray(a, dtype=np.uint64)
    b = np.asarray(b, dtype=np.uint64)
    n = len(a)
    full = np.convolve(a, b)
    c = full[:n].copy()
    c[: n - 1] -= full[n:]
    return c & np.uint64(t - 1) if t < 1 << 64 else c


def rand_plain(rng, shape, t):
    if t == 1 << 64:
        return rng.integers(0, 2**64, shape, dtype=np.uint64)
    return rng.integers(0, t, shape, dtype=np.uint64)


def crt(rows, primes):
    """(k, n) residues -> list of Python ints mod q."""
    q = 1
    for p in primes:
        q *= p
    total = [0] * rows.shape[1]
    for i, p in enumerate(primes):
        qi = q // p
        coef = qi * pow(qi, -1, p)
        col = rows[i].tolist()
        total = [(a + c * coef) % q for a, c in zip(total, col)]
    return total, q


def noise_of(ctx, batch, sk, messages):
    """Centred noise x - round(q m / t) of every coefficient (Python ints), level 0."""
    x = ctx.phase(batch, sk)
    primes = ctx.params.q[: x.shape[1]]
    out = []
    t = ctx.t
    for j in range(batch.count):
        vals, q = crt(x[j], primes)
        for c, m in zip(vals, messages[j].tolist()):
            e = (c - (q * int(m) + t // 2) // t) % q
            out.append(e - q if e > q // 2 else e)
    return out


@pytest.fixture(scope="module")
def ctx16():
    ctx = bfv.Context(bfv.Params(4096, q_bits=[36, 36, 37], t=2**16))
    sk = ctx.keygen(seed(1))
    return ctx, sk, ctx.public_key(sk, seed(2))


@pytest.fixture(scope="module")
def ctx64():
    ctx = bfv.Context(bfv.Params(8192, q_bits=[54, 54, 54, 54], t=2**64))
    sk = ctx.keygen(seed(3))
    return ctx, sk, ctx.public_key(sk, seed(4))


SMALL = {
    16: bfv.Params(1024, q_bits=[50, 50], t=2**16, allow_insecure=True),
    32: bfv.Params(2048, q_bits=[45, 45, 45], t=2**32, allow_insecure=True),
    64: bfv.Params(2048, q_bits=[60, 60, 60, 60], t=2**64, allow_insecure=True),
}


@pytest.fixture(scope="module")
def small():
    out = {}
    for bits, p in SMALL.items():
        ctx = bfv.Context(p)
        sk = ctx.keygen(seed(bits))
        out[bits] = (ctx, sk, ctx.public_key(sk, seed(bits + 1)))
    return out


# ---------------------------------------------------------------------------
# parameters
# ---------------------------------------------------------------------------
def test_params_choose_distinct_ntt_primes_and_count_security_bits():
    p = bfv.Params(8192, q_bits=[60, 60, 38], special_bits=[60], t=2**20)
    assert len(set(p.q + p.special)) == 4
    for q in p.q + p.special:
        assert q % (2 * 8192) == 1
    assert [q.bit_length() for q in p.q] == [60, 60, 38] and p.special[0].bit_length() == 60
    assert p.modulus_bits <= 218 and p.secure


@pytest.mark.parametrize(
    "n,bits", [(1024, [28]), (4096, [55, 55]), (8192, [60, 60, 60, 40]), (16384, [60] * 7 + [40]), (2048, [30, 25])]
)
def test_insecure_parameters_refused(n, bits):
    with pytest.raises(InputError, match="128-bit security"):
        bfv.Params(n, q_bits=bits, t=2**8)
    assert not bfv.Params(n, q_bits=bits, t=2**8, allow_insecure=True).secure


def test_special_primes_count_towards_security():
    bfv.Params(4096, q_bits=[54, 54], t=2**16)  # 108 bits
    with pytest.raises(InputError, match="security"):
        bfv.Params(4096, q_bits=[54, 54], special_bits=[30], t=2**16)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(n=1000, q_bits=[30], t=2**8), "power of two"),
        (dict(n=4096, q_bits=[30], t=2**65), "2\\*\\*64"),
        (dict(n=4096, q_bits=[30], t=3), "prime"),
        (dict(n=4096, q_bits=[30], t=12), "power of two"),
        (dict(n=4096, q_bits=[30, 30], t=2**55), "at least 8 bits"),
        (dict(n=4096, q_bits=[62], t=2**8), "bit sizes"),
        (dict(n=4096, q_primes=[12289], t=2**2), "not 1 mod"),
        (dict(n=4096, q_primes=[40961, 40961], t=2**2, allow_insecure=True), "distinct"),
        (dict(n=4096, t=2**8), "exactly one"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(InputError, match=match):
        bfv.Params(**kwargs)


def test_key_repr_hides_material(ctx16):
    ctx, sk, pk = ctx16
    assert "secret" in repr(sk) and str(int(sk._data[0, 0])) not in repr(sk)
    assert str(int(pk._data[0, 0, 0])) not in repr(pk)


# ---------------------------------------------------------------------------
# encryption round trips
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("bits", [16, 32, 64])
@pytest.mark.parametrize("mode", ["sk", "sk_unseeded", "pk"])
@pytest.mark.parametrize("ntt", [False, True])
def test_round_trip_small(small, bits, mode, ntt):
    ctx, sk, pk = small[bits]
    rng = np.random.default_rng(bits)
    v = rand_plain(rng, (3, ctx.n), ctx.t)
    key = pk if mode == "pk" else sk
    b = ctx.encrypt_coeffs(v, key, seeded=mode == "sk", ntt=ntt)
    assert b.data.shape == (3, 2, ctx.num_q, ctx.n) and b.ntt == ntt and b.level == 0
    assert (b.seeds is not None) == (mode == "sk")
    np.testing.assert_array_equal(ctx.decrypt_coeffs(b, sk), v)
    assert (ctx.invariant_noise_budget(b, sk) > 0).all()


@pytest.mark.parametrize("fixture", ["ctx16", "ctx64"])
def test_round_trip_secure_sizes(request, fixture):
    ctx, sk, pk = request.getfixturevalue(fixture)
    rng = np.random.default_rng(5)
    v = rand_plain(rng, (2, ctx.n), ctx.t)
    for key in (sk, pk):
        b = ctx.encrypt_coeffs(v, key)
        np.testing.assert_array_equal(ctx.decrypt_coeffs(b, sk), v)
    # short polynomials are zero-padded; negative values are taken mod t
    b = ctx.encrypt([-1, 2, -3], sk)
    out = ctx.decrypt(b, sk)
    t = ctx.t
    assert out[:3].tolist() == [t - 1, 2, t - 3] and not out[3:].any()


def test_noise_budget_of_fresh_ciphertexts_like_seal(ctx16, ctx64):
    # log2 q - log2 t - (a few bits of fresh noise)
    for ctx, sk, pk in (ctx16, ctx64):
        b = ctx.encrypt_coeffs(np.zeros((1, ctx.n), np.uint64), sk)
        budget = int(ctx.invariant_noise_budget(b, sk)[0])
        room = ctx.log2_q() - ctx.params.t_bits
        assert room - 12 <= budget <= room
        bp = ctx.encrypt_coeffs(np.zeros((1, ctx.n), np.uint64), pk)
        assert room - 20 <= int(ctx.invariant_noise_budget(bp, sk)[0]) < budget


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.integers(-(2**63), 2**64 - 1), min_size=1, max_size=1024),
    st.binary(min_size=16, max_size=16),
    st.sampled_from([16, 32, 64]),
)
def test_round_trip_property(small, values, rseed, bits):
    ctx, sk, pk = small[bits]
    ints = [v % ctx.t for v in values]
    b = ctx.encrypt(np.array(ints, dtype=np.uint64), sk, seed=rseed)
    out = ctx.decrypt(b, sk)
    assert out[: len(ints)].tolist() == ints and not out[len(ints) :].any()


def test_seeded_encryption_is_reproducible_and_identical_across_isas(small):
    ctx, sk, pk = small[64]
    v = rand_plain(np.random.default_rng(1), (2, ctx.n), ctx.t)
    ref = ctx.encrypt_coeffs(v, sk, seed=SEED)
    ref_pk = ctx.encrypt_coeffs(v, pk, seed=SEED)
    for isa in _core.available_isas():
        b = with_isa(isa, lambda: ctx.encrypt_coeffs(v, sk, seed=SEED))
        np.testing.assert_array_equal(b.data, ref.data)
        np.testing.assert_array_equal(b.seeds, ref.seeds)
        bp = with_isa(isa, lambda: ctx.encrypt_coeffs(v, pk, seed=SEED))
        np.testing.assert_array_equal(bp.data, ref_pk.data)
        np.testing.assert_array_equal(with_isa(isa, lambda: ctx.decrypt_coeffs(ref, sk)), v)
    other = ctx.encrypt_coeffs(v, sk, seed=seed(9))
    assert not np.array_equal(other.data, ref.data)


# ---------------------------------------------------------------------------
# arithmetic
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("bits", [16, 32, 64])
def test_add_sub_negate_plain_ops(small, bits):
    ctx, sk, pk = small[bits]
    t = ctx.t
    rng = np.random.default_rng(bits + 7)
    a, b, p = (rand_plain(rng, (2, ctx.n), t) for _ in range(3))
    ca, cb = ctx.encrypt_coeffs(a, sk), ctx.encrypt_coeffs(b, pk)
    mask = np.uint64(t - 1) if t < 1 << 64 else np.uint64(2**64 - 1)
    np.testing.assert_array_equal(ctx.decrypt_coeffs(ctx.add(ca, cb), sk), (a + b) & mask)
    np.testing.assert_array_equal(ctx.decrypt_coeffs(ctx.sub(ca, cb), sk), (a - b) & mask)
    np.testing.assert_array_equal(ctx.decrypt_coeffs(ctx.negate(ca), sk), (np.uint64(0) - a) & mask)
    np.testing.assert_array_equal(ctx.decrypt_coeffs(ctx.add_plain(ca, p), sk), (a + p) & mask)
    np.testing.assert_array_equal(ctx.decrypt_coeffs(ctx.sub_plain(ca, p), sk), (a - p) & mask)
    # NTT form gives the same answers
    na, nb = ctx.to_ntt(ca), ctx.to_ntt(cb)
    assert na.ntt and na.seeds is not None
    np.testing.assert_array_equal(ctx.decrypt_coeffs(ctx.add(na, nb), sk), (a + b) & mask)
    np.testing.assert_array_equal(ctx.decrypt_coeffs(ctx.add_plain(na, p[0]), sk), (a + p[0]) & mask)
    np.testing.assert_array_equal(ctx.from_ntt(na).data, ca.data)


@pytest.mark.parametrize("bits", [16, 32, 64])
@pytest.mark.parametrize("ntt", [False, True])
def test_multiply_plain_matches_negacyclic_product(small, bits, ntt):
    ctx, sk, pk = small[bits]
    t = ctx.t
    rng = np.random.default_rng(bits * 3 + ntt)
    m = rand_plain(rng, (2, ctx.n), t)
    # full-size plaintexts (any value mod t) and a sparse one
    p = rand_plain(rng, (2, ctx.n), t)
    ct = ctx.encrypt_coeffs(m, pk, ntt=ntt)
    out = ctx.multiply_plain(ct, p)
    assert out.ntt == ntt
    got = ctx.decrypt_coeffs(out, sk)
    for j in range(2):
        np.testing.assert_array_equal(got[j], negacyclic_mod(m[j], p[j], t))
    # one plaintext for the whole batch, as a PlaintextBatch
    pt = ctx.encode_plain_ntt(p[0])
    got = ctx.decrypt_coeffs(ctx.multiply_plain(ct, pt), sk)
    np.testing.assert_array_equal(got[1], negacyclic_mod(m[1], p[0], t))


def test_multiply_plain_by_full_range_z2_64_keeps_budget(ctx64):
    """With the exact scaling round(q m / t), a product by a 64-bit plaintext costs about
    log2(n 2^63) bits of budget, not all of it (floor(q/t) m would add (q mod t) p)."""
    ctx, sk, pk = ctx64
    rng = np.random.default_rng(11)
    m = rand_plain(rng, (1, ctx.n), ctx.t)
    p = rand_plain(rng, (1, ctx.n), ctx.t)
    ct = ctx.encrypt_coeffs(m, sk)
    before = int(ctx.invariant_noise_budget(ct, sk)[0])
    out = ctx.multiply_plain(ct, p)
    after = int(ctx.invariant_noise_budget(out, sk)[0])
    assert before - 80 <= after <= before - 60
    np.testing.assert_array_equal(ctx.decrypt_coeffs(out, sk)[0], negacyclic_mod(m[0], p[0], ctx.t))


# ---------------------------------------------------------------------------
# dot_plain
# ---------------------------------------------------------------------------
def _dot_case(ctx, sk, m_in, k_out, rng):
    t = ctx.t
    m = rand_plain(rng, (m_in, ctx.n), t)
    w = rand_plain(rng, (k_out, m_in, ctx.n), t)
    if t == 1 << 64:  # keep the sum's noise small enough for the smaller test moduli
        w = w >> np.uint64(40)
    cts = ctx.to_ntt(ctx.encrypt_coeffs(m, sk))
    pts = ctx.encode_plain_ntt(w)
    return m, w, cts, pts


@pytest.mark.parametrize("bits", [16, 64])
def test_dot_plain_matches_naive(small, bits):
    ctx, sk, pk = small[bits]
    t = ctx.t
    rng = np.random.default_rng(21)
    m, w, cts, pts = _dot_case(ctx, sk, 5, 3, rng)
    assert pts.data.shape == (3, 5, ctx.num_q, ctx.n)
    out = ctx.dot_plain(cts, pts)
    assert out.data.shape == (3, 2, ctx.num_q, ctx.n) and out.ntt
    got = ctx.decrypt_coeffs(out, sk)
    for j in range(3):
        ref = np.zeros(ctx.n, np.uint64)
        for i in range(5):
            ref += negacyclic_mod(m[i], w[j, i], t)
        if t < 1 << 64:
            ref &= np.uint64(t - 1)
        np.testing.assert_array_equal(got[j], ref)


# primes on both sides of every kernel boundary: IFMA (< 2^50), 61-bit AVX-512
DOT_PRIMES = {"ifma": [49, 48, 45], "wide": [61, 60, 55], "mixed": [61, 49]}


@pytest.mark.parametrize("which", sorted(DOT_PRIMES))
@pytest.mark.parametrize("m_in", [1, 15, 16, 17, 33, 40])
def test_dot_plain_every_path_matches_scalar(which, m_in):
    """Random residues (not ciphertexts): every lazy-reduction boundary, every path bit-exact."""
    params = bfv.Params(2048, q_bits=DOT_PRIMES[which], t=2**16, allow_insecure=True)
    ctx = bfv.Context(params)
    k = ctx.num_q
    rng = np.random.default_rng(m_in)
    primes = np.array(params.q, dtype=np.uint64)[None, None, :, None]
    # values up to q - 1, including the largest
    ct = rng.integers(0, 2**63, (m_in, 2, k, ctx.n), dtype=np.uint64) % primes
    pt = rng.integers(0, 2**63, (3, m_in, k, ctx.n), dtype=np.uint64) % primes
    ct[..., :8] = primes[..., 0][..., None] - np.uint64(1)
    pt[..., :8] = primes[..., 0][..., None] - np.uint64(1)
    cts = bfv.CiphertextBatch(ctx, ct, 0, True)
    pts = bfv.PlaintextBatch(pt, 0, True)
    ref = with_isa("scalar", lambda: ctx.dot_plain(cts, pts, threads=False).data)
    # independent check of one output row in Python integers
    for i, q in enumerate(params.q):
        x = 5
        expect = sum(int(ct[r, 1, i, x]) * int(pt[2, r, i, x]) for r in range(m_in)) % q
        assert int(ref[2, 1, i, x]) == expect
    for isa in _core.available_isas():
        for threads in (False, True):
            got = with_isa(isa, lambda: ctx.dot_plain(cts, pts, threads=threads).data)
            np.testing.assert_array_equal(got, ref, err_msg=f"isa {isa} threads {threads}")
    if "avx512" in _core.available_isas():
        paths = with_isa("avx512", lambda: ctx.dot_paths)
        assert all(p in ("avx512", "avx512ifma") for p in paths)
        if _core.ntt_has_ifma():
            assert [p == "avx512ifma" for p in paths] == [q < 2**50 for q in params.q]


def test_dot_plain_validation(small):
    ctx, sk, pk = small[16]
    rng = np.random.default_rng(0)
    m, w, cts, pts = _dot_case(ctx, sk, 2, 2, rng)
    with pytest.raises(InputError, match="NTT form"):
        ctx.dot_plain(ctx.from_ntt(cts), pts)
    with pytest.raises(InputError, match="shape"):
        ctx.dot_plain(cts[:1], pts)
    with pytest.raises(InputError, match="PlaintextBatch"):
        ctx.dot_plain(cts, pts.data)


# ---------------------------------------------------------------------------
# levels, noise
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("ntt", [False, True])
def test_mod_switch_keeps_message(ctx64, ntt):
    ctx, sk, pk = ctx64
    rng = np.random.default_rng(3)
    v = rand_plain(rng, (2, ctx.n), ctx.t)
    p = rand_plain(rng, (1, ctx.n), ctx.t)  # noise ~2^80: well above the rounding floor of one switch
    b = ctx.multiply_plain(ctx.encrypt_coeffs(v, pk, ntt=ntt), p)
    expect = np.stack([negacyclic_mod(v[j], p[0], ctx.t) for j in range(2)])
    budgets = [int(ctx.invariant_noise_budget(b, sk)[0])]
    for level in (1, 2):
        b = ctx.mod_switch_to_next(b)
        assert b.level == level and b.data.shape[2] == ctx.num_q - level and b.ntt == ntt
        np.testing.assert_array_equal(ctx.decrypt_coeffs(b, sk), expect)
        budgets.append(int(ctx.invariant_noise_budget(b, sk)[0]))
    # the budget is kept while the noise is well above the rounding floor (first switch),
    # then the rounding term ~||s|| q'/q_last dominates
    assert budgets[1] >= budgets[0] - 2 and budgets[2] < budgets[1]
    # operations at lower levels: plaintexts encoded for that level
    pt = ctx.encode_plain_ntt(np.ones((1, 1), np.uint64), level=2)
    assert pt.data.shape == (1, ctx.num_q - 2, ctx.n)
    np.testing.assert_array_equal(ctx.decrypt_coeffs(ctx.multiply_plain(b, pt), sk), expect)
    with pytest.raises(InputError, match="level"):
        ctx.multiply_plain(b, ctx.encode_plain_ntt(np.ones((1, 1), np.uint64)))
    b3 = ctx.mod_switch_to_next(b)
    with pytest.raises(InputError, match="last level"):
        ctx.mod_switch_to_next(b3)


def test_noise_budget_decreases_then_decryption_raises(ctx16):
    ctx, sk, pk = ctx16
    rng = np.random.default_rng(8)
    v = rand_plain(rng, (2, ctx.n), ctx.t)
    b = ctx.encrypt_coeffs(v, pk)
    p = rand_plain(rng, (1, ctx.n), ctx.t)
    expect = v.copy()
    budgets = [int(ctx.invariant_noise_budget(b, sk).min())]
    while budgets[-1] > 0:
        b = ctx.multiply_plain(b, p)
        expect = np.stack([negacyclic_mod(e, p[0], ctx.t) for e in expect])
        budgets.append(int(ctx.invariant_noise_budget(b, sk).min()))
        if budgets[-1] > 0:
            np.testing.assert_array_equal(ctx.decrypt_coeffs(b, sk), expect)
    assert all(x > y for x, y in zip(budgets, budgets[1:])) and len(budgets) >= 3
    with pytest.raises(bfv.NoiseBudgetExhaustedError, match="noise budget"):
        ctx.decrypt_coeffs(b, sk)
    assert issubclass(bfv.NoiseBudgetExhaustedError, ProtocolError)
    # one more product: the values are garbage, and still refused
    b = ctx.multiply_plain(b, p)
    expect = np.stack([negacyclic_mod(e, p[0], ctx.t) for e in expect])
    assert not np.array_equal(ctx.decrypt_coeffs(b, sk, check=False), expect)
    with pytest.raises(bfv.NoiseBudgetExhaustedError):
        ctx.decrypt_coeffs(b, sk)


def test_random_data_is_refused(ctx16):
    ctx, sk, pk = ctx16
    b = ctx.encrypt_coeffs(np.zeros((2, ctx.n), np.uint64), sk)
    primes = np.array(ctx.params.q, dtype=np.uint64)[None, None, :, None]
    junk = np.random.default_rng(2).integers(0, 2**63, b.data.shape, dtype=np.uint64) % primes
    with pytest.raises(bfv.NoiseBudgetExhaustedError):
        ctx.decrypt_coeffs(bfv.CiphertextBatch(ctx, junk, 0, False), sk)
    assert (ctx.invariant_noise_budget(bfv.CiphertextBatch(ctx, junk, 0, False), sk) == 0).all()


def test_noise_budget_matches_measured_noise(small):
    ctx, sk, pk = small[16]
    v = rand_plain(np.random.default_rng(4), (1, ctx.n), ctx.t)
    b = ctx.multiply_plain(ctx.encrypt_coeffs(v, pk), v)
    m = ctx.decrypt_coeffs(b, sk)
    worst = max(abs(e) for e in noise_of(ctx, b, sk, m))
    q = 1
    for p in ctx.params.q:
        q *= p
    # v = t x mod q ~ t e: budget = floor(log2(q / (2 |t e|)))
    expect = math.floor(math.log2(q) - math.log2(worst * ctx.t) - 1)
    assert abs(int(ctx.invariant_noise_budget(b, sk)[0]) - expect) <= 1


# ---------------------------------------------------------------------------
# re-randomisation and noise flooding
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("ntt", [False, True])
def test_rerandomize_keeps_message(ctx16, ntt):
    ctx, sk, pk = ctx16
    v = rand_plain(np.random.default_rng(6), (2, ctx.n), ctx.t)
    b = ctx.encrypt_coeffs(v, sk, ntt=ntt)
    for flood in (0, 40, 70, ctx.max_flood_bits()):
        r = ctx.rerandomize(b, pk, flood_bits=flood)
        assert r.seeds is None and r.ntt == ntt
        assert not np.array_equal(r.data, b.data)
        np.testing.assert_array_equal(ctx.decrypt_coeffs(r, sk), v)
        if flood:
            assert int(ctx.invariant_noise_budget(r, sk).max()) <= ctx.log2_q() - ctx.params.t_bits - flood
    with pytest.raises(InputError, match="flood_bits"):
        ctx.rerandomize(b, pk, flood_bits=ctx.max_flood_bits() + 1)


def test_flooding_hides_the_plaintext_multiplier(ctx16):
    """After a product by a large or by a unit plaintext, the noise distributions differ
    plainly (KS test); after flooding with 2^70 they cannot be told apart."""
    ctx, sk, pk = ctx16
    rng = np.random.default_rng(12)
    v = rand_plain(rng, (2, ctx.n), ctx.t)
    ct = ctx.encrypt_coeffs(v, pk)
    big = rand_plain(rng, (1, ctx.n), ctx.t)
    unit = np.zeros((1, ctx.n), np.uint64)
    unit[0, 0] = 1
    results = {}
    for flood in (0, 70):
        noises = []
        for p in (big, unit):
            out = ctx.rerandomize(ctx.multiply_plain(ct, p), pk, flood_bits=flood, seed=seed(flood + int(p[0, 1])))
            m = ctx.decrypt_coeffs(out, sk)
            noises.append(np.array([float(e) for e in noise_of(ctx, out, sk, m)]))
        results[flood] = stats.ks_2samp(noises[0], noises[1]).pvalue
        if flood:
            # uniform on [-2^70, 2^70): spread as expected
            assert abs(np.std(noises[0]) / (2**70 / np.sqrt(3)) - 1) < 0.05
    assert results[0] < 1e-12
    assert results[70] > 1e-3


# ---------------------------------------------------------------------------
# serialisation
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("ntt", [False, True])
def test_serialisation_round_trip_and_seeded_size(ctx16, ntt):
    ctx, sk, pk = ctx16
    v = rand_plain(np.random.default_rng(7), (3, ctx.n), ctx.t)
    seeded = ctx.encrypt_coeffs(v, sk, ntt=ntt)
    plain = ctx.encrypt_coeffs(v, sk, ntt=ntt, seeded=False)
    for b in (seeded, plain):
        raw = b.to_bytes()
        assert len(raw) == b.nbytes
        back = ctx.batch_from_bytes(raw)
        np.testing.assert_array_equal(back.data, b.data)
        assert back.ntt == ntt and back.level == 0
        np.testing.assert_array_equal(ctx.decrypt_coeffs(back, sk), v)
    assert seeded.nbytes < 0.51 * plain.nbytes
    # a sub-batch keeps its seeds
    one = ctx.batch_from_bytes(seeded[1].to_bytes())
    np.testing.assert_array_equal(ctx.decrypt_coeffs(one, sk)[0], v[1])
    # derived batches are sent in full
    switched = ctx.mod_switch_to_next(plain)
    np.testing.assert_array_equal(ctx.batch_from_bytes(switched.to_bytes()).data, switched.data)


def test_serialisation_rejects_bad_input(ctx16, small):
    ctx, sk, pk = ctx16
    raw = ctx.encrypt_coeffs(np.zeros((1, 4), np.uint64), sk, seeded=False).to_bytes()
    with pytest.raises(InputError, match="bytes"):
        ctx.batch_from_bytes(raw[:-8])
    with pytest.raises(InputError, match="magic"):
        ctx.batch_from_bytes(b"X" + raw[1:])
    other = small[16][0]
    with pytest.raises(InputError, match="other BFV parameters"):
        other.batch_from_bytes(raw)
    bad = bytearray(raw)
    bad[-8:] = b"\xff" * 8
    with pytest.raises(InputError, match="reduced"):
        ctx.batch_from_bytes(bytes(bad))


def test_public_key_serialisation(ctx16):
    ctx, sk, pk = ctx16
    raw = pk.to_bytes()
    assert len(raw) < 0.51 * pk._data.nbytes + 64
    pk2 = bfv.PublicKey.from_bytes(ctx, raw)
    np.testing.assert_array_equal(pk2._data, pk._data)
    v = rand_plain(np.random.default_rng(1), (1, ctx.n), ctx.t)
    np.testing.assert_array_equal(ctx.decrypt_coeffs(ctx.encrypt_coeffs(v, pk2), sk), v)


# ---------------------------------------------------------------------------
# validation at the boundary
# ---------------------------------------------------------------------------
def test_operand_checks(small):
    ctx, sk, pk = small[16]
    a = ctx.encrypt_coeffs(np.zeros((2, 4), np.uint64), sk)
    with pytest.raises(InputError, match="form"):
        ctx.add(a, ctx.to_ntt(a))
    with pytest.raises(InputError, match="level"):
        ctx.add(a, ctx.mod_switch_to_next(a))
    with pytest.raises(InputError, match="at most n"):
        ctx.encrypt(np.zeros(ctx.n + 1, np.uint64), sk)
    with pytest.raises(InputError, match="integers"):
        ctx.encrypt(np.zeros(4, np.float64), sk)
    with pytest.raises(InputError, match="SecretKey"):
        ctx.decrypt_coeffs(a, pk)
    with pytest.raises(InputError, match="16 bytes"):
        ctx.encrypt_coeffs(np.zeros((1, 4), np.uint64), sk, seed=b"short")
    other_ctx, other_sk, _ = small[32]
    with pytest.raises(InputError, match="other BFV parameters"):
        ctx.decrypt_coeffs(a, other_sk)


# ---------------------------------------------------------------------------
# milestone 2: ciphertext products, relinearisation, rotations, batching
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def batching():
    n = 4096
    t = ntt_primes(20, n, 1)[0]
    ctx = bfv.Context(bfv.Params(n, q_bits=[36, 36], special_bits=[37], t=t))
    sk = ctx.keygen(seed(40))
    return ctx, sk, ctx.public_key(sk, seed(41)), ctx.relin_key(sk, seed(42)), ctx.galois_keys(sk, seed=seed(43))


@pytest.fixture(scope="module")
def mul64():
    """t = 2^64 (Z_2^64) coefficient encoding with room for one product (insecure size)."""
    ctx = bfv.Context(bfv.Params(2048, q_bits=[60, 60, 60], special_bits=[60], t=2**64, allow_insecure=True))
    sk = ctx.keygen(seed(50))
    return ctx, sk, ctx.relin_key(sk, seed(51))


def mod_t(x, t):
    return (x.astype(object) % t).astype(np.uint64)


@pytest.mark.parametrize("ntt", [False, True])
def test_multiply_and_relinearize_coefficients(mul64, ntt):
    ctx, sk, rk = mul64
    rng = np.random.default_rng(60 + ntt)
    a, b = rand_plain(rng, (2, ctx.n), ctx.t), rand_plain(rng, (2, ctx.n), ctx.t)
    ca, cb = ctx.encrypt_coeffs(a, sk, ntt=ntt), ctx.encrypt_coeffs(b, sk, ntt=ntt)
    expect = np.stack([negacyclic_mod(a[j], b[j], ctx.t) for j in range(2)])
    fresh = int(ctx.invariant_noise_budget(ca, sk).min())
    prod = ctx.multiply(ca, cb)
    assert prod.size == 3 and prod.ntt == ntt
    np.testing.assert_array_equal(ctx.decrypt_coeffs(prod, sk), expect)  # size 3 decrypts with s^2
    after_mul = int(ctx.invariant_noise_budget(prod, sk).min())
    rel = ctx.relinearize(prod, rk)
    assert rel.size == 2 and rel.ntt == ntt
    np.testing.assert_array_equal(ctx.decrypt_coeffs(rel, sk), expect)
    after_relin = int(ctx.invariant_noise_budget(rel, sk).min())
    # a product costs about log2(t n) bits; relinearisation with P_s >= q_i almost nothing
    assert fresh - 100 < after_mul < fresh - 64
    assert after_mul - 3 <= after_relin <= after_mul
    np.testing.assert_array_equal(ctx.decrypt_coeffs(ctx.multiply(ca, cb, rk), sk), expect)
    sq = ctx.square(ca, rk)
    np.testing.assert_array_equal(ctx.decrypt_coeffs(sq, sk)[1], negacyclic_mod(a[1], a[1], ctx.t))


def test_multiply_matches_big_integer_reference(small):
    """The scaled tensor product round(t/q (a x b)) coefficient by coefficient, exactly."""
    ctx = bfv.Context(bfv.Params(1024, q_bits=[50, 50], special_bits=[50], t=2**16, allow_insecure=True))
    sk = ctx.keygen(seed(1))
    rng = np.random.default_rng(2)
    ca = ctx.encrypt_coeffs(rand_plain(rng, (1, ctx.n), ctx.t), sk)
    cb = ctx.encrypt_coeffs(rand_plain(rng, (1, ctx.n), ctx.t), sk)
    prod = ctx.multiply(ca, cb)
    primes = ctx.params.q
    q = primes[0] * primes[1]

    def lift(rows):
        vals, _ = crt(rows, primes)
        return [v - q if v > q // 2 else v for v in vals]

    def negmul(x, y):
        full = np.convolve(np.array(x, dtype=object), np.array(y, dtype=object))
        r = full[: ctx.n].copy()
        r[: ctx.n - 1] -= full[ctx.n :]
        return r

    a0, a1 = lift(ca.data[0, 0]), lift(ca.data[0, 1])
    b0, b1 = lift(cb.data[0, 0]), lift(cb.data[0, 1])
    tensor = [negmul(a0, b0), negmul(a0, b1) + negmul(a1, b0), negmul(a1, b1)]
    for i in range(3):
        expect = [(2 * ctx.t * int(x) + q) // (2 * q) for x in tensor[i]]  # round(t x / q)
        got = lift(prod.data[0, i])
        # exact mod q, up to the documented +-1 of the fixed-point rounding
        diffs = [(g - e) % q for g, e in zip(got, expect)]
        assert max(min(d, q - d) for d in diffs) <= 1


def test_batch_encoding_round_trip_and_slotwise_products(batching):
    ctx, sk, pk, rk, gk = batching
    t, half = ctx.t, ctx.n // 2
    rng = np.random.default_rng(70)
    a = rng.integers(0, t, (3, 2, half), dtype=np.uint64)
    b = rng.integers(0, t, (3, 2, half), dtype=np.uint64)
    np.testing.assert_array_equal(ctx.decode_batch(ctx.encode_batch(a)), a)
    flat = a.reshape(3, ctx.n)
    np.testing.assert_array_equal(ctx.decode_batch(ctx.encode_batch(flat)), a)
    ca, cb = ctx.encrypt_batch(a, sk), ctx.encrypt_batch(b, pk)
    np.testing.assert_array_equal(ctx.decrypt_batch(ca, sk), a)
    np.testing.assert_array_equal(ctx.decrypt_batch(ctx.add(ca, cb), sk), mod_t(a.astype(object) + b, t))
    np.testing.assert_array_equal(ctx.decrypt_batch(ctx.multiply(ca, cb, rk), sk), mod_t(a.astype(object) * b, t))
    # plaintext products act slot by slot too
    np.testing.assert_array_equal(
        ctx.decrypt_batch(ctx.multiply_plain(ca, ctx.encode_batch(b)), sk), mod_t(a.astype(object) * b, t)
    )


@pytest.mark.parametrize("steps", [1, 3, -1, -6, 5, 1000, 2047])
def test_rotate_rows(batching, steps):
    ctx, sk, pk, rk, gk = batching
    a = np.random.default_rng(steps % 97).integers(0, ctx.t, (1, 2, ctx.n // 2), dtype=np.uint64)
    ca = ctx.encrypt_batch(a, sk)
    r = ctx.rotate_rows(ca, steps, gk)
    np.testing.assert_array_equal(ctx.decrypt_batch(r, sk), np.roll(a, -steps, axis=2))
    assert 0 < int(ctx.invariant_noise_budget(r, sk)[0]) < int(ctx.invariant_noise_budget(ca, sk)[0])


def test_rotate_columns_and_ntt_form(batching):
    ctx, sk, pk, rk, gk = batching
    a = np.random.default_rng(3).integers(0, ctx.t, (2, 2, ctx.n // 2), dtype=np.uint64)
    ca = ctx.to_ntt(ctx.encrypt_batch(a, sk))
    r = ctx.rotate_columns(ca, gk)
    assert r.ntt
    np.testing.assert_array_equal(ctx.decrypt_batch(r, sk), a[:, ::-1])
    # a key for exactly the step is used directly (one switch instead of two)
    gk7 = ctx.galois_keys(sk, steps=[7], columns=False, seed=seed(9))
    assert gk7.elements == [pow(3, 7, 2 * ctx.n)]
    np.testing.assert_array_equal(ctx.decrypt_batch(ctx.rotate_rows(ca, 7, gk7), sk), np.roll(a, -7, axis=2))
    with pytest.raises(InputError, match="no Galois key"):
        ctx.rotate_rows(ca, 1, gk7)
    with pytest.raises(InputError, match="no Galois key"):
        ctx.rotate_columns(ca, gk7)


def test_noise_budget_through_products_then_refusal(batching):
    ctx, sk, pk, rk, gk = batching
    t = ctx.t
    a = np.random.default_rng(5).integers(0, t, (1, ctx.n), dtype=np.uint64)
    c = ctx.encrypt_batch(a, pk)
    expect = ctx.decode_batch(ctx.encode_batch(a))
    budgets = [int(ctx.invariant_noise_budget(c, sk)[0])]
    while budgets[-1] > 0:
        c = ctx.square(c, rk)
        expect = mod_t(expect.astype(object) ** 2, t)
        budgets.append(int(ctx.invariant_noise_budget(c, sk)[0]))
        if budgets[-1] > 0:
            np.testing.assert_array_equal(ctx.decrypt_batch(c, sk), expect)
    assert all(x > y for x, y in zip(budgets, budgets[1:])) and len(budgets) >= 2
    with pytest.raises(bfv.NoiseBudgetExhaustedError):
        ctx.decrypt_batch(c, sk)


@pytest.fixture(scope="module")
def bench8192():
    """The benchmark's parameters: n = 8192, q = 55 + 55 + 54 bits, P_s = 54 bits (218 in all)."""
    n = 8192
    ctx = bfv.Context(bfv.Params(n, q_bits=[55, 55, 54], special_bits=[54], t=ntt_primes(20, n, 1)[0]))
    sk = ctx.keygen(seed(80))
    return ctx, sk, ctx.relin_key(sk, seed(81))


def test_depth_two_circuit(bench8192):
    ctx, sk, rk = bench8192
    t = ctx.t
    rng = np.random.default_rng(9)
    a, b = (rng.integers(0, t, (1, 2, ctx.n // 2), dtype=np.uint64) for _ in range(2))
    ca, cb = ctx.encrypt_batch(a, sk), ctx.encrypt_batch(b, sk)
    abb = ctx.add(ctx.multiply(ctx.multiply(ca, cb, rk), cb, rk), ca)
    np.testing.assert_array_equal(ctx.decrypt_batch(abb, sk), mod_t(a.astype(object) * b * b + a, t))
    assert int(ctx.invariant_noise_budget(abb, sk)[0]) > 20


def test_multiply_after_mod_switch(bench8192):
    ctx, sk, rk = bench8192
    t = ctx.t
    rng = np.random.default_rng(6)
    a, b = (rng.integers(0, t, (1, ctx.n), dtype=np.uint64) for _ in range(2))
    ca = ctx.mod_switch_to_next(ctx.encrypt_batch(a, sk))
    cb = ctx.mod_switch_to_next(ctx.encrypt_batch(b, sk))
    assert ca.level == 1
    prod = ctx.multiply(ca, cb, rk)
    assert prod.level == 1
    expect = mod_t(ctx.decode_batch(ctx.encode_batch(a)).astype(object) * ctx.decode_batch(ctx.encode_batch(b)), t)
    np.testing.assert_array_equal(ctx.decrypt_batch(prod, sk), expect)


def test_products_and_switching_identical_on_every_path(batching, mul64):
    """Tensor product, base conversions, scaling and key switching: every ISA path
    bit-identical to the scalar reference (36/37-bit primes with IFMA dot products, and
    60-bit primes with a larger auxiliary base for t = 2^64)."""
    ctx, sk, pk, rk, gk = batching
    a = np.random.default_rng(8).integers(0, ctx.t, (2, ctx.n), dtype=np.uint64)
    ca = ctx.encrypt_batch(a, sk, seed=SEED)
    cb = ctx.encrypt_batch(a[::-1], sk, seed=SEED)
    ref = with_isa(
        "scalar", lambda: (ctx.multiply(ca, cb, rk).data, ctx.rotate_rows(ca, 3, gk).data, ctx.square(ca).data)
    )
    for isa in _core.available_isas():
        got = with_isa(
            isa, lambda: (ctx.multiply(ca, cb, rk).data, ctx.rotate_rows(ca, 3, gk).data, ctx.square(ca).data)
        )
        for g, r in zip(got, ref):
            np.testing.assert_array_equal(g, r, err_msg=isa)
    ctx, sk, rk = mul64
    x = rand_plain(np.random.default_rng(9), (2, ctx.n), ctx.t)
    cx = ctx.to_ntt(ctx.encrypt_coeffs(x, sk, seed=SEED))
    ref = with_isa("scalar", lambda: ctx.multiply(cx, cx[::-1], rk).data)
    for isa in _core.available_isas():
        np.testing.assert_array_equal(with_isa(isa, lambda: ctx.multiply(cx, cx[::-1], rk).data), ref, err_msg=isa)


def test_key_switching_needs_special_primes_and_batching_a_prime_t(small, batching):
    ctx, sk, pk = small[16]
    with pytest.raises(InputError, match="special"):
        ctx.relin_key(sk)
    with pytest.raises(InputError, match="special"):
        ctx.galois_keys(sk)
    with pytest.raises(InputError, match="prime t"):
        ctx.encode_batch(np.zeros(ctx.n, np.uint64))
    bctx, bsk, _, rk, gk = batching
    assert "RelinKey" in repr(rk) and "GaloisKeys" in repr(gk)
    with pytest.raises(InputError, match="RelinKey"):
        bctx.relinearize(bctx.multiply(*(2 * [bctx.encrypt_batch(np.zeros(bctx.n, np.uint64), bsk)])), gk)
    with pytest.raises(InputError, match="size 3"):
        bctx.relinearize(bctx.encrypt_batch(np.zeros(bctx.n, np.uint64), bsk), rk)
