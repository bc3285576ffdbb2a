"""Single-server private filtering with homomorphic encryption (safelight filter --scheme he)."""

import numpy as np
import pytest
from skimage import data

from safelight.errors import InputError, ProgramError
from safelight.program.program import Program
from safelight.runtime.cluster import Cluster
from safelight.tasks import filter as plain_filter
from safelight.tasks import he_filter


@pytest.fixture(scope="module")
def server():
    with Cluster.local(1) as cluster:
        yield cluster


@pytest.mark.parametrize(
    "kernel",
    [
        "gaussian:1",
        "sharpen",
        "sobel-y",
        "box:5",
        np.array([[1, 2, 0, -1], [0, 1, 3, 0], [2, 0, 0, 1], [0, -2, 1, 1]]) / 8,
    ],
)
def test_grey_photo_matches_plaintext_within_one_grey_level(server, kernel):
    image = data.camera()[100:196, 150:290]
    result = he_filter.run(image, kernel, server)
    plain = plain_filter.plaintext(image, kernel)
    assert result.values.shape == image.shape
    assert np.abs(result.values - plain).max() * 255 < 1.0


@pytest.mark.parametrize("kernel", ["sharpen", "gaussian:1.2"])
def test_encrypted_kernel_matches_plaintext(server, kernel):
    """The kernel encrypted too: ciphertext-ciphertext products on the server."""
    for image in (data.camera()[:60, :70], data.astronaut()[100:150, 100:140]):
        result = he_filter.run(image, kernel, server, encrypted_kernel=True)
        assert np.abs(result.values - plain_filter.plaintext(image, kernel)).max() * 255 < 1.0
        assert result.job.parties[0].ops["he_conv2d_encrypted"]["calls"] == 1


@pytest.mark.parametrize("padding", ["zero", "reflect", "nearest", "mirror"])
def test_colour_photo_and_padding_modes(server, padding):
    image = data.astronaut()[:70, 200:290]
    result = he_filter.run(image, "gaussian:1.5", server, padding=padding)
    plain = plain_filter.plaintext(image, "gaussian:1.5", padding=padding)
    assert np.abs(result.values - plain).max() * 255 < 1.0


def test_what_the_server_receives_does_not_depend_on_the_image(server):
    """The upload is c0 rows of fresh encryptions (c1 is a seed): for a flat grey image and
    a photo, the rows divided by their primes are indistinguishable uniform samples."""
    from scipy.stats import ks_2samp, kstest

    from safelight.he import bfv
    from safelight.he.packing import ConvPacking

    result = he_filter.run(np.full((40, 40), 200, dtype=np.uint8), "box:3", server)
    assert np.allclose(result.values, 200 / 255, atol=1 / 255)
    context = bfv.Context(he_filter.params())
    packing = ConvPacking.choose(1, 42, 42, 1, 3, 3, he_filter.RING_DEGREE)
    primes = np.array(context.params.q, dtype=np.float64)[:, None]
    samples = []
    for image in (np.full((1, 42, 42), 200, np.uint64), data.camera()[None, :42, :42].astype(np.uint64)):
        cts = context.encrypt_coeffs(packing.pack_input(image)[:, 0], context.keygen())
        samples.append((cts.data[:, 0] / primes).reshape(-1)[::7])
    assert ks_2samp(*samples).pvalue > 1e-3
    assert kstest(samples[0], "uniform").pvalue > 1e-3


def test_bad_inputs_are_clear_errors(server):
    with pytest.raises(InputError, match="plaintext modulus"):  # any size fits now; weights must stay small
        he_filter.run(np.zeros((64, 64), np.uint8), np.ones((17, 17)), server)
    with pytest.raises(InputError, match="padding"):
        he_filter.run(np.zeros((64, 64), np.uint8), "box:3", server, padding="wrap")
    with pytest.raises(InputError, match="one server"):
        with Cluster.local(2) as two:
            he_filter.run(np.zeros((16, 16), np.uint8), "box:3", two)


def test_he_ops_run_only_on_one_server_and_share_ops_on_two():
    with pytest.raises(ProgramError, match="ciphertexts"):
        prog = Program(parties=2)
        prog.apply("he_conv2d", [prog.input("x", (4,))], {})
    with pytest.raises(ProgramError, match="shares"):
        prog = Program(parties=1)
        x = prog.input("x", (4,))
        prog.add(x, x)
    # the same check on a Program as a server receives it
    prog = Program(parties=2)
    x = prog.input("x", (4,))
    prog.output(prog.add(x, x), "y")
    wire = prog.to_json()
    wire.update(parties=1, truncation="auto")
    with pytest.raises(ProgramError, match="shares"):
        Program.from_json(wire)


def test_cli_filter_scheme_he(tmp_path):
    from PIL import Image

    from safelight.cli import main

    src = tmp_path / "in.png"
    Image.fromarray(data.camera()[:64, :80]).save(src)
    assert main(["filter", str(src), str(tmp_path / "out.png"), "--kernel", "sobel-x", "--scheme", "he"]) == 0
    assert (
        main(
            [
                "filter",
                str(src),
                str(tmp_path / "out2.png"),
                "--kernel",
                "sobel-x",
                "--scheme",
                "he",
                "--private-kernel",
            ]
        )
        == 0
    )
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out2.png")), np.asarray(Image.open(tmp_path / "out.png")))
    out = np.asarray(Image.open(tmp_path / "out.png"))
    expected = plain_filter.to_image(plain_filter.plaintext(data.camera()[:64, :80], "sobel-x"), "sobel-x")
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1


def test_malformed_ciphertexts_fail_the_job_clearly_and_the_server_keeps_serving(server):
    from safelight.errors import SafelightError
    from safelight.he.packing import ConvPacking

    image = data.camera()[:32, :32]
    packing = ConvPacking.choose(1, 34, 34, 1, 3, 3, he_filter.RING_DEGREE)
    from safelight.he import bfv

    context = bfv.Context(he_filter.params())
    padded = np.pad(image, 1)[None].astype(np.uint64)
    cts = context.encrypt_coeffs(packing.pack_input(padded)[:, 0], context.keygen())
    program = he_filter.build_program(packing, cts, np.ones((3, 3), np.int64), he_filter.params())
    words = np.full(program.inputs["image"], 2**64 - 1, dtype=np.uint64)  # not a serialised batch
    with pytest.raises(SafelightError, match="malformed ciphertext"):
        server.run(program, {"image": he_filter.ciphertext_input(words, program.frac_bits)})
    assert (
        np.abs(he_filter.run(image, "box:3", server).values - plain_filter.plaintext(image, "box:3")).max() * 255 < 1.0
    )
