"""The encrypted store: OPRF, convergent sealing, the SQLite index (dedup, owners, crashes)."""

import hashlib
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safelight.errors import InputError, ProtocolError
from safelight.store import convergent, oprf
from safelight.store.index import MIGRATIONS, Index


# ---- OPRF -----------------------------------------------------------------------------
@settings(max_examples=20, deadline=None)
@given(st.binary(max_size=200))
def test_oprf_equals_the_keyed_function(x):
    key = oprf.random_scalar()
    r, blinded = oprf.blind(x)
    assert oprf.finalize(x, r, oprf.evaluate(key, blinded)) == oprf.direct(key, x)


def test_oprf_request_does_not_depend_on_the_input():
    # the key server sees r * H1(x): a fresh random group element each time, even for one x
    seen = {oprf.blind(b"same image digest")[1] for _ in range(50)}
    assert len(seen) == 50
    bits = [sum(bin(byte).count("1") for byte in p) for p in seen]
    assert 100 < sum(bits) / len(bits) < 156  # about half of 256 bits set, like random points


def test_oprf_rejects_bad_points():
    key = oprf.random_scalar()
    for bad in (b"\0" * 32, b"\x01" + b"\0" * 31, b"\xff" * 32, b"short"):
        with pytest.raises(ProtocolError):
            oprf.evaluate(key, bad)


# ---- sealing --------------------------------------------------------------------------
def test_same_file_same_ciphertext_one_pixel_different():
    data = bytes(range(256)) * 100
    key = convergent.content_key(b"k" * 32)
    a, b = convergent.seal(data, key), convergent.seal(data, key)
    assert a.ciphertext == b.ciphertext and a.blob_id == b.blob_id
    changed = bytearray(data)
    changed[5000] ^= 1
    other_key = convergent.content_key(convergent.digest(bytes(changed)))
    assert convergent.seal(bytes(changed), other_key).ciphertext != a.ciphertext
    assert convergent.open_sealed(a.ciphertext, key) == data
    assert data[:64] not in a.ciphertext


@pytest.mark.parametrize("damage", ["flip", "truncate", "extend"])
def test_corrupt_ciphertext_is_rejected(damage):
    key = convergent.content_key(b"x" * 32)
    ct = bytearray(convergent.seal(b"a photo" * 50, key).ciphertext)
    if damage == "flip":
        ct[20] ^= 4
    elif damage == "truncate":
        del ct[-3:]
    else:
        ct += b"\0"
    with pytest.raises(InputError, match="authentication failed"):
        convergent.open_sealed(bytes(ct), key)


# ---- index ----------------------------------------------------------------------------
def _blob(data: bytes):
    return hashlib.sha256(data).hexdigest(), data


def _id(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


def test_dedup_refcounts_and_stats(tmp_path):
    idx = Index(tmp_path)
    blob_id, ct = _blob(b"ciphertext" * 100)
    assert idx.put("alice", _id(1), blob_id, ct, b"m1", [(0, b"t0")]) is True
    assert idx.put("alice", _id(2), blob_id, None, b"m2", [(0, b"t0")]) is False  # deduplicated
    s = idx.stats("alice")
    assert (s["entries"], s["blobs"], s["stored_bytes"], s["saved_bytes"]) == (2, 1, 1000, 1000)
    assert idx.remove("alice", _id(1)) is False  # still referenced
    assert idx.get("alice", _id(2))[0] == ct
    assert idx.remove("alice", _id(2)) is True
    assert idx.stats("alice")["blobs"] == 0 and not list(tmp_path.glob("blobs/*/*/*"))


def test_one_owner_cannot_touch_another(tmp_path):
    idx = Index(tmp_path)
    blob_id, ct = _blob(b"alice's photo")
    idx.put("alice", _id(1), blob_id, ct, b"meta", [(3, b"tag")])
    with pytest.raises(InputError, match="no entry"):
        idx.get("bob", _id(1))
    with pytest.raises(InputError, match="no entry"):
        idx.remove("bob", _id(1))
    assert idx.list("bob") == [] and idx.near("bob", [(3, b"tag")]) == []
    assert not idx.has_blob("bob", blob_id)  # no cross-owner dedup probe
    with pytest.raises(InputError, match="not stored for this owner"):
        idx.put("bob", _id(2), blob_id, None, b"m", [])
    assert idx.stats("bob")["entries"] == 0 and idx.get("alice", _id(1))[0] == ct


def test_bad_uploads_are_rejected_and_leave_nothing(tmp_path):
    idx = Index(tmp_path)
    blob_id, ct = _blob(b"photo bytes")
    with pytest.raises(InputError, match="does not match"):
        idx.put("alice", _id(1), blob_id, ct[:-1], b"m", [])
    with pytest.raises(InputError, match="64 lowercase hex"):
        idx.put("alice", "../../etc", blob_id, ct, b"m", [])
    idx.put("alice", _id(1), blob_id, ct, b"m", [])
    with pytest.raises(InputError, match="already exists"):
        idx.put("alice", _id(1), blob_id, None, b"m", [])
    assert idx.stats("alice") == {"entries": 1, "blobs": 1, "stored_bytes": len(ct), "logical_bytes": len(ct),
                                  "saved_bytes": 0}


def test_near_counts_matching_bands(tmp_path):
    idx = Index(tmp_path)
    for n, tags in enumerate([[(0, b"a"), (1, b"b")], [(0, b"a"), (1, b"x")], [(0, b"y"), (1, b"z")]]):
        blob_id, ct = _blob(b"blob%d" % n)
        idx.put("alice", _id(n), blob_id, ct, b"m%d" % n, tags)
    hits = idx.near("alice", [(0, b"a"), (1, b"b")])
    assert [(e, c) for e, c, _ in hits] == [(_id(0), 2), (_id(1), 1)]
    assert [e for e, _, _ in idx.near("alice", [(0, b"a"), (1, b"b")], min_bands=2)] == [_id(0)]


CRASH = r"""
import hashlib, os, sys
from safelight.store.index import MIGRATIONS, Index
idx = Index(sys.argv[1])
real_execute = idx.db.execute
def crash_on_commit(sql, *args):
    if sql == "COMMIT":
        os._exit(9)  # the process dies after the blob file is in place, before the commit
    return real_execute(sql, *args)
idx.db = type("Crashing", (), {"execute": staticmethod(crash_on_commit),
                               "executemany": staticmethod(idx.db.executemany)})()
data = b"half-uploaded ciphertext"
idx.put("alice", hashlib.sha256(b"2").hexdigest(), hashlib.sha256(data).hexdigest(), data, b"m", [(0, b"t")])
"""


def test_crash_mid_upload_leaves_the_store_consistent(tmp_path):
    idx = Index(tmp_path)
    blob_id, ct = _blob(b"acknowledged upload")
    idx.put("alice", _id(1), blob_id, ct, b"m", [])
    idx.close()
    proc = subprocess.run([sys.executable, "-c", CRASH, str(tmp_path)], env={**os.environ}, capture_output=True)
    assert proc.returncode == 9, proc.stderr.decode()
    assert len(list(tmp_path.glob("blobs/*/*/*"))) == 2  # the orphan file is there...
    idx = Index(tmp_path)  # ...and reopening removes it; the acknowledged entry survives
    assert [e for e, _, _ in idx.list("alice")] == [_id(1)]
    assert len(list(tmp_path.glob("blobs/*/*/*"))) == 1
    assert idx.get("alice", _id(1))[0] == ct


def test_schema_is_migrated_once(tmp_path):
    Index(tmp_path).close()
    idx = Index(tmp_path)
    assert idx.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert idx.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_version_2_store_is_migrated_to_posting_lists(tmp_path):
    import sqlite3

    db = sqlite3.connect(tmp_path / "index.sqlite3", isolation_level=None)
    for step in MIGRATIONS[:2]:
        db.executescript(step)
    db.execute("PRAGMA user_version=2")
    blob_id, ct = _blob(b"old blob")
    (tmp_path / "blobs").mkdir()
    rows = [("alice", _id(0), [(0, b"a"), (1, b"b")]), ("alice", _id(1), [(0, b"a"), (1, b"x")]),
            ("bob", _id(2), [(0, b"a"), (1, b"b")])]
    for n, (owner, entry, tags) in enumerate(rows):
        db.execute("INSERT INTO blobs VALUES (?, ?, ?, 1)", (owner, _id(100 + n), 10))
        db.execute("INSERT INTO entries VALUES (?, ?, ?, ?, ?)", (owner, entry, _id(100 + n), b"m%d" % n, n))
        db.executemany("INSERT INTO tags VALUES (?, ?, ?, ?)", [(owner, b, t, entry) for b, t in tags])
    db.close()
    idx = Index(tmp_path)
    assert idx.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert [(e, c, m) for e, c, m in idx.near("alice", [(0, b"a"), (1, b"b")])] == [(_id(0), 2, b"m0"), (_id(1), 1, b"m1")]
    assert [e for e, _, _ in idx.near("bob", [(0, b"a")])] == [_id(2)]
    assert [e for e, _, _ in idx.list("alice")] == [_id(0), _id(1)]
    idx.remove("alice", _id(0))  # its postings go with it; the other owner's are untouched
    assert [e for e, _, _ in idx.near("alice", [(0, b"a"), (1, b"b")])] == [_id(1)]
    assert idx.near("alice", [(1, b"b")]) == [] and len(idx.near("bob", [(1, b"b")])) == 1
    blob_id, ct = _blob(b"new blob")
    assert idx.put("alice", _id(3), blob_id, ct, b"m3", [(0, b"a")]) is True
    assert [e for e, _, _ in idx.near("alice", [(0, b"a")])] == [_id(1), _id(3)]


def test_near_postings_follow_puts_and_removes(tmp_path):
    idx = Index(tmp_path)
    blob_id, ct = _blob(b"shared blob")
    for n in range(5):
        idx.put("alice", _id(n), blob_id, ct if n == 0 else None, b"m", [(0, b"same"), (1, b"t%d" % (n % 2))])
    assert [c for _, c, _ in idx.near("alice", [(0, b"same"), (1, b"t0")])] == [2, 2, 2, 1, 1]
    assert len(idx.near("alice", [(0, b"same")], limit=2)) == 2
    for n in (0, 2, 4):
        idx.remove("alice", _id(n))
    assert [e for e, _, _ in idx.near("alice", [(0, b"same"), (1, b"t0")])] == [_id(1), _id(3)]
    assert idx.near("alice", [(1, b"t0")]) == []
    assert idx.db.execute("SELECT COUNT(*) FROM bands").fetchone()[0] == 2  # empty posting lists are deleted
    with pytest.raises(InputError, match="band 0..255"):
        idx.put("alice", _id(9), blob_id, None, b"m", [(256, b"t")])


# ---- the servers and the owner's client ---------------------------------------------------
import threading  # noqa: E402

import numpy as np  # noqa: E402


@pytest.fixture
def store_setup(tmp_path, monkeypatch):
    from safelight.runtime.certs import create_cluster_certs
    from safelight.store.client import create_owner_key
    from safelight.store.service import KeyServer, StoreConfig, StoreServer

    monkeypatch.setenv("SAFELIGHT_KEYSERVER_RECORD", "1")
    certs = create_cluster_certs(tmp_path / "certs", 1, clients=("alice", "bob"), extra_names=("store", "keyserver"))
    config = StoreConfig(certs, "127.0.0.1", 0, tmp_path / "data", "127.0.0.1", 0, tmp_path / "keyserver.key",
                         rate=50.0, burst=32, timeout=10.0)
    store, keys = StoreServer(config), KeyServer(config)
    config = StoreConfig(certs, "127.0.0.1", store.port, tmp_path / "data", "127.0.0.1", keys.port,
                         tmp_path / "keyserver.key", rate=50.0, burst=32, timeout=10.0)
    for server in (store, keys):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    owners = {name: create_owner_key(tmp_path / f"{name}.key") for name in ("alice", "bob")}
    yield config, owners, store, keys
    store.stop()
    keys.stop()


def _photo_bytes(seed=0):
    import io

    from PIL import Image
    from skimage import data

    buf = io.BytesIO()
    Image.fromarray(data.astronaut()[seed * 10: seed * 10 + 64, :64]).save(buf, format="PNG")
    return buf.getvalue()


def test_upload_dedup_and_get(store_setup):
    from safelight.store.client import StoreClient

    config, owners, store, keys = store_setup
    photo = _photo_bytes()
    with StoreClient(config, "alice", owners["alice"]) as alice:
        first = alice.put([("a.png", photo)])[0]
        second = alice.put([("copy.png", photo)])[0]
        other = alice.put([("b.png", _photo_bytes(1))])[0]
        assert first.new_blob and not second.new_blob and other.new_blob
        assert first.blob == second.blob != other.blob
        assert alice.get(second.entry) == ("copy.png", photo)
        assert sorted(name for _, name in alice.list()) == ["a.png", "b.png", "copy.png"]
        s = alice.stats()
        assert (s["entries"], s["blobs"], s["saved_bytes"] > 0) == (3, 2, True)
        assert alice.remove(first.entry) is False and alice.remove(second.entry) is True
    # what the store holds and the key server received reveals neither the photo nor its digest
    digest = convergent.digest(photo)
    raw = b"".join(p.read_bytes() for p in (config.root).rglob("*") if p.is_file())
    assert photo[100:132] not in raw and digest not in raw and b"a.png" not in raw
    assert len(keys.received) == 3 and digest not in b"".join(keys.received)
    assert keys.received[0] != keys.received[1]  # the same photo, two unlinkable requests


def test_owners_are_isolated(store_setup):
    from safelight.store.client import StoreClient

    config, owners, store, keys = store_setup
    with StoreClient(config, "alice", owners["alice"]) as alice:
        entry = alice.put([("private.png", _photo_bytes())])[0].entry
    with StoreClient(config, "bob", owners["bob"]) as bob:
        assert bob.list() == [] and bob.stats()["entries"] == 0
        with pytest.raises(InputError, match="no entry"):
            bob.get(entry)
        with pytest.raises(InputError, match="no entry"):
            bob.remove(entry)
    with StoreClient(config, "alice", owners["bob"]) as wrong_key:  # alice's entries, bob's key file
        with pytest.raises(InputError, match="does not open with this owner key"):
            wrong_key.list()


def test_tampered_blob_is_rejected(store_setup):
    from safelight.store.client import StoreClient

    config, owners, store, keys = store_setup
    with StoreClient(config, "alice", owners["alice"]) as alice:
        stored = alice.put([("x.png", _photo_bytes())])[0]
        path = next(p for p in config.root.rglob(stored.blob))
        data = bytearray(path.read_bytes())
        data[40] ^= 1
        path.write_bytes(bytes(data))
        with pytest.raises(InputError, match="authentication failed"):
            alice.get(stored.entry)


def test_key_server_rate_limit_and_plain_mode(store_setup):
    from safelight.store.client import StoreClient

    config, owners, store, keys = store_setup
    files = [(f"{i}.bin", bytes([i]) * 100) for i in range(33)]  # burst is 32
    with StoreClient(config, "alice", owners["alice"]) as alice:
        with pytest.raises(InputError, match="rate limit"):
            alice.put(files)
    with StoreClient(config, "alice", owners["alice"], plain=True) as plain:  # opt-in: no key server
        assert len(plain.put(files)) == 33
        assert np.all([plain.get(s.entry)[1] == data for s, (_, data) in zip(plain.put(files[:2]), files)])


def test_store_command_line_end_to_end(tmp_path):
    from safelight.runtime.cluster import _free_ports

    def cli(*args, timeout=60):
        return subprocess.run([sys.executable, "-m", "safelight", *args], capture_output=True, text=True,
                              timeout=timeout)

    port = _free_ports(1)[0]
    root = tmp_path / "st"
    assert cli("store", "init", str(root), "--owner", "alice", "--port", str(port)).returncode == 0
    config = str(root / "store.toml")
    servers = [subprocess.Popen([sys.executable, "-m", "safelight", "serve", "--role", role, "--config", config],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for role in ("store", "keyserver")]
    try:
        for s in servers:
            assert s.stdout.readline().startswith("READY"), "server did not start"
        photo = tmp_path / "p.png"
        photo.write_bytes(_photo_bytes())
        (tmp_path / "same.png").write_bytes(_photo_bytes())
        put = cli("store", "put", str(photo), str(tmp_path / "same.png"), "--config", config, "--owner", "alice")
        assert put.returncode == 0, put.stderr
        lines = put.stdout.split("\n")
        assert "new" in lines[0] and "deduplicated" in lines[1] and "1 deduplicated" in put.stderr
        entry = lines[1].split()[0]
        got = cli("store", "get", entry, str(tmp_path / "back.png"), "--config", config, "--owner", "alice")
        assert got.returncode == 0 and (tmp_path / "back.png").read_bytes() == photo.read_bytes()
        near = cli("store", "near", str(photo), "--config", config, "--owner", "alice")
        assert near.returncode == 0 and near.stdout.count("similarity 1.0") == 2, near.stderr
        stats = cli("store", "stats", "--config", config, "--owner", "alice")
        assert "entries: 2" in stats.stdout and "blobs: 1" in stats.stdout
        assert cli("store", "rm", entry, "--config", config, "--owner", "alice").returncode == 0
        bad = cli("store", "put", str(tmp_path / "missing.png"), "--config", config, "--owner", "alice")
        assert bad.returncode == 2 and "not a file" in bad.stderr and "Traceback" not in bad.stderr
        bad = cli("store", "get", "0" * 64, str(tmp_path / "x"), "--config", config, "--owner", "alice")
        assert bad.returncode == 2 and "no entry" in bad.stderr
    finally:
        for s in servers:
            s.terminate()
            s.wait(10)


def test_store_commands_on_the_embedded_default(tmp_path, monkeypatch, capsys):
    """No remote store: each command starts the local store's two servers on loopback
    (real processes, TLS), runs, stops them; data and identity persist in ~/.safelight/store."""
    from safelight import cli

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    root = tmp_path / "home" / ".safelight" / "store"

    def run(*args):
        code = cli.main(["store", *args])
        out, err = capsys.readouterr()
        assert code == 0, err
        return out, err

    out, _ = run("init")
    assert str(root) in out and (root / "store.toml").is_file()
    identity = {p.name: p.read_bytes() for p in [root / "owner.key", root / "certs" / "owner.pem"]}
    import io

    from PIL import Image
    from skimage import data

    photo, buf = _photo_bytes(), io.BytesIO()
    Image.fromarray(data.coffee()[100:164, 200:264]).save(buf, format="PNG")  # a different photo
    other = buf.getvalue()
    for name, content in (("p.png", photo), ("same.png", photo), ("other.png", other)):
        (tmp_path / name).write_bytes(content)
    out, err = run("put", *(str(tmp_path / n) for n in ("p.png", "same.png", "other.png")))
    lines = out.splitlines()
    assert [line.split()[-1] for line in lines] == ["new", "deduplicated", "new"]
    assert "3 files: 2 new blobs, 1 deduplicated" in err
    entries = {line.split()[1]: line.split()[0] for line in lines}
    out, _ = run("near", str(tmp_path / "p.png"))
    assert sorted(line.split()[1] for line in out.splitlines()) == ["p.png", "same.png"]
    assert out.count("similarity 1.000") == 2
    run("get", entries["same.png"], str(tmp_path / "back.png"))
    assert (tmp_path / "back.png").read_bytes() == photo
    out, _ = run("rm", entries["p.png"])
    assert "still used" in out
    out, _ = run("list")
    assert sorted(line.split()[1] for line in out.splitlines()) == ["other.png", "same.png"]
    out, _ = run("stats")
    assert "entries: 2" in out and "blobs: 2" in out
    # one identity for the store's whole life; nothing plain on disk
    assert identity == {p.name: p.read_bytes() for p in [root / "owner.key", root / "certs" / "owner.pem"]}
    raw = b"".join(p.read_bytes() for p in (root / "store-data").rglob("*") if p.is_file())
    assert photo[100:132] not in raw and b"same.png" not in raw
    # a store elsewhere (--store-dir) is created by its first put; a missing one is a clear error
    assert cli.main(["store", "stats", "--store-dir", str(tmp_path / "none")]) == 2
    assert "no store in" in capsys.readouterr().err
    out, err = run("put", str(tmp_path / "other.png"), "--store-dir", str(tmp_path / "second"))
    assert "created a store" in err and out.split()[-1] == "new"
    assert cli.main(["store", "list", "--owner", "mallory"]) == 2
    assert "not an owner" in capsys.readouterr().err


def test_near_duplicates_with_keyed_tags(store_setup):
    """A stand-in embedder (a 64-d vector seeded by the file's first bytes, plus small noise
    for 'edited copies') exercises tags, candidates and the owner's re-ranking."""
    from safelight.store.client import StoreClient
    from safelight.store.sketch import Sketcher

    config, owners, store, keys = store_setup
    rng = np.random.default_rng(0)
    base = {i: rng.standard_normal(64) for i in range(20)}

    def embed(data: bytes) -> np.ndarray:
        i, edit = data[0], data[1]
        return base[i] + (0.15 * np.random.default_rng(edit).standard_normal(64) if edit else 0)

    with StoreClient(config, "alice", owners["alice"], embed=embed) as alice:
        stored = alice.put_images([(f"img{i}", bytes([i, 0]) + b"x" * 20) for i in range(20)])
        hits = alice.near(bytes([7, 3]) + b"edited")
        assert hits and hits[0][1] == "img7" and hits[0][2] > 0.95
        assert all(name == "img7" for _, name, _ in hits)
        assert alice.near(bytes([7, 0]) + b"x")[0][0] == stored[7].entry
    # tags are keyed: another owner's sketcher gives unrelated tags for the same embedding
    e = base[7] / np.linalg.norm(base[7])
    a, b = Sketcher(b"a" * 32, 64).tags(e), Sketcher(b"b" * 32, 64).tags(e)
    assert not set(t for _, t in a) & set(t for _, t in b)
    # the store saw tags and ciphertext, never an embedding value
    raw = b"".join(p.read_bytes() for p in config.root.rglob("*") if p.is_file())
    assert base[7].astype(np.float16).tobytes()[:16] not in raw


def test_malformed_tags_and_meta_are_rejected(store_setup):
    from safelight.runtime.certs import Identity
    from safelight.runtime.transport import MsgType, connect
    from safelight.store.service import NO_JOB

    config, owners, store, keys = store_setup
    ch = connect("127.0.0.1", config.store_port, Identity.from_dir(config.certs, "alice"), "store", 10.0)
    try:
        for bad, match in (([[0, "ab"]], "16 bytes"), ([[999, "00" * 16]], "band"), ("x", "list"),
                           ([[0, "zz" * 16]], "hex")):
            ch.send_json(MsgType.STORE_REQ, NO_JOB, {"op": "near", "tags": bad})
            with pytest.raises(InputError, match=match):
                ch.expect(MsgType.RESULT)
        ch.send_json(MsgType.STORE_REQ, NO_JOB, {"op": "put", "entry": "0" * 64, "blob": "0" * 64,
                                                 "meta": "not hex", "tags": []})
        with pytest.raises(InputError, match="meta must be hex"):
            ch.expect(MsgType.RESULT)
    finally:
        ch.close()
    assert store.index.stats("alice")["entries"] == 0
