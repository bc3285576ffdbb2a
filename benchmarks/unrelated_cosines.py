"""How similar are the embeddings of unrelated photos? (the store's LSH collision rate)

    PYTHONPATH=python python3 benchmarks/unrelated_cosines.py

Embeds the colour and grey photographs shipped with scikit-image and 10 random square
crops (30-60 % of the side) of each with the store's EfficientNet-Lite0 embedder, and
prints the cosine distribution over pairs from *different* photos, with what it means for
one LSH band of the store's sketch (random-hyperplane bits per band, safelight.store.sketch).
"""

from __future__ import annotations

import numpy as np
from skimage import data

from safelight.models.embedding import Embedder
from safelight.store.sketch import Sketcher

PHOTOS = [
    "astronaut",
    "camera",
    "coffee",
    "chelsea",
    "rocket",
    "cat",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "coins",
    "moon",
    "page",
    "text",
    "brick",
    "grass",
    "gravel",
    "horse",
    "clock",
]


def photos() -> list[np.ndarray]:
    out = []
    for name in PHOTOS:
        image = getattr(data, name)()
        if image.ndim == 2:
            image = np.stack([image] * 3, axis=-1)
        if image.dtype != np.uint8:
            image = (image * 255 if image.max() <= 1 else image).astype(np.uint8)
        out.append(image[..., :3])
    return out


def main() -> None:
    rng = np.random.default_rng(0)
    images, sources = [], []
    for i, image in enumerate(photos()):
        images.append(image)
        sources.append(i)
        h, w = image.shape[:2]
        for _ in range(10):
            side = int(min(h, w) * rng.uniform(0.3, 0.6))
            y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
            images.append(image[y : y + side, x : x + side])
            sources.append(i)
    emb = Embedder().embed(images)
    src = np.array(sources)
    cos = (emb @ emb.T)[src[:, None] != src[None, :]]
    sketch = Sketcher(bytes(32), emb.shape[1])
    rows, bands = sketch.rows, sketch.bands
    p_band = (1 - np.arccos(np.clip(cos, -1, 1)) / np.pi) ** rows
    print(f"{len(PHOTOS)} photos + {len(images) - len(PHOTOS)} crops, {cos.size} pairs of different photos")
    print(
        f"cosine: mean {cos.mean():.3f}, p50 {np.median(cos):.3f}, p90 {np.percentile(cos, 90):.3f}, "
        f"p99 {np.percentile(cos, 99):.3f}"
    )
    share_one = 1 - (1 - p_band) ** bands
    print(
        f"one band of {rows} bits collides for {p_band.mean():.4f} of pairs; some band of {bands} for "
        f"{share_one.mean():.3f} (about {share_one.mean() * 100_000:,.0f} entries of a 100,000-photo library)"
    )


if __name__ == "__main__":
    main()
