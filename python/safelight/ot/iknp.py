"""IKNP oblivious-transfer extension producing correlated OTs (semi-honest).

Correlated OT with a global offset ``delta`` (128 bits, least significant bit
1 so that it doubles as the free-XOR offset of garbled circuits): for OT ``j``
the sender gets a label ``q_j``, the receiver with choice bit ``c_j`` gets

    t_j = q_j ^ c_j * delta

Labels are ``(n, 2)`` uint64 arrays, one 128-bit block per row as two
little-endian words (lo, hi); the least significant bit is ``labels[j, 0] & 1``.

Protocol (Ishai-Kilian-Nissim-Petrank, 2003): in :meth:`setup` the roles of a
128-fold base OT are swapped: the COT receiver is the base-OT sender with seed
pairs ``(k0_i, k1_i)``, the COT sender the base-OT receiver with choice bits
``s = delta`` and seeds ``k_{s_i, i}``. Each :meth:`extend` of ``m`` OTs (in
chunks of at most ``chunk`` OTs, each padded to a multiple of 128) expands the
seeds with AES-128-CTR into rows of ``m`` bits, and the receiver sends one
message, the 128 x m bit matrix ``u_i = G(k0_i) ^ G(k1_i) ^ c`` (16 bytes per
OT); the sender computes ``q = transpose(G(k_{s_i, i}) ^ s_i u_i)`` and the
receiver ``t = transpose(G(k0_i))``. Extension traffic is one-way, receiver to
sender, so the two parties work at the same time: while the sender processes
chunk k the receiver computes chunk k+1 (the socket buffers hold the data in
between; ``overlap=True`` adds a helper thread per party for slow links).
The hot loops (AES-CTR expansion, the bit-matrix transpose) are fused C++
kernels (``_core.ot_receiver_extend`` / ``ot_sender_extend``).

The COT objects are not thread-safe: one extension at a time per object.

The PRG streams continue across :meth:`extend` calls (a running block
counter), so one setup serves any number of extensions; both ends must call
:meth:`extend` with the same counts in the same order.

Random OT: :meth:`COTSender.random_ots` / :meth:`COTReceiver.random_ots` hash
the correlated labels with a tweakable correlation-robust hash,
``H(x, w) = pi(pi(x) ^ w) ^ pi(x)`` with ``pi`` fixed-key AES-128 (Guo, Katz,
Wang, Yu, S&P 2020) and tweak ``w = (OT index, session domain)``: the sender
gets ``(H(q_j), H(q_j ^ delta))``, the receiver ``H(t_j)``, its choice's string.
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import _core
from ..errors import InputError, PeerUnavailableError, ProtocolError
from .base import Pipe, base_ot_receive, base_ot_send

KAPPA = 128
DEFAULT_CHUNK = 1 << 16  # OTs per message: 1 MiB of u
_U = "ot.iknp.u"


def _check_chunk(chunk: int) -> int:
    chunk = int(chunk)
    if chunk < KAPPA or chunk % KAPPA:
        raise InputError(f"chunk must be a positive multiple of {KAPPA}, got {chunk}")
    return chunk


def _plan(n: int, chunk: int) -> list[tuple[int, int, int]]:
    """(first OT, padded columns, OTs) for each chunk of an extension of n OTs."""
    out = []
    for start in range(0, n, chunk):
        count = min(chunk, n - start)
        out.append((start, -(-count // KAPPA) * KAPPA, count))
    return out


def _as_delta(delta: Any) -> np.ndarray:
    """A (2,) uint64 array from 16 bytes, an int, or 2 uint64 words."""
    if isinstance(delta, (bytes, bytearray, memoryview)):
        raw = bytes(delta)
        if len(raw) != 16:
            raise InputError(f"delta must be 16 bytes, got {len(raw)}")
        arr = np.frombuffer(raw, dtype=np.uint64).copy()
    elif isinstance(delta, int):
        if not 0 <= delta < 1 << 128:
            raise InputError("delta must be a 128-bit unsigned integer")
        arr = np.array([delta & (2**64 - 1), delta >> 64], dtype=np.uint64)
    else:
        arr = np.ascontiguousarray(delta).reshape(-1)
        if arr.dtype == np.uint8 and arr.size == 16:
            arr = arr.view(np.uint64).copy()
        elif arr.dtype != np.uint64 or arr.size != 2:
            raise InputError("delta must be 16 bytes, a 128-bit int or 2 uint64 words")
        arr = arr.copy()
    if not int(arr[0]) & 1:
        raise InputError("delta must have its least significant bit set (it is the free-XOR offset)")
    return arr


def _domain(sid: bytes) -> int:
    return int.from_bytes(sid[:8], "little")


def _wipe(*arrays: np.ndarray | None) -> None:
    for a in arrays:
        if a is not None:
            a.fill(0)


def _rethrow(exc: BaseException, what: str) -> BaseException:
    """The same error class with the protocol step in front of its message."""
    if isinstance(exc, (PeerUnavailableError, ProtocolError)):
        return type(exc)(f"oblivious transfer ({what}): {exc}")
    return exc


class _Party:
    def __init__(self, chunk: int, threads: int, session: bytes, overlap: bool) -> None:
        self.chunk = _check_chunk(chunk)
        self.threads = int(threads)
        self.overlap = bool(overlap)
        self.session = bytes(session)
        self.pipe: Pipe | None = None
        self.domain = 0
        self.counter = 0  # PRG blocks consumed by the extension so far
        self.count = 0  # OTs produced so far: the index of the next OT (hash tweak)

    def _need(self, pipe: Pipe | None) -> Pipe:
        pipe = pipe if pipe is not None else self.pipe
        if pipe is None or not self._ready():
            raise InputError("call setup(pipe) before extend(): the base OTs have not run")
        return pipe

    def _ready(self) -> bool:  # pragma: no cover - overridden
        return False

    def close(self) -> None:
        """Wipe the seeds (the object cannot extend afterwards)."""


class COTSender(_Party):
    """Sender of correlated OTs: holds ``delta`` and gets ``q_j`` for every OT.

    Parameters
    ----------
    delta : bytes | int | array, optional
        The global offset (16 bytes / 128-bit int / 2 uint64 words, lsb must be 1).
        Random (with lsb 1) when omitted.
    chunk : int
        Most OTs per message (a multiple of 128); the receiver's choice wins,
        the sender follows the chunks it receives.
    threads : int
        Threads for the C++ kernels of each chunk (0: one per core). The default, 1,
        suits two parties on one small machine; more helps when the peer is remote.
    session : bytes
        Optional context bound into the base-OT keys (e.g. a job id).
    overlap : bool
        False (default): compute a chunk, then hand it to the pipe, on the calling
        thread; the socket buffers already let the two parties work at the same
        time, and on a 2-core machine running both parties this is the fastest.
        True: a helper thread moves chunk k while chunk k+1 is computed.
    """

    def __init__(
        self,
        delta: Any = None,
        *,
        chunk: int = DEFAULT_CHUNK,
        threads: int = 1,
        session: bytes = b"",
        overlap: bool = False,
    ) -> None:
        super().__init__(chunk, threads, session, overlap)
        if delta is None:
            d = np.frombuffer(os.urandom(16), dtype=np.uint64).copy()
            d[0] |= np.uint64(1)
            self._delta = d
        else:
            self._delta = _as_delta(delta)
        self._keys: np.ndarray | None = None

    @property
    def delta(self) -> np.ndarray:
        """The offset as a (2,) uint64 array (a copy)."""
        return self._delta.copy()

    def _ready(self) -> bool:
        return self._keys is not None

    def setup(self, pipe: Pipe) -> COTSender:
        """Run the 128 base OTs (as their receiver, choice bits = delta). Once per link."""
        bits = np.unpackbits(self._delta.view(np.uint8), bitorder="little")
        try:
            keys, sid = base_ot_receive(pipe, bits, self.session)
        except BaseException as exc:
            raise _rethrow(exc, "base OTs") from None
        self._keys, self.domain, self.pipe = keys, _domain(sid), pipe
        self.counter = self.count = 0
        return self

    def extend(self, n: int, pipe: Pipe | None = None, *, out: np.ndarray | None = None) -> np.ndarray:
        """``q`` for the next ``n`` correlated OTs: an (n, 2) uint64 array.

        ``out``: an (n, 2) uint64 C-contiguous array to write into (saves the allocation).
        """
        n = _check_n(n)
        q = _out(out, n)
        for _ in self._chunks(n, pipe, q):
            pass
        return q

    def extend_chunks(self, n: int, pipe: Pipe | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Stream ``n`` OTs: yields ``(first OT index within this call, q chunk)``."""
        return self._chunks(_check_n(n), pipe, None)

    def random_ots(self, n: int, pipe: Pipe | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(r0, r1)`` for ``n`` random OTs: the hashes of ``q_j`` and ``q_j ^ delta``."""
        first = self.count
        q = self.extend(n, pipe)
        r0, r1 = np.empty_like(q), np.empty_like(q)
        _core.ot_hash_pair(q, self._delta, r0, r1, first, self.domain, self.threads)
        _wipe(q)
        return r0, r1

    def _chunks(self, n: int, pipe: Pipe | None, out: np.ndarray | None) -> Iterator[tuple[int, np.ndarray]]:
        pipe = self._need(pipe)
        if n == 0:
            return
        if not self.overlap:
            yield from self._consume(n, out, (_recv_or_error(pipe) for _ in itertools.count()))
            return
        inbox: queue.Queue = queue.Queue(maxsize=2)
        stop = threading.Event()

        def receive() -> None:
            done = 0
            while done < n and not stop.is_set():
                try:
                    u = pipe.recv(_U)
                except BaseException as exc:  # handed to the consuming thread
                    inbox.put(exc)
                    return
                inbox.put(u)
                done += u.size // 2 if isinstance(u, np.ndarray) else n

        reader = threading.Thread(target=receive, name="ot-sender-recv", daemon=True)
        reader.start()
        try:
            yield from self._consume(n, out, (inbox.get() for _ in itertools.count()))
        finally:
            stop.set()

    def _consume(self, n: int, out: np.ndarray | None, messages: Iterator[Any]) -> Iterator[tuple[int, np.ndarray]]:
        """Turns the receiver's u chunks (or the exception that replaced one) into q chunks."""
        done = 0
        while done < n:
            u = next(messages)
            if isinstance(u, BaseException):
                raise _rethrow(u, f"extension, after {done} of {n} OTs")
            if (
                not isinstance(u, np.ndarray)
                or u.dtype != np.uint64
                or u.ndim != 2
                or u.shape[0] != KAPPA
                or u.shape[1] == 0
                or u.shape[1] % 2
            ):
                raise ProtocolError(
                    "oblivious transfer: the receiver sent a malformed u matrix "
                    f"({getattr(u, 'dtype', None)} {getattr(u, 'shape', None)})"
                )
            ncols = u.shape[1] * 64
            count = min(ncols, n - done)
            if ncols - count >= KAPPA:
                raise ProtocolError(
                    f"oblivious transfer: the receiver extended a different number of OTs "
                    f"(a chunk of {ncols} columns where {n - done} OTs remain)"
                )
            dest = out[done : done + count] if out is not None else empty_labels(count)
            _core.ot_sender_extend(self._keys, self._delta, self.counter, u, dest, self.threads)
            self.counter += ncols // KAPPA
            self.count += count
            first, done = done, done + count
            yield first, dest

    def close(self) -> None:
        _wipe(self._keys, self._delta)
        self._keys = None
        super().close()


class COTReceiver(_Party):
    """Receiver of correlated OTs: chooses ``c_j`` and gets ``t_j = q_j ^ c_j * delta``.

    Parameters are those of :class:`COTSender` (without delta).
    """

    def __init__(
        self, *, chunk: int = DEFAULT_CHUNK, threads: int = 1, session: bytes = b"", overlap: bool = False
    ) -> None:
        super().__init__(chunk, threads, session, overlap)
        self._k0: np.ndarray | None = None
        self._k1: np.ndarray | None = None
        self._ubufs: list[np.ndarray] | None = None  # u is public (it goes on the wire): no wipe

    def _ready(self) -> bool:
        return self._k0 is not None

    def setup(self, pipe: Pipe) -> COTReceiver:
        """Run the 128 base OTs (as their sender). Once per link."""
        try:
            k0, k1, sid = base_ot_send(pipe, KAPPA, self.session)
        except BaseException as exc:
            raise _rethrow(exc, "base OTs") from None
        self._k0, self._k1, self.domain, self.pipe = k0, k1, _domain(sid), pipe
        self.counter = self.count = 0
        return self

    def extend(self, choices: Any, pipe: Pipe | None = None, *, out: np.ndarray | None = None) -> Any:
        """Correlated OTs for the given choice bits, or for ``choices`` random bits.

        ``extend(c)`` with a uint8/bool array of n bits (any nonzero value is 1)
        returns ``t`` (n, 2) uint64; ``extend(n)`` with an int picks n uniformly
        random choice bits and returns ``(c, t)`` with ``c`` an (n,) uint8 0/1 array.
        ``out``: an (n, 2) uint64 C-contiguous array to write ``t`` into.
        """
        if isinstance(choices, (int, np.integer)):
            n = _check_n(choices)
            packed = np.frombuffer(os.urandom(-(-n // 8)), dtype=np.uint8)
            c = np.unpackbits(packed, count=n, bitorder="little")
            return c, self._extend_packed(packed, n, pipe, out)
        c = _choices(choices)
        return self._extend_packed(np.packbits(c, bitorder="little"), c.size, pipe, out)

    def extend_chunks(self, choices: Any, pipe: Pipe | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Stream the OTs for the choice bits ``choices``: yields ``(first index, t chunk)``."""
        c = _choices(choices)
        return self._chunks(np.packbits(c, bitorder="little"), c.size, pipe, None)

    def random_ots(self, choices: Any, pipe: Pipe | None = None) -> Any:
        """Random OTs: ``r_j = H(t_j)``, the string ``r_{c_j}`` of the sender's pair.

        Like :meth:`extend`, an int gives random choices and returns ``(c, r)``.
        """
        first = self.count
        got = self.extend(choices, pipe)
        t = got[1] if isinstance(got, tuple) else got
        r = np.empty_like(t)
        _core.ot_hash(t, r, first, self.domain, self.threads)
        _wipe(t)
        return (got[0], r) if isinstance(got, tuple) else r

    def _extend_packed(
        self, packed: np.ndarray, n: int, pipe: Pipe | None = None, out: np.ndarray | None = None
    ) -> np.ndarray:
        t = _out(out, n)
        for _ in self._chunks(packed, n, pipe, t):
            pass
        return t

    def _chunks(
        self, packed: np.ndarray, n: int, pipe: Pipe | None, out: np.ndarray | None
    ) -> Iterator[tuple[int, np.ndarray]]:
        pipe = self._need(pipe)
        if n == 0:
            return
        plan = _plan(n, self.chunk)
        total = plan[-1][0] + plan[-1][1]  # padded columns of the whole call
        if packed.size != total // 8:  # pad the last chunk's choice bits with zeros
            bits = np.zeros(total // 8, dtype=np.uint8)
            bits[: packed.size] = packed
        else:
            bits = packed
        # Two u buffers: one on the wire while the next chunk is computed into the other.
        need, count = KAPPA * plan[0][1] // 64, 2 if self.overlap else 1
        if self._ubufs is None or self._ubufs[0].size < need or len(self._ubufs) < count:
            self._ubufs = [np.empty(need, dtype=np.uint64) for _ in range(count)]
        if not self.overlap:
            yield from self._chunks_inline(plan, bits, n, pipe, out)
            return
        bufs = self._ubufs[: min(2, len(plan))]
        free = [threading.Semaphore(1) for _ in bufs]
        outbox: queue.Queue = queue.Queue()
        errors: list[BaseException] = []

        def send() -> None:
            while True:
                item = outbox.get()
                if item is None:
                    return
                slot, u = item
                try:
                    if not errors:
                        pipe.send(_U, u)
                except BaseException as exc:  # re-raised by the computing thread
                    errors.append(exc)
                finally:
                    free[slot].release()

        writer = threading.Thread(target=send, name="ot-receiver-send", daemon=True)
        writer.start()
        try:
            for k, (start, ncols, count) in enumerate(plan):
                slot = k % len(bufs)
                free[slot].acquire()
                if errors:
                    raise _rethrow(errors[0], f"extension, after {start} of {n} OTs")
                u = bufs[slot][: KAPPA * ncols // 64].reshape(KAPPA, ncols // 64)
                dest = out[start : start + count] if out is not None else empty_labels(count)
                _core.ot_receiver_extend(
                    self._k0, self._k1, self.counter, bits[start // 8 : (start + ncols) // 8], u, dest, self.threads
                )
                self.counter += ncols // KAPPA
                self.count += count
                outbox.put((slot, u))
                yield start, dest
            for f in free:  # every chunk is on the wire
                f.acquire()
                f.release()
            if errors:
                raise _rethrow(errors[0], f"extension of {n} OTs")
        finally:
            outbox.put(None)
            writer.join()

    def _chunks_inline(self, plan, bits, n, pipe, out):
        """The same chunks without a helper thread: compute, send, repeat."""
        for start, ncols, count in plan:
            u = self._ubufs[0][: KAPPA * ncols // 64].reshape(KAPPA, ncols // 64)
            dest = out[start : start + count] if out is not None else empty_labels(count)
            _core.ot_receiver_extend(
                self._k0, self._k1, self.counter, bits[start // 8 : (start + ncols) // 8], u, dest, self.threads
            )
            self.counter += ncols // KAPPA
            self.count += count
            try:
                pipe.send(_U, u)
            except BaseException as exc:
                raise _rethrow(exc, f"extension, after {start} of {n} OTs") from None
            yield start, dest

    def close(self) -> None:
        _wipe(self._k0, self._k1)
        self._k0 = self._k1 = None
        super().close()


def _choices(choices: Any) -> np.ndarray:
    c = np.asarray(choices).reshape(-1)
    if c.dtype != np.bool_ and not np.issubdtype(c.dtype, np.integer):
        raise InputError(f"choices must be an array of bits (uint8 or bool), got {c.dtype}")
    return c


def empty_labels(n: int) -> np.ndarray:
    """An uninitialised (n, 2) uint64 label array whose data is 64-byte aligned.

    The extension kernels write aligned outputs with streaming stores, which
    keeps the caches for the data still in flight; pass such an array as
    ``out`` when reusing buffers (``extend`` allocates one when ``out`` is None).
    """
    n = _check_n(n)
    raw = np.empty(16 * n + 64, dtype=np.uint8)
    skip = -raw.ctypes.data % 64
    return raw[skip : skip + 16 * n].view(np.uint64).reshape(n, 2)


def _out(out: np.ndarray | None, n: int) -> np.ndarray:
    if out is None:
        return empty_labels(n)
    if (
        not isinstance(out, np.ndarray)
        or out.dtype != np.uint64
        or out.shape != (n, 2)
        or not out.flags.c_contiguous
        or not out.flags.writeable
    ):
        raise InputError(f"out must be a writable C-contiguous uint64 array of shape ({n}, 2)")
    return out


def _recv_or_error(pipe: Pipe) -> Any:
    try:
        return pipe.recv(_U)
    except BaseException as exc:  # raised by the consumer with the protocol step in front
        return exc


def _check_n(n: Any) -> int:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
        raise InputError(f"the number of OTs must be a non-negative int, got {n!r}")
    return int(n)


# ---- random OT from correlated OT ----------------------------------------


def rot_sender(
    q: np.ndarray, delta: Any, first: int = 0, domain: int = 0, threads: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Sender's random-OT strings ``(H(q_j, w_j), H(q_j ^ delta, w_j))``, ``w_j = (first + j, domain)``."""
    q = np.ascontiguousarray(q, dtype=np.uint64)
    r0, r1 = np.empty_like(q), np.empty_like(q)
    _core.ot_hash_pair(q, _as_delta(delta), r0, r1, int(first), int(domain), threads)
    return r0, r1


def rot_receiver(t: np.ndarray, first: int = 0, domain: int = 0, threads: int = 0) -> np.ndarray:
    """Receiver's random-OT string ``H(t_j, w_j)`` (equal to the sender's string of its choice)."""
    t = np.ascontiguousarray(t, dtype=np.uint64)
    r = np.empty_like(t)
    _core.ot_hash(t, r, int(first), int(domain), threads)
    return r


# ---- dealer mode -----------------------------------------------------------

_DELTA_NONCE = 0x534C4F5444454C54  # "SLOTDELT"
_Q_NONCE = 0x534C4F5451202020  # "SLOTQ   "
_C_NONCE = 0x534C4F5443202020  # "SLOTC   "


def _seed(seed: bytes) -> bytes:
    seed = bytes(seed)
    if len(seed) != 16:
        raise InputError(f"a dealer seed must be 16 bytes, got {len(seed)}")
    return seed


def _dealer_delta(seed: bytes) -> np.ndarray:
    d = np.empty(2, dtype=np.uint64)
    _core.prg_fill(seed, d, _DELTA_NONCE, 0)
    d[0] |= np.uint64(1)
    return d


def _dealer_q(seed: bytes, n: int, offset: int) -> np.ndarray:
    q = np.empty((n, 2), dtype=np.uint64)
    if n:
        _core.prg_fill(seed, q, _Q_NONCE, offset)
    return q


def _dealer_choices(seed: bytes, n: int, offset: int) -> np.ndarray:
    first_block, skip = divmod(offset, 128)
    nbits = skip + n
    raw = np.empty(-(-nbits // 128) * 16, dtype=np.uint8)
    if raw.size:
        _core.prg_fill(seed, raw, _C_NONCE, first_block)
    return np.unpackbits(raw, bitorder="little")[skip : skip + n].copy()


def dealer_cot(sender_seed: bytes, receiver_seed: bytes, n: int, offset: int = 0) -> np.ndarray:
    """The dealer's side: the receiver's labels ``t`` for OTs ``offset .. offset+n-1``.

    The dealer picks two fresh 16-byte seeds, sends ``sender_seed`` to the COT
    sender, and ``receiver_seed`` plus this ``t`` (16 bytes per OT) to the COT
    receiver. The sender's material (delta, q) and the receiver's choice bits
    come from the seeds alone; ``t = q ^ c * delta`` ties them together and
    cannot be derived from the receiver's seed (it depends on the sender's
    secrets), so it is sent in full.
    """
    n = _check_n(n)
    s, r = _seed(sender_seed), _seed(receiver_seed)
    q = _dealer_q(s, n, offset)
    c = _dealer_choices(r, n, offset)
    t = np.empty_like(q)
    _core.ot_correlate(q, c, _dealer_delta(s), t)
    _wipe(q)
    return t


def cot_from_dealer_seed(
    seed: bytes, n: int, role: str = "sender", *, t: np.ndarray | None = None, offset: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Correlated OTs from a trusted dealer, expanded locally from a 16-byte seed.

    ``role="sender"``: returns ``(q, delta)`` from the seed alone (delta is the
    same for every ``n``/``offset`` of one seed, lsb 1). ``role="receiver"``:
    returns ``(c, t)``, the choice bits from the seed and ``t`` the labels the
    dealer sent (:func:`dealer_cot`), checked for shape. ``offset`` selects OTs
    ``offset .. offset+n-1`` of the seed's stream, so material can be taken in
    pieces. The result satisfies ``t = q ^ c * delta``.

    Trust: the dealer knows every party's OT material (delta, the choices and
    all labels); use it only with a dealer that is trusted not to collude with
    either party, as for the dealer's Beaver triples. No interaction between
    the two parties is needed.
    """
    n = _check_n(n)
    s = _seed(seed)
    if offset < 0:
        raise InputError("offset must be non-negative")
    if role == "sender":
        return _dealer_q(s, n, offset), _dealer_delta(s)
    if role == "receiver":
        if t is None:
            raise InputError("the receiver needs the labels t sent by the dealer (see dealer_cot)")
        t = np.asarray(t)
        if t.dtype != np.uint64 or t.shape != (n, 2):
            raise ProtocolError(
                f"the dealer sent labels of dtype {t.dtype} and shape {t.shape}, expected uint64 ({n}, 2)"
            )
        return _dealer_choices(s, n, offset), t
    raise InputError(f"role must be 'sender' or 'receiver', got {role!r}")
