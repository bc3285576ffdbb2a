"""Silent OT: correlated OT extension from LPN, Ferret style (semi-honest).

The same correlation as :mod:`.iknp`, ``w_j = z_j ^ x_j * delta`` with ``lsb(delta) = 1``,
but at a fraction of a bit per OT instead of 128: one iteration turns ``k + t h`` COTs
into ``n = t 2^h`` fresh ones, and keeps ``k + t h`` of them for the next iteration.

One iteration (Boyle et al. 2019; Yang, Weng, Lan, Zhang, Wang, CCS 2020):

- **Regular noise by single-point COTs.** ``t`` GGM trees of depth ``h``. The sender
  expands a random root per tree; per level it sends the XORs of the left and of the
  right children, each masked by the hash of one COT. The receiver opens the side its
  COT's random choice bit names, so its path takes the other side: the leaf ``alpha`` it
  misses is the complement of its ``h`` choice bits, random and unknown to the sender. With
  ``psi = delta ^ XOR(tree)`` it rebuilds ``v ^ e_alpha delta``. Sender to receiver only:
  ``(2 h + 1) t`` blocks.
- **LPN.** Both expand ``k`` base COTs with the public local code (``silent.hpp``:
  10 ones per row, from a seed both derive) and add the trees: ``z = A z_base ^ v``,
  ``w = A w_base ^ w_trees``, so ``w = z ^ (A x_base ^ e) delta``. Regular-noise LPN with
  this code makes the choices ``x = A x_base ^ e`` pseudorandom.
- **Least significant bits.** The sender's blocks keep their lsb at 0 (the trees' leaves
  are cleared, the base is normalised), so a receiver block's lsb *is* its choice bit.

Parameters are Ferret's (128-bit security against the known LPN attacks): the main
iteration n = 10,608,640, k = 589,824, t = 1,295, h = 13 (10,001,981 new COTs, 538 KB
sent: 0.43 bit per COT); a bootstrap iteration n = 649,728, k = 36,288, t = 1,269,
h = 9 whose 47,709 base COTs come from IKNP (16 bytes each, once per link).

Both ends must call :meth:`extend` with the same counts in the same order. Not
thread-safe: one extension at a time per object.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np

from .. import _core
from ..errors import InputError, PeerUnavailableError, ProtocolError
from .base import Pipe
from .iknp import COTReceiver, COTSender

_TREES = "ot.silent.trees"


@dataclass(frozen=True)
class LpnParams:
    """One iteration: n = trees 2^depth outputs from base = k + trees depth COTs."""

    n: int
    k: int
    trees: int
    depth: int

    def __post_init__(self) -> None:
        if self.n != self.trees << self.depth:
            raise InputError("LPN parameters: n must be trees * 2^depth")

    @property
    def base(self) -> int:
        return self.k + self.trees * self.depth


MAIN = LpnParams(n=10_608_640, k=589_824, trees=1_295, depth=13)
BOOTSTRAP = LpnParams(n=649_728, k=36_288, trees=1_269, depth=9)

LSB_MASK = np.array([~np.uint64(1), ~np.uint64(0)], dtype=np.uint64)


def _matrix_seed(session: bytes, iteration: int) -> np.ndarray:
    digest = hashlib.sha256(b"safelight silent lpn v1" + session + iteration.to_bytes(8, "little")).digest()
    return np.frombuffer(digest[:16], dtype=np.uint8).copy()


def _check_n(n) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise InputError(f"the number of OTs must be a non-negative integer, got {n!r}")
    return int(n)


class _Party:
    def __init__(self, params: LpnParams, bootstrap: LpnParams, threads: int, session: bytes) -> None:
        if bootstrap.n < params.base:
            raise InputError("the bootstrap iteration must yield the main iteration's base COTs")
        self.params, self.bootstrap = params, bootstrap
        self.threads, self.session = int(threads), bytes(session)
        self.pipe: Pipe | None = None
        self.iteration = 0
        self.tweak = 0  # hash tweaks used so far (one per tree level)
        self.sent = 0  # bytes of the iterations' messages (the IKNP bootstrap not included)
        self._base: np.ndarray | None = None
        # the last iteration's outputs, reused by the next (no fresh pages per iteration)
        self._leaves: dict[LpnParams, np.ndarray] = {}
        self._chunk: np.ndarray | None = None  # its outputs not yet handed out
        self._offset = 0

    def _need(self, pipe: Pipe | None) -> Pipe:
        pipe = pipe if pipe is not None else self.pipe
        if pipe is None or self._base is None:
            raise InputError("call setup(pipe) before extend(): the bootstrap has not run")
        return pipe

    def _buffer(self, params: LpnParams) -> np.ndarray:
        if params not in self._leaves:
            self._leaves[params] = np.empty((params.n, 2), dtype=np.uint64)
        return self._leaves[params]

    def _take(self, n: int, pipe: Pipe, out: np.ndarray | None) -> np.ndarray:
        """The next n output blocks (into ``out`` when given), running iterations as needed."""
        if out is None:
            out = np.empty((n, 2), dtype=np.uint64)
        elif out.shape != (n, 2) or out.dtype != np.uint64 or not out.flags.c_contiguous:
            raise InputError(f"out must be a C-contiguous ({n}, 2) uint64 array")
        done = 0
        while done < n:
            if self._chunk is None or self._offset == len(self._chunk):
                self._chunk = None
                fresh = self._iterate(self.params, self._base, pipe)
                self._base[:] = fresh[: self.params.base]
                self._chunk, self._offset = fresh[self.params.base :], 0
            m = min(n - done, len(self._chunk) - self._offset)
            out[done : done + m] = self._chunk[self._offset : self._offset + m]
            done += m
            self._offset += m
        return out

    def _bootstrap(self, base: np.ndarray, pipe: Pipe) -> None:
        pool = self._iterate(self.bootstrap, base, pipe)
        self._base = pool[: self.params.base].copy()
        self._chunk, self._offset = pool[self.params.base :], 0

    def _iterate(self, params: LpnParams, base: np.ndarray, pipe: Pipe) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def _encode(self, params: LpnParams, base: np.ndarray, out: np.ndarray) -> None:
        _core.silent_lpn_encode(
            np.ascontiguousarray(base[: params.k]), _matrix_seed(self.session, self.iteration), 0, out, self.threads
        )
        self.iteration += 1


class SilentSender(_Party):
    """Sender of correlated OTs: holds ``delta``, gets ``z_j`` (lsb 0) for every OT."""

    def __init__(
        self,
        *,
        params: LpnParams = MAIN,
        bootstrap: LpnParams = BOOTSTRAP,
        threads: int = 1,
        session: bytes = b"",
        delta=None,
    ) -> None:
        super().__init__(params, bootstrap, threads, session)
        self._iknp = COTSender(delta, threads=threads, session=session)

    @property
    def delta(self) -> np.ndarray:
        return self._iknp.delta

    def setup(self, pipe: Pipe) -> SilentSender:
        """IKNP's base OTs and the bootstrap COTs, then one bootstrap iteration. Once per link."""
        self._iknp.setup(pipe)
        base = self._iknp.extend(self.bootstrap.base, pipe) & LSB_MASK
        self.pipe = pipe
        self._bootstrap(base, pipe)
        return self

    def extend(self, n: int, pipe: Pipe | None = None, *, out: np.ndarray | None = None) -> np.ndarray:
        """``z`` for the next ``n`` correlated OTs: an (n, 2) uint64 array (``out`` when
        given: saves fresh pages on every call)."""
        return self._take(_check_n(n), self._need(pipe), out)

    def _iterate(self, params: LpnParams, base: np.ndarray, pipe: Pipe) -> np.ndarray:
        t, h = params.trees, params.depth
        roots = np.frombuffer(os.urandom(16 * t), dtype=np.uint64).reshape(t, 2).copy()
        delta = self._iknp.delta
        leaves = self._buffer(params)
        sums = np.empty((t * h, 2, 2), dtype=np.uint64)
        psi = np.empty((t, 2), dtype=np.uint64)
        _core.silent_ggm_expand(roots, h, delta, leaves, sums, psi, self.threads)
        roots.fill(0)
        tree_cots = np.ascontiguousarray(base[params.k : params.k + t * h])
        masks = np.empty((t * h, 2, 2), dtype=np.uint64)
        m0, m1 = np.empty((t * h, 2), dtype=np.uint64), np.empty((t * h, 2), dtype=np.uint64)
        _core.ot_hash_pair(tree_cots, delta, m0, m1, self.tweak, 0, self.threads)
        masks[:, 0], masks[:, 1] = m0, m1
        self.tweak += t * h
        message = np.concatenate([(sums ^ masks).reshape(-1, 2), psi])
        sums.fill(0)
        pipe.send(_TREES, message)
        self.sent += message.nbytes
        self._encode(params, base, leaves)
        return leaves


class SilentReceiver(_Party):
    """Receiver of random correlated OTs: gets ``w_j = z_j ^ x_j delta``; ``x_j = lsb(w_j)``."""

    def __init__(
        self, *, params: LpnParams = MAIN, bootstrap: LpnParams = BOOTSTRAP, threads: int = 1, session: bytes = b""
    ) -> None:
        super().__init__(params, bootstrap, threads, session)
        self._iknp = COTReceiver(threads=threads, session=session)

    def setup(self, pipe: Pipe) -> SilentReceiver:
        self._iknp.setup(pipe)
        choices = np.frombuffer(os.urandom(self.bootstrap.base), dtype=np.uint8) & 1
        base = self._iknp.extend(choices, pipe)
        base[:, 0] = (base[:, 0] & ~np.uint64(1)) | choices.astype(np.uint64)
        self.pipe = pipe
        self._bootstrap(base, pipe)
        return self

    def extend(
        self, n: int, pipe: Pipe | None = None, *, out: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(w, x)`` for the next ``n`` correlated OTs: (n, 2) uint64 blocks (``out`` when
        given) and their choice bits (uint8), random."""
        w = self._take(_check_n(n), self._need(pipe), out)
        return w, (w[:, 0] & np.uint64(1)).astype(np.uint8)

    def _iterate(self, params: LpnParams, base: np.ndarray, pipe: Pipe) -> np.ndarray:
        t, h = params.trees, params.depth
        tree_cots = np.ascontiguousarray(base[params.k : params.k + t * h])
        pads = np.empty((t * h, 2), dtype=np.uint64)
        _core.ot_hash(tree_cots, pads, self.tweak, 0, self.threads)
        self.tweak += t * h
        try:
            message = pipe.recv(_TREES)
        except PeerUnavailableError as exc:
            raise PeerUnavailableError(f"silent OT iteration {self.iteration}: {exc}") from None
        if not isinstance(message, np.ndarray) or message.dtype != np.uint64 or message.shape != (2 * t * h + t, 2):
            raise ProtocolError("silent OT: the tree message has the wrong shape")
        levels = message[: 2 * t * h].reshape(t * h, 2, 2)
        psi = np.ascontiguousarray(message[2 * t * h :])
        choice = (tree_cots[:, 0] & np.uint64(1)).astype(np.int64)
        keys = np.ascontiguousarray(levels[np.arange(t * h), choice] ^ pads)
        # the path takes the side the COT did not open: alpha's bits are the complements
        path = (1 - choice).reshape(t, h)
        alphas = (path << np.arange(h - 1, -1, -1)).sum(axis=1).astype(np.uint32)
        leaves = self._buffer(params)
        _core.silent_ggm_punctured(keys, alphas, psi, h, leaves, self.threads)
        self._encode(params, base, leaves)
        return leaves


_CHOOSE = "ot.silent.choose"


class ChosenCOTSender:
    """:class:`~safelight.ot.COTSender`'s interface on silent OT: ``q_j`` for choice bits the
    receiver picks. Each extension takes the receiver's corrections ``d = y ^ x`` (one bit
    per OT, against the random choices x of the silent COTs) and shifts ``q = z ^ d delta``,
    so that ``t = w = q ^ y delta``. Sequential: the receiver must not read the pipe from
    another thread meanwhile (the silent iterations' messages share it)."""

    sequential = True

    def __init__(self, *, threads: int = 1, session: bytes = b"", domain: int = 0x5E1E) -> None:
        self._silent = SilentSender(threads=threads, session=session)
        self.threads, self.domain, self.count = int(threads), int(domain), 0

    @property
    def delta(self) -> np.ndarray:
        return self._silent.delta

    def setup(self, pipe: Pipe) -> ChosenCOTSender:
        self._silent.setup(pipe)
        return self

    def extend(self, n: int, pipe: Pipe | None = None, *, out: np.ndarray | None = None) -> np.ndarray:
        pipe = self._silent._need(pipe)
        q = self._silent.extend(n, pipe, out=out)
        flips = np.unpackbits(pipe.recv(_CHOOSE), count=n).astype(np.uint64)
        q ^= flips[:, None] * self._silent.delta[None, :]
        self.count += n
        return q


class ChosenCOTReceiver:
    """:class:`~safelight.ot.COTReceiver`'s interface on silent OT (see :class:`ChosenCOTSender`)."""

    sequential = True

    def __init__(self, *, threads: int = 1, session: bytes = b"", domain: int = 0x5E1E) -> None:
        self._silent = SilentReceiver(threads=threads, session=session)
        self.threads, self.domain, self.count = int(threads), int(domain), 0

    def setup(self, pipe: Pipe) -> ChosenCOTReceiver:
        self._silent.setup(pipe)
        return self

    def extend(self, choices, pipe: Pipe | None = None, *, out: np.ndarray | None = None) -> np.ndarray:
        pipe = self._silent._need(pipe)
        bits = np.ascontiguousarray(choices, dtype=np.uint8).reshape(-1) & 1
        w, x = self._silent.extend(bits.size, pipe, out=out)
        pipe.send(_CHOOSE, np.packbits(bits ^ x))
        self.count += bits.size
        return w
