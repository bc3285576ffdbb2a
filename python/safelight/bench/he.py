"""Homomorphic-encryption benchmarks: encrypted filtering of a photo on one server against
scipy in plaintext (``he_filter_256``), and the BFV ciphertext multiply + relinearise
against Microsoft SEAL with the same parameters (``he_mul_<N>``).
"""

from __future__ import annotations

import statistics
from typing import Any

import numpy as np
from scipy import ndimage
from skimage import data

from ..he import bfv, ntt_primes
from ..runtime.cluster import Cluster
from ..tasks import filter as plain_filter
from ..tasks import he_filter
from .registry import best_time, kernel_isa, paired_times, register, result, time_once


# ---------------------------------------------------------------------------
# encrypted filtering on one server (BFV, coefficient packing) vs plaintext scipy
# ---------------------------------------------------------------------------
@register(
    "he_filter_256",
    "encrypted 3x3 stride-1 convolution of a 256x256 grey photo on ONE server (BFV, "
    "coefficient packing) vs scipy in plaintext, s (server evaluation)",
)
def bench_he_filter_256() -> dict[str, Any]:
    image = data.camera()[128:384, 128:384]
    kernel = "box:3"
    with Cluster.local(1) as cluster:
        runs = [he_filter.run(image, kernel=kernel, cluster=cluster) for _ in range(5)]
        secret = [he_filter.run(image, kernel=kernel, cluster=cluster, encrypted_kernel=True) for _ in range(3)]
    runs.sort(key=lambda r: r.job.parties[0].online_seconds)
    secret.sort(key=lambda r: r.job.parties[0].online_seconds)
    r = runs[2]
    err = float(np.abs(r.values - plain_filter.plaintext(image, kernel)).max() * 255)
    k = plain_filter.kernel_from(kernel)
    values = image.astype(np.float64) / 255
    plain = best_time(lambda: ndimage.convolve(values, k, mode="reflect"), repeats=5)
    return result(
        "he_filter_256",
        r.job.parties[0].online_seconds,
        "s",
        "lower",
        ref="scipy.ndimage.convolve",
        ref_value=plain,
        stat="median of 5 jobs",
        encrypt_s=r.seconds["encrypt"],
        decrypt_s=r.seconds["decrypt"],
        upload_bytes=r.upload_bytes,
        download_bytes=r.download_bytes,
        max_error_grey_levels=err,
        encrypted_kernel_s=secret[1].job.parties[0].online_seconds,
        encrypted_kernel_download_bytes=secret[1].download_bytes,
        isa=kernel_isa(),
    )


# ---------------------------------------------------------------------------
# BFV engine: ciphertext multiply + relinearise vs Microsoft SEAL (tenseal.sealapi)
# ---------------------------------------------------------------------------
# coeff modulus bit sizes as SEAL takes them (the last prime is the special,
# key-switching prime): 218 and 438 bits, the 128-bit bounds for these n.
HE_MUL_BITS = {8192: [55, 55, 54, 54], 16384: [54] * 7 + [60]}
HE_MUL_T_BITS = 20  # batching prime t = 1 mod 2n, as SEAL's PlainModulus.Batching(n, 20)
HE_MUL_REPEATS = {8192: 31, 16384: 15}


def he_mul_workload(n: int) -> dict[str, Any]:
    """One ciphertext multiply + relinearise on both sides, same parameters.

    Returns a dict with ``ours`` and ``seal`` (zero-argument callables, ``seal`` None
    without tenseal), ``ours_mul`` / ``ours_relin`` and ``seal_mul`` / ``seal_relin`` (the
    two halves), and the parameters. safelight: ``Context.multiply(a, b, relin_key)``
    on two fresh secret-key ciphertexts in coefficient form (one thread). SEAL (via
    tenseal.sealapi, its own bindings): ``Evaluator.multiply`` then
    ``relinearize_inplace`` with the same n, primes and t (checked equal).
    """
    bits = HE_MUL_BITS[n]
    t = ntt_primes(HE_MUL_T_BITS, n, 1)[0]
    try:
        import tenseal.sealapi as sa
    except ImportError:
        sa = None
    if sa is not None:  # SEAL's own choice of primes for these sizes, used on both sides
        parms = sa.EncryptionParameters(sa.SCHEME_TYPE.BFV)
        parms.set_poly_modulus_degree(n)
        parms.set_coeff_modulus(sa.CoeffModulus.Create(n, bits))
        parms.set_plain_modulus(sa.PlainModulus.Batching(n, HE_MUL_T_BITS))
        sctx = sa.SEALContext(parms, True, sa.SEC_LEVEL_TYPE.TC128)
        primes = [m.value() for m in parms.coeff_modulus()]
        if parms.plain_modulus().value() != t:
            raise AssertionError("SEAL chose another plaintext modulus")
        params = bfv.Params(n, q_primes=primes[:-1], special_primes=primes[-1:], t=t)
    else:
        params = bfv.Params(n, q_bits=bits[:-1], special_bits=bits[-1:], t=t)
    ctx = bfv.Context(params)
    sk = ctx.keygen()
    rk = ctx.relin_key(sk)
    rng = np.random.default_rng(n)
    va, vb = (rng.integers(0, t, n, dtype=np.uint64) for _ in range(2))
    a, b = (ctx.encrypt_batch(v, sk, seeded=False) for v in (va, vb))
    expect = (va.astype(object) * vb % t).astype(np.uint64)
    product = ctx.multiply(a, b, rk)
    if not np.array_equal(ctx.decrypt_batch(product, sk).reshape(n), expect):
        raise AssertionError("safelight's BFV product decrypted wrongly")
    out: dict[str, Any] = {
        "n": n,
        "t": t,
        "coeff_bits": bits,
        "primes": list(params.q + params.special),
        "aux_primes": ctx._core.num_aux,
        "ours": lambda: ctx.multiply(a, b, rk),
        "ours_mul": lambda: ctx.multiply(a, b),
        "ours_kernel_s": lambda repeats=10: ctx._core.time_multiply_relin(a.data, b.data, rk._data, repeats),
        "budget_after": int(ctx.invariant_noise_budget(product, sk)[0]),
        "budget_fresh": int(ctx.invariant_noise_budget(a, sk)[0]),
        "seal": None,
    }
    if sa is None:
        return out
    keygen = sa.KeyGenerator(sctx)
    skey = keygen.secret_key()
    pk = sa.PublicKey()
    keygen.create_public_key(pk)
    rks = sa.RelinKeys()
    keygen.create_relin_keys(rks)
    encoder = sa.BatchEncoder(sctx)
    enc = sa.Encryptor(sctx, pk)
    ev = sa.Evaluator(sctx)
    dec = sa.Decryptor(sctx, skey)
    cts = []
    for v in (va, vb):
        pt = sa.Plaintext()
        encoder.encode([int(x) for x in v], pt)
        ct = sa.Ciphertext()
        enc.encrypt(pt, ct)
        cts.append(ct)
    dest = sa.Ciphertext()

    def seal() -> None:
        ev.multiply(cts[0], cts[1], dest)
        ev.relinearize_inplace(dest, rks)

    seal()
    pt = sa.Plaintext()
    dec.decrypt(dest, pt)
    if encoder.decode_uint64(pt) != [int(x) for x in expect]:
        raise AssertionError("SEAL's product decrypted wrongly")
    out.update(
        seal=seal,
        seal_mul=lambda: ev.multiply(cts[0], cts[1], dest),
        seal_budget_after=int(dec.invariant_noise_budget(dest)),
    )
    return out


def _he_mul_bench(n: int) -> dict[str, Any]:
    w = he_mul_workload(n)
    reps = HE_MUL_REPEATS[n]
    extra: dict[str, Any] = {
        "isa": kernel_isa(),
        "threads": 1,
        "coeff_modulus_bits": w["coeff_bits"],
        "plain_modulus": w["t"],
        "aux_primes": w["aux_primes"],
        "budget_fresh_bits": w["budget_fresh"],
        "budget_after_bits": w["budget_after"],
        "safelight_kernel_best_ms": w["ours_kernel_s"]() * 1e3,
        "stat": f"median of {reps} alternating runs (safelight, SEAL), through each library's Python binding",
    }
    if w["seal"] is None:
        ours = statistics.median(time_once(w["ours"]) for _ in range(reps)) * 1e3
        extra["seal_reference"] = "tenseal not installed"
        return result(f"he_mul_{n}", ours, "ms", "lower", **extra)
    a, b = paired_times(w["ours"], w["seal"], repeats=reps, warmup=2)
    am, bm = paired_times(w["ours_mul"], w["seal_mul"], repeats=reps, warmup=1)
    ours, seal = statistics.median(a) * 1e3, statistics.median(b) * 1e3
    extra.update(
        safelight_vs_seal=ours / seal,
        safelight_best_ms=min(a) * 1e3,
        seal_best_ms=min(b) * 1e3,
        safelight_multiply_ms=statistics.median(am) * 1e3,
        seal_multiply_ms=statistics.median(bm) * 1e3,
        seal_budget_after_bits=w["seal_budget_after"],
    )
    ref = (
        f"Microsoft SEAL BFV via tenseal.sealapi: Evaluator.multiply + relinearize_inplace, same n, "
        f"primes {w['coeff_bits']} bits and t"
    )
    return result(f"he_mul_{n}", ours, "ms", "lower", ref=ref, ref_value=seal, **extra)


for _n in HE_MUL_BITS:
    register(
        f"he_mul_{_n}",
        f"BFV ciphertext multiply + relinearise, N={_n}, {sum(HE_MUL_BITS[_n])}-bit modulus, one thread, ms (vs SEAL)",
    )(lambda _n=_n: _he_mul_bench(_n))
del _n
