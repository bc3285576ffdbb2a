"""Orientation parts and magnitudes without atan or sqrt (tasks.orientation), and the
composed 1/x and 1/sqrt(x) of two servers (program.newton)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol_sim import simulate
from safelight.program.program import Program
from safelight.sharing import decode, encode
from safelight.tasks.orientation import binned_gradient, plaintext_magnitude, votes


def _binned(g_row, g_col, levels, refinements, scheme, parties, signed=False):
    p = Program(parties, scheme=scheme, truncation="pair")
    gr, gc = p.input("gr", g_row.shape), p.input("gc", g_col.shape)
    b = binned_gradient(p, gr, gc, levels, refinements, bits=24, signed=signed)
    p.output(b.magnitude, "magnitude")
    p.output(votes(p, b), "votes")
    inputs = {"gr": encode(g_row, parties, scheme=scheme), "gc": encode(g_col, parties, scheme=scheme)}
    outs, _ = simulate(p, inputs)
    return decode(outs["magnitude"]), decode(outs["votes"])


def _reference_bins(g_row, g_col, bins, signed):
    theta = np.arctan2(g_row, g_col) % (2 * np.pi if signed else np.pi)
    return np.minimum(np.floor(theta / ((2 if signed else 1) * np.pi / bins)), bins - 1).astype(int)


@pytest.mark.parametrize("scheme,parties", [("rss3", 3), ("additive", 2)])
@pytest.mark.parametrize("levels,signed", [((3, 3), False), ((2, 2), True), ((4,), False)])
def test_parts_and_magnitude_match_atan2_and_hypot(scheme, parties, levels, signed):
    rng = np.random.default_rng(7)
    angle = rng.uniform(0, 2 * np.pi, (12, 16))
    radius = rng.uniform(0.05, 10, (12, 16))
    g_row, g_col = radius * np.sin(angle), radius * np.cos(angle)
    g_row[0, :4], g_col[0, :4] = 0.0, [-3.0, 3.0, 0.0, -0.5]  # on the fold: arctan2's tie rule
    magnitude, v = _binned(g_row, g_col, levels, 2, scheme, parties, signed)
    bins = int(np.prod(levels)) * (2 if signed else 1)
    expected = _reference_bins(g_row, g_col, bins, signed)
    got = np.argmax(v, axis=0)
    width = (2 * np.pi if signed else np.pi) / bins
    offset = np.arctan2(g_row, g_col) % width
    away = (offset > 2e-3) & (width - offset > 2e-3)  # fixed point may flip a pixel on a boundary
    assert np.array_equal(got[away], expected[away])
    assert np.array_equal(got[0, :4], expected[0, :4])  # the fold's ties are decided exactly
    assert np.allclose(v.sum(axis=0), magnitude, atol=1e-3)
    exact = np.hypot(g_row, g_col)
    alpha = np.pi / np.prod(levels) / 2**3  # the angle left after two halvings
    bound = (1 - np.cos(alpha)) / (1 + np.cos(alpha))  # the midpoint correction's worst case
    assert np.all(np.abs(magnitude - exact) <= bound * exact + 1e-3)
    model = plaintext_magnitude(g_row, g_col, levels, 2)
    assert np.all(np.abs(magnitude - model) <= 1e-3)


def _newton(x, op, bits=40):
    p = Program(2, truncation="pair")
    t = p.input("x", x.shape)
    p.output(getattr(p, op)(t, bits=bits), "y")
    outs, _ = simulate(p, {"x": encode(x, 2)})
    return decode(outs["y"])


@settings(max_examples=8, deadline=None)
@given(st.lists(st.floats(1e-3, 3e4), min_size=1, max_size=6))
def test_two_server_rsqrt_and_reciprocal_track_numpy(values):
    x = np.round(np.array(values) * 2**16) / 2**16  # what the shares hold
    r, q = _newton(x, "rsqrt"), _newton(x, "reciprocal")
    assert np.all(np.abs(r - 1 / np.sqrt(x)) <= 2e-4 / np.sqrt(x) + 4 * 2**-16)
    assert np.all(np.abs(q - 1 / x) <= 2e-4 / x + 4 * 2**-16)


def test_two_server_rsqrt_checks_its_width():
    p = Program(2)
    t = p.input("x", (3,))
    with pytest.raises(Exception, match="bits must be"):
        p.rsqrt(t, bits=60)
