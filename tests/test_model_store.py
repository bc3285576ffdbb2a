"""Uploading model shares once and naming them in later jobs."""

import numpy as np
import pytest

import safelight
from safelight.errors import InputError, ProgramError
from safelight.net.config import ClusterConfig
from safelight.program.program import Program
from safelight.runtime.model_store import ModelStore


def _scale_program(shape):
    p = Program(2)
    x, w = p.input("x", shape), p.input("w", shape)
    p.output(p.mul(x, w), "y")
    return p


@pytest.fixture(scope="module")
def dealt():
    """Two servers and a dealer: stored weights never run on client-dealt randomness."""
    with safelight.Cluster.local(2, dealer=True, timeout=10.0) as cluster:
        yield cluster


def test_stored_weights_serve_several_jobs(dealt):
    w = np.random.default_rng(0).uniform(-1, 1, (3, 4))
    stored = dealt.upload_model("scaler-v1", {"w": safelight.encode(w)})
    p = _scale_program(w.shape)
    for seed in (1, 2):
        x = np.random.default_rng(seed).uniform(-2, 2, w.shape)
        job = dealt.run(p, {"x": safelight.encode(x), "w": stored["w"]})
        np.testing.assert_allclose(safelight.decode(job.outputs["y"]), x * w, atol=1e-3)


def test_unknown_model_or_tensor_is_a_clear_error_and_the_server_keeps_serving(dealt):
    from safelight.runtime.client import StoredTensor

    p = _scale_program((2,))
    x = safelight.encode(np.ones(2))
    with pytest.raises(ProgramError, match="unknown model id 'nope'"):
        dealt.run(p, {"x": x, "w": StoredTensor("nope", "w", (2,), 2, 16)})
    dealt.upload_model("small", {"w": safelight.encode(np.ones(2))})
    with pytest.raises(ProgramError, match="has no tensor 'v'"):
        dealt.run(p, {"x": x, "w": StoredTensor("small", "v", (2,), 2, 16)})
    with pytest.raises(InputError, match="model id"):
        dealt.upload_model("../etc", {"w": safelight.encode(np.ones(2))})
    stored = dealt.upload_model("small", {"w": safelight.encode(np.full(2, 3.0))})  # replaces
    job = dealt.run(p, {"x": x, "w": stored["w"]})
    np.testing.assert_allclose(safelight.decode(job.outputs["y"]), 3.0, atol=1e-3)


def test_store_keeps_only_shares_and_persists(tmp_path):
    w = np.random.default_rng(4).uniform(-1, 1, 1000)
    enc = safelight.encode(w)
    stores = [ModelStore(f"party-{i}", tmp_path) for i in range(2)]
    for i, store in enumerate(stores):
        store.put("m", {"w": enc.payloads[i].materialize()})
    reopened = [ModelStore(f"party-{i}", tmp_path) for i in range(2)]
    shares = [s.get("m", "w", (1000,)) for s in reopened]
    np.testing.assert_allclose(safelight.decode(safelight.sharing.Shared(shares, 16)), w, atol=1e-4)
    plain = safelight.fixed_point.encode(w)
    for share in shares:  # each file is a uniformly random share, not the weights
        assert abs(int(np.count_nonzero(share >> np.uint64(63))) - 500) < 100
        assert not np.array_equal(share, plain)


def test_store_directory_in_config(tmp_path):
    (tmp_path / "cluster.toml").write_text('[cluster]\nstore = "shares"\n\n[[party]]\nhost = "h"\nport = 1\n')
    assert ClusterConfig.load(tmp_path / "cluster.toml").store == tmp_path / "shares"


@pytest.mark.parametrize("parties", [2, 3])
def test_stored_weights_are_opened_once_per_model(parties):
    rng = np.random.default_rng(5)
    w = rng.uniform(-1, 1, (16, 8, 3, 3))
    x = rng.uniform(-1, 1, (1, 8, 12, 12))
    p = Program(parties)
    p.output(p.conv2d(p.input("x", x.shape), p.input("w", w.shape), padding=1), "y")

    def conv_bytes(job):
        return job.ops()["conv2d"]["bytes_sent"][0]

    with safelight.Cluster.local(parties, dealer=True, timeout=10) as cluster:

        def run(stored):
            job = cluster.run(p, {"x": safelight.encode(x, parties), "w": stored["w"]})
            return job, safelight.decode(job.outputs["y"])

        stored = cluster.upload_model("net", {"w": safelight.encode(w, parties)})
        first, y1 = run(stored)
        second, y2 = run(stored)
        stored = cluster.upload_model("net", {"w": safelight.encode(-w, parties)})  # new weights
        third, y3 = run(stored)
    from scipy.signal import correlate

    want = np.stack([sum(correlate(np.pad(x[0, c], 1), w[o, c], mode="valid") for c in range(8)) for o in range(16)])[
        None
    ]
    np.testing.assert_allclose(y1, want, atol=1e-3)
    np.testing.assert_allclose(y2, want, atol=1e-3)
    np.testing.assert_allclose(y3, -want, atol=1e-3)
    # the masked weight (16*8*3*3 values, 8 bytes each) travels in the first job only, and
    # again after the model changed
    assert conv_bytes(first) - conv_bytes(second) >= w.size * 8
    assert conv_bytes(third) - conv_bytes(second) >= w.size * 8


def _share(n, seed):
    return np.random.default_rng(seed).integers(0, 2**64, n, dtype=np.uint64)


def test_the_index_names_each_models_folder_and_a_crash_leaves_the_old_version(tmp_path):
    store = ModelStore("party-0", tmp_path)
    old = _share(10, 1)
    store.put("m", {"w": old})
    root = tmp_path / "party-0"
    # what a crash leaves: a new version renamed into place but never committed, and a
    # staging folder half written
    (root / "m@0123456789ab").mkdir()
    np.save(root / "m@0123456789ab" / "w.npy", _share(10, 2))
    (root / ".staging-feedfacecafe").mkdir()
    reopened = ModelStore("party-0", tmp_path)
    np.testing.assert_array_equal(reopened.get("m", "w", (10,)), old)
    assert sorted(p.name for p in (root / "quarantine").iterdir()) == [".staging-feedfacecafe", "m@0123456789ab"]
    assert len([p for p in root.iterdir() if p.name.startswith("m@")]) == 1  # the live version only
    reopened.put("m", {"w": _share(10, 3)})  # a new version replaces the old folder
    assert len([p for p in root.iterdir() if p.name.startswith("m@")]) == 1


def test_a_store_from_before_the_index_is_adopted_and_a_dropped_model_is_gone(tmp_path):
    legacy = tmp_path / "party-1" / "weights-v1"
    legacy.mkdir(parents=True)
    np.save(legacy / "w.npy", _share(4, 3))
    store = ModelStore("party-1", tmp_path)
    np.testing.assert_array_equal(store.get("weights-v1", "w", (4,)), _share(4, 3))
    assert store.models() == {"weights-v1": {"w": (4,)}}
    assert store.drop("weights-v1") and not store.drop("weights-v1")
    assert not legacy.exists()
    with pytest.raises(ProgramError, match="unknown model id"):
        ModelStore("party-1", tmp_path).get("weights-v1", "w", (4,))


def test_a_newer_index_is_refused(tmp_path):
    import sqlite3

    from safelight.errors import ConfigError

    ModelStore("party-0", tmp_path)
    db = sqlite3.connect(tmp_path / "party-0" / "index.sqlite")
    db.execute("PRAGMA user_version = 9")
    db.commit()
    db.close()
    with pytest.raises(ConfigError, match="schema 9"):
        ModelStore("party-0", tmp_path)


def test_servers_forget_a_dropped_model(tmp_path):
    with safelight.Cluster.local(2, dealer=True, store=tmp_path) as cluster:
        stored = cluster.upload_model("gone", {"w": safelight.encode(np.ones(3))})
        assert cluster.drop_model("gone") and not cluster.drop_model("gone")
        with pytest.raises(ProgramError, match="unknown model id 'gone'"):
            cluster.run(_scale_program((3,)), {"x": safelight.encode(np.ones(3)), "w": stored["w"]})
    assert not any(p.name.startswith("gone@") for p in (tmp_path / "party-0").iterdir())
