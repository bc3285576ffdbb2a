"""Batch mode (issue 19): ``batch_filter_100`` and ``batch_denoise_16``, images per minute
through ``safelight batch`` on 1 and 2 lanes, against the same jobs run one after another
without Dask (one lane started the same way, the same reads and writes) in the same run.

Both sides start their servers (and upload the model, for denoising) inside the timing, so
the difference is what the Dask layer, the manifest and the lane scheduling cost."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from skimage import data

from ..batch import run_batch
from ..batch.jobs import TaskSpec, run_image
from ..batch.runner import find_images, task_lanes
from .registry import register, result

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "immunohistochemistry", "hubble_deep_field")


def _tiles(folder: Path, count: int, side: int) -> None:
    """``count`` real-photo tiles of side x side pixels (PNG), cut in turn from several photos."""
    folder.mkdir(parents=True)
    photos = [getattr(data, name)() for name in PHOTOS]
    for i in range(count):
        photo = photos[i % len(photos)]
        k = i // len(photos)
        rows, cols = photo.shape[0] // side, photo.shape[1] // side
        r, c = (k * 7) % rows, (k * 5 + 3) % cols
        Image.fromarray(photo[r * side : (r + 1) * side, c * side : (c + 1) * side]).save(folder / f"tile{i:03d}.png")


def _one_after_another(spec: TaskSpec, in_dir: Path, out_dir: Path) -> tuple[float, int]:
    """The reference: one lane, every image in turn, no Dask (the same job code)."""
    started = time.perf_counter()
    ok = 0
    with task_lanes(spec, 1) as lanes:
        for name in find_images(in_dir, out_dir):
            ok += run_image(spec, lanes[0], str(in_dir), str(out_dir), name)["status"] == "ok"
    return time.perf_counter() - started, ok


def _compare(name: str, spec: TaskSpec, count: int, side: int) -> dict[str, Any]:
    import dask.distributed  # noqa: F401  (a one-time import, outside both timings)

    with tempfile.TemporaryDirectory(prefix="safelight-bench-batch-") as tmp:
        root = Path(tmp)
        _tiles(root / "in", count, side)
        reference_s, reference_ok = _one_after_another(spec, root / "in", root / "sequential")
        runs = {lanes: run_batch(spec, root / "in", root / f"dask{lanes}", lanes=lanes) for lanes in (1, 2)}

        def pixels(folder: str, name: str) -> np.ndarray:
            return np.asarray(Image.open(root / folder / name), dtype=int)

        same = all(
            np.abs(pixels("dask1", f) - pixels("sequential", f)).max() <= 1
            for f in sorted(p.name for p in (root / "sequential").iterdir() if p.suffix == ".png")
        )
    one, two = runs[1], runs[2]
    per_minute = 60.0 * count / reference_s
    return result(
        name,
        one.images_per_minute,
        "images/min",
        "higher",
        ref="the same jobs one after another without Dask (one lane), images/min",
        ref_value=per_minute,
        stat="one pass over the folder, servers started inside the timing",
        images=count,
        side=side,
        dask_overhead=per_minute / one.images_per_minute - 1.0 if one.images_per_minute else None,
        lanes_2_images_per_minute=two.images_per_minute,
        failures=len(one.failures) + len(two.failures) + (count - reference_ok),
        outputs_equal_within_one_level=same,
        seconds={"sequential": reference_s, "lanes_1": one.seconds, "lanes_2": two.seconds},
        bytes_per_server_per_image={k: v / count for k, v in sorted(one.bytes_sent.items())},
    )


@register("batch_filter_100", "safelight batch filter over 100 photo tiles (128x128, gaussian:1), images/min")
def bench_batch_filter_100() -> dict[str, Any]:
    return _compare("batch_filter_100", TaskSpec("filter", {"kernel": "gaussian:1"}), 100, 128)


@register("batch_denoise_16", "safelight batch denoise over 16 photo tiles (64x64, sigma 25), images/min")
def bench_batch_denoise_16() -> dict[str, Any]:
    return _compare("batch_denoise_16", TaskSpec("denoise", {"sigma": 25.0}), 16, 64)
