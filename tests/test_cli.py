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
    return subprocess.run([sys.executable, "-m", "safelight", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "coffee.png"
    Image.fromarray(data.coffee()[:128, :160]).save(path)
    return path


def test_filter_command_end_to_end(photo, tmp_path):
    out = tmp_path / "out.png"
    proc = run_cli("filter", str(photo), str(out), "--kernel", "gaussian:2")
    assert proc.returncode == 0, proc.stderr
    assert "party-0" in proc.stderr and "wall time" in proc.stderr
    got = np.asarray(Image.open(out))
    expected = private_filter.to_image(private_filter.plaintext(np.asarray(Image.open(photo)), "gaussian:2"),
                                       "gaussian:2")
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


@pytest.mark.parametrize("make_args,match", [
    (lambda p, t: ["filter", str(t / "missing.png"), str(t / "o.png"), "--kernel", "box:3"], "does not exist"),
    (lambda p, t: ["filter", str(p), str(t / "o.png"), "--kernel", "emboss"], "unknown kernel"),
    (lambda p, t: ["filter", str(p), str(t / "o.png"), "--kernel", "gaussian:-1"], "bad kernel parameter"),
    (lambda p, t: ["filter", str(t / "corrupt.png"), str(t / "o.png"), "--kernel", "box:3"], "cannot read"),
    (lambda p, t: ["filter", str(p), str(t / "nodir" / "o.png"), "--kernel", "box:3"], "does not exist"),
    (lambda p, t: ["filter", str(p), str(t / "o.png"), "--kernel", "box:3", "--cluster", str(t / "none.toml")],
     "does not exist"),
    (lambda p, t: ["filter", str(p), str(t / "o.png"), "--kernel", "box:3", "--padding", "wrap"], "invalid choice"),
])
def test_bad_input_gives_one_clear_error_and_exit_code_2(photo, tmp_path, make_args, match):
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    proc = run_cli(*make_args(photo, tmp_path))
    assert proc.returncode == 2
    assert match in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o.png").exists()


def test_unreachable_cluster_is_a_clear_error(photo, tmp_path):
    from safelight.runtime.certs import create_cluster_certs
    from safelight.runtime.cluster import _free_ports
    from safelight.runtime.config import ClusterConfig, PartyAddress

    create_cluster_certs(tmp_path / "certs", 2)
    cfg = ClusterConfig(tuple(PartyAddress("127.0.0.1", p) for p in _free_ports(2)), tmp_path / "certs", 2.0)
    path = cfg.save(tmp_path / "cluster.toml")
    proc = run_cli("filter", str(photo), str(tmp_path / "o.png"), "--kernel", "box:3", "--cluster", str(path))
    assert proc.returncode == 2 and "cannot reach party-" in proc.stderr and "Traceback" not in proc.stderr


def test_in_process_main_returns_2_for_bad_input(tmp_path, capsys):
    assert cli.main(["filter", str(tmp_path / "x.png"), str(tmp_path / "y.png"), "--kernel", "box:3"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_isa_is_reported_and_can_be_forced():
    import safelight

    assert safelight.isa() in safelight.available_isas()
    for name in safelight.available_isas():
        proc = subprocess.run([sys.executable, "-c", "import safelight; print(safelight.isa())"],
                              capture_output=True, text=True, env={**__import__("os").environ, "SAFELIGHT_ISA": name})
        assert proc.stdout.strip() == name
    proc = subprocess.run([sys.executable, "-c", "import safelight"], capture_output=True, text=True,
                          env={**__import__("os").environ, "SAFELIGHT_ISA": "sse9"})
    assert proc.returncode != 0 and "unknown instruction set" in proc.stderr


def test_denoise_command_end_to_end(tmp_path):
    from safelight.tasks import denoise

    clean = data.astronaut()[100:124, 180:204]
    noisy = np.round(np.clip(denoise.add_noise(clean, 25, seed=2), 0, 1) * 255).astype(np.uint8)
    src, out = tmp_path / "noisy.png", tmp_path / "clean.png"
    Image.fromarray(noisy).save(src)
    proc = run_cli("denoise", str(src), str(out), "--sigma", "25")
    assert proc.returncode == 0, proc.stderr
    assert "online / offline" in proc.stderr and "bytes per server" in proc.stderr
    got = np.asarray(Image.open(out)).astype(float) / 255
    want = denoise.plaintext([noisy], 25)[0]
    assert np.abs(got - want).max() <= 1.01 / 255


@pytest.mark.parametrize("args,match", [
    (["--sigma", "90"], "sigma must be in"),
    (["--sigma", "0"], "sigma must be in"),
])
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
    assert "PSNR gap private vs plaintext" in proc.stderr and "SSIM" in proc.stderr
    assert np.asarray(Image.open(out)).shape == (32, 128, 3)


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
        assert "uploaded 24 weight tensors" in proc.stderr
        proc = run_cli("denoise", str(src), str(tmp_path / "b.png"), "--sigma", "25", "--cluster", config)
        assert proc.returncode == 0, proc.stderr
    got = np.asarray(Image.open(tmp_path / "b.png")).astype(float) / 255
    assert np.abs(got - denoise.plaintext([noisy], 25)[0]).max() <= 1.01 / 255
