"""ONNX import: every supported operator against onnxruntime, evaluated privately on local servers."""

import json
import zlib

import numpy as np
import pytest

import safelight
from safelight import fixed_point
from safelight.errors import InputError, UnsupportedError
from safelight.nn import Model, load_onnx

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
TensorProto, helper, numpy_helper = onnx.TensorProto, onnx.helper, onnx.numpy_helper

node = helper.make_node


def make_model(nodes, inputs, outputs=("y",), initializers=(), opset=17, dims=None):
    """A model from nodes; ``inputs`` maps name -> shape, ``initializers`` name -> array."""
    ins = [helper.make_tensor_value_info(n, TensorProto.FLOAT, dims or list(s)) for n, s in inputs.items()]
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs]
    inits = []
    for name, value in dict(initializers).items():
        arr = np.asarray(value)
        inits.append(numpy_helper.from_array(arr.astype(np.int64 if arr.dtype.kind in "iu" else np.float32), name))
    model = helper.make_model(
        helper.make_graph(nodes, "test", ins, outs, inits), opset_imports=[helper.make_opsetid("", opset)]
    )
    model.ir_version = 8
    return model


def reference(model, feeds):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {k: v.astype(np.float32) for k, v in feeds.items()})


def run_private(cluster, proto, feeds, **kw) -> tuple[Model, list[np.ndarray]]:
    model = load_onnx(proto, {k: v.shape for k, v in feeds.items()}, parties=cluster.parties, **kw)
    # the test owns the weights and the inputs: client-dealt randomness is within the trust model
    job = cluster.run(model.program, {**model.encode_inputs(feeds), **model.encode_weights()}, triples="client")
    return model, [safelight.decode(job.outputs[name], np.float64) for name in model.outputs]


def check(cluster, proto, feeds, rel=1e-3, **kw) -> Model:
    """Private outputs equal onnxruntime's within the fixed-point error (rel of the magnitude)."""
    expected = reference(proto, feeds)
    model, got = run_private(cluster, proto, feeds, **kw)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.shape == e.shape
        np.testing.assert_allclose(g, e, rtol=0, atol=rel * max(1.0, float(np.abs(e).max())))
    return model


def rand(rng, *shape, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(np.float32)


X = (2, 4, 5, 6)  # the activation most cases use


def unary(op, **attrs):
    return lambda rng: (make_model([node(op, ["x"], ["y"], name="n", **attrs)], {"x": X}), {"x": rand(rng, *X)})


def with_consts(op, consts, inputs=None, x_shape=X, opset=17, **attrs):
    """op(x, *consts) where ``consts`` maps initializer names to a function of rng ("" skips an input)."""

    def build(rng):
        inits = {n: f(rng) for n, f in consts.items() if n}
        names = inputs or ["x", *consts]
        return (
            make_model([node(op, names, ["y"], name="n", **attrs)], {"x": x_shape}, initializers=inits, opset=opset),
            {"x": rand(rng, *x_shape)},
        )

    return build


def conv(shape_w, x_shape=X, bias=True, **attrs):
    consts = {"w": lambda rng: rand(rng, *shape_w, scale=0.3)}
    if bias:
        consts["b"] = lambda rng: rand(rng, shape_w[0])
    return with_consts("Conv", consts, x_shape=x_shape, **attrs)


def bn_params(c):
    return {
        "g": lambda rng: rand(rng, c),
        "beta": lambda rng: rand(rng, c),
        "mu": lambda rng: rand(rng, c),
        "var": lambda rng: np.abs(rand(rng, c)) + 0.5,
    }


def chain(nodes, initializers=None, x_shape=X, opset=17, outputs=("y",)):
    def build(rng):
        inits = {n: f(rng) for n, f in (initializers or {}).items()}
        return (make_model(nodes, {"x": x_shape}, outputs, inits, opset), {"x": rand(rng, *x_shape)})

    return build


def const(value):
    return lambda rng: np.asarray(value)


CASES = {
    # Conv
    "conv": conv((3, 4, 3, 3)),
    "conv_stride_pad": conv((3, 4, 3, 3), strides=[2, 2], pads=[1, 1, 1, 1]),
    "conv_asymmetric_pads": conv((3, 4, 3, 2), pads=[0, 1, 2, 0]),
    "conv_dilation": conv((3, 4, 3, 3), dilations=[2, 2], pads=[2, 1, 2, 1], bias=False),
    "conv_groups": conv((4, 2, 3, 3), group=2, pads=[1, 1, 1, 1]),
    "conv_depthwise": conv((4, 1, 3, 3), group=4, pads=[1, 1, 1, 1]),
    "conv_same_upper": conv((3, 4, 3, 3), auto_pad="SAME_UPPER", strides=[2, 2]),
    "conv_same_lower": conv((3, 4, 2, 2), auto_pad="SAME_LOWER"),
    # activations
    "relu": unary("Relu"),
    "leaky_relu": unary("LeakyRelu", alpha=0.1),
    "clip_relu6": with_consts("Clip", {"lo": const(0.0), "hi": const(0.6)}),
    "clip_both": with_consts("Clip", {"lo": const(-0.5), "hi": const(0.7)}),
    "clip_min_only": with_consts("Clip", {"lo": const(0.25)}),
    "clip_max_only": with_consts("Clip", {"": None, "hi": const(0.3)}, inputs=["x", "", "hi"]),
    "clip_attributes": with_consts("Clip", {}, opset=10, min=-0.2, max=0.4),
    # elementwise arithmetic
    "add_tensors": chain([node("Relu", ["x"], ["r"]), node("Add", ["x", "r"], ["y"])]),
    "add_bias": with_consts("Add", {"b": lambda rng: rand(rng, 4, 1, 1)}),
    "add_scalar": with_consts("Add", {"b": const(0.75)}),
    "sub_bias_rows": with_consts("Sub", {"b": lambda rng: rand(rng, 5, 6)}),
    "sub_from_constant": with_consts("Sub", {"b": lambda rng: rand(rng, 6)}, inputs=["b", "x"]),
    "mul_scalar": with_consts("Mul", {"s": const(0.37)}),
    "mul_integer_scalar": with_consts("Mul", {"s": const([-3.0])}, inputs=["s", "x"]),
    "mul_per_channel": with_consts("Mul", {"s": lambda rng: rand(rng, 1, 4, 1, 1)}),
    "mul_elementwise": with_consts("Mul", {"s": lambda rng: rand(rng, 5, 6)}),
    "mul_tensors": chain([node("Relu", ["x"], ["r"]), node("Mul", ["x", "r"], ["y"])]),
    "div_scalar": with_consts("Div", {"s": const(3.0)}),
    "div_per_channel": with_consts("Div", {"s": const(np.array([1.0, 2.0, 4.0, -8.0]).reshape(4, 1, 1))}),
    # normalisation
    "batchnorm": with_consts("BatchNormalization", bn_params(4), epsilon=1e-3),
    "batchnorm_2d": with_consts("BatchNormalization", bn_params(6), x_shape=(3, 6)),
    "conv_batchnorm_folded": chain(
        [
            node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
            node("BatchNormalization", ["c", "g", "beta", "mu", "var"], ["y"]),
        ],
        {"w": lambda rng: rand(rng, 4, 4, 3, 3, scale=0.3), **bn_params(4)},
    ),
    "conv_batchnorm_shared": chain(
        [
            node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
            node("BatchNormalization", ["c", "g", "beta", "mu", "var"], ["y"]),
        ],
        {"w": lambda rng: rand(rng, 4, 4, 3, 3, scale=0.3), "b": lambda rng: rand(rng, 4), **bn_params(4)},
        outputs=("y", "c"),
    ),
    # pooling
    "maxpool": unary("MaxPool", kernel_shape=[2, 2], strides=[2, 2]),
    "maxpool_overlap_pad": unary("MaxPool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
    "maxpool_asym_ceil": unary("MaxPool", kernel_shape=[3, 2], strides=[2, 2], pads=[1, 0, 0, 1], ceil_mode=1),
    "avgpool": unary("AveragePool", kernel_shape=[2, 2], strides=[2, 2]),
    "avgpool_pad_exclude": unary("AveragePool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
    "avgpool_pad_include": unary(
        "AveragePool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1
    ),
    "avgpool_ceil_same": unary("AveragePool", kernel_shape=[3, 2], strides=[2, 2], ceil_mode=1, auto_pad="SAME_UPPER"),
    "global_avgpool": unary("GlobalAveragePool"),
    "global_maxpool": unary("GlobalMaxPool"),
    # products
    "gemm": with_consts("Gemm", {"B": lambda rng: rand(rng, 7, 5), "C": lambda rng: rand(rng, 5)}, x_shape=(3, 7)),
    "gemm_transB_alpha_beta": with_consts(
        "Gemm",
        {"B": lambda rng: rand(rng, 5, 7), "C": lambda rng: rand(rng, 1, 5)},
        x_shape=(3, 7),
        transB=1,
        alpha=0.5,
        beta=2.0,
    ),
    "gemm_transA_no_bias": with_consts("Gemm", {"B": lambda rng: rand(rng, 3, 4)}, x_shape=(3, 2), transA=1),
    "matmul": with_consts("MatMul", {"B": lambda rng: rand(rng, 6, 3)}),
    "matmul_vector": with_consts("MatMul", {"B": lambda rng: rand(rng, 6)}, x_shape=(3, 6)),
    "matmul_constant_left": with_consts("MatMul", {"B": lambda rng: rand(rng, 2, 5)}, inputs=["B", "x"]),
    # layout
    "flatten": unary("Flatten"),
    "flatten_axis2": unary("Flatten", axis=2),
    "reshape": with_consts("Reshape", {"s": const([0, -1, 3])}),
    "reshape_via_shape": chain(
        [
            node("Shape", ["x"], ["s"]),
            node("Gather", ["s", "i"], ["n"], axis=0),
            node("Unsqueeze", ["n", "a"], ["n1"]),
            node("Concat", ["n1", "m1"], ["t"], axis=0),
            node("Reshape", ["x", "t"], ["y"]),
        ],
        {"i": const(0), "a": const([0]), "m1": const([-1])},
    ),
    "transpose": unary("Transpose", perm=[0, 2, 3, 1]),
    "squeeze_unsqueeze": chain(
        [node("Unsqueeze", ["x", "a"], ["u"]), node("Squeeze", ["u", "a"], ["y"])], {"a": const([2])}
    ),
    "slice": with_consts(
        "Slice", {"st": const([1, -4]), "en": const([100, -1]), "ax": const([1, 3]), "sp": const([2, 1])}
    ),
    "depth_to_space_dcr": with_consts("DepthToSpace", {}, x_shape=(1, 8, 3, 2), blocksize=2),
    "depth_to_space_crd": with_consts("DepthToSpace", {}, x_shape=(1, 8, 3, 2), blocksize=2, mode="CRD"),
    "space_to_depth": with_consts("SpaceToDepth", {}, x_shape=(1, 2, 4, 6), blocksize=2),
    "concat": chain(
        [node("Relu", ["x"], ["r"]), node("Concat", ["x", "r", "c"], ["y"], axis=1)],
        {"c": lambda rng: rand(rng, 2, 1, 5, 6)},
    ),
    "concat_last_axis": chain([node("Neg", ["x"], ["n"]), node("Concat", ["x", "n"], ["y"], axis=-1)]),
    "pad_constant": with_consts("Pad", {"p": const([0, 0, 1, 2, 0, 0, 2, 1]), "v": const(1.5)}),
    "pad_reflect": with_consts("Pad", {"p": const([0, 0, 2, 1, 0, 0, 1, 2])}, mode="reflect"),
    "pad_edge": with_consts("Pad", {"p": const([0, 0, 1, 0, 0, 0, 0, 3])}, mode="edge"),
    "pad_axes_crop": with_consts(
        "Pad", {"p": const([-1, 2, 1, -2]), "": None, "ax": const([2, -1])}, inputs=["x", "p", "", "ax"], opset=18
    ),
    "pad_attributes": with_consts("Pad", {}, opset=10, pads=[0, 0, 1, 1, 0, 0, 1, 0], value=-0.5),
    "identity_constant": chain(
        [
            node(
                "Constant",
                [],
                ["k"],
                value=numpy_helper.from_array(np.linspace(-1, 1, 4, dtype=np.float32).reshape(4, 1, 1), "k"),
            ),
            node("Identity", ["x"], ["i"]),
            node("Dropout", ["i"], ["d"]),
            node("Add", ["d", "k"], ["y"]),
        ]
    ),
}

ON_THREE = [
    "conv_stride_pad",
    "clip_both",
    "maxpool_overlap_pad",
    "avgpool_pad_exclude",
    "gemm_transB_alpha_beta",
    "batchnorm",
    "concat",
    "depth_to_space_dcr",
]


@pytest.mark.parametrize("case", sorted(CASES))
def test_operator_matches_onnxruntime(case, cluster2):
    proto, feeds = CASES[case](np.random.default_rng(zlib.crc32(case.encode())))
    check(cluster2, proto, feeds)


@pytest.mark.parametrize("case", ON_THREE)
def test_operator_matches_onnxruntime_on_three_servers(case, cluster3):
    proto, feeds = CASES[case](np.random.default_rng(7))
    check(cluster3, proto, feeds)


def test_batchnorm_after_a_conv_is_folded_into_its_weights():
    proto, _ = CASES["conv_batchnorm_folded"](np.random.default_rng(0))
    model = load_onnx(proto)
    assert [s.op for s in model.program.steps] == ["conv2d", "rescale", "add_broadcast"]
    assert sorted(model.weights) == ["w.beta", "w.w"]
    # the conv's output also leaves the graph: the BatchNormalization stays a per-channel affine map
    proto, _ = CASES["conv_batchnorm_shared"](np.random.default_rng(0))
    assert sum(s.op == "conv2d" for s in load_onnx(proto).program.steps) == 2


def small_cnn(rng):
    """conv - batchnorm - relu - maxpool - conv - relu - global pool - flatten - gemm, and a second head."""
    nodes = [
        node("Conv", ["image", "conv1.weight", "conv1.bias"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        node("BatchNormalization", ["c1", "bn.g", "bn.b", "bn.m", "bn.v"], ["b1"], name="bn1"),
        node("Relu", ["b1"], ["r1"], name="relu1"),
        node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
        node("Conv", ["p1", "conv2.weight"], ["c2"], name="conv2", pads=[1, 1, 1, 1], strides=[2, 2]),
        node("Relu", ["c2"], ["r2"], name="relu2"),
        node("Flatten", ["r2"], ["f"], name="flatten"),
        node("Gemm", ["f", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1),
        node("GlobalAveragePool", ["r2"], ["features"], name="gap"),
    ]
    inits = {
        "conv1.weight": rand(rng, 6, 3, 3, 3, scale=0.3),
        "conv1.bias": rand(rng, 6, scale=0.1),
        "bn.g": 1 + rand(rng, 6, scale=0.1),
        "bn.b": rand(rng, 6, scale=0.1),
        "bn.m": rand(rng, 6, scale=0.1),
        "bn.v": 1 + np.abs(rand(rng, 6, scale=0.1)),
        "conv2.weight": rand(rng, 8, 6, 3, 3, scale=0.2),
        "fc.weight": rand(rng, 10, 8 * 2 * 2, scale=0.2),
        "fc.bias": rand(rng, 10, scale=0.1),
    }
    proto = make_model(nodes, {"image": (1, 3, 8, 8)}, ("logits", "features"), inits)
    return proto, {"image": rng.uniform(0, 1, (1, 3, 8, 8)).astype(np.float32)}


@pytest.mark.parametrize("parties", [2, 3])
def test_small_cnn_end_to_end(parties, request):
    cluster = request.getfixturevalue(f"cluster{parties}")
    proto, feeds = small_cnn(np.random.default_rng(3))
    model = check(cluster, proto, feeds)
    assert model.data_inputs == ["image"] and model.outputs == ["logits", "features"]
    assert model.input_shapes == {"image": (1, 3, 8, 8)}
    assert not any(s.op == "conv2d" and s.attrs["groups"] == 6 for s in model.program.steps)  # bn folded
    convs = [s for s in model.program.steps if s.op in ("conv2d", "matmul")]
    assert all(s.attrs["reuse"] == f"w:{s.inputs[1]}" for s in convs)  # weights masked once per job


def _numbers(obj, out):
    if isinstance(obj, dict):
        for v in obj.values():
            _numbers(v, out)
    elif isinstance(obj, list):
        for v in obj:
            _numbers(v, out)
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        out.add(obj)
    return out


def test_weights_are_secret_inputs_and_never_travel_in_the_program():
    proto, _ = small_cnn(np.random.default_rng(5))
    model = load_onnx(proto)
    program = model.program
    assert set(model.weights) == set(program.inputs) - set(model.data_inputs)
    assert not set(model.weights) & set(model.data_inputs)
    assert all(name.startswith("w.") for name in model.weights)
    assert {"w.conv1.weight", "w.conv2.weight", "w.fc.weight", "w.fc.bias"} <= set(model.weights)
    for name, w in model.weights.items():
        assert w.dtype == np.float64 and tuple(program.inputs[name]) == w.shape
    text = json.dumps(program.to_json())
    numbers = _numbers(json.loads(text), set())
    for w in model.weights.values():
        for v in w.reshape(-1):
            if abs(v) > 1e-3:
                assert int(fixed_point.encode(np.array([v]))[0]) not in numbers
                assert float(v) not in numbers and repr(float(v)) not in text
    # the weights of a folded BatchNormalization are the model owner's: folded values, not the originals
    original = numpy_helper.to_array(next(i for i in proto.graph.initializer if i.name == "conv1.weight"))
    assert not np.allclose(model.weights["w.conv1.weight"], original)


def test_unsupported_operator_names_the_node_and_its_type():
    proto = make_model(
        [node("Relu", ["x"], ["r"], name="ok"), node("LSTM", ["r", "W", "R"], ["y"], name="foo")],
        {"x": (1, 2, 3)},
        initializers={"W": np.zeros((1, 8, 3)), "R": np.zeros((1, 8, 2))},
    )
    with pytest.raises(UnsupportedError, match=r"node 'foo' \(LSTM\) is not supported; supported: .*Conv"):
        load_onnx(proto)
    proto = make_model(
        [node("Pad", ["x", "p"], ["y"], name="wrap_pad", mode="wrap")],
        {"x": X},
        initializers={"p": np.array([0, 0, 1, 1, 0, 0, 1, 1])},
        opset=19,
    )
    with pytest.raises(UnsupportedError, match=r"node 'wrap_pad' \(Pad\): mode 'wrap'"):
        load_onnx(proto)
    proto = make_model([node("Sigmoid", ["x"], ["y"])], {"x": X})
    with pytest.raises(UnsupportedError, match=r"\(Sigmoid\) is not supported"):
        load_onnx(proto)
    proto = make_model([node("Gather", ["x", "i"], ["y"], name="pick")], {"x": X}, initializers={"i": np.array([1])})
    with pytest.raises(UnsupportedError, match=r"node 'pick' \(Gather\) is supported on constants only"):
        load_onnx(proto)


def test_options_reach_the_program():
    proto, _ = small_cnn(np.random.default_rng(0))
    model = load_onnx(proto, parties=3, frac_bits=20, relu_bits=48)
    assert model.program.parties == 3 and model.program.frac_bits == 20
    assert {s.attrs.get("bits") for s in model.program.steps if s.op in ("relu", "max_pool2d")} == {48}
    assert all(s.op != "rescale" for s in model.program.steps)  # three parties truncate with pairs
    encoded = model.encode_weights()
    assert set(encoded) == set(model.weights) and all(e.frac_bits == 20 and e.parties == 3 for e in encoded.values())


def test_dynamic_dimensions_need_input_shapes():
    proto = make_model([node("Relu", ["x"], ["y"])], {"x": X}, dims=["N", 4, "H", "W"])
    with pytest.raises(
        InputError,
        match=r"'x' has dynamic dimensions \(axis 0 \(N\), axis 2 \(H\), axis 3 \(W\)\)"
        r".*input_shapes",
    ):
        load_onnx(proto)
    assert load_onnx(proto, {"x": (1, 4, 6, 6)}).input_shapes == {"x": (1, 4, 6, 6)}
    with pytest.raises(InputError, match="does not match"):
        load_onnx(proto, {"x": (1, 3, 6, 6)})
    with pytest.raises(InputError, match="not graph inputs"):
        load_onnx(proto, {"x": (1, 4, 6, 6), "z": (1,)})


def test_model_from_path_and_bytes(tmp_path, cluster2):
    proto, _ = CASES["conv_stride_pad"](np.random.default_rng(1))
    path = tmp_path / "model.onnx"
    onnx.save(proto, str(path))
    for source in (path, str(path), proto.SerializeToString()):
        model = load_onnx(source)
        assert model.program.to_json() == load_onnx(proto).program.to_json()
    with pytest.raises(InputError, match="cannot"):
        load_onnx(b"not a model")
    with pytest.raises(InputError, match="data input"):
        model.encode_inputs({"x": np.zeros((1, 1))})


def test_onnx_names_that_are_not_program_names_are_mapped(cluster2):
    proto = make_model([node("Relu", ["input/0"], ["1:out"])], {"input/0": (1, 2, 2, 2)}, outputs=("1:out",))
    x = np.random.default_rng(0).standard_normal((1, 2, 2, 2))
    model = load_onnx(proto)
    assert model.onnx_names == {"input_0": "input/0", "_1:out": "1:out"}
    job = cluster2.run(model.program, model.encode_inputs({"input/0": x}), triples="client")
    np.testing.assert_allclose(safelight.decode(job.outputs["_1:out"], np.float64), np.maximum(x, 0), atol=1e-4)
