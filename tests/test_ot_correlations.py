"""Dealer-free elementwise correlations by oblivious transfer (protocols/ot_correlations):
parties 0 and 1 on threads over in-memory pipes, checked against the dealer's DERIVATIONS."""

import queue
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats

from protocol_sim import SimContext, run_parties
from safelight.errors import InputError, PeerUnavailableError, ProtocolError, UnsupportedError
from safelight.ot import pipe_pair
from safelight.protocols import ot_correlations as otc
from safelight.protocols.preprocessing import DERIVATIONS

NAMES = {"mul": ("a", "b"), "square": ("a",), "trunc": ("r",)}
TOP = 1 << 63
EDGE = [0, 1, 2, 0xFFFF, 0x10000, TOP - 1, TOP, TOP + 1, 2**64 - 2, 2**64 - 1]


class Recording:
    """A pipe end that keeps what its party receives, by name."""

    def __init__(self, end):
        self.end, self.got = end, []

    def send(self, name, array):
        self.end.send(name, array)

    def recv(self, name):
        array = self.end.recv(name)
        self.got.append((name, np.array(array, copy=True)))
        return array

    def close(self):
        self.end.close()


def two_parties(parties=2, timeout=60.0):
    inboxes = [[queue.Queue() for _ in range(parties)] for _ in range(parties)]
    ctxs = [SimContext(p, parties, inboxes) for p in range(2)]
    a, b = pipe_pair(timeout=timeout)
    ctxs[0].pipes[1], ctxs[1].pipes[0] = Recording(a), Recording(b)
    return ctxs


def both(ctxs, kind, mines, attrs=None):
    """derive on parties 0 and 1 at once; the first error (after both ended) is raised."""
    out = [None, None]

    def go(p):
        out[p] = otc.derive(ctxs[p], kind, mines[p], attrs or {})

    run_parties((0, 1), go, lambda p: ctxs[p].pipes[1 - p].close())
    return out


def random_shares(rng, kind, shape):
    return [{k: rng.integers(0, 2**64, shape, dtype=np.uint64, endpoint=False) for k in NAMES[kind]} for _ in range(2)]


def check(kind, mines, out, attrs=None):
    attrs = attrs or {}
    full = {k: np.asarray(mines[0][k] + mines[1][k]) for k in NAMES[kind]}
    want = DERIVATIONS[kind](full, attrs)
    assert set(out[0]) == set(out[1]) == set(want)
    for name, value in want.items():
        for share in (out[0][name], out[1][name]):
            assert share.dtype == np.uint64 and share.shape == value.shape
        got = out[0][name] + out[1][name]
        if name == "r_hi":
            # documented: off by exactly the carry of the low bits of the two shares
            low = np.uint64((1 << attrs["bits"]) - 1)
            carry = ((mines[0]["r"] & low) + (mines[1]["r"] & low)) >> np.uint64(attrs["bits"])
            np.testing.assert_array_equal(got + carry, value)
        else:
            np.testing.assert_array_equal(got, value)


@pytest.fixture(scope="module")
def ctxs():
    """One pair of parties for the module: the OT endpoints are set up once."""
    return two_parties()


@pytest.mark.parametrize("kind", ["mul", "square", "trunc"])
def test_edge_values(ctxs, kind):
    """Every pair of edge shares (sums 0, 2^63, 2^64 - 1, wraps, carries into bit 63)."""
    x0, x1 = np.meshgrid(np.array(EDGE, np.uint64), np.array(EDGE, np.uint64))
    mines = [{k: x0.copy() for k in NAMES[kind]}, {k: x1.copy() for k in NAMES[kind]}]
    if kind == "mul":  # b: the edge grid transposed, so a and b differ
        mines[0]["b"], mines[1]["b"] = x1.T.copy(), x0.T.copy()
    for bits in [16, 1, 62, 63] if kind == "trunc" else [None]:
        attrs = {"bits": bits} if bits else {}
        check(kind, mines, both(ctxs, kind, mines, attrs), attrs)


@pytest.mark.parametrize("kind", ["mul", "square", "trunc"])
def test_random_shares_many_chunks(ctxs, kind, monkeypatch):
    """Small chunks: odd sizes, padding of the last chunk, pipelining across many chunks."""
    monkeypatch.setattr(otc, "CHUNK_OTS", 1 << 10)
    monkeypatch.setattr(otc, "TRUNC_CHUNK", 300)
    rng = np.random.default_rng(7)
    for shape in [(1,), (3, 5, 7), (1001,), ()]:
        mines = random_shares(rng, kind, shape)
        check(kind, mines, both(ctxs, kind, mines, {"bits": 13}), {"bits": 13})


@pytest.mark.parametrize("kind", ["mul", "square", "trunc"])
def test_large_tensor(ctxs, kind):
    """2^18 values (several default chunks), an image-like shape."""
    rng = np.random.default_rng(11)
    mines = random_shares(rng, kind, (1, 4, 256, 256))
    check(kind, mines, both(ctxs, kind, mines, {"bits": 16}), {"bits": 16})


def test_empty_tensor_sends_nothing(ctxs):
    before = [len(c.pipes[1 - c.party].got) for c in ctxs]
    for kind, names in NAMES.items():
        mines = [{k: np.zeros((0, 3), np.uint64) for k in names} for _ in range(2)]
        out = both(ctxs, kind, mines, {"bits": 8})
        assert all(v.shape == (0, 3) for o in out for v in o.values())
    assert [len(c.pipes[1 - c.party].got) for c in ctxs] == before


values = st.one_of(st.sampled_from(EDGE), st.integers(0, 2**64 - 1))


@settings(max_examples=25, deadline=None)
@given(
    kind=st.sampled_from(["mul", "square", "trunc"]),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=6),
    bits=st.integers(1, 63),
    data=st.data(),
)
def test_property_small_shapes(ctxs, kind, shape, bits, data):
    arrays = hnp.arrays(np.uint64, shape, elements=values)
    mines = [{k: data.draw(arrays) for k in NAMES[kind]} for _ in range(2)]
    check(kind, mines, both(ctxs, kind, mines, {"bits": bits}), {"bits": bits})


def test_runs_inside_a_three_party_job():
    """Parties 0 and 1 derive on their own even when the job has a party 2."""
    ctxs = two_parties(parties=3)
    rng = np.random.default_rng(3)
    for kind in NAMES:
        mines = random_shares(rng, kind, (50,))
        check(kind, mines, both(ctxs, kind, mines, {"bits": 12}), {"bits": 12})


def test_rounds_are_counted():
    ctxs = two_parties()
    rng = np.random.default_rng(4)
    mines = random_shares(rng, "mul", (5000,))
    both(ctxs, "mul", mines)
    assert ctxs[0].rounds == ctxs[1].rounds == 4 + 2  # silent OT setup + one pipelined transfer
    mines = random_shares(rng, "trunc", (100,))
    both(ctxs, "trunc", mines, {"bits": 8})
    # the comparison link's setup (two silent OT directions), the 64-bit sign, the transfer
    assert ctxs[0].rounds == ctxs[1].rounds == 6 + 6 + 6 + 2


class BoundedEnd:
    """A pipe end whose send blocks until the peer has taken the message (like a full
    socket buffer), to show that the pipelined chunks cannot deadlock; a send or receive
    stalled for 10 s fails."""

    def __init__(self, inbox, outbox, taken, acks):
        self.inbox, self.outbox, self.taken, self.acks = inbox, outbox, taken, acks

    def send(self, name, array):
        self.outbox.put((name, np.array(array, copy=True)))
        if not self.acks.acquire(timeout=10):
            raise PeerUnavailableError(f"the peer did not take {name!r}: deadlock")

    def recv(self, name):
        try:
            got, array = self.inbox.get(timeout=10)
        except queue.Empty:
            raise PeerUnavailableError(f"nothing came for {name!r}") from None
        self.taken.release()
        if got != name:
            raise ProtocolError(f"expected {name}, got {got}")
        return array

    def close(self):
        pass


def bounded_pair():
    q01, q10 = queue.Queue(), queue.Queue()
    ack01, ack10 = threading.Semaphore(0), threading.Semaphore(0)
    return BoundedEnd(q10, q01, ack10, ack01), BoundedEnd(q01, q10, ack01, ack10)


@pytest.mark.parametrize("kind", ["mul", "square", "trunc"])
def test_blocking_sends_do_not_deadlock(kind, monkeypatch):
    monkeypatch.setattr(otc, "CHUNK_OTS", 1 << 12)
    monkeypatch.setattr(otc, "TRUNC_CHUNK", 500)
    ctxs = two_parties()
    ctxs[0].pipes[1], ctxs[1].pipes[0] = bounded_pair()
    mines = random_shares(np.random.default_rng(8), kind, (1500,))
    check(kind, mines, both(ctxs, kind, mines, {"bits": 20}), {"bits": 20})


# ---- security sanity: what each party receives does not depend on the other's values -----


def received_bytes(ctx, skip=("ot.base.",)):
    """Everything this party received after the base OTs, as bytes."""
    arrays = [a for name, a in ctx.pipes[1 - ctx.party].got if not name.startswith(skip)]
    return np.concatenate([np.ascontiguousarray(a).view(np.uint8).reshape(-1) for a in arrays])


def views(kind, fixed_party, fixed_values, n=4096, attrs=None):
    """Each run: fixed shares for ``fixed_party``, random shares for the other; returns the
    other party's received bytes per fixed value."""
    rng = np.random.default_rng(99)
    out = []
    for value in fixed_values:
        ctxs = two_parties()
        mines = random_shares(rng, kind, (n,))
        mines[fixed_party] = {k: np.full(n, value, np.uint64) for k in NAMES[kind]}
        both(ctxs, kind, mines, attrs)
        out.append(received_bytes(ctxs[1 - fixed_party]))
    return out


def assert_same_uniform_bytes(a, b):
    assert a.size == b.size
    h = np.stack([np.bincount(v, minlength=256) for v in (a, b)])
    assert stats.chi2_contingency(h).pvalue > 1e-4
    for counts in h:
        assert stats.chisquare(counts).pvalue > 1e-4
    for v in (a, b):  # every bit position of the bytes balanced
        assert np.abs(np.unpackbits(v).reshape(-1, 8).mean(axis=0) - 0.5).max() < 0.01


@pytest.mark.parametrize("kind", ["mul", "square"])
def test_party1_view_is_independent_of_party0_values(kind):
    """The OT messages party 1 gets look the same (uniform) for a0 = b0 = 0 and = 2^64 - 1;
    with a broken pad (e.g. H(q ^ Delta) = H(q)) the zero run would be all zeros."""
    zero, ones = views(kind, 0, [0, 2**64 - 1])
    assert_same_uniform_bytes(zero, ones)


@pytest.mark.parametrize("kind", ["mul", "trunc"])
def test_party0_view_is_independent_of_party1_values(kind):
    """Party 0 receives IKNP matrices (and in trunc the evaluator's masked circuit inputs):
    alike whether party 1's choice bits are all 0 or all 1."""
    zero, ones = views(kind, 1, [0, 2**64 - 1], attrs={"bits": 16})
    assert_same_uniform_bytes(zero, ones)


def test_trunc_party1_view_is_independent_of_r0():
    """Garbled tables, labels, masked inputs and OT messages for r0 = 0 vs r0 = 2^63 + 5
    (msb(r0) and the wrap pattern differ): the same byte distribution."""
    low, high = views("trunc", 0, [0, TOP + 5], n=2048, attrs={"bits": 16})
    h = np.stack([np.bincount(v, minlength=256) for v in (low, high)])
    assert stats.chi2_contingency(h).pvalue > 1e-4


def test_party1_messages_are_uniform_per_bit_position():
    """Party 0's packed OT messages for a constant a0: each of the 64 bit positions of the
    message words is balanced (the narrow fields of the length trick are packed tightly)."""
    ctxs = two_parties()
    rng = np.random.default_rng(5)
    mines = random_shares(rng, "mul", (8192,))
    mines[0] = {"a": np.full(8192, 12345, np.uint64), "b": np.zeros(8192, np.uint64)}
    both(ctxs, "mul", mines)
    words = np.concatenate([a.reshape(-1) for name, a in ctxs[1].pipes[0].got if name == otc._MSG])
    assert words.size == 8192 * 65  # 2080 bits per product, two products per value, no padding
    bits = np.unpackbits(words.view(np.uint8).reshape(-1, 8), axis=1, bitorder="little")
    assert np.abs(bits.mean(axis=0) - 0.5).max() < 0.01


# ---- errors -------------------------------------------------------------------------


def test_bad_requests_fail_before_any_message():
    ctx = two_parties()[0]
    a = np.zeros(4, np.uint64)
    with pytest.raises(UnsupportedError, match="matmul"):
        otc.derive(ctx, "conv2d", {"a": a, "b": a}, {})
    with pytest.raises(InputError, match="random components"):
        otc.derive(ctx, "mul", {"a": a}, {})
    with pytest.raises(InputError, match="uint64"):
        otc.derive(ctx, "square", {"a": a.astype(np.int64)}, {})
    with pytest.raises(InputError, match="one shape"):
        otc.derive(ctx, "mul", {"a": a, "b": np.zeros(5, np.uint64)}, {})
    for bits in (0, 64, None, True):
        with pytest.raises(InputError, match="bits"):
            otc.derive(ctx, "trunc", {"r": a}, {"bits": bits})
    third = SimContext(2, 3, [])
    with pytest.raises(UnsupportedError, match="parties 0 and 1"):
        otc.derive(third, "mul", {"a": a, "b": a}, {})
    assert ctx.pipes[1].got == [] and ctx.rounds == 0


def test_disagreeing_parties_get_an_error_not_a_hang():
    ctxs = two_parties(timeout=5.0)
    rng = np.random.default_rng(6)
    mines = [random_shares(rng, "mul", (300,))[0], random_shares(rng, "mul", (600,))[1]]
    with pytest.raises((ProtocolError, PeerUnavailableError)):
        both(ctxs, "mul", mines)


def test_missing_peer_times_out():
    ctx = two_parties(timeout=0.5)[1]
    with pytest.raises(PeerUnavailableError):
        otc.derive(ctx, "square", {"a": np.zeros(10, np.uint64)}, {})
