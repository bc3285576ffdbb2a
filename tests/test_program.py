"""Programs: building, the wire format, and validation of what a server receives."""

import numpy as np
import pytest

from safelight.errors import ProgramError, UnsupportedError
from safelight.program.program import Program


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


@pytest.mark.parametrize(
    "mutate,match",
    [
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
    ],
)
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


# ---- layout and broadcasting ops (used by the ONNX importer) --------------------------------


def layout_program():
    p = Program(2)
    x = p.input("x", (2, 3, 4))
    b = p.input("b", (3, 1))
    t = p.transpose(p.reshape(x, (2, 12, -1)), (2, 0, 1))  # (1, 2, 12)
    y = p.concat([p.slice(t, 2, 1, 12, 3), p.slice(t, 2, 0, 4)], axis=-1)  # (1, 2, 8)
    z = p.add(x, b)  # broadcast bias
    p.output(y, "y")
    p.output(p.rescale(p.mul_public_array(p.sub(z, b), np.arange(4) / 4)), "z")
    return p


def test_layout_ops_round_trip_and_shapes():
    p = layout_program()
    ops = [s.op for s in p.steps]
    assert ops == [
        "reshape",
        "transpose",
        "slice",
        "slice",
        "concat",
        "add_broadcast",
        "sub_broadcast",
        "mul_public_array",
        "rescale",
    ]
    q = Program.from_json(p.to_json())
    assert q.to_json() == p.to_json()
    assert q.shape_of(p.outputs["y"][0]) == (1, 2, 8)
    assert p.outputs["z"][1] == 16


def test_layout_ops_run_as_numpy_on_each_share():
    from safelight.program.ops import OPS

    rng = np.random.default_rng(0)
    x = rng.integers(0, 2**64, (2, 3, 4), dtype=np.uint64)
    b = rng.integers(0, 2**64, (3, 1), dtype=np.uint64)

    def run(op, xs, **attrs):
        return OPS[op].run(None, xs, attrs)  # local ops ignore the context

    assert np.array_equal(run("reshape", [x], shape=[4, 6]), x.reshape(4, 6))
    assert np.array_equal(run("transpose", [x], perm=[2, 0, 1]), x.transpose(2, 0, 1))
    assert np.array_equal(run("concat", [x, x[:, :1]], axis=1), np.concatenate([x, x[:, :1]], axis=1))
    assert np.array_equal(run("slice", [x], axis=2, start=1, stop=4, step=2), x[:, :, 1:4:2])
    with np.errstate(over="ignore"):
        assert np.array_equal(run("add_broadcast", [x, b]), x + b)
        assert np.array_equal(run("sub_broadcast", [b, x]), b - x)
        assert np.array_equal(
            run("mul_public_array", [x], value=[3, 2**64 - 1, 0, 7]),
            x * np.array([3, 2**64 - 1, 0, 7], dtype=np.uint64),
        )
    for out in (run("transpose", [x], perm=[1, 0, 2]), run("slice", [x], axis=1, start=0, stop=2)):
        assert out.flags.c_contiguous and out.dtype == np.uint64


@pytest.mark.parametrize(
    "op,shapes,attrs,match",
    [
        ("reshape", [(2, 3)], {"shape": [4, 2]}, "cannot reshape"),
        ("reshape", [(2, 3)], {"shape": [6, -1]}, "cannot reshape"),
        ("reshape", [(2, 3)], {"shape": "6"}, "list of integers"),
        ("transpose", [(2, 3)], {"perm": [0, 0]}, "permutation"),
        ("transpose", [(2, 3)], {"perm": [0, 1, 2]}, "permutation"),
        ("concat", [(2, 3), (2, 4)], {"axis": 0}, "differ outside"),
        ("concat", [(2, 3), (2, 3, 1)], {"axis": 0}, "ranks"),
        ("concat", [(2, 3), (2, 3)], {"axis": 2}, "out of range"),
        ("slice", [(2, 3)], {"axis": 1, "start": 2, "stop": 2}, "start < stop"),
        ("slice", [(2, 3)], {"axis": 1, "start": 0, "stop": 4}, "stop <="),
        ("slice", [(2, 3)], {"axis": 0, "start": 0, "stop": 1, "step": 0}, "step >= 1"),
        ("slice", [(2, 3)], {"axis": True, "start": 0, "stop": 1}, "integer"),
        ("add_broadcast", [(2, 3), (4, 1)], {}, "do not broadcast"),
        ("sub_broadcast", [(2, 3), (2,)], {}, "do not broadcast"),
        ("mul_public_array", [(2, 3)], {"value": [[1], [2], [3]]}, "does not broadcast"),
        ("mul_public_array", [(3,)], {"value": [[1, 2, 3]]}, "does not broadcast"),
        ("mul_public_array", [(3,)], {"value": [-1]}, "ring elements"),
    ],
)
def test_layout_ops_reject_bad_attributes(op, shapes, attrs, match):
    from safelight.program.ops import OPS

    with pytest.raises(ProgramError, match=match):
        OPS[op].infer(shapes, attrs)


JUNK = [None, "x", 1.5, -1, 0, 2**70, True, [], [1.5], [-1], ["a"], {}, [[1]], [2**70]]


@pytest.mark.parametrize("op", ["reshape", "transpose", "concat", "slice", "mul_public_array"])
def test_layout_ops_never_crash_on_junk_attributes(op):
    """A server validates attributes from the network: junk is a ProgramError, never another exception."""
    from safelight.program.ops import OPS, VARIADIC

    spec = OPS[op]
    shapes = [(2, 3)] * (3 if spec.arity == VARIADIC else spec.arity)
    keys = {
        "reshape": ["shape"],
        "transpose": ["perm"],
        "concat": ["axis"],
        "slice": ["axis", "start", "stop", "step"],
        "mul_public_array": ["value"],
    }[op]
    for key in keys:
        for junk in JUNK:
            attrs = {"axis": 1, "start": 0, "stop": 2, "step": 1, "shape": [3, 2], "perm": [1, 0], "value": [1, 2, 3]}
            attrs[key] = junk
            try:
                out = spec.infer(shapes, attrs)
            except ProgramError:
                continue
            assert all(isinstance(d, int) and d > 0 for d in out)
