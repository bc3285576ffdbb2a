"""Float64 numpy reference of the colour FFDNet forward pass (KAIR semantics).

Mirrors KAIR's ``FFDNet.forward(x, sigma)``: replication-pad H, W to even, KAIR
pixel-unshuffle (channel c*4 + i*2 + j), append the noise-level map, 12 3x3
convs with ReLU between them, pixel-shuffle (torch order), crop. Used to check
the shipped ONNX graph, so it is written for clarity, not speed.
"""

from __future__ import annotations

import numpy as np

N_LAYERS = 12
# ONNX SpaceToDepth puts input channel c of sub-pixel k = i*2 + j at k*3 + c;
# KAIR puts it at c*4 + k. ONNX channel j holds KAIR channel ONNX_TO_KAIR[j].
ONNX_TO_KAIR = np.arange(12).reshape(3, 4).T.reshape(-1)


def ffdnet_layers(weights: dict, onnx_layout: bool = False) -> list:
    """[(weight, bias)] of the 12 convs in KAIR channel order, as float64.

    ``weights`` is either the original KAIR state dict (``model.<i>.weight``;
    BatchNorm layers, if any, are folded into the preceding conv) or, with
    ``onnx_layout``, the ONNX initializers (``conv<k>.weight``), whose first
    conv's image channels are permuted back to KAIR order.
    """
    w = {k: np.asarray(v, np.float64) for k, v in weights.items()}
    layers = []
    if onnx_layout:
        for k in range(1, N_LAYERS + 1):
            layers.append((w[f"conv{k}.weight"].copy(), w[f"conv{k}.bias"].copy()))
        first = layers[0][0]
        first[:, ONNX_TO_KAIR] = first[:, :12].copy()
        return layers
    idx = sorted({int(k.split(".")[1]) for k in w if k.startswith("model.")})
    for i in idx:
        p = f"model.{i}."
        if p + "running_mean" in w:  # BatchNorm after the previous conv: fold it
            scale = w[p + "weight"] / np.sqrt(w[p + "running_var"] + 1e-4)  # KAIR eps
            cw, cb = layers[-1]
            layers[-1] = (cw * scale[:, None, None, None], (cb - w[p + "running_mean"]) * scale + w[p + "bias"])
        elif p + "weight" in w and w[p + "weight"].ndim == 4:
            cw = w[p + "weight"]
            layers.append((cw, w.get(p + "bias", np.zeros(cw.shape[0]))))
    if len(layers) != N_LAYERS:
        raise ValueError(f"expected {N_LAYERS} conv layers, found {len(layers)}")
    return layers


def _conv3x3(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    n, _, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))  # zero padding = 1
    out = np.broadcast_to(bias[None, :, None, None], (n, len(bias), h, w)).copy()
    for dy in range(3):
        for dx in range(3):
            patch = xp[:, :, dy : dy + h, dx : dx + w]
            out += np.einsum("oc,nchw->nohw", weight[:, :, dy, dx], patch, optimize=True)
    return out


def ffdnet_reference(weights: dict, image: np.ndarray, sigma, onnx_layout: bool = False) -> np.ndarray:
    """Denoise ``image`` (N, 3, H, W), values in [0, 1]; any H, W.

    ``sigma`` is the noise standard deviation on the [0, 1] scale (e.g. 25/255),
    a scalar or one value per image. Returns float64 (N, 3, H, W).
    """
    layers = ffdnet_layers(weights, onnx_layout)
    x = np.asarray(image, np.float64)
    n, c, h, w = x.shape
    x = np.pad(x, ((0, 0), (0, 0), (0, h % 2), (0, w % 2)), mode="edge")
    h2, w2 = x.shape[2] // 2, x.shape[3] // 2
    # KAIR pixel_unshuffle: view (n, c, h2, i, w2, j) -> (n, c, i, j, h2, w2).
    x = x.reshape(n, c, h2, 2, w2, 2).transpose(0, 1, 3, 5, 2, 4)
    x = x.reshape(n, c * 4, h2, w2)
    s = np.broadcast_to(np.asarray(sigma, np.float64).reshape(-1), (n,))
    noise = np.broadcast_to(s[:, None, None, None], (n, 1, h2, w2))
    x = np.concatenate([x, noise], axis=1)
    for k, (cw, cb) in enumerate(layers):
        x = _conv3x3(x, cw, cb)
        if k < len(layers) - 1:
            x = np.maximum(x, 0.0)
    # torch PixelShuffle: channel c*4 + i*2 + j -> pixel (2y + i, 2x + j).
    co = x.shape[1] // 4
    x = x.reshape(n, co, 2, 2, h2, w2).transpose(0, 1, 4, 2, 5, 3)
    x = x.reshape(n, co, 2 * h2, 2 * w2)
    return x[:, :, :h, :w]
