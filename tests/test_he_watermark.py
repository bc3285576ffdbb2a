"""Watermark embedding on ONE server holding the photo as BFV ciphertexts (issue 17)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from skimage import data

from safelight import cli
from safelight.errors import InputError
from safelight.he import bfv
from safelight.protocols.he_slots import HeMixOuter, slot_params_attrs
from safelight.runtime.client import StoredTensor
from safelight.runtime.cluster import Cluster
from safelight.tasks import he_watermark as H
from safelight.tasks import watermark
from safelight.tasks import watermark_scheme as W

KEY = W.Key(bytes(range(32)))
MESSAGE = "c0ffee0123456789"
BITS = W.parse_message(MESSAGE)


# ---- the layout, in the clear ------------------------------------------------------------------------


def _photo(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _mix(slots, rows, cols):
    """he_mix_outer on plaintext slots: out[o] = sum_i slots[i] * tile(rows[o, i] x cols[o, i])."""
    groups = H.RING_DEGREE // (rows.shape[2] * cols.shape[2])
    weights = np.tile((rows[:, :, :, None] * cols[:, :, None, :]).reshape(*rows.shape[:2], -1), (1, 1, groups))
    return np.einsum("in,oin->on", slots.astype(np.float64), weights.astype(np.float64))


@settings(max_examples=25, deadline=None)
@given(st.integers(128, 300), st.integers(128, 300))
def test_every_pixel_has_exactly_one_home_entry_and_unpacks_to_itself(h, w):
    layout = H.CellLayout(h, w)
    photo = _photo(h, w, h * w)
    for axis in (layout.rows, layout.cols):
        # each pixel: one home cell, the one holding its centre; overlaps sum to 64 per pixel
        homes = axis.pixel[axis.home]
        assert sorted(homes.tolist()) == list(range(axis.n))
        per_pixel = np.zeros(axis.n, dtype=np.int64)
        np.add.at(per_pixel, axis.pixel[axis.pixel >= 0], axis.overlap[axis.pixel >= 0])
        assert (per_pixel == H.OVERLAP_UNIT).all()
    assert (layout.unpack(layout.pack(photo.astype(np.int64))) == photo).all()


@settings(max_examples=10, deadline=None)
@given(st.integers(128, 260), st.integers(128, 260))
def test_the_server_weights_give_the_reference_thumbnail_and_spread(h, w):
    layout = H.CellLayout(h, w)
    photo = _photo(h, w, h + w)
    sums = _mix(layout.pack(photo.astype(np.int64)), *layout.thumbnail_factors())[0]
    assert np.allclose(layout.thumbnail(sums), W.thumbnail(photo.astype(np.float64)), atol=1e-9)

    change = np.random.default_rng(h).normal(0, 10, (W.GRID, W.GRID))
    fixed = np.round(change * (1 << H.CHANGE_BITS)).astype(np.int64)
    spread = layout.unpack(_mix(H.shifted_changes(fixed), *layout.spread_factors()))[..., 0] / H.SCALE
    expected = W.bilinear(h) @ change @ W.bilinear(w).T
    # the masks' fixed point (half a unit of 2^-MASK_BITS on each of two weights per axis)
    # and the change's
    bound = 4 * np.abs(change).max() * 2.0 ** -(H.MASK_BITS + 1) + 2.0**-H.CHANGE_BITS
    assert np.abs(spread - expected).max() < bound


def test_he_mix_outer_on_ciphertexts_equals_the_plaintext_mix():
    params = H.he_params()
    context = bfv.Context(params)
    sk = context.keygen(seed=bytes(16))
    rng = np.random.default_rng(1)
    slots = rng.integers(0, 256, (3, H.RING_DEGREE))
    rows, cols = rng.integers(0, 1 << 8, (2, 3, 64)), rng.integers(0, 1 << 8, (2, 3, 64))
    x = context.from_ntt(context.encrypt_batch(slots, sk, seeded=False)).data
    attrs = {"params": slot_params_attrs(params)}
    out = HeMixOuter.run(None, [x, rows.astype(np.uint64), cols.astype(np.uint64)], attrs)
    got = context.decrypt_batch(bfv.CiphertextBatch(context, out, 0, False), sk).reshape(2, -1)
    assert (got.astype(np.int64) == _mix(slots, rows, cols).astype(np.int64) % context.t).all()


# ---- on a real server ----------------------------------------------------------------------------------


class _Recording:
    """A cluster that records what the server receives: the programs and every input."""

    def __init__(self, cluster):
        self.cluster, self.seen = cluster, []

    def run(self, program, inputs, **options):
        self.seen.append((program.to_json(), {k: v for k, v in inputs.items()}))
        return self.cluster.run(program, inputs, **options)

    def drop_model(self, model_id):
        return self.cluster.drop_model(model_id)


@pytest.fixture(scope="module")
def server():
    with Cluster.local(1) as cluster:
        yield cluster


@pytest.mark.parametrize("photo", [data.astronaut(), data.coffee()], ids=["512x512", "400x600"])
def test_he_embedding_equals_the_reference(server, photo):
    result = watermark.embed(photo, key=KEY, message=MESSAGE, he=True, cluster=server)
    reference = watermark.embed(photo, key=KEY, message=MESSAGE, plain=True)
    diff = np.abs(result.outputs.astype(int) - reference.outputs.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01
    assert abs(result.extras["psnr"] - reference.extras["psnr"]) < 0.1 and result.extras["psnr"] >= 40
    assert W.detect(result.outputs, KEY).message == MESSAGE
    assert result.extras["noise_budget_bits"] >= 5
    b = result.extras["bytes"]
    assert b["thumbnail_down"] < 300_000 and b["change_up"] < 4_000_000
    assert result.report.parties[0].bytes_received > b["change_up"]


def _inputs_in_the_clear(seen):
    """What the server reads without a key: the programs and the public inputs (the
    ciphertexts only by their size)."""
    out = []
    for program, inputs in seen:
        public = {}
        for name, value in inputs.items():
            if isinstance(value, StoredTensor):  # the photo kept on the server: named by a random id
                public[name] = (value.tensor, value.shape)
            else:
                array = value.payloads[0].share
                public[name] = (array.size,) if name in ("photo", "change") else array.tobytes()
        out.append((program, public))
    return out


def test_the_servers_view_depends_on_the_photo_size_only(server):
    """The server gets ciphertexts under a fresh key and public masks of the photo's size:
    two different photos, keys and payloads give the same programs and public inputs."""
    views = []
    for photo, key, message in ((data.astronaut(), KEY, MESSAGE), (_photo(512, 512), W.Key.generate(), "0" * 16)):
        recording = _Recording(server)
        watermark.embed(photo, key=key, message=message, he=True, cluster=recording)
        views.append(_inputs_in_the_clear(recording.seen))
    assert views[0] == views[1]


def test_bad_input_for_the_he_embedding_gives_one_clear_error(tmp_path, capsys):
    with pytest.raises(InputError, match="2048x2048"):
        watermark.embed(np.zeros((2200, 2200, 3), np.uint8), key=KEY, message=MESSAGE, he=True)
    with pytest.raises(InputError, match="choose one"):
        watermark.embed(data.chelsea(), key=KEY, message=MESSAGE, he=True, plain=True)
    key = tmp_path / "key.json"
    assert cli.main(["watermark", "keygen", str(key)]) == 0
    photo = tmp_path / "photo.png"
    Image.fromarray(data.chelsea()).save(photo)
    for extra in (["--servers", "3"], ["--no-dealer"]):
        args = ["watermark", "embed", str(photo), str(tmp_path / "o.png"), "--key", str(key), "--message", MESSAGE]
        assert cli.main([*args, "--scheme", "he", *extra]) == 2


def test_cli_embed_on_one_he_server(tmp_path, capsys):
    key = tmp_path / "key.json"
    assert cli.main(["watermark", "keygen", str(key)]) == 0
    photo, out = tmp_path / "photo.png", tmp_path / "marked.png"
    Image.fromarray(data.chelsea()).save(photo)
    capsys.readouterr()
    args = ["watermark", "embed", str(photo), str(out), "--key", str(key), "--message", MESSAGE, "--scheme", "he"]
    assert cli.main([*args, "--json"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["psnr"] >= 40 and record["report"]["parties"][0]["bytes_received"] > 0
    assert record["he"]["bytes"]["photo_up"] > 0
    assert cli.main(["watermark", "detect", str(out), "--key", str(key), "--plain"]) == 0
    assert MESSAGE in capsys.readouterr().out
