"""One task API (issue 13, point 3): every task is ``run(inputs, *, cluster=None, **options) ->
TaskResult`` with the decoded outputs and one JobReport; ``safelight.filter`` and
``safelight.denoise`` call them; the 0.1 call shapes still work for one release, each with
one DeprecationWarning; the library's own paths raise none."""

import inspect
import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
from PIL import Image
from skimage import data

import safelight
from safelight.errors import InputError, UnsupportedError
from safelight.tasks import denoise, he_filter, openfhe_filter
from safelight.tasks import filter as private_filter
from safelight.tasks.report import RANDOMNESS, JobReport, TaskResult

GREY = 1 / 255
IMAGE = data.camera()[100:132, 150:182]  # 32 x 32 uint8


@pytest.fixture(autouse=True)
def new_shapes_do_not_warn():
    """A DeprecationWarning is an error here (pytest.warns, around each old-shape call, records instead)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        yield


@pytest.fixture(scope="module")
def he_server():
    with safelight.Cluster.local(1) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def model_cluster():
    with safelight.Cluster.local(2, dealer=True, timeout=20) as cluster:
        denoise.upload(cluster)
        yield cluster


def _noisy(seed=0, size=16):
    return denoise.add_noise(data.astronaut()[100 : 100 + size, 180 : 180 + size], 25, seed=seed)


# ---- the new shape, task by task ----------------------------------------------------------


def test_filter_run_returns_outputs_and_one_report(cluster2):
    result = private_filter.run(IMAGE, cluster=cluster2, kernel="box:3")
    assert isinstance(result, TaskResult) and isinstance(result.report, JobReport)
    assert result.outputs.dtype == np.uint8 and result.outputs.shape == IMAGE.shape
    assert result.image is result.outputs and len(result.images) == 1
    plain = private_filter.plaintext(IMAGE, "box:3")
    assert np.abs(result.values - plain).max() <= GREY  # extras read as attributes
    assert result.extras["values"] is result.values
    report = result.report
    assert report.randomness is None and report.rounds == 0 and report.dealer is None  # no interactive op
    assert [p.party for p in report.parties] == [0, 1]
    assert all(p.bytes_sent > 0 and p.bytes_received > 0 for p in report.parties)
    assert [s["op"] for s in report.steps] == ["conv2d_public", "rescale"]
    assert report.upload_bytes >= IMAGE.size * 8 and report.download_bytes > 0
    assert report.summary() == result.job.summary()  # --json prints the same fields as before
    json.dumps(report.summary())


def test_filter_private_kernel_on_the_default_cluster_reports_the_dealer():
    colour = data.astronaut()[100:132, 200:232]
    result = private_filter.run(colour, kernel="sharpen", private_kernel=True)  # spawns 2 servers and a dealer
    assert result.outputs.shape == colour.shape
    assert np.abs(result.values - private_filter.plaintext(colour, "sharpen")).max() <= GREY
    report = result.report
    assert report.randomness == "dealer" and report.dealer is not None and report.dealer.bytes_sent > 0
    conv = [s for s in report.steps if s["op"] == "conv2d"]
    assert len(conv) == 1 and conv[0]["rounds"] == 1 and report.rounds >= 1
    assert report.summary()["triples"] == "dealer"


def test_he_filter_run_reports_one_server_and_the_client_key(he_server):
    result = he_filter.run(IMAGE, cluster=he_server, kernel="gaussian:1", encrypted_kernel=True)
    assert result.outputs.dtype == np.uint8
    assert np.abs(result.values - private_filter.plaintext(IMAGE, "gaussian:1")).max() * 255 < 1.0
    report = result.report
    assert report.randomness == "client key" and report.randomness in RANDOMNESS
    assert report.summary()["triples"] is None and report.summary() == result.job.summary()
    assert len(report.parties) == 1 and report.rounds == 0
    assert [s["op"] for s in report.steps] == ["he_conv2d_encrypted"]
    assert set(report.client_seconds) == {"encrypt", "decrypt"}
    assert 0 < result.download_bytes <= report.download_bytes  # ciphertexts, within all the client received
    assert 0 < result.upload_bytes <= report.upload_bytes
    assert set(result.seconds) == {"encrypt", "server", "decrypt"}


def test_openfhe_filter_run_checks_inputs_and_refuses_a_cluster(cluster2):
    with pytest.raises(InputError, match="padding"):
        openfhe_filter.run(np.zeros((8, 8)), kernel="box:3", padding="wrap")
    with pytest.raises(UnsupportedError, match="takes no cluster"):
        openfhe_filter.run(np.zeros((8, 8)), cluster=cluster2, kernel="box:3")


def test_openfhe_job_report_counts_keys_as_upload_and_one_step():
    report = openfhe_filter.job_report(
        {"keygen": 0.5, "encrypt": 0.25, "evaluate": 2.0, "decrypt": 0.125},
        {"upload": 1000, "download": 300},
        {"rotation_keys": 5000, "context": 200},
    )
    assert report.upload_bytes == 6200 and report.download_bytes == 300
    (server,) = report.parties
    assert (server.bytes_received, server.bytes_sent, server.seconds) == (6200, 300, 2.0)
    assert report.rounds == 0 and report.randomness == "client key" and report.summary()["triples"] is None
    assert [s["op"] for s in report.steps] == ["ckks_conv2d"] and report.job is None
    assert report.client_seconds == {"keygen": 0.5, "encrypt": 0.25, "decrypt": 0.125}
    json.dumps(report.summary())


def test_denoise_run_one_image_gives_one_image_and_a_list_gives_a_list(model_cluster):
    noisy = [_noisy(0), _noisy(1)]
    one = denoise.run(noisy[0], cluster=model_cluster, sigma=25)
    assert isinstance(one.outputs, np.ndarray) and one.outputs.shape == (16, 16, 3)
    assert one.image is one.outputs
    both = denoise.run(noisy, cluster=model_cluster, sigma=25)
    assert isinstance(both.outputs, list) and len(both.images) == 2
    with pytest.raises(UnsupportedError, match="2 images"):
        both.image  # noqa: B018
    for got, want in zip(both.outputs, denoise.plaintext(noisy, 25)):
        assert np.abs(got - want).max() < 2e-3
    np.testing.assert_allclose(one.outputs, both.outputs[0], atol=2e-3)
    report = both.report
    assert report.randomness == "dealer" and report.summary() == both.job.summary()
    assert sum(s["op"] == "relu" for s in report.steps) == 11 and sum(s["op"] == "conv2d" for s in report.steps) == 12
    assert report.rounds > 0 and all(p.bytes_sent > 0 for p in report.parties)
    assert report.offline_seconds > 0 and report.online_seconds > 0


def test_denoise_run_on_the_default_cluster_without_a_dealer():
    """cluster=None starts two servers, shares the shipped model to them and denoises; with
    no_dealer the servers make their own randomness."""
    noisy = _noisy(2, size=8)
    result = denoise.run(noisy, sigma=25, no_dealer=True)
    assert result.report.randomness == "he" and result.report.dealer is None
    assert np.abs(result.outputs - denoise.plaintext([noisy], 25)[0]).max() < 2e-3


def test_denoise_run_bad_options():
    with pytest.raises(InputError, match="contradicts"):
        denoise.run(_noisy(), sigma=25, no_dealer=True, triples="dealer")
    with pytest.raises(InputError, match="sequence of images"):
        denoise.run(42, sigma=25)
    with pytest.raises(TypeError):  # not the old shape (no cluster first): options go by keyword
        denoise.run([_noisy()], 25)


# ---- the top level ------------------------------------------------------------------------


def test_top_level_filter_and_denoise_call_the_tasks(cluster2, model_cluster):
    result = safelight.filter(IMAGE, kernel="sobel-x", cluster=cluster2)
    direct = private_filter.run(IMAGE, cluster=cluster2, kernel="sobel-x").outputs
    assert result.outputs.dtype == direct.dtype and np.abs(result.outputs.astype(int) - direct).max() <= 1
    noisy = _noisy(3)
    got = safelight.denoise([noisy], cluster=model_cluster, sigma=20)
    assert isinstance(got, safelight.TaskResult) and len(got.outputs) == 1
    assert np.abs(got.outputs[0] - denoise.plaintext([noisy], 20)[0]).max() < 2e-3


@pytest.mark.parametrize("top,task", [(safelight.filter, private_filter.run), (safelight.denoise, denoise.run)])
def test_top_level_signatures_match_the_tasks(top, task):
    ours, theirs = (list(inspect.signature(f).parameters.values())[1:] for f in (top, task))
    assert [(p.name, p.kind, p.default) for p in ours] == [(p.name, p.kind, p.default) for p in theirs]


# ---- the 0.1 shapes: still working, one DeprecationWarning each -----------------------------


def _one_warning(record, new_call):
    found = [w for w in record if issubclass(w.category, DeprecationWarning)]
    assert len(found) == 1, [str(w.message) for w in found]
    assert new_call in str(found[0].message), str(found[0].message)
    assert found[0].filename == __file__  # attributed to the caller's line


def test_old_shape_filter_positional_kernel_and_cluster(cluster2):
    with pytest.warns(DeprecationWarning) as record:
        old = private_filter.run(IMAGE, "box:3", cluster2, "nearest")
    _one_warning(record, "safelight.tasks.filter.run(image, kernel=..., cluster=..., padding=...)")
    new = private_filter.run(IMAGE, cluster=cluster2, kernel="box:3", padding="nearest")
    np.testing.assert_allclose(old.values, new.values, atol=2**-15)  # local truncation: off by one unit at most
    assert old.job.parties[0].bytes_sent > 0  # 0.1's FilterResult.job
    with pytest.warns(DeprecationWarning) as record:
        private_filter.run(image=IMAGE, kernel="box:3", cluster=cluster2)
    _one_warning(record, "filter.run(image, kernel=..., cluster=...)")


def test_old_shape_he_filter(he_server):
    with pytest.warns(DeprecationWarning) as record:
        old = he_filter.run(IMAGE, "box:3", he_server, encrypted_kernel=False)
    _one_warning(record, "safelight.tasks.he_filter.run(image, kernel=..., cluster=..., encrypted_kernel=...)")
    assert np.abs(old.values - private_filter.plaintext(IMAGE, "box:3")).max() * 255 < 1.0
    assert old.upload_bytes > 0 and set(old.seconds) == {"encrypt", "server", "decrypt"}


def test_old_shape_denoise_cluster_first(model_cluster):
    noisy = _noisy(4)
    with pytest.warns(DeprecationWarning) as record:
        old = denoise.run(model_cluster, [noisy], 25)
    _one_warning(record, "safelight.tasks.denoise.run(images, cluster=..., sigma=...)")
    assert isinstance(old.images, list) and old.images[0].shape == (16, 16, 3)
    assert old.job.triples == "dealer"
    with pytest.warns(DeprecationWarning) as record:
        denoise.run(model_cluster, images=[noisy], sigma=25, preprocess="ahead")
    _one_warning(record, "denoise.run(images, cluster=..., sigma=..., preprocess=...)")


def test_old_shape_openfhe_filter_image_and_result_class_names():
    with pytest.warns(DeprecationWarning, match=r"openfhe_filter\.run\(image, kernel="):
        with pytest.raises(InputError, match="padding"):
            openfhe_filter.filter_image(np.zeros((8, 8)), "box:3", padding="wrap")
    for module, name in [
        (private_filter, "FilterResult"),
        (he_filter, "HEFilterResult"),
        (denoise, "Result"),
        (openfhe_filter, "OpenFHEFilterResult"),
    ]:
        with pytest.warns(DeprecationWarning, match=f"{name} is now safelight.tasks.report.TaskResult"):
            assert getattr(module, name) is TaskResult
    with pytest.raises(AttributeError):
        private_filter.NoSuchThing  # noqa: B018


def test_old_shape_errors_are_type_errors_as_python_gives(cluster2):
    with pytest.raises(TypeError, match="multiple values for 'kernel'"):
        private_filter.run(IMAGE, "box:3", kernel="box:5")
    with pytest.raises(TypeError, match="at most 6 options"):
        private_filter.run(IMAGE, "box:3", cluster2, "reflect", None, False, False, "extra")


# ---- the library's own paths raise no DeprecationWarning ---------------------------------------


@pytest.mark.parametrize("extra", [[], ["--scheme", "he"]])
def test_cli_filter_emits_no_deprecation_warning(tmp_path, extra):
    src, out = tmp_path / "in.png", tmp_path / "out.png"
    Image.fromarray(IMAGE).save(src)
    proc = subprocess.run(
        [
            sys.executable,
            "-W",
            "error::DeprecationWarning",
            "-m",
            "safelight",
            "filter",
            str(src),
            str(out),
            "--kernel",
            "box:3",
            "--json",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "DeprecationWarning" not in proc.stderr
    record = json.loads(proc.stdout)
    assert set(record) == {
        "wall_seconds",
        "online_seconds",
        "offline_seconds",
        "setup_seconds",
        "rounds",
        "triples",
        "upload_bytes",
        "download_bytes",
        "parties",
        "dealer",
        "ops",
        "output",
        "details",
    }
    assert len(record["parties"]) == (1 if extra else 2) and record["output"] == str(out)
    assert (
        np.abs(
            np.asarray(Image.open(out)).astype(int)
            - private_filter.to_image(private_filter.plaintext(IMAGE, "box:3"), "box:3")
        ).max()
        <= 1
    )


def test_cli_denoise_emits_no_deprecation_warning(tmp_path):
    noisy = np.round(np.clip(_noisy(5, size=12), 0, 1) * 255).astype(np.uint8)
    src, out = tmp_path / "in.png", tmp_path / "out.png"
    Image.fromarray(noisy).save(src)
    proc = subprocess.run(
        [
            sys.executable,
            "-W",
            "error::DeprecationWarning",
            "-m",
            "safelight",
            "denoise",
            str(src),
            str(out),
            "--sigma",
            "25",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert record["triples"] == "dealer" and "online / offline" in record["details"]
    got = np.asarray(Image.open(out)).astype(float) / 255
    assert np.abs(got - denoise.plaintext([noisy], 25)[0]).max() <= 1.01 / 255
