"""Invisible watermarks (issue 17): the scheme's plaintext reference, keys and the CLI."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from skimage import data, transform

from protocol_sim import assert_views_alike, simulate, view_bytes
from safelight import cli
from safelight.errors import InputError
from safelight.sharing import decode, encode
from safelight.tasks import watermark
from safelight.tasks import watermark_private as private
from safelight.tasks import watermark_scheme as W

KEY = W.Key(bytes(range(32)))
MESSAGE = "c0ffee0123456789"


def _benchmark_module():
    """benchmarks/watermark_quality.py: its attacks are the ones the issue names."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parent.parent / "benchmarks" / "watermark_quality.py"
    spec = importlib.util.spec_from_file_location("watermark_quality", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


QUALITY = _benchmark_module()
ATTACKS = {name: f for name, f in QUALITY.ATTACKS.items() if name not in ("none", "jpeg90")}


def _jpeg(a, quality):
    return QUALITY._jpeg(a, quality)


@pytest.fixture(scope="module")
def marked():
    photo = data.chelsea()
    return photo, W.to_uint8(W.embed(photo, KEY, W.parse_message(MESSAGE)))


def test_the_mark_is_invisible_and_reads_back(marked):
    photo, out = marked
    assert watermark.psnr(photo, out) >= 40.0
    found = W.detect(out, KEY)
    assert found.message == MESSAGE and found.present and found.fit > 0.95
    assert W.detect(out, KEY, W.parse_message(MESSAGE)).present


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_the_payload_survives_each_attack(marked, attack):
    _, out = marked
    found = W.detect(ATTACKS[attack](out), KEY)
    assert (found.bits == W.parse_message(MESSAGE)).mean() >= (0.9 if attack == "crop0.9" else 0.99)
    assert W.detect(ATTACKS[attack](out), KEY, W.parse_message(MESSAGE)).present


def test_contrast_reads_back_where_bright_and_dark_areas_clip():
    """astronaut (white suit, black background) is the weak photo: after contrast x1.2 a third
    of its regions are mostly clipped. Reliability weights and copies in three quadrants
    took it from 0.93 to 0.98-0.99 over random keys (benchmarks/README.md); these three keys
    give 0.979, and the guard leaves room for a borderline bit."""
    photo = (transform.resize(data.astronaut(), (512, 512), anti_aliasing=True) * 255).round().astype(np.uint8)
    accuracy = []
    for seed in range(3):
        key = W.Key(bytes([seed + 1]) * 32)
        message = np.random.default_rng(seed).integers(0, 2, W.PAYLOAD_BITS)
        attacked = ATTACKS["contrast1.2"](W.to_uint8(W.embed(photo, key, message)))
        accuracy.append((W.detect(attacked, key).bits == message).mean())
    assert np.mean(accuracy) >= 0.96


def test_reliability_weighs_clipped_regions_down():
    grey = np.full(W.GRID * W.GRID, 128.0)
    assert np.allclose(W.reliability(grey), 1.0)
    half = grey.reshape(W.GRID, W.GRID).copy()
    half[: W.GRID // 2] = 255.0  # the top half saturated
    weights = W.reliability(half).reshape(W.REGIONS, W.REGIONS, W.PER_REGION)
    assert np.allclose(weights[: W.REGIONS // 2], 0.0) and np.allclose(weights[W.REGIONS // 2 :], 1.0)


def test_unmarked_photos_and_other_keys_say_absent(marked):
    photo, out = marked
    for image in (photo, data.astronaut(), data.coffee()):
        assert not W.detect(image, KEY).present
        assert not W.detect(image, KEY, W.parse_message(MESSAGE)).present
    other = W.Key(bytes(32))
    assert not W.detect(out, other).present
    assert not W.detect(out, KEY, W.parse_message("0" * 16)).present  # a different payload


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**64 - 1))
def test_messages_round_trip_through_bits(value):
    text = f"{value:016x}"
    assert W.format_message(W.parse_message(text)) == text


def test_the_carrier_is_orthonormal_smooth_and_has_no_dc():
    u = KEY.directions()
    assert np.allclose(u @ u.T, np.eye(W.PROJECTIONS), atol=1e-10)
    grid = u.reshape(W.PROJECTIONS, W.GRID, W.GRID)
    assert np.allclose(grid.sum(axis=(1, 2)), 0.0, atol=1e-9)  # brightness changes nothing
    # every region's part lies in the low band: DCT frequencies below BAND (periods of 16 px and more at 512)
    basis = W.region_band_basis()
    blocks = grid.reshape(W.PROJECTIONS, W.REGIONS, W.REGION, W.REGIONS, W.REGION).transpose(0, 1, 3, 2, 4)
    flat = blocks.reshape(-1, W.REGION * W.REGION)
    assert np.allclose(flat @ basis.T @ basis, flat, atol=1e-9)
    counts = np.bincount(W._assignment(KEY.secret), minlength=W.PAYLOAD_BITS)
    assert (counts == W.PROJECTIONS // W.PAYLOAD_BITS).all()
    inner = np.array([W.inner(i) for i in range(W.PROJECTIONS)])
    assert len(set(W._assignment(KEY.secret)[inner].tolist())) == W.PAYLOAD_BITS  # every bit survives a crop
    for bit in range(W.PAYLOAD_BITS):  # a bit's copies lie in distinct quadrants: saturation is local
        copies = np.flatnonzero(W._assignment(KEY.secret) == bit)
        assert len({W.quadrant_of(int(i)) for i in copies}) == W.COPIES
    assert W.searched().sum() == W.REGIONS * W.REGIONS * W.SEARCH_PER_REGION


def test_the_averaging_and_spreading_maps_invert():
    for n in (128, 400, 1411):
        a, e = W.averaging(n), W.spread(n)
        assert np.allclose(a @ e, np.eye(W.GRID), atol=1e-9)
        assert np.allclose(a.sum(axis=1), 1.0)


def test_keys_are_private_files_never_overwritten(tmp_path):
    path = tmp_path / "key.json"
    key = watermark.keygen(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert watermark.load_key(path) == key
    with pytest.raises(InputError, match="never overwritten"):
        watermark.keygen(path)
    bad = tmp_path / "bad.json"
    bad.write_text('{"kind": "something else"}')
    with pytest.raises(InputError, match="not a safelight watermark key"):
        watermark.load_key(bad)
    with pytest.raises(InputError, match="no key file"):
        watermark.load_key(tmp_path / "missing.json")


def test_bad_input_gives_one_clear_error_and_exit_code_2(tmp_path, capsys):
    key = tmp_path / "key.json"
    assert cli.main(["watermark", "keygen", str(key)]) == 0
    photo = tmp_path / "photo.png"
    Image.fromarray(data.chelsea()).save(photo)
    out = tmp_path / "out.png"
    assert (
        cli.main(["watermark", "embed", str(photo), str(out), "--key", str(key), "--message", "12345", "--plain"]) == 2
    )
    assert "16 hex digits" in capsys.readouterr().err
    wrong = tmp_path / "wrong.json"
    wrong.write_text("hello")
    assert cli.main(["watermark", "detect", str(photo), "--key", str(wrong), "--plain"]) == 2
    assert "not a safelight watermark key" in capsys.readouterr().err
    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.zeros((100, 300, 3), dtype=np.uint8)).save(tiny)
    assert cli.main(["watermark", "detect", str(tiny), "--key", str(key), "--plain"]) == 2
    assert "smaller than one watermark block" in capsys.readouterr().err
    with pytest.raises(InputError, match="unknown operation"):
        watermark.run(data.chelsea(), operation="remove", key=KEY)


def test_cli_embed_then_detect_json(tmp_path, capsys):
    key = tmp_path / "key.json"
    assert cli.main(["watermark", "keygen", str(key)]) == 0
    photo, out = tmp_path / "photo.png", tmp_path / "marked.png"
    Image.fromarray(data.chelsea()).save(photo)
    capsys.readouterr()
    assert (
        cli.main(["watermark", "embed", str(photo), str(out), "--key", str(key), "--message", MESSAGE, "--plain"]) == 0
    )
    assert cli.main(["watermark", "detect", str(out), "--key", str(key), "--plain", "--json"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["message"] == MESSAGE and record["present"] is True and record["confidence"] > 0.9
    assert set(record) >= {"message", "present", "confidence", "report"}


# ---- on shares -------------------------------------------------------------------------------------

SMALL = (transform.resize(data.chelsea(), (128, 160), anti_aliasing=True) * 255).round().astype(np.uint8)


def _shared(values, parties, scheme):
    return {k: encode(np.asarray(v, dtype=np.float64), parties, scheme=scheme) for k, v in values.items()}


def _private_embed(photo, key, message, parties, scheme):
    program = private.embed_program(*photo.shape[:2], parties, scheme)
    offsets = key.dither() + W.payload_bits(W.parse_message(message), key) * (W.DELTA / 2)
    values = {"image": photo.astype(float), "carrier": key.directions(), "offsets": offsets[:, None]}
    outs, ctxs = simulate(program, _shared(values, parties, scheme))
    return W.to_uint8(decode(outs["marked"])), ctxs


def _private_detect(photo, key, parties, scheme, message=None):
    program = private.detect_program(*photo.shape[:2], parties, scheme, payload=message is not None)
    assignment = np.zeros((W.PROJECTIONS, W.PAYLOAD_BITS))
    assignment[np.arange(W.PROJECTIONS), W.payload_bits(np.arange(W.PAYLOAD_BITS), key)] = 1
    values = {"image": photo.astype(float), "carrier": key.directions(), "dither": key.dither()[:, None]}
    values["assignment"] = assignment
    if message is not None:
        values["signs"] = (1 - 2 * W.payload_bits(W.parse_message(message), key))[:, None]
    outs, ctxs = simulate(program, _shared(values, parties, scheme))
    out = {k: decode(v) for k, v in outs.items()}
    return W.format_message((out["bits"] > 0.5).astype(int)), out, ctxs


@pytest.mark.parametrize("scheme,parties", [("rss3", 3), ("additive", 2)])
def test_private_embedding_and_detection_equal_the_reference(scheme, parties):
    marked, _ = _private_embed(SMALL, KEY, MESSAGE, parties, scheme)
    reference = W.to_uint8(W.embed(SMALL, KEY, W.parse_message(MESSAGE)))
    assert np.abs(marked.astype(int) - reference.astype(int)).max() <= 1  # rounding of the last bit
    assert abs(watermark.psnr(SMALL, marked) - watermark.psnr(SMALL, reference)) <= 0.1
    found, out, _ = _private_detect(_jpeg(marked, 50), KEY, parties, scheme)
    ref = W.detect(_jpeg(marked, 50), KEY)
    assert found == ref.message == MESSAGE
    assert abs(out["fit"][0] - ref.fit) <= 1e-3 and out["present"][0] > 0.5
    assert np.abs(np.minimum(1, out["confidence"]) - ref.confidence).max() <= 1e-2
    _, yes, _ = _private_detect(marked, KEY, parties, scheme, MESSAGE)
    _, no, _ = _private_detect(marked, KEY, parties, scheme, "0" * 16)
    assert yes["present"][0] > 0.5 and no["present"][0] < 0.5


def test_private_detection_weighs_saturated_regions_as_the_reference():
    astronaut = (transform.resize(data.astronaut(), (160, 160), anti_aliasing=True) * 255).round().astype(np.uint8)
    marked = W.to_uint8(W.embed(astronaut, KEY, W.parse_message(MESSAGE)))
    attacked = ATTACKS["contrast1.2"](marked)
    assert W.reliability(W.thumbnail(W.check_image(attacked))).min() < 0.5  # some regions are clipped
    found, out, _ = _private_detect(attacked, KEY, 2, "additive")
    ref = W.detect(attacked, KEY)
    assert found == ref.message
    assert np.abs(np.minimum(1, out["confidence"]) - ref.confidence).max() <= 1e-2


def test_unmarked_is_absent_on_shares():
    _, out, _ = _private_detect(SMALL, KEY, 3, "rss3")
    assert out["present"][0] < 0.5 and out["fit"][0] < W.FIT_THRESHOLD


def test_a_servers_view_does_not_depend_on_photo_key_or_payload():
    other_photo = np.ascontiguousarray(SMALL[::-1, ::-1])
    _, first = _private_embed(SMALL, KEY, MESSAGE, 3, "rss3")
    _, second = _private_embed(other_photo, W.Key(bytes(32)), "0" * 16, 3, "rss3")
    assert_views_alike(view_bytes(first), view_bytes(second))
    _, _, first = _private_detect(SMALL, KEY, 2, "additive")
    _, _, second = _private_detect(other_photo, W.Key(bytes(32)), 2, "additive")
    assert_views_alike(view_bytes(first), view_bytes(second))


def test_cli_on_real_servers_two_then_three(tmp_path, capsys):
    key = tmp_path / "key.json"
    assert cli.main(["watermark", "keygen", str(key)]) == 0
    photo, out = tmp_path / "photo.png", tmp_path / "marked.png"
    Image.fromarray(SMALL).save(photo)
    capsys.readouterr()
    assert (
        cli.main(["watermark", "embed", str(photo), str(out), "--key", str(key), "--message", MESSAGE, "--json"]) == 0
    )
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["psnr"] >= 40 and record["report"]["online_seconds"] > 0
    assert cli.main(["watermark", "detect", str(out), "--key", str(key), "--servers", "3", "--json"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["message"] == MESSAGE and record["present"] is True and len(record["report"]["parties"]) == 3
