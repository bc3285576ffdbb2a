"""Pretrained models shipped with safelight (ONNX files plus their licences).

ffdnet_color.onnx: the colour FFDNet denoiser (Zhang, Zuo, Zhang 2018; KAIR
weights, MIT licence, see LICENSE-ffdnet.txt), made by tools/convert_ffdnet.py.
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
