"""The OT path's correlations dealt by a dealer (issue 18, item 4): the dealt material
satisfies its correlations, the comparisons on it equal plaintext, every sign-based op
draws exactly what the program declares, a server's view does not depend on the secret,
and a dealer-backed cluster runs them with no silent OT."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernel_helpers import run_both
from protocol_sim import assert_views_alike, simulate, view_bytes
from safelight import ot, ring
from safelight.errors import ProtocolError
from safelight.program.program import Program
from safelight.protocols import ot_compare as C
from safelight.protocols import ot_dealt as D
from safelight.protocols.nonlinear import ot_path_demand
from safelight.runtime import client
from safelight.sharing import decode, encode
from sign_ops import check_every_sign_op, every_sign_op


def _links(demand: D.Demand):
    seeds, tensors = D.deal(demand)
    a, b = ot.pipe_pair(timeout=60)
    return [D.DealtLink(0, a, seeds[0], tensors[0], demand), D.DealtLink(1, b, seeds[1], tensors[1], demand)]


def _run(links, f0, f1):
    return run_both(lambda: f0(links[0]), lambda: f1(links[1]), timeout=60)


def _on_ot_path(program: Program) -> Program:
    return program.with_default_attr(client.SIGN_OPS, "sign", "ot")


@settings(max_examples=10, deadline=None)
@given(st.integers(1, 3000), st.integers(0, 2**32 - 1))
def test_the_dealt_material_satisfies_its_correlations(n, seed):
    demand = D.Demand(leaves=n, ands=n + 5, mux=n // 2 + 1)
    seeds, tensors = D.deal(demand)
    # 1-out-of-16: party 1's pad is party 0's entry at party 1's choice
    pads, c = D.pads(seeds[0], 0, n), D.choices(seeds[1], 0, n)
    got = D.unpack_pairs(tensors[1]["otp:leaf"].view(np.uint8), n)
    np.testing.assert_array_equal(got, (pads >> (2 * c.astype(np.uint32))) & 3)
    # AND triples: (a0 ^ a1)(b0 ^ b1) = c0 ^ c1
    a0, b0, c0 = D.triple_parts(seeds[0], 0, demand.ands)
    a1, b1, _ = D.triple_parts(seeds[1], 0, demand.ands)
    c1 = np.unpackbits(tensors[1]["otp:and"].view(np.uint8), count=demand.ands)
    np.testing.assert_array_equal((a0 ^ a1) & (b0 ^ b1), c0 ^ c1)
    # random OTs both ways: the receiver holds the string of its choice
    for receiver, sender, nonce in ((1, 0, D.MUX_01), (0, 1, D.MUX_10)):
        r0, r1 = D.strings(seeds[sender], nonce, 0, demand.mux)
        choice = D.choice_bits(seeds[receiver], nonce, 0, demand.mux).astype(bool)
        np.testing.assert_array_equal(tensors[receiver]["otp:mux"], np.where(choice, r1, r0))
    # any window of a stream equals the same window of the whole stream
    lo = seed % n
    np.testing.assert_array_equal(D.pads(seeds[0], lo, n - lo), pads[lo:])


@settings(max_examples=6, deadline=None)
@given(st.sampled_from([2, 8, 13, 25, 40, 64]), st.integers(0, 2**32 - 1))
def test_sign_relu_and_multiplexer_on_dealt_correlations_equal_plaintext(bits, seed):
    rng = np.random.default_rng(seed)
    n = 1500
    bound = 1 << (bits - 1)
    x = rng.integers(-bound, bound, n, dtype=np.int64)
    x[:6] = [0, -1, 1, bound - 1, -bound, -bound + 1]
    x0 = ring.random(rng.bytes(16), x.shape)
    x1 = ring.sub(x.view(np.uint64), x0)
    demand = D.Demand(*C.sign_demand(n, bits)) + D.Demand(*C.sign_demand(n, bits))
    links = _links(demand)
    s0, s1 = _run(links, lambda lk: C.sign(lk, x0, bits), lambda lk: C.sign(lk, x1, bits))
    np.testing.assert_array_equal(s0 ^ s1, (x < 0).astype(np.uint8))
    m0, m1 = _run(links, lambda lk: C.multiplex(lk, s0, x0), lambda lk: C.multiplex(lk, s1, x1))
    np.testing.assert_array_equal(ring.add(m0, m1).view(np.int64), np.where(x < 0, x, 0))
    y0, y1 = _run(links, lambda lk: C.relu(lk, x0, bits), lambda lk: C.relu(lk, x1, bits))
    np.testing.assert_array_equal(ring.add(y0, y1).view(np.int64), np.maximum(x, 0))
    for link in links:
        link.check_done()  # sign_demand is exactly what a sign and a multiplexer draw


def test_a_link_refuses_material_that_does_not_match_and_overdraws():
    demand = D.Demand(leaves=10, ands=9, mux=3)
    seeds, tensors = D.deal(demand)
    a, _ = ot.pipe_pair(timeout=5)
    bad = dict(tensors[1])
    bad["otp:and"] = bad["otp:and"][:0]
    with pytest.raises(ProtocolError, match="otp:and"):
        D.DealtLink(1, a, seeds[1], bad, demand)
    with pytest.raises(ProtocolError, match="seed"):
        D.DealtLink(0, a, b"short", tensors[0], demand)
    link = D.DealtLink(0, a, seeds[0], tensors[0], demand)
    link.and_triples(9)
    with pytest.raises(ProtocolError, match="more OT-path ands than the dealer dealt"):
        link.and_triples(1)
    with pytest.raises(ProtocolError, match="drew"):
        link.check_done()


def test_every_sign_based_op_draws_exactly_the_declared_demand():
    p, v = every_sign_op()
    program = _on_ot_path(p)
    outputs, ctxs = simulate(program, {k: encode(a, 2) for k, a in v.items()}, dealt_comparisons=True)
    check_every_sign_op({k: decode(s) for k, s in outputs.items()}, v)
    demand = ot_path_demand(program)
    assert demand.mux == sum(n for n, _ in client.sign_values(program)) == 64 + 64 + 60 + 2 * 672
    for ctx in ctxs:
        link = ctx.state["ot_compare"]["link"]
        assert isinstance(link, D.DealtLink)
        link.check_done()
    assert ot_path_demand(p) == D.Demand()  # on the garbled path nothing is dealt for comparisons


def test_a_servers_view_does_not_depend_on_the_secret():
    """Party 1 sees digit corrections under its random choices and tables under pads it
    does not hold; party 0 sees uniform corrections: alike for two different secrets."""
    n = 20_000
    p = Program(2)
    p.output(p.relu(p.input("x", (n,)), bits=24), "y")
    program = _on_ot_path(p)
    views = []
    for value in (np.full(n, -3.25), np.full(n, 7.5)):
        _, ctxs = simulate(program, {"x": encode(value, 2)}, dealt_comparisons=True)
        views.append(view_bytes(ctxs))
    assert_views_alike(*views)


def test_a_dealer_cluster_deals_the_comparisons_and_runs_no_silent_ot():
    from safelight.runtime.cluster import Cluster

    p, v = every_sign_op()
    n = 5000
    big = Program(2)
    big.output(big.relu(big.input("x", (n,))), "y")
    x = np.random.default_rng(3).normal(0, 30, n)
    with Cluster.local(2, dealer=True) as cluster:
        job = cluster.run(p, {k: encode(a, 2) for k, a in v.items()})  # auto: the OT path, dealt
        relu = cluster.run(big, {"x": encode(x, 2)})
    assert job.triples == relu.triples == "dealer"
    check_every_sign_op({k: decode(s) for k, s in job.outputs.items()}, v)
    np.testing.assert_allclose(decode(relu.outputs["y"]), np.maximum(x, 0), atol=2e-5)
    # 40 bits: party 0 sends 10 tables of 4 bytes, 17 AND openings and a 64-bit correction
    # (52.4 B), party 1 its digit corrections, openings and correction (17.4 B); no silent OT
    # link (it alone would be about 3 MB each way)
    sent = [q.peer_bytes_sent / n for q in relu.parties]
    assert 52 < sent[0] < 53 and 17 < sent[1] < 18, sent
    # the dealer: 2 bits per digit and 1 per AND gate to party 1, 8 bytes to each for the multiplexer
    assert 20 < relu.dealer.peer_bytes_sent / n < 21.5


def test_a_dead_server_on_the_dealt_path_is_a_clear_error_within_the_timeout():
    import time

    from safelight.errors import PeerUnavailableError
    from safelight.runtime.cluster import Cluster

    x = np.random.default_rng(4).normal(0, 5, 20_000)
    p = Program(2)
    p.output(p.relu(p.input("x", x.shape)), "y")
    with Cluster.local(2, dealer=True, timeout=4) as cluster:
        job = cluster.run(p, {"x": encode(x, 2)})
        np.testing.assert_allclose(decode(job.outputs["y"]), np.maximum(x, 0), atol=2e-5)
        cluster.processes[1].kill()
        cluster.processes[1].wait()
        started = time.monotonic()
        with pytest.raises(PeerUnavailableError):
            cluster.run(p, {"x": encode(x, 2)})
        assert time.monotonic() - started < 4 * 2 + 3
