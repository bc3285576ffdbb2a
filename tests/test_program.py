"""Programs: building, the wire format, and validation of what a server receives."""

import numpy as np
import pytest

from safelight.errors import ProgramError, UnsupportedError
from safelight.runtime.program import Program


def simple_program(parties=2):
    p = Program(parties)
    x = p.input("x", (4, 5))
    y = p.input("y", (4, 5))
    z = p.add_public(p.sub(p.add(x, y), y), 1.5)
    p.output(p.rescale(p.mul_public(z, 0.25)), "out")
    return p


def test_round_trip_through_json():
    p = simple_program()
    q = Program.from_json(p.to_json())
    assert q.to_json() == p.to_json()
    assert q.outputs["out"][1] == 16


def test_scale_tracking():
    p = Program(2)
    x = p.input("x", (3, 3))
    y = p.mul_public(x, 0.5)
    assert y.frac_bits == 32
    with pytest.raises(ProgramError, match="scales differ"):
        p.add(x, y)
    assert p.rescale(y).frac_bits == 16
    assert p.mul_public(x, 3, integer=True).frac_bits == 16


def test_truncation_method_follows_the_party_count():
    p = Program(3)
    p.rescale(p.mul_public(p.input("x", (2,)), 0.5))
    assert p.steps[-1].op == "trunc_pair"
    q = Program(2)
    q.rescale(q.mul_public(q.input("x", (2,)), 0.5))
    assert q.steps[-1].op == "rescale"
    with pytest.raises(UnsupportedError, match="2 parties"):
        Program(3, truncation="local")


@pytest.mark.parametrize("mutate,match", [
    (lambda d: d["steps"][0].update(op="launch_missiles"), "unknown op"),
    (lambda d: d["steps"][0].update(inputs=["nope", "y"]), "undefined tensor"),
    (lambda d: d["steps"][0].update(inputs=["x"]), "takes 2 input"),
    (lambda d: d["inputs"][0].update(shape=[-1, 5]), "positive"),
    (lambda d: d["inputs"][0].update(shape=[1 << 20, 1 << 20]), "more than"),
    (lambda d: d.update(version=99), "version"),
    (lambda d: d.pop("steps"), "malformed"),
    (lambda d: d["steps"][1].update(output="x"), "already defined"),
    (lambda d: d["outputs"][0].update(tensor="ghost"), "undefined"),
    (lambda d: d["steps"][2].update(attrs={"value": [[1, 2, 3]]}), "broadcast"),
    (lambda d: d["steps"][2].update(attrs={"value": -5}), "ring elements"),
])
def test_server_side_validation_rejects_malformed_programs(mutate, match):
    data = simple_program().to_json()
    mutate(data)
    with pytest.raises(ProgramError, match=match):
        Program.from_json(data)


def test_conv_validation():
    p = Program(2)
    x = p.input("img", (16, 16, 3))
    with pytest.raises(ProgramError, match="kernel must be"):
        p.conv2d_public(x, np.ones((2, 3, 3)), layout="hwc")
    with pytest.raises(ProgramError, match="layout"):
        p.conv2d_public(x, np.ones((3, 3)), layout="hw")
    with pytest.raises(ProgramError, match="padding"):
        p.conv2d_public(x, np.ones((3, 3)), padding="wrap", layout="hwc")
