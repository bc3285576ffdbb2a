"""Private Harris corners (issue 16) against scikit-image's corner_harris + corner_peaks."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from protocol_sim import assert_views_alike, simulate, view_bytes
from safelight.errors import InputError
from safelight.sharing import decode, encode
from safelight.tasks import features


def _private(image, scheme, parties, **options):
    grey = features.as_grey(image)
    p = features.harris_program(*grey.shape, parties, scheme, **options)
    outs, ctxs = simulate(p, {"image": encode(grey * features.SCALE, parties, scheme=scheme)})
    mask, response = decode(outs["mask"]), decode(outs["response"]) / features.SCALE**4
    peaks, values = features.keypoints_from_candidates(mask, response, options.get("min_distance", 1))
    return peaks, values, ctxs


def _agree(image, scheme, parties, **options):
    ref, ref_values = features.plaintext_harris(image, **options)
    peaks, values, _ = _private(image, scheme, parties, **options)
    assert {tuple(x) for x in peaks} == {tuple(x) for x in ref}
    order = {tuple(x): v for x, v in zip(ref, ref_values)}
    for x, v in zip(peaks, values):
        assert abs(v - order[tuple(x)]) <= 1e-3 * abs(order[tuple(x)]) + 1e-9
    return ref


@pytest.mark.parametrize("scheme,parties", [("rss3", 3), ("additive", 2)])
def test_private_harris_finds_scikit_images_corners_on_photographs(scheme, parties):
    assert len(_agree(data.camera()[100:228, 200:328], scheme, parties)) > 10
    assert len(_agree(data.astronaut()[:96, :128], scheme, parties)) > 5  # colour: rgb2gray first


def test_options_reach_the_private_pipeline():
    _agree(data.camera()[::4, ::4], "rss3", 3, k=0.1, sigma=1.5, min_distance=3, threshold_rel=0.05)


def test_edge_cases_flat_image_a_bright_pixel_and_corners_at_the_border():
    assert len(_agree(np.zeros((24, 24)), "rss3", 3)) == 0  # no gradient anywhere
    assert len(_agree(np.full((24, 24), 0.5), "rss3", 3)) == 4  # zero padding: the image's corners are corners
    dot = np.zeros((24, 24))
    dot[12, 9] = 1.0
    _agree(dot, "rss3", 3)
    square = np.zeros((20, 20))
    square[:6, :6] = 1.0  # a corner two pixels from the border
    _agree(square, "rss3", 3)


def test_a_servers_view_does_not_depend_on_the_image():
    views = []
    for image in (np.zeros((20, 20)), data.camera()[200:220, 200:220]):
        _, _, ctxs = _private(image, "rss3", 3)
        views.append(view_bytes(ctxs))
    assert_views_alike(*views)


def test_bad_input_is_one_clear_error():
    with pytest.raises(InputError, match="too small"):
        features.harris_program(2, 30)
    with pytest.raises(InputError, match="min_distance"):
        features.harris_program(30, 30, min_distance=0)
    with pytest.raises(InputError, match="uint8, uint16 or float"):
        features.as_grey(np.zeros((8, 8), dtype=np.int32))
    with pytest.raises(InputError, match="NaN"):
        features.as_grey(np.full((8, 8), np.nan))


def test_harris_on_three_real_servers():
    image = data.camera()[::2, ::2]
    ref, _ = features.plaintext_harris(image)
    result = features.harris(image, servers=3)
    assert {tuple(x) for x in result.outputs} == {tuple(x) for x in ref}
    assert result.report.offline_seconds == 0.0 and result.report.randomness == "replicated"


def test_the_command_line_writes_keypoints_and_a_plot(tmp_path, capsys):
    import json

    from PIL import Image

    from safelight import cli

    photo = tmp_path / "camera.png"
    Image.fromarray(data.camera()[::4, ::4]).save(photo)
    out, plot = tmp_path / "corners.json", tmp_path / "corners.png"
    assert cli.main(["features", "harris", str(photo), "--servers", "3", "--json", str(out), "--plot", str(plot)]) == 0
    record = json.loads(out.read_text())
    ref, _ = features.plaintext_harris(data.camera()[::4, ::4])
    assert {(r, c) for r, c, _ in record["keypoints"]} == {tuple(x) for x in ref}
    assert record["report"]["online_seconds"] > 0 and len(record["report"]["parties"]) == 3
    assert Image.open(plot).size == (128, 128)
    (tmp_path / "notes.png").write_text("not an image")
    assert cli.main(["features", "harris", str(tmp_path / "notes.png"), "--servers", "3"]) == 2
    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.zeros((2, 40), dtype=np.uint8)).save(tiny)
    assert cli.main(["features", "harris", str(tiny), "--servers", "3"]) == 2
    assert "too small" in capsys.readouterr().err


# ---- HOG -----------------------------------------------------------------------------------------------


def _private_hog(image, scheme="rss3", parties=3):
    grey = features.as_grey(image)
    p = features.hog_program(*grey.shape, parties, scheme)
    outs, ctxs = simulate(p, {"image": encode(grey * features.HOG_SCALE, parties, scheme=scheme)})
    return decode(outs["descriptor"]), ctxs


@pytest.mark.parametrize(
    "image,scheme,parties",
    [
        (data.camera()[::4, ::4], "rss3", 3),
        (data.astronaut()[:64, :96], "rss3", 3),
        (data.coffee()[100:160, 200:290], "rss3", 3),
        (data.camera()[200:264, 200:296], "additive", 2),
        (data.coffee()[100:160, 200:290], "additive", 2),
    ],
    ids=["camera-rss3", "astronaut-rss3", "coffee-rss3", "camera-2", "coffee-2"],
)
def test_private_hog_equals_scikit_images_hog(image, scheme, parties):
    ref = features.plaintext_hog(image)
    got, _ = _private_hog(image, scheme, parties)
    assert got.shape == ref.shape
    err = np.abs(got - ref)
    assert (err <= 1e-3).mean() >= 0.99 and err.max() <= 0.02  # bin-boundary pixels may flip


def test_hog_edge_cases_and_bad_input():
    flat, _ = _private_hog(np.full((24, 24), 0.3))
    assert np.abs(flat - features.plaintext_hog(np.full((24, 24), 0.3))).max() <= 1e-3  # all zero
    ramp = np.tile(np.linspace(0, 1, 32), (32, 1))  # one orientation everywhere: exactly on bin 0's edge
    got, _ = _private_hog(ramp)
    assert np.abs(got - features.plaintext_hog(ramp)).max() <= 0.02
    with pytest.raises(InputError, match="too small"):
        features.hog_program(20, 40, 3, "rss3")


def test_the_common_task_shape():
    image = data.camera()[::8, ::8]
    result = features.run(image, feature="harris", servers=3)
    assert {tuple(x) for x in result.outputs} == {tuple(x) for x in features.plaintext_harris(image)[0]}
    with pytest.raises(InputError, match="unknown feature"):
        features.run(image, feature="surf")


@pytest.mark.parametrize("scheme,parties", [("rss3", 3), ("additive", 2)])
def test_a_servers_view_of_hog_does_not_depend_on_the_image(scheme, parties):
    views = []
    for image in (np.zeros((24, 24)), data.camera()[200:224, 200:224]):
        _, ctxs = _private_hog(image, scheme, parties)
        views.append(view_bytes(ctxs))
    assert_views_alike(*views)


@pytest.mark.parametrize("scheme,parties", [("rss3", 3), ("additive", 2)])
def test_shi_tomasi_finds_scikit_images_corners(scheme, parties):
    image = data.camera()[100:164, 200:264]
    ref, ref_values = features.plaintext_harris(image, method="shi-tomasi")
    grey = features.as_grey(image)
    p = features.harris_program(*grey.shape, parties, scheme, method="shi-tomasi")
    scale = features.SHI_TOMASI_SCALE
    outs, _ = simulate(p, {"image": encode(grey * scale, parties, scheme=scheme)})
    mask, response = decode(outs["mask"]), decode(outs["response"]) / scale**2
    peaks, values = features.keypoints_from_candidates(mask, response, 1)
    assert len(ref) > 5 and {tuple(x) for x in peaks} == {tuple(x) for x in ref}
    order = {tuple(x): v for x, v in zip(ref, ref_values)}
    for x, v in zip(peaks, values):
        assert abs(v - order[tuple(x)]) <= 1e-3 * abs(order[tuple(x)]) + 1e-6
    with pytest.raises(InputError, match="unknown corner method"):
        features.harris_program(32, 32, method="eps")
