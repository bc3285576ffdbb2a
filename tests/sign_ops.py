"""One Program with every sign-based op (relu, less, max-pool, sort, top-k) on two servers,
its inputs, and the check of its outputs against plaintext: shared by the OT-path tests."""

from __future__ import annotations

import numpy as np

from safelight.program.program import Program


def every_sign_op():
    rng = np.random.default_rng(11)
    x, y = rng.normal(0, 5, 64), rng.normal(0, 5, 64)
    img = rng.normal(0, 5, (1, 2, 6, 6))
    p = Program(2)
    tx, ty, ti = p.input("x", x.shape), p.input("y", y.shape), p.input("img", img.shape)
    p.output(p.relu(tx, bits=24), "relu")
    p.output(p.less(tx, ty), "less")
    p.output(p.max_pool2d(ti, kernel=(3, 2)), "pool")
    p.output(p.sort(tx), "sort")
    p.output(p.topk(tx, k=5), "topk")
    return p, {"x": x, "y": y, "img": img}


def check_every_sign_op(out, v):
    x, y, img = v["x"], v["y"], v["img"]
    np.testing.assert_allclose(out["relu"], np.maximum(x, 0), atol=1e-4)
    np.testing.assert_array_equal(out["less"], (x < y).astype(float))
    np.testing.assert_allclose(out["pool"], img.reshape(1, 2, 2, 3, 3, 2).max(axis=(3, 5)), atol=1e-4)
    np.testing.assert_allclose(out["sort"], np.sort(x), atol=1e-4)
    np.testing.assert_allclose(out["topk"], -np.sort(-x)[:5], atol=1e-4)
