"""Oblivious transfer: base OTs, IKNP correlated OT, transpose, random OT, dealer mode, failures."""

import os
import socket
import threading

import numpy as np
import pytest
from scipy import stats

from kernel_helpers import run_both, with_isa
from safelight import _core, ot
from safelight.errors import InputError, PeerUnavailableError, ProtocolError
from safelight.net.certs import Identity, create_cluster_certs
from safelight.net.pipe import ChannelPipe
from safelight.net.transport import accept_tls, connect, server_context

pytestmark = pytest.mark.kernels


# ---- helpers ----------------------------------------------------------------


def cot_pair(chunk=ot.DEFAULT_CHUNK, delta=None, threads=1, overlap=False):
    a, b = ot.pipe_pair(timeout=60)
    sender = ot.COTSender(delta, chunk=chunk, threads=threads, overlap=overlap)
    receiver = ot.COTReceiver(chunk=chunk, threads=threads, overlap=overlap)
    run_both(lambda: sender.setup(a), lambda: receiver.setup(b))
    return sender, receiver


def extend(sender, receiver, choices):
    q, t = run_both(lambda: sender.extend(len(choices)), lambda: receiver.extend(choices))
    return q, t


def expected_t(q, choices, delta):
    return q ^ (np.asarray(choices, dtype=np.uint64)[:, None] * delta[None, :])


def transpose_ref(bits, nout):
    m = np.unpackbits(bits, axis=1, bitorder="little")  # 128 x ncols
    return np.packbits(np.ascontiguousarray(m.T[:nout]), axis=1, bitorder="little").view(np.uint64)


class RecordingPipe:
    """Passes messages through and keeps a copy of everything sent."""

    def __init__(self, inner):
        self.inner, self.sent = inner, []

    def send(self, name, array):
        self.sent.append((name, np.array(array, copy=True)))
        self.inner.send(name, array)

    def recv(self, name):
        return self.inner.recv(name)


# ---- base OT ------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 5, 128])
def test_base_ot_gives_the_chosen_key(count):
    a, b = ot.pipe_pair()
    choices = np.random.default_rng(count).integers(0, 2, count).astype(np.uint8)
    (k0, k1, sid_s), (k, sid_r) = run_both(
        lambda: ot.base_ot_send(a, count, b"job"), lambda: ot.base_ot_receive(b, choices, b"job")
    )
    assert sid_s == sid_r
    assert k0.shape == k1.shape == k.shape == (count, 16) and k.dtype == np.uint8
    np.testing.assert_array_equal(k, np.where(choices[:, None] == 1, k1, k0))
    # The other key is unrelated to what the receiver holds, and all keys differ.
    assert not np.any(np.all(np.where(choices[:, None] == 1, k0, k1) == k, axis=1))
    assert len({bytes(x) for x in np.concatenate([k0, k1])}) == 2 * count


def test_base_ot_rejects_an_invalid_point():
    a, b = ot.pipe_pair(timeout=5)
    b.send("ot.base.B", np.full((4, 32), 0xFF, dtype=np.uint8))  # not a curve point
    with pytest.raises(ProtocolError, match="invalid group element"):
        ot.base_ot_send(a, 4)
    a2, b2 = ot.pipe_pair(timeout=5)
    a2.send("ot.base.A", np.zeros(32, dtype=np.uint8))  # the identity: small order, refused
    with pytest.raises(ProtocolError, match="invalid group element"):
        ot.base_ot_receive(b2, np.ones(4, np.uint8))


def test_base_ot_validates_choices():
    a, _ = ot.pipe_pair(timeout=1)
    with pytest.raises(InputError):
        ot.base_ot_receive(a, np.array([0, 2], np.uint8))


# ---- transpose ------------------------------------------------------------------


@pytest.mark.parametrize("ncols", [128, 256, 384, 1024, 128 * 37, 1 << 15])
def test_transpose_matches_numpy(isa, ncols):
    rng = np.random.default_rng(ncols)
    bits = rng.integers(0, 256, (128, ncols // 8), dtype=np.uint8)
    for nout in sorted({ncols, ncols - 1, ncols - 127, 1, ncols // 2 + 3}):
        out = np.full((nout + 1, 2), 0xAAAA, dtype=np.uint64)  # one sentinel block past the end
        _core.ot_transpose(bits, out[:nout])
        np.testing.assert_array_equal(out[:nout], transpose_ref(bits, nout), err_msg=f"{isa} {ncols} {nout}")
        assert (out[nout] == 0xAAAA).all()


@pytest.mark.skipif("avx512" not in _core.available_isas(), reason="needs the avx512 path")
def test_transpose_movemask_fallback_matches():
    """The avx512 path has a GFNI variant and a vpmovb2m fallback: both agree with numpy."""
    rng = np.random.default_rng(11)
    bits = rng.integers(0, 256, (128, 512), dtype=np.uint8)
    previous = _core.isa()
    _core.set_isa("avx512")
    try:
        got = {}
        for force in ("auto", "movemask"):
            impl = _core.ot_transpose_impl(force)
            out = np.empty((4096 - 5, 2), np.uint64)
            _core.ot_transpose(bits, out)
            got[impl] = out
            k0, k1, cbits, delta = _kernel_inputs(4096, 3)
            u, t = _receiver_kernel(k0, k1, 5, cbits, 4000)
            q = _sender_kernel(k0, delta, 5, u, 4000)
            u_ref, t_ref = with_isa("scalar", lambda: _receiver_kernel(k0, k1, 5, cbits, 4000))
            np.testing.assert_array_equal(u, u_ref)
            np.testing.assert_array_equal(t, t_ref)
            np.testing.assert_array_equal(q, with_isa("scalar", lambda: _sender_kernel(k0, delta, 5, u, 4000)))
        assert "movemask" in got
        for out in got.values():
            np.testing.assert_array_equal(out, transpose_ref(bits, 4096 - 5))
    finally:
        _core.ot_transpose_impl("auto")
        _core.set_isa(previous)


def test_transpose_aligned_and_unaligned_outputs(isa):
    # 64-byte aligned outputs take the streaming-store path on avx512, others plain stores.
    bits = np.random.default_rng(8).integers(0, 256, (128, 1024), dtype=np.uint8)
    ref = transpose_ref(bits, 8192)
    aligned = ot.empty_labels(8192)
    assert aligned.ctypes.data % 64 == 0
    raw = np.empty(8192 * 2 + 2, np.uint64)
    unaligned = raw[1:-1].reshape(8192, 2) if raw.ctypes.data % 64 == 0 else raw[:-2].reshape(8192, 2)
    if unaligned.ctypes.data % 64 == 0:
        unaligned = raw[1:-1].reshape(8192, 2)
    for out in (aligned, unaligned):
        _core.ot_transpose(bits, out)
        np.testing.assert_array_equal(out, ref)


def test_transpose_threads_and_structure(isa):
    # Unit vectors: row i with only bit j set must land in block j, bit i.
    bits = np.zeros((128, 1024 // 8), dtype=np.uint8)
    for i, j in [(0, 0), (5, 77), (127, 1023), (64, 512), (63, 129)]:
        bits[i, j // 8] |= 1 << (j % 8)
    out = np.zeros((1024, 2), dtype=np.uint64)
    _core.ot_transpose(bits, out, threads=2)
    np.testing.assert_array_equal(out, transpose_ref(bits, 1024))
    assert out[77, 0] == 1 << 5 and out[1023, 1] == 1 << 63


def test_transpose_rejects_bad_shapes():
    with pytest.raises(ValueError):
        _core.ot_transpose(np.zeros((64, 16), np.uint8), np.zeros((128, 2), np.uint64))
    with pytest.raises(ValueError):
        _core.ot_transpose(np.zeros((128, 16), np.uint8), np.zeros((129, 2), np.uint64))
    with pytest.raises(TypeError):
        _core.ot_transpose(np.zeros((128, 16), np.uint16), np.zeros((128, 2), np.uint64))


# ---- extension kernels: every ISA equals the scalar path -----------------------


def _kernel_inputs(ncols, seed=0):
    rng = np.random.default_rng(seed)
    k0 = rng.integers(0, 256, (128, 16), dtype=np.uint8)
    k1 = rng.integers(0, 256, (128, 16), dtype=np.uint8)
    bits = rng.integers(0, 256, ncols // 8, dtype=np.uint8)
    delta = rng.integers(0, 2**64, 2, dtype=np.uint64) | np.uint64(1)
    return k0, k1, bits, delta


def _receiver_kernel(k0, k1, counter, bits, nout, threads=0):
    ncols = bits.size * 8
    u = np.empty((128, ncols // 64), np.uint64)
    t = np.empty((nout, 2), np.uint64)
    _core.ot_receiver_extend(k0, k1, counter, bits, u, t, threads)
    return u, t


def _sender_kernel(ks, delta, counter, u, nout, threads=0):
    q = np.empty((nout, 2), np.uint64)
    _core.ot_sender_extend(ks, delta, counter, u, q, threads)
    return q


@pytest.mark.parametrize("ncols,nout", [(128, 128), (256, 200), (1024, 1024), (128 * 19, 128 * 19 - 5)])
def test_extension_kernels_match_scalar(isa, ncols, nout):
    k0, k1, bits, delta = _kernel_inputs(ncols, ncols)
    counter = 7
    u, t = _receiver_kernel(k0, k1, counter, bits, nout)
    dbits = np.unpackbits(delta.view(np.uint8), bitorder="little")
    ks = np.where(dbits[:, None] == 1, k1, k0)
    q = _sender_kernel(ks, delta, counter, u, nout)
    u_ref, t_ref = with_isa("scalar", lambda: _receiver_kernel(k0, k1, counter, bits, nout))
    q_ref = with_isa("scalar", lambda: _sender_kernel(ks, delta, counter, u, nout))
    np.testing.assert_array_equal(u, u_ref)
    np.testing.assert_array_equal(t, t_ref)
    np.testing.assert_array_equal(q, q_ref)
    c = np.unpackbits(bits, bitorder="little")[:nout]
    np.testing.assert_array_equal(t, expected_t(q, c, delta))


def test_extension_kernel_matches_its_definition():
    """u and t against an independent numpy/cryptography computation of IKNP."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    ncols, counter = 256, 3
    k0, k1, bits, _ = _kernel_inputs(ncols, 1)

    def g(key):
        iv = (0).to_bytes(8, "big") + counter.to_bytes(8, "big")
        enc = Cipher(algorithms.AES(key.tobytes()), modes.CTR(iv)).encryptor()
        return np.frombuffer(enc.update(bytes(ncols // 8)), np.uint8)

    g0 = np.stack([g(k) for k in k0])
    g1 = np.stack([g(k) for k in k1])
    u, t = _receiver_kernel(k0, k1, counter, bits, ncols)
    np.testing.assert_array_equal(u.view(np.uint8), g0 ^ g1 ^ bits[None, :])
    np.testing.assert_array_equal(t, transpose_ref(g0, ncols))


def test_extension_kernel_threads_agree():
    ncols = 1 << 15
    k0, k1, bits, delta = _kernel_inputs(ncols, 2)
    u1, t1 = _receiver_kernel(k0, k1, 11, bits, ncols, threads=1)
    u2, t2 = _receiver_kernel(k0, k1, 11, bits, ncols, threads=2)
    np.testing.assert_array_equal(u1, u2)
    np.testing.assert_array_equal(t1, t2)
    q1 = _sender_kernel(k0, delta, 11, u1, ncols, threads=1)
    q2 = _sender_kernel(k0, delta, 11, u1, ncols, threads=2)
    np.testing.assert_array_equal(q1, q2)


def test_extension_kernel_rejects_bad_arguments():
    k0, k1, bits, _ = _kernel_inputs(256)
    u = np.empty((128, 4), np.uint64)
    with pytest.raises(ValueError, match="seeds"):
        _core.ot_receiver_extend(k0[:64], k1, 0, bits, u, np.empty((256, 2), np.uint64))
    with pytest.raises(ValueError, match="choice_bits"):
        _core.ot_receiver_extend(k0, k1, 0, bits[:5], u, np.empty((256, 2), np.uint64))
    with pytest.raises(ValueError, match="more blocks"):
        _core.ot_receiver_extend(k0, k1, 0, bits, u, np.empty((257, 2), np.uint64))
    with pytest.raises(ValueError, match="2\\^64"):
        _core.ot_receiver_extend(k0, k1, 2**64 - 1, bits, u, np.empty((256, 2), np.uint64))


# ---- correlated OT end to end ----------------------------------------------------


@pytest.mark.parametrize("kind", ["random", "zeros", "ones"])
@pytest.mark.parametrize("n", [1, 127, 128, 129, 1001, 40_000, 150_001])
def test_cot_correlation(kind, n):
    sender, receiver = cot_pair(overlap=n % 2 == 1, threads=1 + n % 3)
    rng = np.random.default_rng(n)
    choices = {"random": rng.integers(0, 2, n), "zeros": np.zeros(n), "ones": np.ones(n)}[kind].astype(np.uint8)
    q, t = extend(sender, receiver, choices)
    assert q.shape == t.shape == (n, 2) and q.dtype == t.dtype == np.uint64
    delta = sender.delta
    assert int(delta[0]) & 1 == 1
    np.testing.assert_array_equal(t, expected_t(q, choices, delta))
    assert len(np.unique(q, axis=0)) == n  # labels look random: no repeats


def test_cot_under_every_isa(isa):
    sender, receiver = cot_pair(chunk=512)
    choices = np.random.default_rng(3).integers(0, 2, 1500).astype(np.uint8)
    q, t = extend(sender, receiver, choices)
    np.testing.assert_array_equal(t, expected_t(q, choices, sender.delta))


@pytest.mark.parametrize("overlap", [False, True])
def test_cot_chunks_calls_and_given_delta(overlap):
    delta = (0x0123456789ABCDEF << 64) | 0xFEDCBA9876543211
    sender, receiver = cot_pair(chunk=256, delta=delta, overlap=overlap)
    d = sender.delta
    assert (int(d[1]) << 64) | int(d[0]) == delta
    rng = np.random.default_rng(9)
    seen = []
    for n in (1000, 0, 1, 256, 333):  # several calls share one setup; the PRG streams continue
        choices = rng.integers(0, 2, n).astype(np.uint8)
        q, t = extend(sender, receiver, choices)
        np.testing.assert_array_equal(t, expected_t(q, choices, d))
        seen.append(q)
    allq = np.concatenate(seen)
    assert len(np.unique(allq, axis=0)) == len(allq)
    assert sender.count == receiver.count == 1590


@pytest.mark.parametrize("overlap", [False, True])
def test_receiver_random_choices_and_streaming(overlap):
    sender, receiver = cot_pair(chunk=1024, overlap=overlap)
    (q, (c, t)) = run_both(lambda: sender.extend(5000), lambda: receiver.extend(5000))
    assert c.dtype == np.uint8 and set(np.unique(c)) <= {0, 1} and 2000 < c.sum() < 3000
    np.testing.assert_array_equal(t, expected_t(q, c, sender.delta))
    choices = np.random.default_rng(1).integers(0, 2, 3000).astype(np.uint8)
    q_parts, t_parts = run_both(lambda: list(sender.extend_chunks(3000)), lambda: list(receiver.extend_chunks(choices)))
    assert [s for s, _ in q_parts] == [0, 1024, 2048] == [s for s, _ in t_parts]
    q = np.concatenate([x for _, x in q_parts])
    t = np.concatenate([x for _, x in t_parts])
    np.testing.assert_array_equal(t, expected_t(q, choices, sender.delta))


def test_sender_follows_the_receivers_chunks():
    a, b = ot.pipe_pair()
    sender, receiver = ot.COTSender(chunk=128), ot.COTReceiver(chunk=4096)
    run_both(lambda: sender.setup(a), lambda: receiver.setup(b))
    choices = np.random.default_rng(5).integers(0, 2, 10_000).astype(np.uint8)
    q, t = extend(sender, receiver, choices)
    np.testing.assert_array_equal(t, expected_t(q, choices, sender.delta))


@pytest.mark.parametrize("overlap", [False, True])
def test_mismatched_counts_are_detected(overlap):
    sender, receiver = cot_pair(chunk=1024, overlap=overlap)
    with pytest.raises(ProtocolError, match="different number"):
        run_both(lambda: receiver.extend(np.zeros(2048, np.uint8)), lambda: sender.extend(100))


def test_bad_arguments():
    with pytest.raises(InputError, match="least significant bit"):
        ot.COTSender(delta=2)
    with pytest.raises(InputError):
        ot.COTSender(chunk=100)
    with pytest.raises(InputError, match="setup"):
        ot.COTSender().extend(10)
    with pytest.raises(InputError, match="setup"):
        ot.COTReceiver().extend(np.zeros(4, np.uint8))


# ---- security sanity: the sender's view does not depend on the choices ----------


def _receiver_messages(choices):
    a, b = ot.pipe_pair()
    sender, receiver = ot.COTSender(), ot.COTReceiver(chunk=1 << 14)
    rec = RecordingPipe(b)
    run_both(lambda: sender.setup(a), lambda: receiver.setup(rec))
    q, t = run_both(lambda: sender.extend(len(choices)), lambda: receiver.extend(choices, rec))
    np.testing.assert_array_equal(t, expected_t(q, choices, sender.delta))
    us = [arr for name, arr in rec.sent if name == "ot.iknp.u"]
    assert us and all(u.shape[0] == 128 for u in us)
    return np.concatenate([u.reshape(-1) for u in us]).view(np.uint8)


def test_sender_view_is_independent_of_the_choices():
    n = 1 << 15
    view0 = _receiver_messages(np.zeros(n, np.uint8))
    view1 = _receiver_messages(np.ones(n, np.uint8))
    h0 = np.bincount(view0, minlength=256)
    h1 = np.bincount(view1, minlength=256)
    # Each view is uniform over bytes, and the two histograms are alike.
    assert stats.chisquare(h0).pvalue > 1e-4
    assert stats.chisquare(h1).pvalue > 1e-4
    assert stats.chi2_contingency(np.stack([h0, h1]))[1] > 1e-4
    # Bit level: every row of u is balanced whatever the choices (no row equals c).
    for view in (view0, view1):
        ones = np.unpackbits(view).mean()
        assert abs(ones - 0.5) < 0.005


# ---- random OT --------------------------------------------------------------------


def test_random_ot():
    sender, receiver = cot_pair(chunk=1024)
    choices = np.random.default_rng(2).integers(0, 2, 3000).astype(np.uint8)
    (r0, r1), r = run_both(lambda: sender.random_ots(3000), lambda: receiver.random_ots(choices))
    np.testing.assert_array_equal(r, np.where(choices[:, None] == 1, r1, r0))
    assert not np.any(np.all(r0 == r1, axis=1))
    # The hash breaks the correlation: r0 ^ r1 is not constant.
    assert len(np.unique(r0 ^ r1, axis=0)) == 3000
    # A second batch uses fresh tweaks; random choices work too.
    (s0, s1), (c, r) = run_both(lambda: sender.random_ots(100), lambda: receiver.random_ots(100))
    np.testing.assert_array_equal(r, np.where(c[:, None] == 1, s1, s0))


def test_hash_matches_definition_and_scalar(isa):
    import hashlib

    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key = hashlib.sha256(b"safelight ot tccr v1").digest()[:16]

    def pi(block):
        enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
        return np.frombuffer(enc.update(block.tobytes()) + enc.finalize(), np.uint64)

    rng = np.random.default_rng(4)
    x = rng.integers(0, 2**64, (77, 2), dtype=np.uint64)
    delta = rng.integers(0, 2**64, 2, dtype=np.uint64) | np.uint64(1)
    tweak, domain = 2**64 - 100, 12345
    r0, r1 = ot.rot_sender(x, delta, tweak, domain)
    r = ot.rot_receiver(x ^ delta, tweak, domain)
    np.testing.assert_array_equal(r, r1)
    for j in (0, 1, 40, 76):
        y = pi(x[j])
        w = np.array([(tweak + j) % 2**64, domain], np.uint64)
        np.testing.assert_array_equal(r0[j], pi(y ^ w) ^ y)
    ref0, ref1 = with_isa("scalar", lambda: ot.rot_sender(x, delta, tweak, domain))
    np.testing.assert_array_equal(r0, ref0)
    np.testing.assert_array_equal(r1, ref1)


# ---- dealer mode ------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 100, 1000])
def test_dealer_mode(n):
    s_seed, r_seed = os.urandom(16), os.urandom(16)
    t_sent = ot.dealer_cot(s_seed, r_seed, n)
    q, delta = ot.cot_from_dealer_seed(s_seed, n, "sender")
    c, t = ot.cot_from_dealer_seed(r_seed, n, "receiver", t=t_sent)
    assert int(delta[0]) & 1 == 1 and q.shape == t.shape == (n, 2) and c.shape == (n,)
    np.testing.assert_array_equal(t, expected_t(q, c, delta))
    if n >= 100:
        assert 0.3 < c.mean() < 0.7


def test_dealer_mode_pieces_agree_with_the_whole():
    s_seed, r_seed = os.urandom(16), os.urandom(16)
    q, delta = ot.cot_from_dealer_seed(s_seed, 1000, "sender")
    c, _ = ot.cot_from_dealer_seed(r_seed, 1000, "receiver", t=np.zeros((1000, 2), np.uint64))
    q2, delta2 = ot.cot_from_dealer_seed(s_seed, 300, "sender", offset=333)
    c2, t2 = ot.cot_from_dealer_seed(
        r_seed, 300, "receiver", offset=333, t=ot.dealer_cot(s_seed, r_seed, 300, offset=333)
    )
    np.testing.assert_array_equal(delta, delta2)
    np.testing.assert_array_equal(q[333:633], q2)
    np.testing.assert_array_equal(c[333:633], c2)
    np.testing.assert_array_equal(t2, expected_t(q2, c2, delta))


def test_dealer_mode_errors():
    with pytest.raises(InputError, match="16 bytes"):
        ot.cot_from_dealer_seed(b"short", 4)
    with pytest.raises(InputError, match="labels t"):
        ot.cot_from_dealer_seed(bytes(16), 4, "receiver")
    with pytest.raises(ProtocolError, match="shape"):
        ot.cot_from_dealer_seed(bytes(16), 4, "receiver", t=np.zeros((3, 2), np.uint64))
    with pytest.raises(InputError, match="role"):
        ot.cot_from_dealer_seed(bytes(16), 4, "garbler")


# ---- a peer that dies -------------------------------------------------------------


@pytest.mark.parametrize("overlap", [False, True])
def test_queue_peer_dies_during_extension(overlap):
    sender, receiver = cot_pair(chunk=1024, overlap=overlap)
    receiver.pipe.close()  # the receiver's process is gone before extending
    with pytest.raises(PeerUnavailableError, match="oblivious transfer .*closed the connection"):
        sender.extend(5000)


def test_queue_peer_silent_times_out():
    a, b = ot.pipe_pair(timeout=0.5)
    with pytest.raises(PeerUnavailableError, match="base OTs.*did not answer"):
        ot.COTSender().setup(a)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("ot-certs")
    create_cluster_certs(d, 1)
    return d


def tls_pair(certs, timeout=5.0):
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    box = {}

    def accept():
        raw, _ = listener.accept()
        box["server"] = accept_tls(raw, server_context(Identity.from_dir(certs, "party-0")), timeout)

    t = threading.Thread(target=accept)
    t.start()
    try:
        client = connect("127.0.0.1", port, Identity.from_dir(certs, "client"), "party-0", timeout)
    finally:
        t.join()
        listener.close()
    return client, box["server"]


@pytest.mark.parametrize("overlap", [False, True])
def test_cot_over_tls_channels_and_peer_death(certs, overlap):
    client, server = tls_pair(certs)
    sender = ot.COTSender(chunk=1 << 12, overlap=overlap)
    receiver = ot.COTReceiver(chunk=1 << 12, overlap=overlap)
    pipe_s = ChannelPipe(client, client, b"J" * 16)  # one two-way channel per side
    pipe_r = ChannelPipe(server, server, b"J" * 16)
    run_both(lambda: sender.setup(pipe_s), lambda: receiver.setup(pipe_r))
    choices = np.random.default_rng(0).integers(0, 2, 20_000).astype(np.uint8)
    q, t = extend(sender, receiver, choices)
    np.testing.assert_array_equal(t, expected_t(q, choices, sender.delta))

    # The receiver sends one chunk of a 3-chunk extension, then its process dies.
    def die_midway():
        gen = receiver.extend_chunks(np.zeros(3 << 12, np.uint8))
        next(gen)
        server.close()

    with pytest.raises(PeerUnavailableError, match="oblivious transfer \\(extension, after"):
        run_both(die_midway, lambda: sender.extend(3 << 12))
    client.close()
