"""safelight's watermark against invisible-watermark (dwtDct, dwtDctSvd) and blind-watermark
on the same photos and attacks, in the same run (issue 17).

Every method embeds a 64-bit payload (invisible-watermark as 8 bytes; blind-watermark as 64
bits) into RGB photos at 512x512 and at full size; the table is the marked photo's PSNR and
SSIM and the payload bit accuracy after each attack, averaged over the photos.

    python benchmarks/watermark_quality.py [--json OUT]
    python benchmarks/watermark_quality.py --random-keys 12 [--json OUT]

``--random-keys N``: safelight only, under N random keys and payloads (seeded, so the run
repeats): per attack, the mean over keys and photos, every photo's mean over the keys, the
worst single key, and the smallest agreement of the yes/no detector with the true payload.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import time

import numpy as np
from PIL import Image, ImageEnhance
from skimage import data, transform
from skimage.metrics import structural_similarity

from safelight.tasks import watermark_scheme as W

MESSAGE = "5afe11c0ffee2026"


def _photos() -> dict[str, np.ndarray]:
    full = {
        "astronaut": data.astronaut(),
        "coffee": data.coffee(),
        "chelsea": data.chelsea(),
        "rocket": data.rocket(),
        "retina": data.retina(),
        "hubble": data.hubble_deep_field(),
    }
    out = {}
    for name, photo in full.items():
        out[f"{name}@512"] = (transform.resize(photo, (512, 512), anti_aliasing=True) * 255).round().astype(np.uint8)
        if photo.shape[:2] != (512, 512):
            out[f"{name}@full"] = photo
    return out


def _jpeg(a, q):
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=q)
    return np.array(Image.open(buf).convert("RGB"))


def _resize(a, f):
    h, w = a.shape[:2]
    return np.array(Image.fromarray(a).resize((int(w * f), int(h * f)), Image.BICUBIC).resize((w, h), Image.BICUBIC))


def _crop(a, f):
    h, w = a.shape[:2]
    ch, cw = int(round(h * f)), int(round(w * f))
    t, left = (h - ch) // 2, (w - cw) // 2
    return np.array(Image.fromarray(a[t : t + ch, left : left + cw]).resize((w, h), Image.BICUBIC))


ATTACKS = {
    "none": lambda a: a,
    "jpeg90": lambda a: _jpeg(a, 90),
    "jpeg50": lambda a: _jpeg(a, 50),
    "resize0.5": lambda a: _resize(a, 0.5),
    "noise5": lambda a: np.clip(np.round(a + np.random.default_rng(5).normal(0, 5, a.shape)), 0, 255).astype(np.uint8),
    "brightness+20": lambda a: np.clip(a.astype(int) + 20, 0, 255).astype(np.uint8),
    "contrast1.2": lambda a: np.array(ImageEnhance.Contrast(Image.fromarray(a)).enhance(1.2)),
    "crop0.9": lambda a: _crop(a, 0.9),
}


class Safelight:
    name = "safelight (STDM, plaintext reference)"

    def __init__(self):
        self.key = W.Key(b"benchmark-key-of-thirty-two-byte")

    def embed(self, rgb, bits):
        return W.to_uint8(W.embed(rgb, self.key, bits))

    def extract(self, rgb):
        return W.detect(rgb, self.key).bits


class InvisibleWatermark:
    def __init__(self, method):
        self.method = method
        self.name = f"invisible-watermark 0.2.0 {method}"

    def embed(self, rgb, bits):
        from imwatermark import WatermarkEncoder

        enc = WatermarkEncoder()
        enc.set_watermark("bits", [int(b) for b in bits])
        return enc.encode(rgb[..., ::-1].copy(), self.method)[..., ::-1].copy()  # it works on BGR

    def extract(self, rgb):
        from imwatermark import WatermarkDecoder

        dec = WatermarkDecoder("bits", 64)
        return np.array(dec.decode(rgb[..., ::-1].copy(), self.method), dtype=np.int64)


class BlindWatermark:
    name = "blind-watermark 0.4.4"

    def embed(self, rgb, bits):
        from blind_watermark import WaterMark, bw_notes

        bw_notes.close()
        wm = WaterMark(password_img=1, password_wm=1, processes=None)
        wm.read_img(img=rgb[..., ::-1].copy())
        wm.read_wm([bool(b) for b in bits], mode="bit")
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "m.png")
            wm.embed(out)
            return np.array(Image.open(out).convert("RGB"))

    def extract(self, rgb):
        from blind_watermark import WaterMark

        wm = WaterMark(password_img=1, password_wm=1, processes=None)
        return (np.asarray(wm.extract(embed_img=rgb[..., ::-1].copy(), wm_shape=64, mode="bit")) > 0.5).astype(np.int64)


def over_random_keys(keys: int) -> dict:
    """safelight's bit accuracy per attack and photo under ``keys`` random keys and payloads."""
    rng = np.random.default_rng(7)
    photos = _photos()
    accuracy = {a: {name: [] for name in photos} for a in ATTACKS}
    psnrs, least_agreement = [], 1.0
    for _ in range(keys):
        key = W.Key(bytes(rng.integers(0, 256, 32, dtype=np.uint8)))
        message = rng.integers(0, 2, W.PAYLOAD_BITS)
        for name, photo in photos.items():
            marked = W.to_uint8(W.embed(photo, key, message))
            psnrs.append(10 * np.log10(255**2 / np.mean((photo.astype(float) - marked.astype(float)) ** 2)))
            for attack, apply in ATTACKS.items():
                attacked = apply(marked)
                accuracy[attack][name].append(float((W.detect(attacked, key).bits == message).mean()))
                least_agreement = min(least_agreement, W.detect(attacked, key, message).score)
    out = {"keys": keys, "min_psnr": float(min(psnrs)), "mean_psnr": float(np.mean(psnrs))}
    out["least_agreement_with_the_payload"] = float(least_agreement)
    for attack, per_photo in accuracy.items():
        out[attack] = {
            "mean": float(np.mean([v for vs in per_photo.values() for v in vs])),
            "photo_means": {name: round(float(np.mean(vs)), 4) for name, vs in per_photo.items()},
            "worst_key": float(min(v for vs in per_photo.values() for v in vs)),
        }
        worst = min(out[attack]["photo_means"], key=out[attack]["photo_means"].get)
        print(
            f"{attack:14s} mean {out[attack]['mean']:.4f}  worst photo {worst} {out[attack]['photo_means'][worst]:.4f}"
            f"  worst key {out[attack]['worst_key']:.3f}"
        )
    print(f"PSNR mean {out['mean_psnr']:.2f} min {out['min_psnr']:.2f}; least agreement {least_agreement:.3f}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json")
    ap.add_argument("--random-keys", type=int, metavar="N", help="safelight only, under N random keys and payloads")
    args = ap.parse_args()
    if args.random_keys:
        out = over_random_keys(args.random_keys)
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(out, fh, indent=1)
        return
    bits = W.parse_message(MESSAGE)
    methods = [Safelight(), InvisibleWatermark("dwtDct"), InvisibleWatermark("dwtDctSvd"), BlindWatermark()]
    photos = _photos()
    table = {}
    for method in methods:
        rows = {"psnr": [], "ssim": [], "embed_s": [], **{a: [] for a in ATTACKS}}
        for name, photo in photos.items():
            started = time.perf_counter()
            try:
                marked = method.embed(photo, bits)
            except Exception as exc:  # a tool that cannot take this photo: recorded, not fatal
                print(f"{method.name} on {name}: {type(exc).__name__}: {exc}")
                continue
            rows["embed_s"].append(time.perf_counter() - started)
            rows["psnr"].append(10 * np.log10(255**2 / np.mean((photo.astype(float) - marked.astype(float)) ** 2)))
            rows["ssim"].append(structural_similarity(photo, marked, channel_axis=2, data_range=255))
            for attack, apply in ATTACKS.items():
                try:
                    got = method.extract(apply(marked))
                    rows[attack].append(float((np.asarray(got)[:64] == bits).mean()))
                except Exception as exc:
                    print(f"{method.name} on {name} after {attack}: {type(exc).__name__}: {exc}")
                    rows[attack].append(0.0)
        table[method.name] = {k: (float(np.mean(v)) if v else None) for k, v in rows.items()}
        table[method.name]["min_psnr"] = float(np.min(rows["psnr"])) if rows["psnr"] else None
        table[method.name]["min_accuracy"] = {a: float(np.min(rows[a])) for a in ATTACKS if rows[a]}
        print(
            method.name,
            json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in table[method.name].items()}),
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"photos": list(photos), "message": MESSAGE, "methods": table}, fh, indent=1)


if __name__ == "__main__":
    main()
