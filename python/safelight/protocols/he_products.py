"""Cross terms of shared products with lattice HE: ``a_0 (*) b_1 + a_1 (*) b_0`` between two servers.

For a convolution (or matrix product) ``c = a (*) b`` of tensors shared as
``a = a_0 + a_1``, ``b = b_0 + b_1`` in Z_2^64, each server i computes its local
``a_i (*) b_i`` and the two servers compute the cross terms together, symmetrically:

1. server i packs its ``a_i`` into polynomials (:mod:`safelight.he.packing`), encrypts
   them under its own BFV key (plaintext modulus t = 2^64, so ring arithmetic is exact)
   and sends them (seeded: half a ciphertext each);
2. server j multiplies them by its packed ``b_j`` (one polynomial product per tile,
   output channel and channel group, summed over groups), then for every result
   ciphertext: adds a fresh public-key encryption of zero and a uniform noise of
   ``flood_bits`` bits (noise flooding: the decrypted noise no longer depends on
   ``b_j``), and subtracts a uniform mask ``R_j`` from *every* coefficient (the
   coefficients outside the outputs are partial sums of ``b_j``'s entries);
3. server i decrypts ``a_i (*) b_j - R_j`` and keeps it; server j keeps ``R_j``.

What a server sees of the other's tensors is ciphertexts under the other's key
(IND-CPA under RLWE) and decryptions that are uniformly masked with flooded noise;
semi-honest servers, as everywhere in safelight.

Parameters: n = 8192, q = four 50-bit primes (200 bits, within the 218 bits of the
HomomorphicEncryption.org 128-bit table for n = 8192), t = 2^64. The noise to flood is
at most ``nnz(b poly) * 2^63 * (|e| + 1/2)``, with ``nnz <= n``: at most 2^81; flooding
adds 40 bits of statistical distance, 2^121, and decryption needs t * noise < q / 2.
"""

from __future__ import annotations

import math
import os

import numpy as np

from .. import ring
from ..errors import ProtocolError
from ..he import bfv
from ..he.packing import ConvPacking, lower_conv2d, lower_matmul

RING_DEGREE = 8192
PRIME_BITS = (50, 50, 50, 50)
STATISTICAL_BITS = 40
ERROR_BOUND_BITS = 5
# Results go back switched down to two primes: modulus switching scales the noise by q'/q,
# so the flooded 2^flood noise (at most 2^125 for the largest packings) becomes about
# 2^(flood - 100) plus a rounding term near 2^13, well below q' / 2t = 2^35 (q' ~ 2^100,
# t = 2^64); the flooding still hides the multiplier (the ratio is kept, the rounding is
# independent of it).
RETURN_PRIMES = 2
BLOCK_BYTES = 16 << 20  # |fresh error| <= 21 < 2^5 (centred binomial, eta = 21) plus rounding


def params() -> bfv.Params:
    return bfv.Params(RING_DEGREE, q_bits=PRIME_BITS, t=1 << 64)


def _session(ctx) -> dict:
    """This job's keys: own secret and public key, the peer's public key (exchanged once)."""
    state = ctx.state.get("he_products")
    if state is None:
        context = bfv.Context(params())
        sk = context.keygen()
        mine = np.frombuffer(context.public_key(sk).to_bytes(), dtype=np.uint8)
        peer = ctx.exchange_all(mine)[1 - ctx.party]
        state = {"context": context, "sk": sk, "peer_pk": bfv.PublicKey.from_bytes(context, peer.tobytes())}
        ctx.state["he_products"] = state
    return state


def flood_bits(packing: ConvPacking) -> int:
    """Flooding noise for products by a packed kernel of ``packing`` (see the module)."""
    nnz = packing.cp * packing.kh * packing.kw
    return STATISTICAL_BITS + 63 + math.ceil(math.log2(nnz)) + ERROR_BOUND_BITS + 1


def _exchange(ctx, context: bfv.Context, batch: bfv.CiphertextBatch) -> bfv.CiphertextBatch:
    """Send our fresh (seeded) ciphertexts, receive the peer's: serialised, so ``c1`` travels
    as a seed and the received batch is validated (the protocol is symmetric: same sizes)."""
    got = ctx.exchange_all(np.frombuffer(batch.to_bytes(), dtype=np.uint8))[1 - ctx.party]
    return context.batch_from_bytes(got.tobytes())


def _exchange_outputs(
    ctx, context: bfv.Context, sk: bfv.SecretKey, batch: bfv.CiphertextBatch, positions: np.ndarray
) -> np.ndarray:
    """Send result ciphertexts, receive the peer's, and decrypt them at ``positions`` only.

    Only the coefficients that hold outputs are ever read, and decrypting coefficient j
    takes c0[j] and all of c1 (c0 + c1 s): so each ciphertext travels as c1 and c0 at
    ``positions`` (for a 3x3 kernel at n = 8192 about 62 % of the full rows). The other
    coefficients are never decryptable by the peer. Returns (count, n) with the decrypted
    values at ``positions`` (the other coefficients are meaningless)."""
    count, _, k, n = batch.data.shape
    sent = np.concatenate([batch.data[:, 1], batch.data[:, 0][:, :, positions]], axis=2)  # (count, k, n + m)
    got = ctx.exchange_all(np.ascontiguousarray(sent))[1 - ctx.party]
    if got.shape != sent.shape or got.dtype != np.uint64:
        raise ProtocolError("the peer's product ciphertexts have the wrong shape")
    rows = np.zeros((count, 2, k, n), dtype=np.uint64)
    rows[:, 1] = got[:, :, :n]
    rows[:, 0][:, :, positions] = got[:, :, n:]
    # the coefficients outside positions decrypt to noise, so the budget check (over every
    # coefficient) cannot run; the flooding parameters keep the outputs' noise below q / 4
    return context.decrypt_coeffs(bfv.CiphertextBatch(context, rows, batch.level, False), sk, check=False)


def _output_blocks(packing: ConvPacking, primes: int) -> list[slice]:
    """Output channels per round, so that each round's batches stay near BLOCK_BYTES (big
    fresh arrays cost more in page faults than in arithmetic)."""
    per_channel = packing.tiles * 2 * primes * packing.n * 8
    step = max(1, BLOCK_BYTES // per_channel)
    return [slice(o, min(o + step, packing.outputs)) for o in range(0, packing.outputs, step)]


def cross_packed(ctx, packing: ConvPacking, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """This party's share of ``conv(x_0, w_1) + conv(x_1, w_0)`` for one packed convolution:
    ``x`` (C, H, W) and ``w`` (O, C, kh, kw) are this party's shares; returns (O, Ho, Wo)."""
    s = _session(ctx)
    context, sk = s["context"], s["sk"]
    polys = packing.pack_input(x).reshape(-1, packing.n)  # (tiles * groups, n)
    theirs = _exchange(ctx, context, context.encrypt_coeffs(polys, sk, seeded=True, ntt=True))
    g, tiles = packing.groups, packing.tiles
    per_tile = [theirs[t * g : (t + 1) * g] for t in range(tiles)]
    kernels = packing.pack_kernel(w)  # (O, groups, n)
    flood = flood_bits(packing)
    positions = packing.output_positions().reshape(-1)
    share = np.empty((packing.outputs, tiles, packing.n), dtype=np.uint64)
    for block in _output_blocks(packing, context.num_q):
        pts = context.encode_plain_ntt(kernels[block])  # (o, groups, L, n)
        products = np.concatenate([context.dot_plain(cts, pts).data for cts in per_tile])  # (tiles * o, ...)
        out = context.from_ntt(bfv.CiphertextBatch(context, products, 0, True))
        out = context.rerandomize(out, s["peer_pk"], flood)
        mask = ring.random(os.urandom(16), (out.count, packing.n))
        masked = context.sub_plain(out, mask)
        for _ in range(context.num_q - RETURN_PRIMES):  # smaller rows to send (see RETURN_PRIMES)
            masked = context.mod_switch_to_next(masked)
        mine = _exchange_outputs(ctx, context, sk, masked, positions)
        ring.add(mine, mask, out=mine)  # (tiles * o, n): tile-major, like the products
        share[block] = mine.reshape(tiles, -1, packing.n).transpose(1, 0, 2)
    return packing.unpack_output(np.ascontiguousarray(share.transpose(1, 0, 2)))


def cross_conv2d(ctx, a: np.ndarray, b: np.ndarray, stride, padding, dilation, groups: int) -> np.ndarray:
    """This party's share of the cross terms of ``conv2d(a, b)`` (as :func:`ring.conv2d`)."""
    out = np.zeros(ring.conv2d_output_shape(a.shape, b.shape, stride, padding, dilation), dtype=np.uint64)
    for part in lower_conv2d(a.shape, b.shape, stride, padding, dilation, groups, RING_DEGREE):
        out[part.batch, part.out_channels] += cross_packed(ctx, part.packing, part.inputs(a), part.kernel(b))
    return out


def cross_matmul(ctx, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """This party's share of the cross terms of ``a (m, k) @ b (k, cols)``."""
    m, k = a.shape
    cols = b.shape[1]
    packing = lower_matmul(m, k, cols, RING_DEGREE)
    out = cross_packed(
        ctx, packing, np.ascontiguousarray(a.T).reshape(k, 1, m), np.ascontiguousarray(b.T).reshape(cols, k, 1, 1)
    )
    return np.ascontiguousarray(out.reshape(cols, m).T)
