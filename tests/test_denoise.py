"""Private FFDNet denoising on two servers: equal to the plaintext network, secrets stay shared."""

import numpy as np
import pytest
from skimage import data

import safelight
from safelight.errors import InputError, ProgramError
from safelight.tasks import denoise


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    store = tmp_path_factory.mktemp("store")
    with safelight.Cluster.local(2, dealer=True, timeout=20, store=store) as c:
        denoise.upload(c)
        c.store_dir = store
        yield c


def test_private_equals_plaintext_on_a_batch_of_real_photos(cluster):
    # odd sizes exercise the edge padding; two photos ride in one job
    crops = [data.astronaut()[100:131, 180:213], data.coffee()[200:231, 300:333]]
    noisy = [denoise.add_noise(c, 25, seed=i) for i, c in enumerate(crops)]
    result = denoise.run(cluster, noisy, 25)
    plain = denoise.plaintext(noisy, 25)
    for got, want, clean, dirty in zip(result.images, plain, crops, noisy):
        assert got.shape == want.shape == clean.shape
        assert np.abs(got - want).max() < 2e-3  # fixed-point error only
        assert abs(denoise.psnr(got, clean) - denoise.psnr(want, clean)) <= 0.05
        assert denoise.psnr(got, clean) > denoise.psnr(dirty, clean) + 3
    steps = result.job.steps()
    assert sum(s["op"] == "relu" for s in steps) == 11 and sum(s["op"] == "conv2d" for s in steps) == 12


def test_grey_images_run_as_three_channels(cluster):
    clean = data.camera()[200:224, 220:244]
    noisy = denoise.add_noise(clean, 15, seed=3)
    got = denoise.run(cluster, [noisy], 15).images[0]
    want = denoise.plaintext([noisy], 15)[0]
    assert got.shape == clean.shape
    assert np.abs(got - want).max() < 2e-3
    assert denoise.psnr(got, clean) > denoise.psnr(noisy, clean) + 3


def test_deep_network_uses_exact_truncation():
    # local two-party truncation fails about once per 10^8 values: too often for a 12-layer CNN
    assert denoise.denoiser(1, 4, 4).program.truncation == "pair"


def test_servers_hold_only_shares_of_the_weights(cluster):
    from safelight import fixed_point

    model = denoise.denoiser(1, 2, 2)
    files = {p.parent.parent.name: p for p in cluster.store_dir.glob("*/ffdnet_color@*/w.conv3.weight.npy")}
    assert set(files) == {"party-0", "party-1"}
    shares = [np.load(files[f"party-{i}"]) for i in range(2)]
    plain = fixed_point.encode(model.weights["w.conv3.weight"])
    for share in shares:  # neither file is the encoded weights; each looks uniform
        assert not np.any(share == plain)
        assert abs(np.mean(share >> np.uint64(63)) - 0.5) < 0.02
    np.testing.assert_array_equal(shares[0] + shares[1], plain)


def test_what_the_client_sends_each_server_is_a_share():
    from safelight import fixed_point

    image = np.random.default_rng(0).uniform(0, 1, (1, 3, 8, 8))
    enc = safelight.encode(image)
    plain = fixed_point.encode(image)
    for payload in enc.payloads:
        share = payload.materialize()
        assert not np.any(share == plain)


@pytest.mark.parametrize("sigma", [0, -5, 75.5, "loud", float("nan")])
def test_sigma_out_of_range(sigma):
    with pytest.raises(InputError, match="sigma"):
        denoise.check_sigma(sigma)


@pytest.mark.parametrize(
    "image", [np.zeros((8, 8, 2)), np.zeros((8,)), np.array([["a"]]), np.zeros((1, 8, 3)), np.full((4, 4), np.nan)]
)
def test_not_an_image(image):
    with pytest.raises(InputError):
        denoise.as_float_image(image)


def test_unknown_model_id_then_the_cluster_still_serves(cluster):
    noisy = denoise.add_noise(data.astronaut()[:8, :8], 25)
    with pytest.raises(ProgramError, match="unknown model id 'missing'"):
        denoise.run(cluster, [noisy], 25, model_id="missing")
    assert denoise.run(cluster, [noisy], 25).images[0].shape == (8, 8, 3)


def test_images_of_different_sizes_need_separate_jobs(cluster):
    with pytest.raises(InputError, match="same size"):
        denoise.run(cluster, [np.zeros((8, 8, 3)), np.zeros((8, 10, 3))], 25)
