"""Ops on batch-encoded (SIMD) BFV ciphertexts for one server (scheme "he").

Each ciphertext holds ``n`` slots as a 2 x n/2 matrix; sums and products act slot by
slot, and row rotations move slots (key switching with the client's Galois keys). With an
image laid out row-major in the slots, a public stencil along a row is a sum of rotations
by +-1 times public integer weights, and along a column by +-width.

Tensors between these ops are raw ciphertext rows ``(count, 2, k, n)`` in coefficient
form (k primes at the op's level); :class:`HeLoad` turns the client's serialised upload
into that. Keys are inputs too, produced and uploaded by the client: the relinearisation
key ``(L, 2, L + K, n)`` and the Galois keys stacked ``(m, L, 2, L + K, n)`` in the order
of the ``steps`` attribute (rotations by those slot counts). All values are integers mod
the plaintext modulus t; the server holds no secret key.

attrs common to every op: ``params`` (n, q primes, t: :func:`.he_ops.params_attrs`) and
``special`` (the key-switching primes).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..errors import InputError, ProgramError
from ..he import bfv
from ..program.ops import VARIADIC, check_shape, register

MAX_STENCIL = 129  # taps of one stencil (a Gaussian of sigma 16)


def slot_params_attrs(params: bfv.Params) -> dict:
    """The public parameters (with the key-switching primes) as Program attributes."""
    return {"n": params.n, "q": [int(q) for q in params.q], "t": int(params.t), "special": list(params.special)}


@lru_cache(maxsize=8)
def _context(n: int, primes: tuple[int, ...], special: tuple[int, ...], t: int) -> bfv.Context:
    return bfv.Context(bfv.Params(n, q_primes=list(primes), special_primes=list(special), t=t))


def context_of(attrs: dict) -> bfv.Context:
    p = attrs.get("params")
    try:
        return _context(int(p["n"]), tuple(int(q) for q in p["q"]), tuple(int(s) for s in p["special"]), int(p["t"]))
    except (TypeError, KeyError, ValueError, InputError) as exc:
        raise ProgramError(f"he op: bad parameters ({exc})") from None


def _params(attrs: dict, what: str) -> tuple[int, int, int]:
    """(n, primes of q, key-switching primes) of an op's attrs, checked."""
    p = attrs.get("params") or {}
    n, q, special = p.get("n"), p.get("q"), p.get("special")
    if not isinstance(n, int) or not isinstance(q, list) or not isinstance(special, list) or not q or not special:
        raise ProgramError(f"{what}: params must give n, q primes and special primes")
    return n, len(q), len(special)


def _ciphertexts(shape: tuple[int, ...], attrs: dict, what: str) -> tuple[int, ...]:
    n, primes, _ = _params(attrs, what)
    if len(shape) != 4 or shape[1] != 2 or shape[2] != primes or shape[3] != n:
        raise ProgramError(f"{what}: expected ciphertexts (count, 2, {primes}, {n}), got {shape}")
    return shape


def _key_shape(attrs: dict) -> tuple[int, ...]:
    n, primes, special = _params(attrs, "he key")
    return (primes, 2, primes + special, n)


def _batch(context: bfv.Context, data: np.ndarray) -> bfv.CiphertextBatch:
    return bfv.CiphertextBatch(context, np.ascontiguousarray(data), 0, False)


@register("he_load", 1, scheme="he")
class HeLoad:
    """The client's serialised batch (uint64 words, ``nbytes`` bytes, ``count``
    ciphertexts) -> ciphertext rows (count, 2, k, n)."""

    @staticmethod
    def infer(shapes, attrs):
        n, primes, _ = _params(attrs, "he_load")
        count, nbytes = attrs.get("count"), attrs.get("nbytes")
        if not all(isinstance(v, int) and v >= 1 for v in (count, nbytes)) or shapes[0] != ((nbytes + 7) // 8,):
            raise ProgramError("he_load: the input must be nbytes bytes of count serialised ciphertexts")
        return check_shape((count, 2, primes, n), "he_load output")

    @staticmethod
    def run(ctx, xs, attrs):
        context = context_of(attrs)
        try:
            batch = context.batch_from_bytes(xs[0].view(np.uint8)[: attrs["nbytes"]].tobytes())
        except InputError as exc:
            raise ProgramError(f"he_load: malformed ciphertext input ({exc})") from None
        if batch.count != attrs["count"] or batch.size != 2 or batch.level != 0:
            raise ProgramError("he_load: the ciphertext batch does not match the program")
        return context.from_ntt(batch).data


@register("he_stencil", 2, scheme="he")
class HeStencil:
    """sum_d weights[d] rot(x, (d - r) step) for d = 0..2r: a public 1-D stencil along the
    slots (``step`` 1: along a row of the image, its width: along a column). Inputs: the
    ciphertexts and the stacked Galois keys (``steps`` names their rotations; those by
    +-``step`` must be among them). attrs: ``step``, ``weights`` (odd count, ints mod t),
    ``steps``."""

    @staticmethod
    def infer(shapes, attrs):
        out = _ciphertexts(shapes[0], attrs, "he_stencil")
        weights, step, steps = attrs.get("weights"), attrs.get("step"), attrs.get("steps")
        if not isinstance(weights, list) or len(weights) % 2 == 0 or not 1 <= len(weights) <= MAX_STENCIL:
            raise ProgramError(f"he_stencil: weights must be an odd count of at most {MAX_STENCIL} integers")
        if not isinstance(steps, list) or not isinstance(step, int) or step not in steps or -step not in steps:
            raise ProgramError("he_stencil: the Galois keys (steps) must include rotations by +-step")
        if shapes[1] != (len(steps), *_key_shape(attrs)):
            raise ProgramError(f"he_stencil: the Galois keys must be {(len(steps), *_key_shape(attrs))}")
        return out

    @staticmethod
    def run(ctx, xs, attrs):
        context = context_of(attrs)
        keys = bfv.GaloisKeys(
            context, {context._row_element(int(s)): np.ascontiguousarray(k) for s, k in zip(attrs["steps"], xs[1])}
        )
        weights = [int(w) % context.t for w in attrs["weights"]]
        step, r = int(attrs["step"]), len(weights) // 2
        x = _batch(context, xs[0])
        out = _scaled(context, x, weights[r])
        up = down = x
        for d in range(1, r + 1):
            up, down = context.rotate_rows(up, step, keys), context.rotate_rows(down, -step, keys)
            for w, term in ((weights[r + d], up), (weights[r - d], down)):
                if w:
                    scaled = _scaled(context, term, w)
                    out = scaled if out is None else context.add(out, scaled)
        return out.data if out is not None else np.zeros_like(xs[0])


def _scaled(context: bfv.Context, x: bfv.CiphertextBatch, w: int) -> bfv.CiphertextBatch | None:
    """w x for a public integer w mod t (None for 0): a product with the constant polynomial w."""
    if w == 0:
        return None
    if w == 1:
        return x
    constant = np.zeros(context.n, dtype=np.uint64)
    constant[0] = w
    return context.multiply_plain(x, constant)


@register("he_mul", 3, scheme="he")
class HeMul:
    """a * b slot by slot, relinearised with the client's key (the third input)."""

    @staticmethod
    def infer(shapes, attrs):
        out = _ciphertexts(shapes[0], attrs, "he_mul")
        if shapes[1] != out or shapes[2] != _key_shape(attrs):
            raise ProgramError(f"he_mul: operands {shapes[0]} and {shapes[1]}, key {_key_shape(attrs)}")
        return out

    @staticmethod
    def run(ctx, xs, attrs):
        context = context_of(attrs)
        a, b = _batch(context, xs[0]), _batch(context, xs[1])
        return context.multiply(a, b, bfv.RelinKey(context, np.ascontiguousarray(xs[2]))).data


@register("he_combine", VARIADIC, scheme="he")
class HeCombine:
    """sum_i coeffs[i] x_i for public integers (mod t)."""

    @staticmethod
    def infer(shapes, attrs):
        out = _ciphertexts(shapes[0], attrs, "he_combine")
        coeffs = attrs.get("coeffs")
        if any(s != out for s in shapes) or not isinstance(coeffs, list) or len(coeffs) != len(shapes):
            raise ProgramError("he_combine: equal ciphertext operands and one coefficient each")
        return out

    @staticmethod
    def run(ctx, xs, attrs):
        context = context_of(attrs)
        out = None
        for x, c in zip(xs, attrs["coeffs"]):
            term = _scaled(context, _batch(context, x), int(c) % context.t)
            if term is not None:
                out = term if out is None else context.add(out, term)
        return out.data if out is not None else np.zeros_like(xs[0])


@register("he_mul_slots", 2, scheme="he")
class HeMulSlots:
    """Ciphertexts times public slot values (count, n) (a mask, say), slot by slot. The
    plaintext's coefficients are arbitrary mod t, so this costs about as much noise as a
    ciphertext product."""

    @staticmethod
    def infer(shapes, attrs):
        out = _ciphertexts(shapes[0], attrs, "he_mul_slots")
        if shapes[1] != (out[0], out[3]):
            raise ProgramError(f"he_mul_slots: slot values must be {(out[0], out[3])}, got {shapes[1]}")
        return out

    @staticmethod
    def run(ctx, xs, attrs):
        context = context_of(attrs)
        plain = context.encode_batch(np.asarray(xs[1], dtype=np.uint64) % np.uint64(context.t))
        return context.multiply_plain(_batch(context, xs[0]), plain).data


@register("he_mod_switch", 1, scheme="he")
class HeModSwitch:
    """Drop primes down to ``keep`` (fewer bytes to download): (count, 2, keep, n)."""

    @staticmethod
    def infer(shapes, attrs):
        count, _, primes, n = _ciphertexts(shapes[0], attrs, "he_mod_switch")
        keep = attrs.get("keep")
        if not isinstance(keep, int) or not 1 <= keep <= primes:
            raise ProgramError(f"he_mod_switch: keep must be in 1..{primes}")
        return (count, 2, keep, n)

    @staticmethod
    def run(ctx, xs, attrs):
        context = context_of(attrs)
        out = _batch(context, xs[0])
        for _ in range(context.num_q - int(attrs["keep"])):
            out = context.mod_switch_to_next(out)
        return out.data


MAX_OUTER_WEIGHT = 1 << 31  # factors below 2^31: their products fit a uint64 before the reduction mod t


@register("he_mix_outer", 3, scheme="he")
class HeMixOuter:
    """out[o] = sum_i x[i] * w[o, i] slot by slot, for public slot weights that are outer
    products: with the slots read as (groups, R, C), groups = n / (R C), slot (g, r, c) of
    w[o, i] is rows[o, i, r] * cols[o, i, c], the same in every group (a separable mask of a
    2-D layout, given in R + C numbers instead of n). Inputs: ciphertexts (m, 2, k, n), rows
    (o, m, R) and cols (o, m, C), integers below 2^31. Each weight costs about as much noise
    as a ciphertext product (its coefficients are arbitrary mod t)."""

    @staticmethod
    def infer(shapes, attrs):
        m, _, k, n = _ciphertexts(shapes[0], attrs, "he_mix_outer")
        rows, cols = shapes[1], shapes[2]
        if len(rows) != 3 or len(cols) != 3 or rows[:2] != cols[:2] or rows[1] != m:
            raise ProgramError(f"he_mix_outer: rows (o, {m}, R) and cols (o, {m}, C), got {rows} and {cols}")
        if n % (rows[2] * cols[2]):
            raise ProgramError(f"he_mix_outer: R x C = {rows[2]} x {cols[2]} must divide n = {n}")
        return check_shape((rows[0], 2, k, n), "he_mix_outer output")

    @staticmethod
    def run(ctx, xs, attrs):
        context = context_of(attrs)
        rows, cols = (np.asarray(v, dtype=np.uint64) for v in xs[1:])
        if rows.size and max(int(rows.max()), int(cols.max())) >= MAX_OUTER_WEIGHT:
            raise ProgramError("he_mix_outer: the weight factors must be below 2^31")
        x = context.to_ntt(_batch(context, xs[0]))
        groups = context.n // (rows.shape[2] * cols.shape[2])
        outs = []
        for o in range(rows.shape[0]):  # one output at a time: its m plaintexts, not all o m
            weights = (rows[o, :, :, None] * cols[o, :, None, :]) % np.uint64(context.t)
            slots = np.tile(weights.reshape(weights.shape[0], -1), (1, groups))
            plain = context.encode_plain_ntt(context.encode_batch(slots)[None], x.level)
            outs.append(context.dot_plain(x, plain).data)
        return context.from_ntt(bfv.CiphertextBatch(context, np.concatenate(outs), x.level, True)).data
