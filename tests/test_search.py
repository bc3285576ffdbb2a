"""Private image search on three servers (issue 15): the catalog, the ranking against
plaintext, the private features against onnxruntime, what a server sees, a killed
server, bad input."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from skimage import data

import safelight
from protocol_sim import assert_views_alike, simulate, view_bytes
from safelight import cli
from safelight.errors import ConfigError, InputError, PeerUnavailableError, SafelightError
from safelight.models.embedding import Embedder
from safelight.program.program import Program
from safelight.runtime.client import StoredTensor
from safelight.sharing import decode, encode
from safelight.tasks import search
from safelight.tasks.search_catalog import CATALOG_FILE, Catalog

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field")


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    """Six photos shipped with scikit-image, and two edited copies as queries."""
    folder = tmp_path_factory.mktemp("gallery")
    for name in PHOTOS:
        Image.fromarray(getattr(data, name)()).save(folder / f"{name}.png")
    queries = tmp_path_factory.mktemp("queries")
    Image.open(folder / "chelsea.png").save(queries / "chelsea.jpg", quality=50)
    coffee = Image.open(folder / "coffee.png")
    coffee.resize((coffee.width // 2, coffee.height // 2)).save(queries / "coffee_small.png")
    return folder, queries


# ---- the catalog ---------------------------------------------------------------------------------


def test_the_catalog_keeps_names_encrypted_and_never_reuses_a_segment(tmp_path):
    with Catalog(tmp_path) as cat:
        seg = cat.next_segment("local")
        cat.add(seg, ["holiday/beach-secret.jpg", "b.png"])
        assert cat.contains("b.png") and not cat.contains("c.png")
        cat.remove("b.png")
        with pytest.raises(InputError, match="no photo named"):
            cat.remove("b.png")
        assert cat.next_segment("local").id == seg.id + 1
        unused = cat.next_segment("local")  # never recorded (a crash before add): its id stays used
    assert (tmp_path / "owner.key").stat().st_mode & 0o777 == 0o600
    raw = b"".join(f.read_bytes() for f in tmp_path.iterdir() if f.is_file())
    assert b"beach-secret" not in raw  # names are sealed under the owner's key
    with Catalog(tmp_path) as cat:
        assert [p.name for p in cat.photos()] == ["holiday/beach-secret.jpg"]
        assert cat.gallery_rows() == 2 and cat.live_photos() == 1
        assert cat.names_by_position() == {0: "holiday/beach-secret.jpg"}
        assert cat.next_segment("local").id == unused.id + 1


def test_the_catalog_refuses_a_newer_schema_and_a_foreign_key(tmp_path):
    Catalog(tmp_path).close()
    db = sqlite3.connect(tmp_path / CATALOG_FILE)
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(ConfigError, match="schema 99"):
        Catalog(tmp_path)
    other = tmp_path / "other"
    with Catalog(other) as cat:
        cat.add(cat.next_segment("local"), ["x.png"])
    (other / "owner.key").write_bytes(os.urandom(32))
    with Catalog(other) as cat, pytest.raises(ConfigError, match="does not open"):
        cat.photos()


def test_a_version_1_catalog_is_migrated_in_place(tmp_path):
    db = sqlite3.connect(tmp_path / CATALOG_FILE)
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute(
        "CREATE TABLE segments (id INTEGER PRIMARY KEY, model TEXT NOT NULL UNIQUE, rows INTEGER NOT NULL, "
        "features TEXT NOT NULL)"
    )
    db.execute(
        "CREATE TABLE photos (lookup BLOB PRIMARY KEY, name BLOB NOT NULL, segment INTEGER NOT NULL, "
        "row INTEGER NOT NULL)"
    )
    db.execute("INSERT INTO segments VALUES (1, 'search.x.s1', 2, 'local')")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    with Catalog(tmp_path) as cat:
        assert cat.db.execute("PRAGMA user_version").fetchone()[0] == 3
        (seg,) = cat.segments()
        assert seg.leaf is None and seg.tensor == "features" and cat.owner_features(1) is None and cat.tree() is None


def test_spherical_kmeans_finds_separated_clusters():
    rng = np.random.default_rng(3)
    centres = _unit(5, 64, 4)
    x = np.repeat(centres, 40, axis=0) + rng.normal(0, 0.02, (200, 64))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    c, leaf = search.spherical_kmeans(x.astype(np.float32), 5)
    assert np.allclose(np.linalg.norm(c, axis=1), 1, atol=1e-5)
    assert sorted(np.bincount(leaf, minlength=5)) == [40] * 5
    assert all(len(set(leaf[i * 40 : (i + 1) * 40])) == 1 for i in range(5))


# ---- the search on shares against plaintext ---------------------------------------------------------


def _unit(rows, d, seed):
    v = np.random.default_rng(seed).normal(size=(rows, d))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _search_on_shares(q, segments, k):
    p = Program(3, scheme="rss3")
    qt = p.input("q", q.shape)
    gs = [p.input(f"g{i}", g.shape) for i, g in enumerate(segments)]
    p.output(search.nearest(p, qt, gs, k), "near")
    arrays = {"q": q, **{f"g{i}": g for i, g in enumerate(segments)}}
    outs, ctxs = simulate(p, {name: encode(a, 3, scheme="rss3") for name, a in arrays.items()})
    return decode(outs["near"]), ctxs


@settings(max_examples=10, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=3), st.integers(1, 10), st.integers(0, 2**31))
def test_the_private_ranking_is_the_plaintext_ranking(sizes, k, seed):
    d = 32
    segments = [_unit(n, d, seed + i) for i, n in enumerate(sizes)]
    gallery = np.concatenate(segments)
    k = min(k, len(gallery))
    q = _unit(1, d, seed + 99)
    near, _ = _search_on_shares(q, segments, k)
    want = ((gallery - q) ** 2).sum(axis=1)
    order = np.argsort(want, kind="stable")
    assert np.abs(near[0] - want[order[:k]]).max() < 1e-3  # distances within the fixed-point error
    got = np.rint(near[1]).astype(int)
    # the same rows, up to swaps of distances closer than that error
    assert np.all(np.abs(want[got] - want[order[:k]]) < 1e-3)
    assert len(set(got)) == k


def test_a_servers_view_does_not_depend_on_the_query():
    d, rows = 64, 256
    segments = [_unit(rows, d, 1)]
    views = []
    for q in (np.eye(d)[:1], np.eye(d)[-1:]):
        _, ctxs = _search_on_shares(q, segments, 4)
        views.append(view_bytes(ctxs))
    assert_views_alike(*views)


# ---- real servers, the shipped network ------------------------------------------------------------------


def test_private_features_equal_onnxruntime_and_the_query_ranks_as_plaintext(gallery, tmp_path):
    folder, queries = gallery
    photo = np.asarray(Image.open(folder / "astronaut.png"))
    with safelight.Cluster.local(3, scheme="rss3", store=tmp_path / "servers") as cluster, Catalog(tmp_path) as cat:
        search.upload(cluster)
        model, unit = search.embedding_network(1)
        model.program.output(unit, "unit")
        inputs = {**model.encode_inputs({"image": search.preprocessed(photo)}), **search.weight_inputs(model)}
        private = decode(cluster.run(model.program, inputs).outputs["unit"])
        plain = Embedder().embed(photo)
        assert np.abs(private - plain).max() < 2e-3

        search.index([folder], cluster=cluster, catalog=cat, features="local")
        embedded = Embedder().embed_preprocessed(
            np.concatenate([search.preprocessed(folder / f"{n}.png") for n in sorted(PHOTOS)])
        )
        for q in ("chelsea.jpg", "coffee_small.png"):
            result = search.query(queries / q, cluster=cluster, catalog=cat, top=3)
            distances, rows = search.plaintext_ranking(queries / q, embedded, 3)
            assert [m.name for m in result.outputs] == [str(folder / f"{sorted(PHOTOS)[r]}.png") for r in rows]
            assert np.abs(np.array([m.distance for m in result.outputs]) - distances).max() < 3e-3
            assert result.outputs[0].name.endswith(q.split(".")[0].replace("_small", "") + ".png")
        report = result.report
        assert report.offline_seconds == 0.0 and report.randomness == "replicated"
        assert all(p.bytes_sent > 0 for p in report.parties)


def test_features_extracted_on_the_servers_find_the_same_photo(gallery, tmp_path):
    folder, queries = gallery
    with safelight.Cluster.local(3, scheme="rss3", store=tmp_path / "servers") as cluster, Catalog(tmp_path) as cat:
        reports = search.index(
            [folder / "chelsea.png", folder / "rocket.png"], cluster=cluster, catalog=cat, features="private"
        )
        job = reports[0].job  # one job (a batch), whose features stayed on the servers
        assert len(reports) == 1 and job.outputs == {} and set(job.kept) == {"features"}
        result = search.query(queries / "chelsea.jpg", cluster=cluster, catalog=cat, top=2)
        assert result.outputs[0].name == str(folder / "chelsea.png") and result.outputs[0].distance < 0.1


def test_a_server_killed_mid_query_is_a_clear_error_and_no_photo_is_lost(gallery, tmp_path):
    folder, queries = gallery
    store = tmp_path / "servers"
    with Catalog(tmp_path) as cat:
        with safelight.Cluster.local(3, scheme="rss3", store=store, timeout=5.0) as cluster:
            search.index([folder], cluster=cluster, catalog=cat)
            search.upload(cluster)
            cat.set_flag("weights", search.MODEL_ID)
            threading.Timer(1.0, os.kill, (cluster.processes[1].pid, signal.SIGKILL)).start()
            t0 = time.monotonic()
            with pytest.raises((PeerUnavailableError, SafelightError)):
                search.query(queries / "chelsea.jpg", cluster=cluster, catalog=cat, top=2)
            assert time.monotonic() - t0 < 20
        assert cat.live_photos() == len(PHOTOS)
        with safelight.Cluster.local(3, scheme="rss3", store=store) as cluster:  # restarted servers
            result = search.query(queries / "chelsea.jpg", cluster=cluster, catalog=cat, top=1)
            assert result.outputs[0].name == str(folder / "chelsea.png")


def test_the_index_tree_searches_only_the_leaves_it_visits_and_is_rebuilt_when_it_drifts(gallery, tmp_path):
    folder, queries = gallery
    with safelight.Cluster.local(3, scheme="rss3", store=tmp_path / "servers") as cluster, Catalog(tmp_path) as cat:
        search.index([folder / f"{n}.png" for n in PHOTOS[:5]], cluster=cluster, catalog=cat)
        assert search.tree_drift(cat) == float("inf")
        assert search.build_tree(cluster, cat, leaves=3) == 3
        assert search.tree_drift(cat) == 0.0 and cat.live_photos() == 5
        tree = search.query(queries / "chelsea.jpg", cluster=cluster, catalog=cat, top=1, probes=1)
        assert tree.extras["mode"] == "tree" and len(tree.extras["leaves_visited"]) == 1
        assert tree.extras["rows_searched"] < 5 and tree.extras["probe_report"].rounds > 0
        exact = search.query(queries / "chelsea.jpg", cluster=cluster, catalog=cat, top=5, exact=True)
        assert exact.extras["mode"] == "exact" and exact.extras["rows_searched"] == 5
        assert tree.outputs[0].name == exact.outputs[0].name == str(folder / "chelsea.png")
        assert abs(tree.outputs[0].distance - exact.outputs[0].distance) < 1e-3
        same = search.run(queries / "chelsea.jpg", cluster=cluster, index_dir=tmp_path, top=1, probes=1)
        assert same.outputs[0].name == tree.outputs[0].name  # the common task shape, on this catalog
        assert abs(same.outputs[0].distance - tree.outputs[0].distance) < 1e-3
        search.index([folder / f"{PHOTOS[5]}.png"], cluster=cluster, catalog=cat)  # one photo more: 20 % drift
        assert search.tree_drift(cat) == pytest.approx(0.2)
        cat.remove(str(folder / "rocket.png"))
        assert search.tree_drift(cat) == pytest.approx(0.4)
        before = {seg.model for seg in cat.segments()} | {cat.tree()[0]}
        search.build_tree(cluster, cat)
        assert search.tree_drift(cat) == 0.0 and cat.gallery_rows() == 5  # the forgotten row is gone
        for party in range(3):  # the servers forgot the replaced segments and tree
            index = sqlite3.connect(tmp_path / "servers" / f"party-{party}" / "index.sqlite")
            held = {row[0] for row in index.execute("SELECT id FROM models")}
            index.close()
            assert not held & before and {seg.model for seg in cat.segments()} <= held
            assert not [m for m in held if m.startswith(f"search.{cat.collection}.q")]  # no query left behind
        again = search.query(queries / "coffee_small.png", cluster=cluster, catalog=cat, top=1, probes=2)
        assert again.outputs[0].name == str(folder / "coffee.png")


def test_the_servers_build_the_tree_on_shares_like_the_owner_would(tmp_path):
    """Spherical k-means on the servers finds the groups of a clustered gallery whose
    features the owner does not hold, and tree queries then find the query's group."""
    groups, per = 4, 12
    centres = _unit(groups, search.EMBEDDING_DIM, 8)
    rng = np.random.default_rng(9)
    feats = centres.repeat(per, axis=0) + rng.normal(
        0, 0.5 / np.sqrt(search.EMBEDDING_DIM), (groups * per, search.EMBEDDING_DIM)
    )
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    with safelight.Cluster.local(3, scheme="rss3", store=tmp_path / "servers") as cluster, Catalog(tmp_path) as cat:
        for g in range(2):  # two segments, as two index runs would make
            seg = cat.next_segment("private")
            rows = feats[g * groups * per // 2 : (g + 1) * groups * per // 2]
            cluster.upload_model(seg.model, {"features": encode(rows, 3, scheme="rss3")})
            cat.add(seg, [f"p{g * len(rows) + i}" for i in range(len(rows))])
        cat.remove("p5")
        with pytest.raises(InputError, match="every feature"):
            search.build_tree(cluster, cat, leaves=groups, on="owner")
        assert search.build_tree(cluster, cat, leaves=groups) == groups
        segments = cat.segments()
        assert {seg.features for seg in segments} == {"private"} and cat.gallery_rows() == groups * per - 1
        for seg in segments:  # each leaf holds one group: the photos p{per*g}..p{per*g+per-1}
            names = {int(name[1:]) // per for name in cat.names_by_position([seg]).values()}
            assert len(names) == 1
        # a query near group 2's centre, already embedded: the leaves the probe job picks
        model_id, leaves, _ = cat.tree()
        p = Program(3, scheme="rss3")
        q = p.input("q", (1, search.EMBEDDING_DIM))
        c = p.input("c", (leaves, search.EMBEDDING_DIM))
        p.output(search.nearest(p, q, [c], 1), "probe")
        stored = StoredTensor(model_id, "centroids", (leaves, search.EMBEDDING_DIM), 3, 16, "rss3")
        probe = cluster.run(p, {"q": encode(centres[2:3], 3, scheme="rss3"), "c": stored})
        leaf = int(np.rint(decode(probe.outputs["probe"])[1][0]))
        (seg,) = [s for s in segments if s.leaf == leaf]
        assert {int(n[1:]) // per for n in cat.names_by_position([seg]).values()} == {2}


# ---- the command line ------------------------------------------------------------------------------------


def test_bad_input_is_one_clear_error_with_exit_code_2(gallery, tmp_path, capsys):
    folder, queries = gallery
    index_dir = str(tmp_path / "idx")
    assert cli.main(["search", "query", str(queries / "chelsea.jpg"), "--index-dir", index_dir]) == 2
    assert "gallery is empty" in capsys.readouterr().err
    not_image = tmp_path / "notes.png"
    not_image.write_text("not an image")
    assert cli.main(["search", "query", str(not_image), "--index-dir", index_dir]) == 2
    assert capsys.readouterr().err.count("error") == 1
    assert cli.main(["search", "index", str(folder / "chelsea.png"), "--index-dir", index_dir, "--json"]) == 0
    assert '"added": 1' in capsys.readouterr().out
    assert cli.main(["search", "query", str(queries / "chelsea.jpg"), "--top", "5", "--index-dir", index_dir]) == 2
    assert "larger than the gallery" in capsys.readouterr().err
    assert cli.main(["search", "rm", "nope.png", "--index-dir", index_dir]) == 2
    assert "no photo named" in capsys.readouterr().err
    assert cli.main(["search", "stats", "--index-dir", index_dir, "--json"]) == 0
    assert '"photos": 1' in capsys.readouterr().out
    with pytest.raises(InputError, match="three servers"):
        with safelight.Cluster.local(2) as two, Catalog(tmp_path / "c2") as cat:
            search.query(queries / "chelsea.jpg", cluster=two, catalog=cat)
