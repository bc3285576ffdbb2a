"""Ops on ciphertexts for a single homomorphic-encryption server (scheme "he").

The client encrypts under its own BFV key and uploads the ciphertexts as the
Program's inputs; the server evaluates and returns ciphertexts; only the client
can decrypt. The server never holds a secret key, so these ops are pure
functions of public data (ciphertexts, public parameters, public kernels).

Inputs are serialised ciphertext batches (:meth:`safelight.he.bfv.CiphertextBatch.to_bytes`,
seeded secret-key ciphertexts send ``c0`` and a 16-byte seed: half a ciphertext each)
carried as uint64 words, validated by the server when it parses them. Outputs are the
raw ciphertext rows ``(count, size, k, n)`` in coefficient form, switched down to
``keep`` primes (fewer bytes to download; the noise budget left is what the client
needs to decrypt exactly).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..errors import InputError, ProgramError
from ..he import bfv
from ..program.ops import check_shape, register


def params_attrs(params: bfv.Params) -> dict:
    """The public parameters as Program attributes."""
    return {"n": params.n, "q": [int(q) for q in params.q], "t": int(params.t)}


@lru_cache(maxsize=8)
def _context(n: int, primes: tuple[int, ...], t: int) -> bfv.Context:
    return bfv.Context(bfv.Params(n, q_primes=list(primes), t=t))


def context_of(attrs: dict) -> bfv.Context:
    p = attrs.get("params")
    try:
        return _context(int(p["n"]), tuple(int(q) for q in p["q"]), int(p["t"]))
    except (TypeError, KeyError, ValueError) as exc:
        raise ProgramError(f"he op: bad parameters ({exc})") from None


def as_words(data: bytes) -> np.ndarray:
    """Serialised bytes as a uint64 tensor (zero-padded to whole words)."""
    return np.frombuffer(data + bytes(-len(data) % 8), dtype=np.uint64).copy()


def _batch(context, words: np.ndarray, nbytes: int) -> bfv.CiphertextBatch:
    try:
        return context.batch_from_bytes(words.view(np.uint8)[:nbytes].tobytes())
    except InputError as exc:
        raise ProgramError(f"he op: malformed ciphertext input ({exc})") from None


def _image_batch(shape: tuple[int, ...], attrs: dict, what: str) -> tuple[int, int, int]:
    """(count, keep, n) of an op's serialised input batch, checked against its attrs."""
    p = attrs.get("params") or {}
    primes, n = len(p.get("q", [])), p.get("n")
    count, nbytes, keep = attrs.get("count"), attrs.get("nbytes"), attrs.get("keep", primes)
    if not all(isinstance(v, int) and v >= 1 for v in (count, nbytes, keep, n)) or keep > primes:
        raise ProgramError(f"{what}: count, nbytes, n must be positive ints and keep in 1..{primes}")
    if shape != ((nbytes + 7) // 8,):
        raise ProgramError(f"{what}: the input must be {nbytes} bytes of serialised ciphertexts")
    return count, keep, n


@register("he_conv2d", 1, scheme="he")
class HeConv2d:
    """Encrypted polynomials times one public kernel polynomial (a packed convolution,
    see :mod:`safelight.he.packing`).

    attrs: ``params`` (n, q primes, t), ``count`` and ``nbytes`` of the serialised input
    batch, ``kernel_index`` / ``kernel_value`` (the kernel polynomial's nonzero
    coefficients, values mod t), ``keep`` (primes left in the output).
    """

    @staticmethod
    def infer(shapes, attrs):
        count, keep, n = _image_batch(shapes[0], attrs, "he_conv2d")
        index, value = attrs.get("kernel_index"), attrs.get("kernel_value")
        if not isinstance(index, list) or not isinstance(value, list) or len(index) != len(value) or not index:
            raise ProgramError("he_conv2d: kernel_index and kernel_value must be lists of the same length")
        return check_shape((count, 2, keep, n), "he_conv2d output")

    @staticmethod
    def run(ctx, xs, attrs):
        context = context_of(attrs)
        n = context.n
        cts = _batch(context, xs[0], attrs["nbytes"])
        if cts.count != attrs["count"] or cts.size != 2:
            raise ProgramError("he_conv2d: the ciphertext batch does not match the program")
        index = np.array(attrs["kernel_index"], dtype=np.int64)
        if index.min() < 0 or index.max() >= n or len(set(index.tolist())) != len(index):
            raise ProgramError("he_conv2d: kernel indices must be distinct and in [0, n)")
        kernel = np.zeros(n, dtype=np.uint64)
        kernel[index] = np.array([int(v) % (1 << 64) for v in attrs["kernel_value"]], dtype=np.uint64)
        out = context.from_ntt(context.multiply_plain(context.to_ntt(cts), kernel))
        for _ in range(context.num_q - int(attrs.get("keep", context.num_q))):
            out = context.mod_switch_to_next(out)
        return out.data


@register("he_conv2d_encrypted", 2, scheme="he")
class HeConv2dEncrypted:
    """Encrypted polynomials times one *encrypted* kernel polynomial: the kernel is secret
    from the server too. The products are not relinearised (no evaluation key is needed):
    the outputs have 3 polynomials, which the key owner decrypts with ``s`` and ``s^2``.

    attrs: ``params``, ``count`` / ``nbytes`` (image batch), ``kernel_nbytes`` (a batch of
    one ciphertext), ``keep``.
    """

    @staticmethod
    def infer(shapes, attrs):
        count, keep, n = _image_batch(shapes[0], attrs, "he_conv2d_encrypted")
        nbytes = attrs.get("kernel_nbytes")
        if not isinstance(nbytes, int) or shapes[1] != ((nbytes + 7) // 8,):
            raise ProgramError("he_conv2d_encrypted: the kernel must be kernel_nbytes bytes of one ciphertext")
        return check_shape((count, 3, keep, n), "he_conv2d_encrypted output")

    @staticmethod
    def run(ctx, xs, attrs):
        context = context_of(attrs)
        cts = _batch(context, xs[0], attrs["nbytes"])
        kernel = _batch(context, xs[1], attrs["kernel_nbytes"])
        if cts.count != attrs["count"] or cts.size != 2 or kernel.count != 1 or kernel.size != 2:
            raise ProgramError("he_conv2d_encrypted: the ciphertext batches do not match the program")
        kernels = bfv.CiphertextBatch(
            context, np.ascontiguousarray(np.broadcast_to(kernel.data, cts.data.shape)), kernel.level, kernel.ntt
        )
        out = context.from_ntt(context.multiply(context.to_ntt(cts), context.to_ntt(kernels)))
        for _ in range(context.num_q - int(attrs.get("keep", context.num_q))):
            out = context.mod_switch_to_next(out)
        return out.data
