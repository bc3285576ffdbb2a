"""Replicated secret sharing on three servers (scheme rss3): kernels, encoding, every op against
plaintext (in process and on real servers), the boolean circuits against plain bit logic, what
each server sees, and failures."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import safelight
from protocol_sim import SimContext, assert_views_alike, run_parties, simulate, view_bytes, wake_peers
from safelight import _core, ring
from safelight.errors import InputError, PeerUnavailableError, ProgramError
from safelight.program.program import Program
from safelight.protocols import replicated
from safelight.sharing import ReplicatedPayload, decode, encode

ISAS = _core.available_isas()
rng = np.random.default_rng(7)


@pytest.fixture
def each_isa():
    """Run the body once per instruction-set path this CPU has, then restore the best one."""
    yield ISAS
    _core.set_isa(ISAS[-1])


def _u64(n, seed=0):
    return np.random.default_rng(seed).integers(0, 2**64, size=n, dtype=np.uint64)


# ---- kernels: every path equals the scalar reference and the numpy definition --------------


@pytest.mark.parametrize("n", [0, 1, 63, 64, 65, 1000, 70_001])
def test_kernels_equal_their_definition_on_every_path(n, each_isa):
    x0, x1, y0, y1 = (_u64(n, s) for s in range(4))
    own, succ = b"o" * 16, b"s" * 16
    with np.errstate(over="ignore"):
        mul = x0 * (y0 + y1) + x1 * y0
        masked_mul = mul + ring.random(own, (n,)) - ring.random(succ, (n,))
    bit_and = (x0 & (y0 ^ y1)) ^ (x1 & y0)
    masked_and = bit_and ^ ring.random(own, (n,)) ^ ring.random(succ, (n,))
    for isa in each_isa:
        _core.set_isa(isa)
        assert np.array_equal(_core.rss_mul(x0, x1, y0, y1), mul), isa
        assert np.array_equal(_core.rss_and(x0, x1, y0, y1), bit_and), isa
        # the zero-sharing made block by block equals the one made from whole streams
        assert np.array_equal(_core.rss_mul_masked(x0, x1, y0, y1, own, succ), masked_mul), isa
        assert np.array_equal(_core.rss_and_masked(x0, x1, y0, y1, own, succ), masked_and), isa
        # written in place into row 0 of a caller's (2, n) buffer, row 1 untouched
        out = np.full((2, n), 7, dtype=np.uint64)
        _core.rss_mul_masked(x0, x1, y0, y1, own, succ, out=out[0])
        assert np.array_equal(out[0], masked_mul) and np.all(out[1] == 7), isa
        _core.rss_and_masked(x0, x1, y0, y1, own, succ, out=out[1])
        assert np.array_equal(out[1], masked_and) and np.array_equal(out[0], masked_mul), isa


@pytest.mark.parametrize("nbits", [1, 7, 24, 63, 64])
@pytest.mark.parametrize("n", [1, 64, 100, 4097])
def test_bit_planes_and_unpacking_invert_each_other_on_every_path(n, nbits, each_isa):
    values = _u64(n, nbits)
    reference = None
    for isa in each_isa:
        _core.set_isa(isa)
        planes = _core.bit_planes(values, nbits)
        assert planes.shape == (nbits, (n + 63) // 64)
        if reference is None:
            reference = planes
        assert np.array_equal(planes, reference), isa
        for j in range(nbits):
            bits = _core.unpack_bits(np.ascontiguousarray(planes[j]), n)
            assert np.array_equal(bits, (values >> np.uint64(j)) & np.uint64(1)), (isa, j)


def test_kernels_refuse_bad_arguments():
    with pytest.raises(ValueError):
        _core.rss_mul(_u64(3), _u64(4), _u64(3), _u64(3))
    with pytest.raises(TypeError):
        _core.rss_and(np.zeros(3), _u64(3), _u64(3), _u64(3))
    with pytest.raises(ValueError):
        _core.bit_planes(_u64(3), 65)
    with pytest.raises(ValueError):
        _core.unpack_bits(_u64(1), 65)
    with pytest.raises(ValueError, match="16 bytes"):
        _core.rss_mul_masked(_u64(3), _u64(3), _u64(3), _u64(3), b"short", b"s" * 16)
    seeds = (b"o" * 16, b"s" * 16)
    with pytest.raises(ValueError):  # an output buffer of another size
        _core.rss_mul_masked(_u64(3), _u64(3), _u64(3), _u64(3), *seeds, out=_u64(4))
    with pytest.raises(TypeError):  # not contiguous: the result would be lost
        _core.rss_mul_masked(_u64(3), _u64(3), _u64(3), _u64(3), *seeds, out=_u64(6)[::2])
    with pytest.raises(TypeError):  # not an array at all
        _core.rss_and_masked(_u64(3), _u64(3), _u64(3), _u64(3), *seeds, out=[0, 0, 0])
    read_only = _u64(3)
    read_only.flags.writeable = False
    with pytest.raises(TypeError):
        _core.rss_and_masked(_u64(3), _u64(3), _u64(3), _u64(3), *seeds, out=read_only)


# ---- encoding ------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-1000, 1000), min_size=1, max_size=50))
def test_replicated_encoding_round_trips_and_each_server_holds_two_shares(values):
    x = np.array(values)
    enc = encode(x, 3, scheme="rss3")
    assert enc.scheme == "rss3" and all(isinstance(p, ReplicatedPayload) for p in enc.payloads)
    shares = [p.materialize() for p in enc.payloads]
    for i in range(3):  # server i holds x_i and x_(i+1)
        assert np.array_equal(shares[i][1], shares[(i + 1) % 3][0])
    assert np.allclose(decode(enc), x, atol=2**-16)


def test_the_upload_is_two_tensors_and_four_seeds():
    enc = encode(np.zeros((32, 32)), 3, scheme="rss3")
    assert enc.upload_bytes == 2 * 32 * 32 * 8 + 4 * 16
    assert "seed" in repr(enc.payloads[0]) and str(enc.payloads[1].seeds[0].hex()) not in repr(enc.payloads[1])


def test_bad_scheme_arguments_are_refused():
    with pytest.raises(InputError):
        encode(np.zeros(3), 2, scheme="rss3")
    with pytest.raises(InputError):
        encode(np.zeros(3), 3, scheme="shamir")
    with pytest.raises(ProgramError):
        Program(2, scheme="rss3")


# ---- ops against plaintext, in process ---------------------------------------------------------


def _run(build, arrays, **kw):
    p = Program(3, scheme="rss3", **kw)
    tensors = {name: p.input(name, a.shape) for name, a in arrays.items()}
    for name, t in build(p, tensors).items():
        p.output(t, name)
    outs, ctxs = simulate(p, {name: encode(a, 3, scheme="rss3") for name, a in arrays.items()})
    return {name: decode(v) for name, v in outs.items()}, ctxs


UNIT = 2.0**-16


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 40), st.integers(0, 2**31))
def test_products_equal_plaintext(n, seed):
    g = np.random.default_rng(seed)
    x, y = g.uniform(-50, 50, (n, 3)), g.uniform(-50, 50, (n, 3))
    out, _ = _run(
        lambda p, t: {
            "mul": p.mul(t["x"], t["y"]),
            "square": p.square(t["x"]),
            "matmul": p.matmul(t["x"], p.transpose(t["y"])),
            "raw": p.mul(t["x"], t["y"], rescale=False),
        },
        {"x": x, "y": y},
    )
    xe, ye = np.round(x / UNIT) * UNIT, np.round(y / UNIT) * UNIT  # the encoded inputs
    assert np.allclose(out["raw"], xe * ye, atol=1e-9)
    assert np.all(np.abs(out["mul"] - xe * ye) <= UNIT)  # truncation: at most one unit
    assert np.all(np.abs(out["square"] - xe * xe) <= UNIT)
    assert np.all(np.abs(out["matmul"] - xe @ ye.T) <= UNIT)


@pytest.mark.parametrize(
    "geometry",
    [
        dict(stride=1, padding=1, dilation=1, groups=1),
        dict(stride=2, padding=0, dilation=1, groups=1),
        dict(stride=1, padding=2, dilation=2, groups=2),
        dict(stride=1, padding=1, dilation=1, groups=4),  # depthwise
    ],
)
def test_conv2d_equals_plaintext(geometry):
    x = rng.uniform(-2, 2, (1, 4, 9, 8))
    w = rng.uniform(-1, 1, (4, 4 // geometry["groups"], 3, 3))
    out, _ = _run(lambda p, t: {"y": p.conv2d(t["x"], t["w"], **geometry)}, {"x": x, "w": w})
    xe, we = np.round(x / UNIT) * UNIT, np.round(w / UNIT) * UNIT
    ref = ring.conv2d(
        fixed(xe, 16),
        fixed(we, 16),
        (geometry["stride"],) * 2,
        (geometry["padding"],) * 2,
        (geometry["dilation"],) * 2,
        geometry["groups"],
    )
    assert np.all(np.abs(out["y"] - ref.view(np.int64) / 2.0**32) <= UNIT)


def fixed(values, bits):
    return np.round(values * 2.0**bits).astype(np.int64).view(np.uint64)


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**31))
def test_truncation_is_exact_up_to_one_unit_on_edge_values(seed):
    g = np.random.default_rng(seed)
    edges = [0, 1, -1, 2**16 - 1, -(2**16), 2**40, -(2**40), 2**61 - 1, -(2**61)]
    raw = np.array(edges + list(g.integers(-(2**61), 2**61, 50)), dtype=np.int64)
    p = Program(3, scheme="rss3", frac_bits=0)
    x = p.input("x", raw.shape)
    p.output(p.apply("trunc_pair", [x], {"bits": 16}), "y")
    enc = safelight.sharing.Encoded(
        safelight.sharing.share_replicated(raw.view(np.uint64)), raw.shape, 0, "float64", "rss3"
    )
    outs, _ = simulate(p, {"x": enc})
    got = safelight.sharing.reconstruct(outs["y"].shares).view(np.int64)
    want = raw >> 16
    assert np.all((got == want) | (got == want + 1))  # the carry of the low bits: at most one unit


def test_relu_less_reveal_and_local_ops_equal_plaintext():
    x = np.concatenate([rng.uniform(-100, 100, 300), [0.0, -UNIT, UNIT, 127.9, -127.9]])
    y = rng.uniform(-100, 100, x.shape)
    out, _ = _run(
        lambda p, t: {
            "relu": p.relu(t["x"], bits=24),
            "relu64": p.relu(t["x"]),
            "less": p.less(t["x"], t["y"], bits=26),
            "reveal": p.reveal(t["x"]),
            "affine": p.add_public(p.rescale(p.mul_public(t["x"], 0.5)), 3.0),
            "sum": p.sum(t["x"]),
        },
        {"x": x, "y": y},
    )
    xe = np.round(x / UNIT) * UNIT
    assert np.array_equal(out["relu"], np.maximum(xe, 0))
    assert np.array_equal(out["relu64"], np.maximum(xe, 0))
    assert np.array_equal(out["less"], (xe < np.round(y / UNIT) * UNIT).astype(float))
    assert np.array_equal(out["reveal"], xe)
    assert np.all(np.abs(out["affine"] - (xe * 0.5 + 3.0)) <= UNIT)
    assert np.isclose(out["sum"][0], xe.sum())


def test_max_pool_sort_and_topk_equal_plaintext():
    x = rng.uniform(-10, 10, (1, 2, 6, 6))
    v = rng.uniform(-10, 10, (3, 8))
    out, _ = _run(
        lambda p, t: {
            "pool": p.max_pool2d(t["x"], 3, bits=24),
            "sort": p.sort(t["v"], bits=24),
            "desc": p.sort(t["v"], descending=True, bits=24),
            "top": p.topk(t["v"], 3, bits=24),
        },
        {"x": x, "v": v},
    )
    xe, ve = np.round(x / UNIT) * UNIT, np.round(v / UNIT) * UNIT
    pooled = xe.reshape(1, 2, 2, 3, 2, 3).max(axis=(3, 5))
    assert np.array_equal(out["pool"], pooled)
    assert np.array_equal(out["sort"], np.sort(ve, axis=-1))
    assert np.array_equal(out["desc"], np.sort(ve, axis=-1)[:, ::-1])
    assert np.array_equal(out["top"], np.sort(ve, axis=-1)[:, ::-1][:, :3])


@settings(max_examples=8, deadline=None)
@given(st.integers(1, 9), st.integers(1, 6), st.integers(0, 2**31))
def test_max_and_argmax_equal_numpy_with_ties(rows, cols, seed):
    x = np.round(np.random.default_rng(seed).uniform(-5, 5, (rows, cols)) * 2) / 2  # many ties
    out, _ = _run(
        lambda p, t: {
            "max": p.max(t["x"], bits=24),
            "argmax": p.argmax(t["x"], bits=24),
            "argmax0": p.argmax(t["x"], axis=0, bits=24),
        },
        {"x": x},
    )
    assert np.array_equal(out["max"], x.max(axis=-1))
    assert np.array_equal(out["argmax"], x.argmax(axis=-1).astype(float))  # the first of equal values
    assert np.array_equal(out["argmax0"], x.argmax(axis=0).astype(float))


@settings(max_examples=12, deadline=None)
@given(st.integers(1, 70), st.integers(1, 12), st.integers(1, 3), st.booleans(), st.integers(0, 2**31))
def test_smallest_k_with_indices_equals_numpy(n, k, rows, ties, seed):
    k = min(k, n)
    r = np.random.default_rng(seed)
    x = np.round(r.uniform(0, 4, (rows, n)) * 4) / 4 if ties else r.uniform(-8, 8, (rows, n))
    out, _ = _run(lambda p, t: {"near": p.smallest_k(t["x"], k, bits=24)}, {"x": x})
    near = out["near"]
    assert near.shape == (rows, 2, k)
    xe = np.round(x / UNIT) * UNIT
    values, idx = near[:, 0], near[:, 1]
    assert np.array_equal(values, np.sort(xe, axis=-1)[:, :k])  # the k smallest, ascending
    assert np.array_equal(idx, np.round(idx)) and idx.min() >= 0 and idx.max() < n
    picked = np.take_along_axis(xe, idx.astype(int), axis=-1)
    assert np.array_equal(picked, values)  # each index points at its value
    assert all(len(set(row)) == k for row in idx.astype(int))  # no index twice
    if not ties:
        assert np.array_equal(idx.astype(int), np.argsort(xe, axis=-1)[:, :k])


def test_take_gathers_rows_by_public_index_on_both_schemes():
    x = rng.uniform(-5, 5, (7, 3))
    idx = [6, 0, 0, 3]
    out, _ = _run(lambda p, t: {"rows": p.take(t["x"], idx)}, {"x": x})
    assert np.allclose(out["rows"], x[idx], atol=UNIT)
    p = Program(2)
    a = p.input("x", x.shape)
    p.output(p.take(a, idx), "rows")
    outs, _ = simulate(p, {"x": encode(x, 2)})
    assert np.allclose(decode(outs["rows"]), x[idx], atol=UNIT)
    for bad in ([], [7], [-1], ["0"], [True], 3):  # as a Program from the wire would carry them
        with pytest.raises(ProgramError, match="take"):
            p.apply("take", [a], {"indices": bad})


def test_smallest_k_refuses_a_k_outside_the_axis():
    p = Program(3, scheme="rss3")
    x = p.input("x", (5,))
    for k in (0, 6):
        with pytest.raises(ProgramError, match="k must be"):
            p.smallest_k(x, k)
    additive = Program(2)
    with pytest.raises(ProgramError, match="replicated shares only"):
        additive.smallest_k(additive.input("x", (5,)), 2)


def test_reciprocal_and_rsqrt_by_newton_equal_plaintext():
    x = np.concatenate([rng.uniform(0.01, 1000, 300), [2**-14, 0.5, 1.0, 1.5, 4096.0, 2.0**22 - 1]])
    out, _ = _run(lambda p, t: {"inv": p.reciprocal(t["x"]), "rsqrt": p.rsqrt(t["x"])}, {"x": x})
    xe = np.round(x / UNIT) * UNIT
    # a few units of the output's last place, or 1e-4 relative where the result is large
    assert np.all(np.abs(out["inv"] - 1 / xe) <= np.maximum(4 * UNIT, 1e-4 / xe))
    assert np.all(np.abs(out["rsqrt"] - 1 / np.sqrt(xe)) <= np.maximum(4 * UNIT, 1e-4 / np.sqrt(xe)))


def test_l2_normalisation_of_feature_vectors():
    v = rng.normal(0, 3, (5, 16))

    def build(p, t):
        inv_norm = p.rsqrt(p.sum(p.square(t["v"]), axes=(1,), keepdims=True))  # (5, 1)
        return {"unit": p.mul(t["v"], p.concat([inv_norm] * 16, axis=1))}

    out, _ = _run(build, {"v": v})
    want = v / np.linalg.norm(v, axis=1, keepdims=True)
    assert np.abs(out["unit"] - want).max() < 1e-3


def test_replicated_only_ops_are_refused_on_additive_programs():
    p = Program(2)
    x = p.input("x", (4,))
    for build in (p.max, p.argmax):
        with pytest.raises(ProgramError, match="replicated shares only"):
            build(x)
    for op in ("reciprocal", "rsqrt"):  # Program.rsqrt composes them from comparisons on additive shares
        with pytest.raises(ProgramError, match="replicated shares only"):
            p.apply(op, [x], {"frac_bits": 16})


def test_ops_without_a_replicated_protocol_are_refused_when_the_program_is_built():
    p = Program(3, scheme="rss3")
    x = p.input("x", (4,))
    with pytest.raises(ProgramError, match="ciphertexts"):
        p.apply("he_conv2d", [x], {})
    wire = Program(3, scheme="rss3")
    wire.output(wire.mul(wire.input("x", (4,)), wire.input("y", (4,))), "z")
    data = wire.to_json()
    data["steps"][0]["attrs"]["trunc_bits"] = 99
    with pytest.raises(ProgramError, match="trunc_bits"):
        Program.from_json(data)
    additive = Program(3).to_json()
    additive["steps"] = [dict(data["steps"][0], attrs={"trunc_bits": 16})]
    additive["inputs"] = data["inputs"]
    with pytest.raises(ProgramError, match="trunc_bits"):
        Program.from_json(additive)


# ---- the boolean circuit against plain bit logic -------------------------------------------------


@settings(max_examples=20, deadline=None)
@given(st.integers(2, 64), st.integers(0, 2**31))
def test_sign_circuit_equals_the_top_bit_of_x_mod_2_to_the_k(nbits, seed):
    g = np.random.default_rng(seed)
    bound = 2 ** (nbits - 1)
    values = np.concatenate([[0, 1, -1, bound - 1, -bound], g.integers(-bound, bound, 60, dtype=np.int64)])
    shares = safelight.sharing.share_replicated(values.astype(np.int64).view(np.uint64))
    results = [None] * 3

    def party(ctx, i):
        replicated.Replicated.start(ctx)
        ctx.step = 0
        planes = replicated.sign_planes(replicated.Session(ctx), shares[i].materialize(), nbits)
        results[i] = planes

    _three_parties(party)
    bits = np.bitwise_xor(np.bitwise_xor(results[0][0], results[1][0]), results[2][0])
    got = _core.unpack_bits(np.ascontiguousarray(bits), values.size)
    assert np.array_equal(got, (values < 0).astype(np.uint64))
    for i in range(3):  # replicated: server i's second share is server i+1's first
        assert np.array_equal(results[i][1], results[(i + 1) % 3][0])


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 300), st.integers(0, 2**31))
def test_and_gates_equal_plain_and(words, seed):
    g = np.random.default_rng(seed)
    a, b = g.integers(0, 2**64, words, dtype=np.uint64), g.integers(0, 2**64, words, dtype=np.uint64)

    def split(v):
        s0, s1 = g.integers(0, 2**64, words, dtype=np.uint64), g.integers(0, 2**64, words, dtype=np.uint64)
        s = [s0, s1, v ^ s0 ^ s1]
        return [np.stack([s[i], s[(i + 1) % 3]]) for i in range(3)]

    sa, sb = split(a), split(b)
    results = [None] * 3

    def party(ctx, i):
        replicated.Replicated.start(ctx)
        ctx.step = 0
        results[i] = replicated.and_gates(replicated.Session(ctx), sa[i], sb[i])

    _three_parties(party)
    assert np.array_equal(results[0][0] ^ results[1][0] ^ results[2][0], a & b)


def _three_parties(body):
    import queue

    inboxes = [[queue.Queue() for _ in range(3)] for _ in range(3)]
    ctxs = [SimContext(p, 3, inboxes) for p in range(3)]
    run_parties(range(3), lambda i: body(ctxs[i], i), lambda i: wake_peers(inboxes, i))
    return ctxs


# ---- what each server sees ---------------------------------------------------------------------------


def _views(x):
    p = Program(3, scheme="rss3")
    a = p.input("x", x.shape)
    p.output(p.relu(p.mul(a, a), bits=30), "y")
    _, ctxs = simulate(p, {"x": encode(x, 3, scheme="rss3")})
    return view_bytes(ctxs)


def test_each_servers_view_does_not_depend_on_the_secret():
    """Everything a server receives (keys, masked products, truncation parts, bits) looks the
    same for a secret of zeros and one of large values: byte frequencies agree (chi-square)."""
    n = 4096
    assert_views_alike(_views(np.zeros(n)), _views(np.full(n, 90.0)))


# ---- real servers ----------------------------------------------------------------------------------


def test_three_real_servers_run_products_and_relu_with_no_dealer_and_no_offline_phase():
    x, y = rng.uniform(-20, 20, 5000), rng.uniform(-20, 20, 5000)
    with safelight.Cluster.local(3, scheme="rss3") as cluster:
        assert cluster.scheme == "rss3" and not cluster.has_dealer
        p = Program(3, scheme="rss3")
        a, b = p.input("x", x.shape), p.input("y", y.shape)
        p.output(p.relu(p.mul(a, b), bits=30), "z")
        result = cluster.run(p, {"x": encode(x, 3, scheme="rss3"), "y": encode(y, 3, scheme="rss3")})
        xe, ye = np.round(x / UNIT) * UNIT, np.round(y / UNIT) * UNIT
        assert np.all(np.abs(decode(result.outputs["z"]) - np.maximum(xe * ye, 0)) <= UNIT)
        assert result.triples is None and result.dealer is None
        assert result.offline_seconds == 0.0  # nothing is prepared: key agreement counts as setup
        assert 0.0 < result.setup_seconds < result.wall_seconds
        for party in result.parties:  # one value per product, ~36 bytes per ReLU: nothing else
            assert party.peer_bytes_sent < 5000 * 60
        with pytest.raises(InputError, match="scheme"):
            cluster.run(p, {"x": encode(x, 3), "y": encode(y, 3)})


def test_a_model_uploaded_as_replicated_shares_is_used_by_a_job():
    w = rng.uniform(-1, 1, (4, 4))
    x = rng.uniform(-1, 1, (3, 4))
    with safelight.Cluster.local(3, scheme="rss3") as cluster:
        stored = cluster.upload_model("m1", {"w": encode(w, 3, scheme="rss3")})
        p = Program(3, scheme="rss3")
        p.output(p.matmul(p.input("x", x.shape), p.input("w", w.shape)), "y")
        out = cluster.run(p, {"x": encode(x, 3, scheme="rss3"), "w": stored["w"]})
        assert np.allclose(decode(out.outputs["y"]), x @ w, atol=1e-3)


def test_a_job_output_kept_on_the_servers_feeds_a_later_job_and_never_reaches_the_client():
    x = rng.uniform(-1, 1, (6, 4))
    with safelight.Cluster.local(3, scheme="rss3") as cluster:
        p = Program(3, scheme="rss3")
        a = p.input("x", x.shape)
        p.output(p.mul(a, a), "sq")
        p.output(a, "same")
        first = cluster.run(p, {"x": encode(x, 3, scheme="rss3")}, keep={"sq": "kept.features"})
        assert set(first.outputs) == {"same"} and set(first.kept) == {"sq"}
        both = cluster.run(p, {"x": encode(x, 3, scheme="rss3")})
        assert both.download_bytes - first.download_bytes >= 3 * x.size * 8  # the kept output did not travel
        q = Program(3, scheme="rss3")
        q.output(q.sum(q.input("f", x.shape)), "total")
        second = cluster.run(q, {"f": first.kept["sq"]})
        assert np.isclose(decode(second.outputs["total"])[0], (x**2).sum(), atol=1e-3)
        with pytest.raises(InputError, match="not an output"):
            cluster.run(p, {"x": encode(x, 3, scheme="rss3")}, keep={"nope": "kept.x"})
        with pytest.raises(InputError, match="model id"):
            cluster.run(p, {"x": encode(x, 3, scheme="rss3")}, keep={"sq": "../evil"})


def test_a_killed_or_frozen_server_gives_a_clear_error_within_the_timeout():
    p = Program(3, scheme="rss3")
    a = p.input("x", (100,))
    p.output(p.mul(a, a), "y")
    with safelight.Cluster.local(3, scheme="rss3", timeout=2.0) as cluster:
        os.kill(cluster.processes[2].pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            with pytest.raises(PeerUnavailableError):
                cluster.run(p, {"x": encode(np.ones(100), 3, scheme="rss3")})
            assert time.monotonic() - t0 < 2.0 * 3 + 2
        finally:
            os.kill(cluster.processes[2].pid, signal.SIGCONT)
        cluster.processes[1].kill()
        cluster.processes[1].wait()
        t0 = time.monotonic()
        with pytest.raises(PeerUnavailableError, match="party-1"):
            cluster.run(p, {"x": encode(np.ones(100), 3, scheme="rss3")})
        assert time.monotonic() - t0 < 2.0 + 2


# ---- tasks on three servers -------------------------------------------------------------------------


def test_denoise_and_private_kernel_filter_on_three_servers_match_plaintext():
    from skimage import data

    from safelight.tasks import denoise
    from safelight.tasks import filter as filter_task

    clean = data.astronaut()[100:132, 180:212]
    noisy = denoise.add_noise(clean, 25, seed=2)
    result = denoise.run(noisy, sigma=25, servers=3)
    plain = denoise.plaintext([noisy], 25)[0]
    assert abs(denoise.psnr(result.outputs, clean) - denoise.psnr(plain, clean)) <= 0.05
    assert result.report.triples is None and len(result.report.parties) == 3
    image = data.camera()[:40, :48]
    private = filter_task.run(image, kernel="gaussian:1.5", private_kernel=True, servers=3)
    public = filter_task.run(image, kernel="gaussian:1.5")
    assert np.abs(private.values - public.values).max() < 1e-3
    with pytest.raises(InputError, match="randomness source"):
        denoise.run(noisy, sigma=25, servers=3, no_dealer=True)


def test_cli_runs_denoise_and_filter_on_three_servers(tmp_path):
    import subprocess
    import sys

    from PIL import Image
    from skimage import data

    src = tmp_path / "in.png"
    Image.fromarray(data.astronaut()[100:124, 180:204]).save(src)
    base = [sys.executable, "-m", "safelight"]
    for args in (
        ["denoise", str(src), str(tmp_path / "d.png"), "--sigma", "25", "--servers", "3", "--json"],
        ["filter", str(src), str(tmp_path / "f.png"), "--kernel", "box:3", "--private-kernel", "--servers", "3"],
    ):
        proc = subprocess.run(base + args, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "d.png").exists() and (tmp_path / "f.png").exists()
    proc = subprocess.run(
        base + ["denoise", str(src), str(tmp_path / "x.png"), "--sigma", "25", "--servers", "3", "--no-dealer"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "no dealer" in proc.stderr and not (tmp_path / "x.png").exists()


def test_malformed_replicated_submits_are_one_clear_error_and_the_servers_keep_serving():
    """Shares of the wrong kind, bad seeds and shares for the wrong scheme: a ProtocolError
    naming the input, never an internal error; the next job runs."""
    from safelight.net.transport import MsgType, connect

    p = Program(3, scheme="rss3")
    a = p.input("x", (4,))
    p.output(p.mul(a, a), "y")
    additive = Program(3)
    additive.output(additive.add(additive.input("x", (4,)), additive.input("x2", (4,))), "y")
    good = {"name": "x", "kind": "replicated", "seeds": ["11" * 16, "22" * 16]}
    cases = [
        (p, [{"name": "x", "kind": "seed", "seed": "11" * 16}], "does not fit"),
        (p, [{**good, "seeds": [None, None]}], "two seeds"),
        (p, [{**good, "seeds": ["11" * 15, "22" * 16]}], "16-byte seed"),
        (p, [{**good, "seeds": "nope"}], "two seeds"),
        (additive, [good, {**good, "name": "x2"}], "does not fit"),
    ]
    with safelight.Cluster.local(3, scheme="rss3") as cluster:
        addr = cluster.config.parties[0]
        for program, inputs, message in cases:
            ch = connect(addr.host, addr.port, cluster.identity, "party-0", 5.0)
            try:
                ch.send_json(MsgType.SUBMIT, os.urandom(16), {"program": program.to_json(), "inputs": inputs})
                with pytest.raises(safelight.errors.ProtocolError, match=message):
                    ch.expect(MsgType.RESULT)
            finally:
                ch.close()
        out = cluster.run(p, {"x": encode(np.full(4, 3.0), 3, scheme="rss3")})
        assert np.allclose(decode(out.outputs["y"]), 9.0, atol=1e-3)
