"""Secure arithmetic on shares: Beaver products, pooling, shuffles and truncation, on 2 and 3 parties.

Fast property tests run the real ops in-process (protocol_sim); the cluster
tests run the same Programs through real server processes with each triple source.
"""

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import safelight
from protocol_sim import simulate
from safelight.errors import PeerUnavailableError, ProgramError, ProtocolError
from safelight.program.program import Program
from safelight.protocols.preprocessing import Material, Plan, deal

F = 16
EPS = 2.0**-F


def conv_ref(x, w, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    """Float reference conv (NCHW, OIHW), cross-correlation with zero padding."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    ho = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (wd + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((n, o, ho, wo))
    og = o // groups
    for g in range(groups):
        for i in range(kh):
            for j in range(kw):
                patch = xp[
                    :,
                    g * cg : (g + 1) * cg,
                    i * dilation[0] : i * dilation[0] + stride[0] * (ho - 1) + 1 : stride[0],
                    j * dilation[1] : j * dilation[1] + stride[1] * (wo - 1) + 1 : stride[1],
                ]
                out[:, g * og : (g + 1) * og] += np.einsum("nchw,oc->nohw", patch, w[g * og : (g + 1) * og, :, i, j])
    return out


def run_sim(build, values, parties, **kw):
    p = Program(parties, **kw)
    tensors = {name: p.input(name, v.shape) for name, v in values.items()}
    p.output(build(p, tensors), "out")
    outs, ctxs = simulate(p, {name: safelight.encode(v, parties) for name, v in values.items()})
    return safelight.decode(outs["out"], np.float64), ctxs


small = st.floats(-8, 8, allow_nan=False, width=32)


@settings(max_examples=25, deadline=None)
@given(st.sampled_from([2, 3]), st.integers(1, 50), st.data())
def test_elementwise_mul_and_square(parties, n, data):
    x = np.array(data.draw(st.lists(small, min_size=n, max_size=n)))
    y = np.array(data.draw(st.lists(small, min_size=n, max_size=n)))
    got, _ = run_sim(lambda p, t: p.mul(t["x"], t["y"]), {"x": x, "y": y}, parties)
    # inputs are quantised to 2^-16, the product is truncated (one unit) on top
    assert np.all(np.abs(got - x * y) <= (np.abs(x) + np.abs(y) + 2) * EPS)
    got, _ = run_sim(lambda p, t: p.square(t["x"]), {"x": x}, parties)
    assert np.all(np.abs(got - x * x) <= (2 * np.abs(x) + 2) * EPS)


@settings(max_examples=20, deadline=None)
@given(st.sampled_from([2, 3]), st.integers(1, 6), st.integers(1, 7), st.integers(1, 5), st.integers(0, 2**31))
def test_matmul(parties, m, k, n, seed):
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(-4, 4, (m, k)), rng.uniform(-4, 4, (k, n))
    got, _ = run_sim(lambda p, t: p.matmul(t["x"], t["y"]), {"x": x, "y": y}, parties)
    assert np.abs(got - x @ y).max() <= (k * 8 + 2) * EPS


CONV_CASES = [
    dict(c=3, o=4, k=3, stride=1, padding=1, dilation=1, groups=1),
    dict(c=4, o=6, k=3, stride=2, padding=0, dilation=1, groups=2),
    dict(c=4, o=4, k=3, stride=1, padding=2, dilation=2, groups=4),  # depthwise, dilated
    dict(c=2, o=3, k=1, stride=1, padding=0, dilation=1, groups=1),
    dict(c=3, o=2, k=5, stride=3, padding=2, dilation=1, groups=1),
]


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("parties", [2, 3])
def test_conv2d_geometries(case, parties):
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (2, case["c"], 9, 11))
    w = rng.uniform(-1, 1, (case["o"], case["c"] // case["groups"], case["k"], case["k"]))
    geo = {k: case[k] for k in ("stride", "padding", "dilation", "groups")}
    got, _ = run_sim(lambda p, t: p.conv2d(t["x"], t["w"], **geo), {"x": x, "w": w}, parties)
    pair = lambda v: (v, v)  # noqa: E731
    ref = conv_ref(x, w, pair(case["stride"]), pair(case["padding"]), pair(case["dilation"]), case["groups"])
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() <= (w[0].size * 2 + 2) * EPS


def test_weight_reused_by_two_layers_is_opened_once():
    rng = np.random.default_rng(2)
    x, w = rng.uniform(-1, 1, (1, 2, 6, 6)), rng.uniform(-0.5, 0.5, (2, 2, 3, 3))
    got, ctxs = run_sim(
        lambda p, t: p.conv2d(p.conv2d(t["x"], t["w"], padding=1), t["w"], padding=1), {"x": x, "w": w}, 2
    )
    ref = conv_ref(conv_ref(x, w, padding=(1, 1)), w, padding=(1, 1))
    assert np.abs(got - ref).max() <= 60 * EPS
    # first layer opens x and w, the second only its input: 72 + 36 + 72 elements, not 72 + 36 + 72 + 36
    assert sum(v.size for v in ctxs[0].view) == x.size + w.size + x.size
    assert "w:w" in ctxs[0].opened


@pytest.mark.parametrize("parties", [2, 3])
def test_pooling_sums_means_and_shuffles(parties):
    rng = np.random.default_rng(3)
    x = rng.uniform(-2, 2, (2, 8, 6, 4))
    got, _ = run_sim(lambda p, t: p.avg_pool2d(t["x"], 2), {"x": x}, parties)
    ref = x.reshape(2, 8, 3, 2, 2, 2).mean(axis=(3, 5))
    assert np.abs(got - ref).max() <= 3 * EPS
    got, _ = run_sim(lambda p, t: p.avg_pool2d(t["x"], 3, stride=1, padding=1), {"x": x}, parties)
    assert np.abs(got - conv_ref(x, np.ones((8, 1, 3, 3)) / 9, padding=(1, 1), groups=8)).max() <= 3 * EPS
    got, _ = run_sim(lambda p, t: p.mean(t["x"], axes=(2, 3)), {"x": x}, parties)
    assert np.abs(got - x.mean(axis=(2, 3))).max() <= 3 * EPS
    got, _ = run_sim(lambda p, t: p.sum(t["x"]), {"x": x}, parties)
    assert np.abs(got - x.sum()).max() <= x.size * EPS


def test_pixel_shuffle_matches_reference_layout():
    x = np.arange(2 * 8 * 3 * 5, dtype=np.float64).reshape(2, 8, 3, 5) / 256
    got, _ = run_sim(lambda p, t: p.pixel_shuffle(t["x"], 2), {"x": x}, 2)
    # torch.nn.PixelShuffle: out[n, c, h*r+i, w*r+j] = x[n, c*r*r + i*r + j, h, w]
    ref = np.zeros((2, 2, 6, 10))
    for c in range(2):
        for i in range(2):
            for j in range(2):
                ref[:, c, i::2, j::2] = x[:, c * 4 + i * 2 + j]
    np.testing.assert_allclose(got, ref, atol=EPS)
    back, _ = run_sim(lambda p, t: p.pixel_unshuffle(p.pixel_shuffle(t["x"], 2), 2), {"x": x}, 3)
    np.testing.assert_allclose(back, x, atol=EPS)


def local_truncation_error_rate(magnitude_bits: int, trials: int = 20000) -> float:
    """Fraction of wrong results of 2-party local truncation for |x| ~ 2^magnitude_bits."""
    from safelight.program.ops import OPS
    from safelight.sharing import share_ring

    rng = np.random.default_rng(magnitude_bits)
    x = rng.integers(2 ** (magnitude_bits - 1), 2**magnitude_bits, trials, dtype=np.uint64)
    p0, p1 = (pl.materialize() for pl in share_ring(x, 2))

    class Ctx:
        parties = 2

        def __init__(self, party):
            self.party = party

    y = OPS["rescale"].run(Ctx(0), [p0], {"bits": F}) + OPS["rescale"].run(Ctx(1), [p1], {"bits": F})
    err = np.abs(y.view(np.int64) - (x >> np.uint64(F)).view(np.int64))
    return float(np.mean(err > 1))


def test_local_truncation_error_probability_matches_the_bound():
    """Two-party local truncation fails with probability |x| / 2^64 (a share wrapping past
    x), under the documented bound |x| / 2^63. The shares are random, so the observed rate
    is checked against its expectation within 6 standard deviations (never flaky in
    practice), and against the bound."""
    assert local_truncation_error_rate(40) == 0.0  # bound 2^-23: no failure expected in 20000 trials
    trials = 20000
    for bits in (58, 60, 61):
        rate = local_truncation_error_rate(bits, trials)
        x = np.random.default_rng(bits).integers(2 ** (bits - 1), 2**bits, trials, dtype=np.uint64)
        expected = float(np.mean(x.astype(np.float64))) / 2.0**64
        sigma = np.sqrt(expected * (1 - expected) / trials)
        assert abs(rate - expected) <= 6 * sigma, (bits, rate, expected)
        assert rate <= 2.0 ** (bits - 63), (bits, rate)


@pytest.mark.parametrize("parties", [2, 3])
def test_truncation_pair_is_exact_for_large_values(parties):
    """The dealer-pair truncation has no rare large error, even near its bound 2^62."""
    x = np.concatenate([np.random.default_rng(4).uniform(-(2.0**29), 2.0**29, 4000), [2.0**29, -(2.0**29)]])
    got, _ = run_sim(lambda p, t: p.mul_public(t["x"], 0.5), {"x": x}, parties, truncation="pair")
    assert np.abs(got - 0.5 * x).max() <= 2 * EPS


def test_server_view_is_independent_of_the_inputs():
    """What party 0 receives during a mul (the opened e, f) has the same byte distribution for
    all-zero inputs and for large structured inputs."""
    views = {}
    for name, value in (("zeros", np.zeros(4096)), ("ramp", np.linspace(-100, 100, 4096))):
        _, ctxs = run_sim(lambda p, t: p.mul(t["x"], t["y"]), {"x": value, "y": value[::-1].copy()}, 2)
        views[name] = np.concatenate([v.reshape(-1) for v in ctxs[0].view])
    for pos in range(8):
        cols = [np.bincount(views[k].view(np.uint8).reshape(-1, 8)[:, pos], minlength=256) for k in views]
        assert stats.chi2_contingency(np.stack(cols)).pvalue > 1e-5
        assert stats.chisquare(cols[1]).pvalue > 1e-5


def test_mismatched_or_exhausted_triples_are_clear_errors():
    p = Program(2)
    x = p.input("x", (5,))
    p.output(p.mul(x, x), "y")
    enc = {"x": safelight.encode(np.ones(5))}
    plan = Plan(Program.from_json(p.to_json()).correlations())
    good = deal(plan, 2)
    with pytest.raises(ProtocolError, match="does not match the program"):
        simulate(p, enc, [good[0], Material(good[1].seed, {})])
    other = Program(2)
    o = other.input("x", (5,))
    other.output(other.mul(o, other.mul(o, o)), "y")
    with pytest.raises(ProtocolError, match="does not match"):
        simulate(p, enc, deal(Plan(Program.from_json(other.to_json()).correlations()), 2))


def test_mismatched_shapes_are_refused_when_building():
    p = Program(2)
    with pytest.raises(ProgramError, match="shapes differ"):
        p.mul(p.input("a", (3,)), p.input("b", (4,)))
    with pytest.raises(ProgramError, match="matmul"):
        p.matmul(p.input("c", (3, 4)), p.input("d", (3, 4)))
    with pytest.raises(ProgramError, match="groups"):
        p.conv2d(p.input("e", (1, 3, 8, 8)), p.input("f", (4, 3, 3, 3)), groups=2)


# ---- through real server processes ------------------------------------------------------


def mul_program(parties, n=1000):
    p = Program(parties)
    x, y = p.input("x", (n,)), p.input("y", (n,))
    p.output(p.mul(x, y), "z")
    return p


@pytest.mark.parametrize("source", ["client", "dealer"])
@pytest.mark.parametrize("parties", [2, 3])
def test_mul_and_conv_through_servers_for_each_triple_source(parties, source, request):
    with safelight.Cluster.local(parties, dealer=(source == "dealer"), timeout=10) as cluster:
        rng = np.random.default_rng(parties)
        x, y = rng.uniform(-3, 3, 1000), rng.uniform(-3, 3, 1000)
        job = cluster.run(
            mul_program(parties), {"x": safelight.encode(x, parties), "y": safelight.encode(y, parties)}, triples=source
        )
        assert np.abs(safelight.decode(job.outputs["z"]) - x * y).max() <= 8 * EPS
        assert job.triples == source and job.rounds == (1 if parties == 2 else 2)
        ops = job.ops()
        assert ops["mul"]["rounds"] == 1 and all(b >= 2 * 1000 * 8 * (parties - 1) for b in ops["mul"]["bytes_sent"])
        assert job.offline_seconds > 0 and job.online_seconds > 0
        if source == "dealer":
            # dealer traffic: one correction tensor per derived component (plus seeds), not one per
            # party: c of the triple, and for 3 parties r >> f and msb(r) of the truncation pair
            corrections = 1 if parties == 2 else 3
            assert job.dealer is not None
            assert corrections * 8000 <= job.dealer.peer_bytes_sent < corrections * 8000 + 2000
        p = Program(parties)
        xi, wi = p.input("x", (1, 3, 16, 16)), p.input("w", (4, 3, 3, 3))
        p.output(p.conv2d(xi, wi, padding=1), "y")
        xv, wv = rng.uniform(0, 1, (1, 3, 16, 16)), rng.uniform(-0.3, 0.3, (4, 3, 3, 3))
        job = cluster.run(p, {"x": safelight.encode(xv, parties), "w": safelight.encode(wv, parties)}, triples=source)
        assert np.abs(safelight.decode(job.outputs["y"]) - conv_ref(xv, wv, padding=(1, 1))).max() <= 40 * EPS


def test_dealer_that_dies_gives_clear_error_without_hang():
    with safelight.Cluster.local(2, dealer=True, timeout=3) as cluster:
        cluster.processes[-1].kill()
        cluster.processes[-1].wait()
        t0 = time.monotonic()
        with pytest.raises(PeerUnavailableError, match="dealer"):
            cluster.run(mul_program(2), {"x": safelight.encode(np.ones(1000)), "y": safelight.encode(np.ones(1000))})
        assert time.monotonic() - t0 < 3 * 2 + 2


def test_triple_sources_are_checked(cluster2):
    """triples="he" runs without a dealer on two servers (see test_dealer_free); a dealer
    that is not there is a clear error, never a silent fallback."""
    job = cluster2.run(
        mul_program(2),
        {"x": safelight.encode(np.full(1000, 3.0)), "y": safelight.encode(np.full(1000, 2.0))},
        triples="he",
    )
    assert job.triples == "he" and np.allclose(safelight.decode(job.outputs["z"]), 6.0, atol=1e-3)
    with pytest.raises(safelight.errors.InputError, match="no dealer"):
        cluster2.run(
            mul_program(2),
            {"x": safelight.encode(np.ones(1000)), "y": safelight.encode(np.ones(1000))},
            triples="dealer",
        )


def test_reuse_keys_are_bound_to_one_input_tensor():
    """Two different tensors under one mask would open their difference: servers refuse it."""
    p = Program(2)
    x, w1, w2 = p.input("x", (2, 3)), p.input("w1", (3, 3)), p.input("w2", (3, 3))
    p.output(p.matmul(p.matmul(x, w1), w2), "y")
    data = p.to_json()
    data["steps"][2]["attrs"]["reuse"] = "w:w1"  # the second matmul claims w1's mask for w2
    with pytest.raises(ProgramError, match="reuse key"):
        Program.from_json(data)
    data = p.to_json()
    data["steps"][0]["attrs"]["reuse"] = "w:x"
    with pytest.raises(ProgramError, match="reuse key"):
        Program.from_json(data)
    bad_mul = Program(2)
    a = bad_mul.input("a", (3,))
    bad_mul.output(bad_mul.mul(a, a), "b")
    data = bad_mul.to_json()
    data["steps"][0]["attrs"]["reuse"] = "w:a"
    with pytest.raises(ProgramError, match="reuse"):
        Program.from_json(data)


def test_matmul_of_a_batched_activation(cluster2):
    rng = np.random.default_rng(11)
    x, w = rng.uniform(-1, 1, (2, 3, 5)), rng.uniform(-1, 1, (5, 4))
    p = Program(2)
    p.output(p.matmul(p.input("x", x.shape), p.input("w", w.shape)), "y")
    job = cluster2.run(p, {"x": safelight.encode(x), "w": safelight.encode(w)}, triples="client")
    np.testing.assert_allclose(safelight.decode(job.outputs["y"]), x @ w, atol=1e-3)
