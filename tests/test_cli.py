"""The command line: the filter task end to end, and one clear error (exit 2, no traceback) for bad input."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from skimage import data

from safelight import cli
from safelight.tasks import filter as private_filter


def run_cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "safelight", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "coffee.png"
    Image.fromarray(data.coffee()[:128, :160]).save(path)
    return path


def test_filter_command_end_to_end(photo, tmp_path):
    out = tmp_path / "out.png"
    proc = run_cli("filter", str(photo), str(out), "--kernel", "gaussian:2")
    assert proc.returncode == 0, proc.stderr
    assert "party-0" in proc.stdout and "wall time" in proc.stdout  # a summary is a result: stdout
    got = np.asarray(Image.open(out))
    expected = private_filter.to_image(
        private_filter.plaintext(np.asarray(Image.open(photo)), "gaussian:2"), "gaussian:2"
    )
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


@pytest.mark.parametrize(
    "make_args,match",
    [
        (lambda p, t: ["filter", str(t / "missing.png"), str(t / "o.png"), "--kernel", "box:3"], "does not exist"),
        (lambda p, t: ["filter", str(p), str(t / "o.png"), "--kernel", "emboss"], "unknown kernel"),
        (lambda p, t: ["filter", str(p), str(t / "o.png"), "--kernel", "gaussian:-1"], "bad kernel parameter"),
        (lambda p, t: ["filter", str(t / "corrupt.png"), str(t / "o.png"), "--kernel", "box:3"], "cannot read"),
        (lambda p, t: ["filter", str(p), str(t / "nodir" / "o.png"), "--kernel", "box:3"], "does not exist"),
        (
            lambda p, t: ["filter", str(p), str(t / "o.png"), "--kernel", "box:3", "--cluster", str(t / "none.toml")],
            "does not exist",
        ),
        (lambda p, t: ["filter", str(p), str(t / "o.png"), "--kernel", "box:3", "--padding", "wrap"], "invalid choice"),
    ],
)
def test_bad_input_gives_one_clear_error_and_exit_code_2(photo, tmp_path, make_args, match):
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    proc = run_cli(*make_args(photo, tmp_path))
    assert proc.returncode == 2
    assert match in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o.png").exists()


def test_unreachable_cluster_is_a_clear_error(photo, tmp_path):
    import socket

    from safelight.net.certs import create_cluster_certs
    from safelight.net.config import ClusterConfig, PartyAddress

    create_cluster_certs(tmp_path / "certs", 2)
    # ports bound by this test and never listened on: connections are refused, and nothing
    # else can take them while the test holds them
    holders = [socket.socket() for _ in range(2)]
    for h in holders:
        h.bind(("127.0.0.1", 0))
    ports = [h.getsockname()[1] for h in holders]
    cfg = ClusterConfig(tuple(PartyAddress("127.0.0.1", p) for p in ports), tmp_path / "certs", 2.0)
    path = cfg.save(tmp_path / "cluster.toml")
    proc = run_cli("filter", str(photo), str(tmp_path / "o.png"), "--kernel", "box:3", "--cluster", str(path))
    for h in holders:
        h.close()
    assert proc.returncode == 2 and "cannot reach party-" in proc.stderr and "Traceback" not in proc.stderr


def test_in_process_main_returns_2_for_bad_input(tmp_path, capsys):
    assert cli.main(["filter", str(tmp_path / "x.png"), str(tmp_path / "y.png"), "--kernel", "box:3"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_isa_is_reported_and_can_be_forced():
    import safelight

    assert safelight.isa() in safelight.available_isas()
    for name in safelight.available_isas():
        proc = subprocess.run(
            [sys.executable, "-c", "import safelight; print(safelight.isa())"],
            capture_output=True,
            text=True,
            env={**__import__("os").environ, "SAFELIGHT_ISA": name},
        )
        assert proc.stdout.strip() == name
    proc = subprocess.run(
        [sys.executable, "-c", "import safelight"],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "SAFELIGHT_ISA": "sse9"},
    )
    assert proc.returncode != 0 and "unknown instruction set" in proc.stderr


def test_denoise_command_end_to_end(tmp_path):
    from safelight.tasks import denoise

    clean = data.astronaut()[100:124, 180:204]
    noisy = np.round(np.clip(denoise.add_noise(clean, 25, seed=2), 0, 1) * 255).astype(np.uint8)
    src, out = tmp_path / "noisy.png", tmp_path / "clean.png"
    Image.fromarray(noisy).save(src)
    proc = run_cli("denoise", str(src), str(out), "--sigma", "25")
    assert proc.returncode == 0, proc.stderr
    assert "online / offline" in proc.stdout and "bytes per server" in proc.stdout
    got = np.asarray(Image.open(out)).astype(float) / 255
    want = denoise.plaintext([noisy], 25)[0]
    assert np.abs(got - want).max() <= 1.01 / 255


@pytest.mark.parametrize(
    "args,match",
    [
        (["--sigma", "90"], "sigma must be in"),
        (["--sigma", "0"], "sigma must be in"),
    ],
)
def test_denoise_bad_sigma(photo, tmp_path, args, match):
    proc = run_cli("denoise", str(photo), str(tmp_path / "o.png"), *args)
    assert proc.returncode == 2 and match in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o.png").exists()


def test_denoise_not_an_image(tmp_path):
    (tmp_path / "notes.png").write_text("not an image at all")
    proc = run_cli("denoise", str(tmp_path / "notes.png"), str(tmp_path / "o.png"), "--sigma", "25")
    assert proc.returncode == 2 and "cannot read" in proc.stderr and "Traceback" not in proc.stderr


def test_demo_writes_the_side_by_side_and_reports_psnr(tmp_path):
    out = tmp_path / "demo.png"
    proc = run_cli("demo", "--size", "32", "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "PSNR gap private vs plaintext" in proc.stdout and "SSIM" in proc.stdout
    sheet = np.asarray(Image.open(out))  # four 32x32 panels, enlarged to fit their captions, over a caption strip
    assert sheet.shape[0] > 32 and sheet.shape[1] % 128 == 0 and sheet.shape[2] == 3


def test_model_upload_then_denoise_on_a_remote_cluster(tmp_path):
    """The model owner uploads once; the image owner denoises against the stored model."""
    import safelight
    from safelight.tasks import denoise

    noisy = np.round(np.clip(denoise.add_noise(data.coffee()[:20, :20], 25, seed=4), 0, 1) * 255).astype(np.uint8)
    src = tmp_path / "noisy.png"
    Image.fromarray(noisy).save(src)
    with safelight.Cluster.local(2, dealer=True) as cluster:
        config = str(cluster.workdir / "cluster.toml")
        proc = run_cli("denoise", str(src), str(tmp_path / "a.png"), "--sigma", "25", "--cluster", config)
        assert proc.returncode == 2 and "unknown model id 'ffdnet_color'" in proc.stderr  # not uploaded yet
        proc = run_cli("model", "upload", "--cluster", config)
        assert proc.returncode == 0, proc.stderr
        assert "uploaded 24 weight tensors" in proc.stdout
        proc = run_cli("denoise", str(src), str(tmp_path / "b.png"), "--sigma", "25", "--cluster", config)
        assert proc.returncode == 0, proc.stderr
    got = np.asarray(Image.open(tmp_path / "b.png")).astype(float) / 255
    assert np.abs(got - denoise.plaintext([noisy], 25)[0]).max() <= 1.01 / 255


# --- image depth, alpha, frames, output formats and warnings (issue 12, points 2, 11, 15, 18) ---


def _deep_input(tmp_path, kind):
    """An input file of ``kind`` and the ImageFile it should read as."""
    from safelight.images import ImageFile, write_image

    rng = np.random.default_rng(7)
    ramp = np.linspace(0.02, 0.98, 30 * 36).reshape(30, 36)
    grey16 = np.rint(ramp * 65535).astype(np.uint16)
    alpha16 = rng.integers(0, 65536, (30, 36), dtype=np.uint16)
    if kind == "float.tif":
        Image.fromarray(ramp.astype(np.float32), mode="F").save(tmp_path / kind)
        return tmp_path / kind
    if kind == "grey16.png":
        Image.fromarray(grey16).save(tmp_path / kind)  # Pillow writes 16-bit grey itself
        return tmp_path / kind
    pixels, alpha, mode = {
        "la16.png": (grey16, alpha16, "LA;16"),
        "rgb16.png": (np.dstack([grey16, grey16[::-1], grey16[:, ::-1]]), None, "RGB;16"),
    }[kind]
    write_image(tmp_path / kind, pixels, like=ImageFile(pixels, alpha, 16, mode))
    return tmp_path / kind


@pytest.mark.parametrize("kind", ["grey16.png", "la16.png", "rgb16.png", "float.tif"])
def test_16bit_and_float_images_are_filtered_at_full_depth(tmp_path, kind):
    """16-bit grey used to come out all white (clipped at 255); now the output has the input's
    depth (16-bit PNG, float TIFF) and its alpha, and matches plaintext at that precision."""
    from safelight.images import read_image

    src = _deep_input(tmp_path, kind)
    out = tmp_path / ("out.tif" if kind.endswith(".tif") else "out.png")
    proc = run_cli("filter", str(src), str(out), "--kernel", "box:3")
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr
    image, got = read_image(src), read_image(out)
    assert got.bit_depth == image.bit_depth and got.mode == image.mode
    want = private_filter.plaintext(image.values, "box:3")
    assert np.abs(got.values - want).max() <= (3 / 65535 if image.bit_depth == 16 else 1e-4)
    assert got.values.max() < 0.99  # not clipped to white
    if image.alpha is not None:
        np.testing.assert_array_equal(got.alpha, image.alpha)


@pytest.mark.parametrize(
    "kind,kernel,extra",
    [("grey16.png", "gaussian:1", []), ("rgb16.png", "sharpen", ["--private-kernel"]), ("float.tif", "box:3", [])],
)
def test_he_filter_keeps_16bit_depth(tmp_path, kind, kernel, extra):
    from safelight.images import read_image

    src = _deep_input(tmp_path, kind)
    out = tmp_path / ("out.tif" if kind.endswith(".tif") else "out.png")
    proc = run_cli("filter", str(src), str(out), "--kernel", kernel, "--scheme", "he", *extra)
    assert proc.returncode == 0, proc.stderr
    image, got = read_image(src), read_image(out)
    assert got.mode == image.mode
    want = np.clip(private_filter.plaintext(image.values, kernel), 0, 1)
    assert np.abs(got.values - want).max() <= 2 / 65535  # two 8-bit planes: 16-bit precision


def test_16bit_grey_alpha_is_denoised_at_full_depth_with_its_alpha(tmp_path):
    from safelight.images import ImageFile, read_image, write_image
    from safelight.tasks import denoise

    clean = data.camera()[200:216, 200:216]
    noisy = np.clip(denoise.add_noise(clean, 25, seed=3), 0, 1)
    pixels = np.rint(noisy * 65535).astype(np.uint16)
    alpha = np.arange(16 * 16, dtype=np.uint16).reshape(16, 16) * 251
    src = write_image(tmp_path / "noisy.png", pixels, like=ImageFile(pixels, alpha, 16, "LA;16"))
    proc = run_cli("denoise", str(src), str(tmp_path / "out.png"), "--sigma", "25")
    assert proc.returncode == 0, proc.stderr
    got = read_image(tmp_path / "out.png")
    assert got.mode == "LA;16" and got.pixels.dtype == np.uint16
    np.testing.assert_array_equal(got.alpha, alpha)
    want = denoise.plaintext([pixels / 65535.0], 25)[0]
    assert np.abs(got.values - want).max() <= 1 / 255
    assert got.values.mean() < 0.9  # it used to come out at 253..255 of 255


def test_an_animated_gif_needs_a_frame(tmp_path):
    frames = [Image.fromarray(np.full((12, 14, 3), level, np.uint8)) for level in (30, 200)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    proc = run_cli("filter", str(tmp_path / "anim.gif"), str(tmp_path / "o.png"), "--kernel", "box:3")
    assert proc.returncode == 2 and "2 frames" in proc.stderr and "--frame N" in proc.stderr
    assert "party-" not in proc.stderr and not (tmp_path / "o.png").exists()
    proc = run_cli("filter", str(tmp_path / "anim.gif"), str(tmp_path / "o.png"), "--kernel", "box:3", "--frame", "1")
    assert proc.returncode == 0, proc.stderr
    assert np.abs(np.asarray(Image.open(tmp_path / "o.png")).astype(int) - 200).max() <= 1


@pytest.mark.parametrize(
    "command",
    [
        lambda src, out: ["filter", src, out, "--kernel", "box:3"],
        lambda src, out: ["filter", src, out, "--kernel", "box:3", "--scheme", "he"],
        lambda src, out: ["denoise", src, out, "--sigma", "25"],
        lambda src, out: ["demo", "--size", "16", "--output", out],
        lambda src, out: ["filter-demo", "--output", out],
    ],
)
def test_an_unwritable_output_format_is_refused_before_the_job(photo, tmp_path, command):
    out = tmp_path / "result.xyz"
    proc = run_cli(*command(str(photo), str(out)))
    assert proc.returncode == 2, proc.stderr
    assert "no image format is known for the extension '.xyz'" in proc.stderr
    assert "party-" not in proc.stderr and "Traceback" not in proc.stderr  # no job started
    assert not out.exists()


@pytest.mark.parametrize(
    "make,out_name,match",
    [
        (
            lambda: np.random.default_rng(1).integers(0, 256, (20, 24, 2), dtype=np.uint8),
            "o.jpg",
            "JPEG cannot hold an alpha channel",
        ),
        (
            lambda: np.random.default_rng(1).integers(0, 65536, (20, 24), dtype=np.uint16),
            "o.jpg",
            "JPEG cannot hold 16-bit grey samples",
        ),
    ],
)
def test_a_lossy_conversion_is_one_warning_line_on_stderr(tmp_path, make, out_name, match):
    Image.fromarray(make()).save(tmp_path / "in.png")
    proc = run_cli("filter", str(tmp_path / "in.png"), str(tmp_path / out_name), "--kernel", "box:3")
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert len(lines) == 1 and lines[0].startswith("safelight: warning: ") and match in lines[0]
    assert (tmp_path / out_name).exists()


def test_demo_warns_about_a_size_above_the_photo_and_captions_its_panels(tmp_path, monkeypatch, capsys):
    """--size larger than the photo was capped silently; the four panels had no labels."""
    from safelight import images

    small = data.astronaut()[180:220, 200:248]  # a 40x48 photo keeps the job small
    monkeypatch.setattr(images, "sample_image", lambda name: small)
    out = tmp_path / "demo.png"
    assert cli.main(["demo", "--size", "1000", "--output", str(out)]) == 0
    err = capsys.readouterr().err
    assert "safelight: warning: --size 1000 is larger than the 40x48 photo; using 40" in err
    sheet = np.asarray(Image.open(out))
    scale = sheet.shape[1] // (4 * 40)
    assert sheet.shape[1] == 4 * 40 * scale and sheet.shape[0] > 40 * scale  # a caption strip under the panels
    crop = small[:, 4:44]
    np.testing.assert_array_equal(sheet[: 40 * scale, : 40 * scale], np.repeat(np.repeat(crop, scale, 0), scale, 1))
    strip = sheet[40 * scale :]
    for i in range(4):  # every panel has its caption written under it
        assert (strip[:, i * 40 * scale : (i + 1) * 40 * scale] < 128).any()
    assert (strip[:, : 40 * scale] < 128).sum() < (strip[:, 40 * scale : 80 * scale] < 128).sum()  # clean: label only


def test_he_filter_refuses_floats_outside_0_1():
    """16-bit and float images run as two byte planes: values outside [0, 1] would wrap, so they are refused."""
    from safelight.errors import InputError
    from safelight.tasks import he_filter

    with pytest.raises(InputError, match="takes images in \\[0, 1\\]"):
        he_filter.run(np.full((8, 8), 1.5), "box:3")
