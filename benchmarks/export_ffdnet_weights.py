"""Write the inputs of the SPU FFDNet reference (benchmarks/spu_aby3.py ffdnet): the shipped
model's 12 convolutions in KAIR channel order, the noisy 256x256 photo of
``safelight bench denoise_256_rss3`` and its float64 plaintext result, to
benchmarks/ffdnet_weights.npz (not committed: regenerate it with this script).

``--size N``: the centre N x N of that crop instead (the CHEETAH comparison runs 64x64),
written to benchmarks/ffdnet_weights_N.npz."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from skimage import data

from safelight.models.ffdnet_reference import ffdnet_layers
from safelight.tasks import denoise

SIGMA = 25.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="side of the photo (default 256)")
    size = parser.parse_args().size
    top = 256 - size // 2
    clean = data.astronaut()[top : top + size, top : top + size]
    noisy = denoise.add_noise(clean, SIGMA, seed=1)
    x = np.asarray(noisy, np.float64).transpose(2, 0, 1)[None]
    weights = denoise.onnx_weights()
    arrays = {}
    for k, (w, b) in enumerate(ffdnet_layers(weights, onnx_layout=True), start=1):
        arrays[f"conv{k}.weight"], arrays[f"conv{k}.bias"] = w, b
    plain = denoise.plaintext([noisy], SIGMA)[0].transpose(2, 0, 1)[None]
    out = Path(__file__).with_name("ffdnet_weights.npz" if size == 256 else f"ffdnet_weights_{size}.npz")
    clean_x = (clean / 255.0).transpose(2, 0, 1)[None]
    np.savez(out, noisy=x, sigma=np.float64(SIGMA), plaintext=plain, clean=clean_x, **arrays)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
