"""The encrypted store: OPRF, convergent sealing, the SQLite index (dedup, owners, crashes)."""

import contextlib
import hashlib
import json
import os
import secrets
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safelight.errors import ConfigError, InputError, ProtocolError
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


# ---- where the index lives: SQLite, or PostgreSQL ------------------------------------------
@pytest.fixture(scope="session")
def postgres_url():
    """A PostgreSQL server for the session: SAFELIGHT_TEST_POSTGRES_URL, or a scratch cluster
    started from the distribution's binaries. The tests that need one skip without it."""
    for module in ("psycopg", "psycopg_pool"):
        pytest.importorskip(module, reason=f"PostgreSQL store tests: {module} is not installed (safelight[postgres])")
    from safelight.store.backends.scratch import PostgresUnavailable, scratch_postgres

    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(scratch_postgres(durable=False))
        except PostgresUnavailable as exc:
            pytest.skip(f"PostgreSQL store tests: {exc}")
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def index_location(request):
    """The Index arguments of the test's backend: none (index.sqlite3 in the store
    directory), or a fresh PostgreSQL schema, dropped after the test."""
    if request.param == "sqlite":
        yield {}
        return
    from safelight.store.backends.postgres import drop_schema

    url = request.getfixturevalue("postgres_url")
    schema = f"test_{secrets.token_hex(6)}"
    yield {"url": url, "schema": schema}
    drop_schema(url, schema)


@pytest.fixture
def open_index(index_location):
    """``Index(root)`` on the test's backend; every index it opened is closed after the test."""
    opened = []

    def open_(root):
        opened.append(Index(root, **index_location))
        return opened[-1]

    yield open_
    for idx in opened:
        idx.close()


def _config_index(index_location) -> dict:
    """The same place as StoreConfig fields."""
    return {"index": index_location["url"], "index_schema": index_location["schema"]} if index_location else {}


# ---- index ----------------------------------------------------------------------------
def _blob(data: bytes):
    return hashlib.sha256(data).hexdigest(), data


def _id(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


def test_dedup_refcounts_and_stats(tmp_path, open_index):
    idx = open_index(tmp_path)
    blob_id, ct = _blob(b"ciphertext" * 100)
    assert idx.put("alice", _id(1), blob_id, ct, b"m1", [(0, b"t0")]) is True
    assert idx.put("alice", _id(2), blob_id, None, b"m2", [(0, b"t0")]) is False  # deduplicated
    s = idx.stats("alice")
    assert (s["entries"], s["blobs"], s["stored_bytes"], s["saved_bytes"]) == (2, 1, 1000, 1000)
    assert idx.remove("alice", _id(1)) is False  # still referenced
    assert idx.get("alice", _id(2))[0] == ct
    assert idx.remove("alice", _id(2)) is True
    assert idx.stats("alice")["blobs"] == 0 and not list(tmp_path.glob("blobs/*/*/*"))


def test_one_owner_cannot_touch_another(tmp_path, open_index):
    idx = open_index(tmp_path)
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


def test_bad_uploads_are_rejected_and_leave_nothing(tmp_path, open_index):
    idx = open_index(tmp_path)
    blob_id, ct = _blob(b"photo bytes")
    with pytest.raises(InputError, match="does not match"):
        idx.put("alice", _id(1), blob_id, ct[:-1], b"m", [])
    with pytest.raises(InputError, match="64 lowercase hex"):
        idx.put("alice", "../../etc", blob_id, ct, b"m", [])
    idx.put("alice", _id(1), blob_id, ct, b"m", [])
    with pytest.raises(InputError, match="already exists"):
        idx.put("alice", _id(1), blob_id, None, b"m", [])
    assert idx.stats("alice") == {
        "entries": 1,
        "blobs": 1,
        "stored_bytes": len(ct),
        "logical_bytes": len(ct),
        "saved_bytes": 0,
    }


def test_near_counts_matching_bands(tmp_path, open_index):
    idx = open_index(tmp_path)
    for n, tags in enumerate([[(0, b"a"), (1, b"b")], [(0, b"a"), (1, b"x")], [(0, b"y"), (1, b"z")]]):
        blob_id, ct = _blob(b"blob%d" % n)
        idx.put("alice", _id(n), blob_id, ct, b"m%d" % n, tags)
    hits = idx.near("alice", [(0, b"a"), (1, b"b")])
    assert [(e, c) for e, c, _ in hits] == [(_id(0), 2), (_id(1), 1)]
    assert [e for e, _, _ in idx.near("alice", [(0, b"a"), (1, b"b")], min_bands=2)] == [_id(0)]


CRASH = r"""
import contextlib, hashlib, json, os, sys
from safelight.store.index import Index
idx = Index(sys.argv[1], **json.loads(sys.argv[2]))
real_transaction = idx.db.transaction
@contextlib.contextmanager
def crash_before_commit():
    with real_transaction() as db:
        yield db
        os._exit(9)  # the process dies after the blob file is in place and the rows are written, before the commit
idx.db.transaction = crash_before_commit
data = b"half-uploaded ciphertext"
idx.put("alice", hashlib.sha256(b"2").hexdigest(), hashlib.sha256(data).hexdigest(), data, b"m", [(0, b"t")])
"""


def test_crash_mid_upload_leaves_the_store_consistent(tmp_path, open_index, index_location):
    idx = open_index(tmp_path)
    blob_id, ct = _blob(b"acknowledged upload")
    idx.put("alice", _id(1), blob_id, ct, b"m", [(0, b"t")])
    idx.close()
    proc = subprocess.run(
        [sys.executable, "-c", CRASH, str(tmp_path), json.dumps(index_location)],
        env={**os.environ},
        capture_output=True,
    )
    assert proc.returncode == 9, proc.stderr.decode()
    assert len(list(tmp_path.glob("blobs/*/*/*"))) == 2  # the orphan file is there...
    idx = open_index(tmp_path)  # ...and reopening moves it aside; the acknowledged entry survives
    assert [e for e, _, _ in idx.list("alice")] == [_id(1)]
    assert len(list(tmp_path.glob("blobs/*/*/*"))) == 1
    assert [p.name for p in idx.quarantined] == [hashlib.sha256(b"half-uploaded ciphertext").hexdigest()]
    assert idx.get("alice", _id(1))[0] == ct
    assert [e for e, _, _ in idx.near("alice", [(0, b"t")])] == [_id(1)]  # the crashed entry's postings are gone
    assert idx.stats("alice")["blobs"] == 1


def test_schema_is_migrated_once(tmp_path, open_index):
    open_index(tmp_path).close()
    idx = open_index(tmp_path)
    with idx.db.connection() as db:
        assert idx.db.schema_version(db) == len(MIGRATIONS)
    if idx.db.kind == "sqlite":
        assert idx.db.execute("PRAGMA journal_mode") == [("wal",)]


def test_version_2_store_is_migrated_to_posting_lists(tmp_path):
    import sqlite3

    db = sqlite3.connect(tmp_path / "index.sqlite3", isolation_level=None)
    for step in MIGRATIONS[:2]:
        db.executescript(step)
    db.execute("PRAGMA user_version=2")
    blob_id, ct = _blob(b"old blob")
    (tmp_path / "blobs").mkdir()
    rows = [
        ("alice", _id(0), [(0, b"a"), (1, b"b")]),
        ("alice", _id(1), [(0, b"a"), (1, b"x")]),
        ("bob", _id(2), [(0, b"a"), (1, b"b")]),
    ]
    for n, (owner, entry, tags) in enumerate(rows):
        db.execute("INSERT INTO blobs VALUES (?, ?, ?, 1)", (owner, _id(100 + n), 10))
        db.execute("INSERT INTO entries VALUES (?, ?, ?, ?, ?)", (owner, entry, _id(100 + n), b"m%d" % n, n))
        db.executemany("INSERT INTO tags VALUES (?, ?, ?, ?)", [(owner, b, t, entry) for b, t in tags])
    db.close()
    idx = Index(tmp_path)
    assert idx.db.execute("PRAGMA user_version") == [(len(MIGRATIONS),)]
    assert [(e, c, m) for e, c, m in idx.near("alice", [(0, b"a"), (1, b"b")])] == [
        (_id(0), 2, b"m0"),
        (_id(1), 1, b"m1"),
    ]
    assert [e for e, _, _ in idx.near("bob", [(0, b"a")])] == [_id(2)]
    assert [e for e, _, _ in idx.list("alice")] == [_id(0), _id(1)]
    idx.remove("alice", _id(0))  # its postings go with it; the other owner's are untouched
    assert [e for e, _, _ in idx.near("alice", [(0, b"a"), (1, b"b")])] == [_id(1)]
    assert idx.near("alice", [(1, b"b")]) == [] and len(idx.near("bob", [(1, b"b")])) == 1
    blob_id, ct = _blob(b"new blob")
    assert idx.put("alice", _id(3), blob_id, ct, b"m3", [(0, b"a")]) is True
    assert [e for e, _, _ in idx.near("alice", [(0, b"a")])] == [_id(1), _id(3)]


def test_near_postings_follow_puts_and_removes(tmp_path, open_index):
    idx = open_index(tmp_path)
    blob_id, ct = _blob(b"shared blob")
    for n in range(5):
        idx.put("alice", _id(n), blob_id, ct if n == 0 else None, b"m", [(0, b"same"), (1, b"t%d" % (n % 2))])
    assert [c for _, c, _ in idx.near("alice", [(0, b"same"), (1, b"t0")])] == [2, 2, 2, 1, 1]
    assert len(idx.near("alice", [(0, b"same")], limit=2)) == 2
    for n in (0, 2, 4):
        idx.remove("alice", _id(n))
    assert [e for e, _, _ in idx.near("alice", [(0, b"same"), (1, b"t0")])] == [_id(1), _id(3)]
    assert idx.near("alice", [(1, b"t0")]) == []
    assert idx.db.execute("SELECT COUNT(*) FROM bands") == [(2,)]  # empty posting lists are deleted
    with pytest.raises(InputError, match="band 0..255"):
        idx.put("alice", _id(9), blob_id, None, b"m", [(256, b"t")])


def test_puts_and_queries_from_many_threads(tmp_path, open_index):
    """Writes run one at a time and reads alongside them (on PostgreSQL, on the pool's
    connections); dedup and reference counts come out as if one thread had done it all."""
    import threading

    idx = open_index(tmp_path)
    done, failures = threading.Event(), []

    def guarded(work):
        def run():
            try:
                work()
            except Exception as exc:  # reported by the assertion below
                failures.append(exc)

        return threading.Thread(target=run)

    def writer(w):
        for n in range(6):  # every other entry uses the blob all writers share
            blob_id, ct = _blob(b"shared" if n % 2 else b"writer %d blob %d" % (w, n))
            idx.put("alice", _id(100 * w + n), blob_id, ct, b"m", [(0, b"common"), (1, b"w%d" % w)])

    def reader():
        while not done.is_set():
            idx.near("alice", [(0, b"common")])
            idx.stats("alice")
            idx.list("alice")

    readers = [guarded(reader) for _ in range(3)]
    writers = [guarded(lambda w=w: writer(w)) for w in range(4)]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join()
    done.set()
    for t in readers:
        t.join()
    assert failures == []
    s = idx.stats("alice")
    assert (s["entries"], s["blobs"]) == (24, 13)
    assert idx.db.execute("SELECT refs FROM blobs WHERE blob_id = ?", (_blob(b"shared")[0],)) == [(12,)]
    assert len(idx.near("alice", [(0, b"common")])) == 24 and len(idx.near("alice", [(1, b"w2")])) == 6


# ---- the PostgreSQL backend's own rules ----------------------------------------------------
def test_store_toml_names_a_postgresql_index(tmp_path):
    from safelight.store.local import init_store
    from safelight.store.service import StoreConfig

    path = init_store(tmp_path / "s", index="postgresql://safelight@db.example/photos", index_schema="family")
    saved = StoreConfig.load(path)
    assert (saved.index, saved.index_schema) == ("postgresql://safelight@db.example/photos", "family")
    assert StoreConfig.load(init_store(tmp_path / "t")).index is None  # the embedded default: SQLite
    path.write_text(path.read_text().replace("postgresql://", "mysql://"))
    with pytest.raises(ConfigError, match="postgresql:// URL"):
        StoreConfig.load(path)
    with pytest.raises(InputError, match="postgresql:// URL"):
        init_store(tmp_path / "u", index="db.example/photos")


def test_postgresql_reads_the_sqlite_schema_translated():
    pytest.importorskip("psycopg", reason="psycopg is not installed (safelight[postgres])")
    from safelight.store.backends.postgres import translate

    assert translate(
        "CREATE TABLE t (no INTEGER PRIMARY KEY AUTOINCREMENT, b BLOB NOT NULL, r REAL, PRIMARY KEY (no)) WITHOUT ROWID"
    ) == (
        "CREATE TABLE t (no BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, b BYTEA NOT NULL, "
        "r DOUBLE PRECISION, PRIMARY KEY (no))"
    )
    assert translate("SELECT a FROM t WHERE b = ? AND c LIKE 'x%' ORDER BY rowid") == (
        "SELECT a FROM t WHERE b = %s AND c LIKE 'x%%' ORDER BY ctid"
    )


def test_postgresql_errors_name_the_server_without_its_password(tmp_path):
    for module in ("psycopg", "psycopg_pool"):
        pytest.importorskip(module, reason=f"{module} is not installed (safelight[postgres])")
    for url, shown in (
        ("postgresql://alice:s3cret@127.0.0.1:1/photos", "postgresql://alice:***@127.0.0.1:1/photos"),
        ("postgresql://alice@127.0.0.1:1/photos?password=s3cret", "photos?password=***"),
    ):
        with pytest.raises(ConfigError) as caught:
            Index(tmp_path, url)  # nothing listens on port 1
        assert shown in str(caught.value) and "s3cret" not in str(caught.value)


def test_a_store_keeps_its_backend_and_its_own_schema(tmp_path, postgres_url, monkeypatch):
    """One schema per store directory, one server per schema, and no silent switch between
    SQLite and PostgreSQL: each mix-up is refused before anything changes."""
    from safelight.store.backends import postgres

    monkeypatch.setattr(postgres, "LOCK_WAIT_S", 1)
    schema = f"test_{secrets.token_hex(6)}"
    try:
        first = Index(tmp_path / "a", postgres_url, schema)
        blob_id, ct = _blob(b"a's blob")
        first.put("alice", _id(1), blob_id, ct, b"m", [])
        with pytest.raises(ConfigError, match="in use by another storage server"):
            Index(tmp_path / "a", postgres_url, schema)
        first.close()
        with pytest.raises(ConfigError, match="belongs to another store directory"):
            Index(tmp_path / "b", postgres_url, schema)
        with pytest.raises(ConfigError, match="index is in PostgreSQL"):
            Index(tmp_path / "a")
        Index(tmp_path / "c").close()
        with pytest.raises(ConfigError, match="holds an SQLite index"):
            Index(tmp_path / "c", postgres_url, schema)
        postgres.drop_schema(postgres_url, schema)  # the database lost the store's schema
        with pytest.raises(ConfigError, match="does not have"):
            Index(tmp_path / "a", postgres_url, schema)
        assert [p.name for p in (tmp_path / "a").glob("blobs/*/*/*")] == [blob_id]  # nothing moved aside
    finally:
        postgres.drop_schema(postgres_url, schema)


# ---- the servers and the owner's client ---------------------------------------------------
import threading  # noqa: E402

import numpy as np  # noqa: E402


@pytest.fixture
def store_setup(tmp_path, monkeypatch, index_location):
    from safelight.net.certs import create_cluster_certs
    from safelight.store.client import create_owner_key
    from safelight.store.service import KeyServer, StoreConfig, StoreServer

    monkeypatch.setenv("SAFELIGHT_KEYSERVER_RECORD", "1")
    certs = create_cluster_certs(tmp_path / "certs", 1, clients=("alice", "bob"), extra_names=("store", "keyserver"))
    config = StoreConfig(
        certs,
        "127.0.0.1",
        0,
        tmp_path / "data",
        "127.0.0.1",
        0,
        tmp_path / "keyserver.key",
        rate=50.0,
        burst=32,
        timeout=10.0,
        **_config_index(index_location),
    )
    store, keys = StoreServer(config), KeyServer(config)
    config = StoreConfig(
        certs,
        "127.0.0.1",
        store.port,
        tmp_path / "data",
        "127.0.0.1",
        keys.port,
        tmp_path / "keyserver.key",
        rate=50.0,
        burst=32,
        timeout=10.0,
        **_config_index(index_location),
    )
    for server in (store, keys):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    owners = {name: create_owner_key(tmp_path / f"{name}.key") for name in ("alice", "bob")}
    yield config, owners, store, keys
    store.stop()
    keys.stop()
    store.index.close()


def _photo_bytes(seed=0):
    import io

    from PIL import Image
    from skimage import data

    buf = io.BytesIO()
    Image.fromarray(data.astronaut()[seed * 10 : seed * 10 + 64, :64]).save(buf, format="PNG")
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
        assert list(bob.list()) == [] and bob.stats()["entries"] == 0
        with pytest.raises(InputError, match="no entry"):
            bob.get(entry)
        with pytest.raises(InputError, match="no entry"):
            bob.remove(entry)
    with StoreClient(config, "alice", owners["bob"]) as wrong_key:  # alice's entries, bob's key file
        listing = wrong_key.list()
        assert listing.entries == [] and [e for e, _ in listing.unreadable] == [entry]
        assert "does not open with this owner key" in listing.unreadable[0][1]
        with pytest.raises(InputError, match="does not open with this owner key"):
            wrong_key.get(entry)


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


def _cli(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "safelight", *args], capture_output=True, text=True, timeout=timeout)


def test_store_command_line_end_to_end(tmp_path, index_location):
    """A store served as remote servers. Nothing reserves a port beforehand: ``--port 0``
    lets each server bind a free one and print it (READY store|keyserver PORT); the
    spawner writes the ports it read into the clients' config."""
    import dataclasses

    from safelight.store.local import start_servers, stop_servers
    from safelight.store.service import StoreConfig

    root = tmp_path / "st"
    where = ["--index", index_location["url"], "--index-schema", index_location["schema"]] if index_location else []
    init = _cli("store", "init", str(root), "--owner", "alice", "--port", "0", *where)
    assert init.returncode == 0, init.stderr
    saved = StoreConfig.load(root / "store.toml")
    assert (saved.store_port, saved.key_port) == (0, 0)
    expected = (index_location["url"], index_location["schema"]) if index_location else (None, "safelight_store")
    assert (saved.index, saved.index_schema) == expected
    servers, store_port, key_port = start_servers(root / "store.toml", tmp_path)
    try:
        assert 0 not in (store_port, key_port) and store_port != key_port
        config = str(dataclasses.replace(saved, store_port=store_port, key_port=key_port).save(root / "client.toml"))
        photo = tmp_path / "p.png"
        photo.write_bytes(_photo_bytes())
        (tmp_path / "same.png").write_bytes(_photo_bytes())
        put = _cli("store", "put", str(photo), str(tmp_path / "same.png"), "--config", config, "--owner", "alice")
        assert put.returncode == 0, put.stderr
        lines = put.stdout.split("\n")
        assert "new" in lines[0] and "deduplicated" in lines[1] and "1 deduplicated" in lines[2]
        entry = lines[1].split()[0]
        got = _cli("store", "get", entry, str(tmp_path / "back.png"), "--config", config, "--owner", "alice")
        assert got.returncode == 0 and (tmp_path / "back.png").read_bytes() == photo.read_bytes()
        near = _cli("store", "near", str(photo), "--config", config, "--owner", "alice")
        assert near.returncode == 0 and near.stdout.count("similarity 1.0") == 2, near.stderr
        stats = _cli("store", "stats", "--config", config, "--owner", "alice")
        assert "entries: 2" in stats.stdout and "blobs: 1" in stats.stdout
        assert _cli("store", "rm", entry, "--config", config, "--owner", "alice").returncode == 0
        bad = _cli("store", "put", str(tmp_path / "missing.png"), "--config", config, "--owner", "alice")
        assert bad.returncode == 2 and "not a file" in bad.stderr and "Traceback" not in bad.stderr
        bad = _cli("store", "get", "0" * 64, str(tmp_path / "x"), "--config", config, "--owner", "alice")
        assert bad.returncode == 2 and "no entry" in bad.stderr
    finally:
        stop_servers(servers)


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
    *lines, summary = out.splitlines()  # results, then the summary: all on stdout
    assert [line.split()[-1] for line in lines] == ["new", "deduplicated", "new"]
    assert "3 files: 2 new blobs, 1 deduplicated" in summary
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
    # --json: one object on stdout and nothing else, for every store command
    import json

    assert json.loads(run("stats", "--json")[0])["entries"] == 2
    listed = json.loads(run("list", "--json")[0])
    assert sorted(e["name"] for e in listed["entries"]) == ["other.png", "same.png"] and listed["unreadable"] == []
    near = json.loads(run("near", str(tmp_path / "p.png"), "--json")[0])
    assert [m["name"] for m in near["matches"]] == ["same.png"] and near["matches"][0]["similarity"] > 0.999
    got = json.loads(run("get", "same.png", str(tmp_path / "again.png"), "--json")[0])
    assert got == {"name": "same.png", "output": str(tmp_path / "again.png"), "bytes": len(photo)}
    put = json.loads(run("put", str(tmp_path / "p.png"), "--json")[0])
    assert put["files"][0]["name"] == "p.png" and put["deduplicated"] == 1
    removed = json.loads(run("rm", put["files"][0]["entry"], "--json")[0])
    assert removed == {"removed": put["files"][0]["entry"], "blob_removed": False}
    # one identity for the store's whole life; nothing plain on disk
    assert identity == {p.name: p.read_bytes() for p in [root / "owner.key", root / "certs" / "owner.pem"]}
    raw = b"".join(p.read_bytes() for p in (root / "store-data").rglob("*") if p.is_file())
    assert photo[100:132] not in raw and b"same.png" not in raw
    # a store elsewhere (--store-dir) is created by its first put; a missing one is a clear error
    assert cli.main(["store", "stats", "--store-dir", str(tmp_path / "none")]) == 2
    assert "no store in" in capsys.readouterr().err
    out, err = run("put", str(tmp_path / "other.png"), "--store-dir", str(tmp_path / "second"))
    assert "created a store" in err and out.splitlines()[0].split()[-1] == "new"
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
    from safelight.net.certs import Identity
    from safelight.net.transport import MsgType, connect
    from safelight.store.service import NO_JOB

    config, owners, store, keys = store_setup
    ch = connect("127.0.0.1", config.store_port, Identity.from_dir(config.certs, "alice"), "store", 10.0)
    try:
        for bad, match in (
            ([[0, "ab"]], "16 bytes"),
            ([[999, "00" * 16]], "band"),
            ("x", "list"),
            ([[0, "zz" * 16]], "hex"),
        ):
            ch.send_json(MsgType.STORE_REQ, NO_JOB, {"op": "near", "tags": bad})
            with pytest.raises(InputError, match=match):
                ch.expect(MsgType.RESULT)
        ch.send_json(
            MsgType.STORE_REQ, NO_JOB, {"op": "put", "entry": "0" * 64, "blob": "0" * 64, "meta": "not hex", "tags": []}
        )
        with pytest.raises(InputError, match="meta must be hex"):
            ch.expect(MsgType.RESULT)
    finally:
        ch.close()
    assert store.index.stats("alice")["entries"] == 0


# ---- a damaged index never costs a blob ---------------------------------------------------
def _filled_index(root, n=300, shared_by=3):
    """An index of ``n`` blobs (enough rows for several b-tree pages per table) whose blob 17
    is used by ``shared_by`` entries; closed (the WAL folded into the file). Returns the
    blob files by blob id."""
    idx = Index(root)
    for i in range(n):
        blob_id, ct = _blob(b"blob %d" % i)
        for k in range(shared_by if i == 17 else 1):
            idx.put("alice", _id(1000 * k + i), blob_id, ct if k == 0 else None, b"m", [(0, b"t%d" % i)])
    files = {p.name: p.read_bytes() for p in root.glob("blobs/*/*/*")}
    idx.close()
    assert len(files) == n and not (root / "index.sqlite3-wal").exists()
    return files


def _blobs_leaf_page(db_path) -> int:
    """A leaf page of the blobs table, found from its root (an interior page at this size)."""
    import sqlite3
    import struct

    db = sqlite3.connect(db_path)
    root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'blobs'").fetchone()[0]
    size = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    page = db_path.read_bytes()[(root - 1) * size : root * size]
    assert page[0] == 0x05, "the blobs table should span several pages"
    first_cell = struct.unpack(">H", page[12:14])[0]
    return struct.unpack(">I", page[first_cell : first_cell + 4])[0], size


def test_corrupt_index_refuses_to_start_and_deletes_nothing(tmp_path, capsys):
    from safelight import cli
    from safelight.errors import ConfigError
    from safelight.store.local import init_store

    root = tmp_path / "st"
    init_store(root, ["alice"])
    data = root / "store-data"
    files = _filled_index(data)
    db_path = data / "index.sqlite3"
    leaf, size = _blobs_leaf_page(db_path)
    raw = bytearray(db_path.read_bytes())
    for i in range((leaf - 1) * size + 200, (leaf - 1) * size + 260):  # garbage over some of its cells
        raw[i] ^= 0x5A
    db_path.write_bytes(bytes(raw))
    with pytest.raises(ConfigError) as caught:
        Index(data)
    message = str(caught.value)
    assert str(db_path) in message and "corrupt" in message and "backup" in message and ".recover" in message
    assert {p.name: p.read_bytes() for p in data.glob("blobs/*/*/*")} == files  # every blob still in place
    assert not (data / "quarantine").exists()
    # the same through a command: the storage server refuses to start, one line, exit 2
    assert cli.main(["store", "list", "--store-dir", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("safelight: error: the store server did not start: the store index")
    assert str(db_path) in err and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in data.glob("blobs/*/*/*")} == files
    assert db_path.read_bytes() == bytes(raw)  # nothing was changed


def test_one_flipped_byte_never_loses_a_shared_blob(tmp_path):
    """The blob ids of blob 17 (used by three entries) are stored three times: in the
    entries, in the blobs table and in that table's index. A flipped byte in any of them
    either stops the start (the index no longer finds a blob that entries use) or leaves
    every blob and entry readable; a blob file is never deleted."""
    import shutil

    from safelight.errors import ConfigError

    pristine = tmp_path / "pristine"
    files = _filled_index(pristine)
    target = _blob(b"blob 17")[0].encode()
    raw = (pristine / "index.sqlite3").read_bytes()
    spots = [i for i in range(len(raw)) if raw.startswith(target, i)]
    assert len(spots) >= 3
    refused = 0
    for n, spot in enumerate(spots):
        root = tmp_path / f"flip{n}"
        shutil.copytree(pristine, root)
        flipped = bytearray(raw)
        flipped[spot + 30] ^= 0x01
        (root / "index.sqlite3").write_bytes(bytes(flipped))
        try:
            idx = Index(root)
        except ConfigError as exc:
            refused += 1
            assert "corrupt" in str(exc)
        else:
            for k in range(3):
                idx.get("alice", _id(1000 * k + 17))
            idx.close()
        assert {p.name: p.read_bytes() for p in root.glob("blobs/*/*/*")} == files, f"copy {n} lost a blob"
    assert refused >= 1  # the copy in the blobs index: a lookup no longer finds the row


def test_unlisted_blob_files_are_quarantined_not_deleted(tmp_path, caplog, capsys):
    from safelight import cli
    from safelight.store.local import init_store

    root = tmp_path / "st"
    init_store(root, ["alice"])
    data = root / "store-data"
    idx = Index(data)
    blob_id, ct = _blob(b"listed")
    idx.put("alice", _id(1), blob_id, ct, b"m", [])
    listed = next(data.glob("blobs/*/*/*"))
    idx.close()
    stray = listed.parent.parent / "ab" / ("ab" + "0" * 62)  # e.g. live data of an index restored from a backup
    stray.parent.mkdir()
    stray.write_bytes(b"someone's photo")
    with caplog.at_level("WARNING", logger="safelight.store"):
        idx = Index(data)
    assert [p.read_bytes() for p in idx.quarantined] == [b"someone's photo"]
    moved = idx.quarantined[0]
    assert moved.relative_to(data / "quarantine").parts[1:] == stray.relative_to(data / "blobs").parts
    assert not stray.exists() and listed.is_file() and idx.get("alice", _id(1))[0] == ct
    assert "moved 1 blob files" in caplog.text and str(data / "quarantine") in caplog.text
    idx.close()
    # a command on the local store repeats the server's report on stderr
    (listed.parent / ("cd" + "1" * 62)).write_bytes(b"another stray file")
    assert cli.main(["store", "stats", "--store-dir", str(root)]) == 0
    err = capsys.readouterr().err
    assert "safelight: store server: moved 1 blob files" in err
    assert sorted(p.read_bytes() for p in data.glob("quarantine/*/*/*/*")) == [
        b"another stray file",
        b"someone's photo",
    ]


def test_list_sets_aside_an_entry_that_does_not_open(store_setup):
    from safelight.store.client import StoreClient

    config, owners, store, keys = store_setup
    with StoreClient(config, "alice", owners["alice"]) as alice:
        stored = alice.put([(f"f{i}.bin", bytes([i]) * 50) for i in range(3)])
        # damage the middle entry's metadata
        store.index.db.execute("UPDATE entries SET meta = ? WHERE entry_id = ?", (b"\0" * 40, stored[1].entry))
        listing = alice.list()
        assert listing.entries == [(stored[0].entry, "f0.bin"), (stored[2].entry, "f2.bin")]
        assert [e for e, _ in listing.unreadable] == [stored[1].entry]
        assert alice.get(stored[2].entry) == ("f2.bin", bytes([2]) * 50)


def test_a_failed_request_leaves_the_connection_usable(store_setup):
    from safelight.errors import JobFailedError
    from safelight.net.certs import Identity
    from safelight.net.transport import MsgType, connect
    from safelight.store.client import StoreClient
    from safelight.store.service import NO_JOB

    config, owners, store, keys = store_setup
    with StoreClient(config, "alice", owners["alice"]) as alice:
        kept, lost = alice.put([("kept.bin", b"k" * 100), ("lost.bin", b"l" * 100)])
        with pytest.raises(InputError, match="no entry"):
            alice.get(_id(5))  # an unknown id
        next(config.root.rglob(lost.blob)).unlink()  # a storage fault: the blob file is gone
        with pytest.raises(JobFailedError, match="could not complete the 'get' request"):
            alice.get(lost.entry)
        assert alice.get(kept.entry) == ("kept.bin", b"k" * 100)  # the same connection
        assert len(alice.list()) == 2
    # a put whose checks fail still consumes its blob frame: the next request is understood
    ch = connect("127.0.0.1", config.store_port, Identity.from_dir(config.certs, "alice"), "store", 10.0)
    try:
        blob_id, ct = _blob(b"ciphertext")
        ch.send_json(
            MsgType.STORE_REQ,
            NO_JOB,
            {"op": "put", "entry": _id(7), "blob": blob_id, "with_blob": True, "meta": "00", "tags": [[0, "ab"]]},
        )
        ch.send_tensor(NO_JOB, "blob", np.frombuffer(ct, dtype=np.uint8))
        with pytest.raises(InputError, match="16 bytes"):
            ch.expect(MsgType.RESULT)
        ch.send_json(MsgType.STORE_REQ, NO_JOB, {"op": "stats"})
        assert ch.expect(MsgType.RESULT).json["entries"] == 2
    finally:
        ch.close()
    # the key server too: a point that is not hex is an error reply, not a dropped link
    ch = connect("127.0.0.1", config.key_port, Identity.from_dir(config.certs, "alice"), "keyserver", 10.0)
    try:
        ch.send_json(MsgType.KEY_REQ, NO_JOB, {"points": ["not hex"]})
        with pytest.raises(InputError, match="a blinded point must be hex"):
            ch.expect(MsgType.RESULT)
        ch.send_json(MsgType.KEY_REQ, NO_JOB, {"points": [oprf.blind(b"x")[1].hex()]})
        assert len(ch.expect(MsgType.RESULT).json["points"]) == 1
    finally:
        ch.close()


# ---- the command line: entries by name or prefix, outputs checked first ----------------------
@pytest.fixture
def embedded_store(tmp_path):
    """A local store with alice's entries: p.png, same.png (the same photo), other.bin."""
    root = tmp_path / "st"
    (tmp_path / "p.png").write_bytes(_photo_bytes())
    (tmp_path / "same.png").write_bytes(_photo_bytes())
    (tmp_path / "other.bin").write_bytes(b"not an image" * 10)
    put = _cli(
        "store",
        "put",
        *(str(tmp_path / n) for n in ("p.png", "same.png", "other.bin")),
        "--store-dir",
        str(root),
        "--owner",
        "alice",
    )
    assert put.returncode == 0, put.stderr
    return root, {line.split()[1]: line.split()[0] for line in put.stdout.splitlines()}


def test_get_refuses_a_folder_or_a_missing_folder_in_one_line(embedded_store, tmp_path):
    root, entries = embedded_store
    (tmp_path / "some_dir").mkdir()
    for output in ("some_dir/", "some_dir", "missing_dir/out.png", "missing_dir/"):
        got = _cli(
            "store",
            "get",
            entries["p.png"],
            str(tmp_path / output) + ("/" if output.endswith("/") else ""),
            "--store-dir",
            str(root),
        )
        assert got.returncode == 2, (output, got.stderr)
        assert got.stderr.count("\n") == 1 and got.stderr.startswith("safelight: error: "), got.stderr
        assert "Traceback" not in got.stderr and got.stdout == ""
    assert list((tmp_path / "some_dir").iterdir()) == [] and not (tmp_path / "missing_dir").exists()


def test_get_and_rm_take_a_name_or_a_unique_id_prefix(embedded_store, tmp_path):
    root, entries = embedded_store
    got = _cli("store", "get", "same.png", str(tmp_path / "back.png"), "--store-dir", str(root))
    assert got.returncode == 0, got.stderr
    assert (tmp_path / "back.png").read_bytes() == _photo_bytes() and "same.png ->" in got.stdout
    got = _cli("store", "get", entries["other.bin"][:8], str(tmp_path / "o.bin"), "--store-dir", str(root))
    assert got.returncode == 0 and (tmp_path / "o.bin").read_bytes() == b"not an image" * 10, got.stderr
    missing = _cli("store", "rm", "nothing.png", "--store-dir", str(root))
    assert missing.returncode == 2 and "no entry is named 'nothing.png'" in missing.stderr
    removed = _cli("store", "rm", "p.png", "--store-dir", str(root))
    assert removed.returncode == 0 and entries["p.png"] in removed.stdout and "still used" in removed.stdout
    listed = _cli("store", "list", "--store-dir", str(root))
    assert sorted(line.split()[1] for line in listed.stdout.splitlines()) == ["other.bin", "same.png"]


def test_list_reports_an_entry_that_does_not_open_and_exits_1(embedded_store):
    import sqlite3

    root, entries = embedded_store
    db = sqlite3.connect(root / "store-data" / "index.sqlite3")  # no server runs between commands
    db.execute("UPDATE entries SET meta = ? WHERE entry_id = ?", (b"\0" * 40, entries["same.png"]))
    db.commit()
    db.close()
    listed = _cli("store", "list", "--store-dir", str(root))
    assert listed.returncode == 1, listed.stderr
    assert [line.split()[1] for line in listed.stdout.splitlines()] == ["p.png", "other.bin"]
    assert f"safelight: warning: entry {entries['same.png']}: its metadata does not open" in listed.stderr
    assert "1 of 3 entries not listed" in listed.stderr and "Traceback" not in listed.stderr
    # the damaged entry can still be removed by its id prefix
    assert _cli("store", "rm", entries["same.png"][:10], "--store-dir", str(root)).returncode == 0
    listed = _cli("store", "list", "--store-dir", str(root))
    assert listed.returncode == 0 and listed.stderr == ""


def test_ambiguous_names_and_prefixes_are_errors_listing_the_candidates(store_setup, monkeypatch):
    import secrets

    from safelight.store.client import StoreClient

    config, owners, store, keys = store_setup
    ids = iter(["abcd" + "0" * 59 + "1", "abcd" + "0" * 59 + "2", "ef01" + "0" * 60])
    monkeypatch.setattr(secrets, "token_hex", lambda n: next(ids))
    with StoreClient(config, "alice", owners["alice"]) as alice:
        a, b, c = alice.put([("x.png", b"one" * 9), ("x.png", b"two" * 9), ("y.png", b"three" * 9)])
        assert [a.entry, b.entry, c.entry] == ["abcd" + "0" * 59 + "1", "abcd" + "0" * 59 + "2", "ef01" + "0" * 60]
        # the candidates are shown with as many digits as it takes to tell them apart
        with pytest.raises(
            InputError,
            match=rf"'x.png' fits 2 entries: {a.entry} \(x.png\), {b.entry} \(x.png\); "
            "give more digits",
        ):
            alice.resolve("x.png")
        with pytest.raises(InputError, match="'abcd' fits 2 entries"):
            alice.resolve("abcd")
        assert alice.resolve("y.png") == alice.resolve("EF01") == alice.resolve(c.entry) == c.entry
        assert alice.resolve(a.entry) == a.entry and alice.resolve(c.entry[:63]) == c.entry
        with pytest.raises(InputError, match="needs 4 hex digits or more"):
            alice.resolve("ef0")
        with pytest.raises(InputError, match="no entry is named 'z.png'"):
            alice.resolve("z.png")


def test_descriptor_exhaustion_does_not_kill_the_storage_server(tmp_path):
    """With its file descriptors exhausted by raw TCP connections, the storage server backs
    off and keeps serving (issue 12, point 4) instead of exiting from accept."""
    import resource
    import socket
    import time

    from safelight.errors import PeerUnavailableError
    from safelight.net.certs import Identity
    from safelight.net.transport import MsgType, connect
    from safelight.store.local import DEFAULT_OWNER, init_store

    config = init_store(tmp_path / "s", port=0)

    def few_descriptors():
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    proc = subprocess.Popen(
        [sys.executable, "-m", "safelight", "serve", "--role", "store", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=few_descriptors,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith(b"READY store"), line
        port = int(line.split()[-1])
        flood = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(80)]
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)  # bounded observation window
        for s in flood:
            s.close()
        assert proc.poll() is None, "the storage server exited when it ran out of file descriptors"
        identity = Identity.from_dir(tmp_path / "s" / "certs", DEFAULT_OWNER)
        deadline = time.monotonic() + 15  # the flood's handshakes end within their timeout
        while True:
            try:
                ch = connect("127.0.0.1", port, identity, "store", 5.0)
                ch.send_json(MsgType.STORE_REQ, b"\0" * 16, {"op": "list"})
                assert ch.expect(MsgType.RESULT).json["entries"] == []
                ch.close()
                break
            except PeerUnavailableError:
                assert time.monotonic() < deadline
    finally:
        proc.terminate()
        proc.wait(10)
