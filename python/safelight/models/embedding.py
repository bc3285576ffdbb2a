"""Image embeddings from the shipped EfficientNet-Lite0 (near-duplicate detection).

``preprocess`` turns an image into the network input; ``Embedder`` runs
efficientnet_lite0.onnx with onnxruntime on the client and returns
L2-normalised 1280-d embeddings (the global-average-pooled head features), so
the cosine similarity of two images is the dot product of their embeddings.

Preprocessing: RGB, shorter side resized to 224 (Pillow bicubic, per channel
in float so nothing is rounded or clipped), centre crop 224x224, then
(x - 127) / 128 for x on the [0, 255] scale, the normalisation EfficientNet-Lite
was trained with (TF "inception-style" mean 127, std 128).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import efficientnet_lite0_path

IMAGE_SIZE = 224
EMBEDDING_DIM = 1280
MEAN, STD = 127.0, 128.0  # on the [0, 255] scale


def _as_rgb01(image) -> np.ndarray:
    """HxWx3 float64 in [0, 1] from uint8 / float, grey / RGB / RGBA input."""
    if hasattr(image, "getbands") and hasattr(image, "convert"):  # a PIL image
        image = np.asarray(image.convert("RGBA" if "A" in image.getbands() else "RGB"))
    a = np.asarray(image)
    if a.dtype == np.uint8:
        a = a / 255.0
    elif a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise ValueError("image contains NaN or infinite values")
        a = np.clip(a.astype(np.float64), 0.0, 1.0)
    else:
        raise TypeError(f"image must be uint8 or float in [0, 1], not {a.dtype}")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    elif a.ndim == 3 and a.shape[2] == 4:
        # Composite over white so transparent areas look the same whatever
        # colour their hidden RGB values have.
        alpha = a[:, :, 3:]
        a = a[:, :, :3] * alpha + (1.0 - alpha)
    elif not (a.ndim == 3 and a.shape[2] == 3):
        raise ValueError(f"image must be HxW, HxWx1, HxWx3 or HxWx4, not {a.shape}")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"empty image {a.shape}")
    return a


def preprocess(image) -> np.ndarray:
    """Network input (1, 3, 224, 224) float32 for one image.

    ``image``: uint8 (0..255) or float in [0, 1]; HxW or HxWx1 (grey, copied to
    3 channels), HxWx3 (RGB) or HxWx4 (RGBA, composited over white); a PIL
    image also works. The shorter side is resized to 224 with bicubic
    interpolation, the longer side keeps the aspect ratio, then the centre
    224x224 is cropped and normalised as (x*255 - 127) / 128.
    """
    from PIL import Image

    rgb = _as_rgb01(image)
    h, w = rgb.shape[:2]
    scale = IMAGE_SIZE / min(h, w)
    nh, nw = max(IMAGE_SIZE, round(h * scale)), max(IMAGE_SIZE, round(w * scale))
    top, left = (nh - IMAGE_SIZE) // 2, (nw - IMAGE_SIZE) // 2
    box = (left, top, left + IMAGE_SIZE, top + IMAGE_SIZE)
    channels = []
    for c in range(3):
        plane = Image.fromarray(np.ascontiguousarray(rgb[:, :, c], np.float32))  # "F"
        if (nh, nw) != (h, w):
            plane = plane.resize((nw, nh), Image.Resampling.BICUBIC)
        channels.append(np.asarray(plane.crop(box), np.float32))
    x = (np.stack(channels) * 255.0 - MEAN) / STD
    return x[None].astype(np.float32)


class Embedder:
    """L2-normalised EfficientNet-Lite0 embeddings with onnxruntime.

    >>> emb = Embedder().embed([image_a, image_b])    # (2, 1280) float32
    >>> float(emb[0] @ emb[1])                         # cosine similarity

    The session is created on first use. ``model_path`` defaults to the shipped
    efficientnet_lite0.onnx; ``providers`` defaults to the CPU provider.
    """

    def __init__(
        self, model_path: str | Path | None = None, *, batch_size: int = 16, providers=None, session_options=None
    ):
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.model_path = model_path
        self.batch_size = int(batch_size)
        self.providers = providers
        self.session_options = session_options
        self._session = None

    @property
    def session(self):
        if self._session is None:
            try:
                import onnxruntime as ort
            except ImportError as exc:
                raise ImportError(
                    "safelight.models.embedding.Embedder needs onnxruntime: pip install onnxruntime"
                ) from exc
            path = self.model_path
            if path is None:
                path = efficientnet_lite0_path()
            self._session = ort.InferenceSession(
                str(path), sess_options=self.session_options, providers=self.providers or ["CPUExecutionProvider"]
            )
        return self._session

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw (embedding, logits) for preprocessed input (n, 3, 224, 224)."""
        batch = np.asarray(batch, np.float32)
        if batch.ndim != 4 or batch.shape[1:] != (3, IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(f"expected (n, 3, {IMAGE_SIZE}, {IMAGE_SIZE}), got {batch.shape}")
        emb, logits = self.session.run(["embedding", "logits"], {"image": batch})
        return emb, logits

    def embed_preprocessed(self, batch: np.ndarray) -> np.ndarray:
        """L2-normalised embeddings (n, 1280) of preprocessed input, batched."""
        batch = np.asarray(batch, np.float32)
        out = np.empty((len(batch), EMBEDDING_DIM), np.float32)
        for i in range(0, len(batch), self.batch_size):
            out[i : i + self.batch_size] = self.run(batch[i : i + self.batch_size])[0]
        return _l2_normalise(out)

    def embed(self, images) -> np.ndarray:
        """L2-normalised embeddings (n, 1280) float32 of ``images``.

        ``images``: a sequence of images as accepted by ``preprocess`` (a
        single 2-D/3-D array or PIL image counts as one image; a 4-D array is
        a stack of images along its first axis).
        """
        single = isinstance(images, np.ndarray) and images.ndim in (2, 3)
        if single or hasattr(images, "getbands"):  # one array or PIL image
            images = [images]
        out, chunk = [], []
        for image in images:
            chunk.append(preprocess(image)[0])
            if len(chunk) == self.batch_size:
                out.append(self.run(np.stack(chunk))[0])
                chunk = []
        if chunk:
            out.append(self.run(np.stack(chunk))[0])
        if not out:
            return np.zeros((0, EMBEDDING_DIM), np.float32)
        return _l2_normalise(np.concatenate(out))


def _l2_normalise(v: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    return (v / np.maximum(norm, 1e-12)).astype(np.float32)
