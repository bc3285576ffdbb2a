"""Servers a hostile or careless client cannot take down, and failures that reach the client
at once: trust-model refusals, connection and handshake caps, descriptor exhaustion,
bounded memory per connection and per job, fast aborts, malformed input, stale folders.

Every test here is bounded in time: no sleeps as synchronisation, no pre-reserved ports.
"""

import json
import os
import resource
import selectors
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import safelight
from safelight.errors import PeerUnavailableError, ProgramError, ProtocolError, ResourceLimitError, TrustModelError
from safelight.net.config import ClusterConfig, PartyAddress, ServerLimits
from safelight.net.sealed import MAX_RECORD, SealedStream
from safelight.net.transport import HEADER, MAGIC, META_LEN, MsgType, connect
from safelight.program.program import Program
from safelight.runtime.cluster import OWNER_FILE, WORKDIR_PREFIX, remove_stale_workdirs


def mul_program(shape=(8,)):
    p = Program(2)
    p.output(p.mul(p.input("x", shape), p.input("y", shape)), "z")
    return p


def mul_inputs(shape=(8,)):
    x = np.linspace(-1, 1, int(np.prod(shape))).reshape(shape)
    return {"x": safelight.encode(x), "y": safelight.encode(x)}, x * x


def raw_tls(cluster, party=0, timeout=5.0):
    addr = cluster.config.parties[party]
    return connect(addr.host, addr.port, cluster.identity, f"party-{party}", timeout)


def still_serves(cluster):
    inputs, want = mul_inputs()
    job = cluster.run(mul_program(), inputs, triples="client")
    np.testing.assert_allclose(safelight.decode(job.outputs["z"]), want, atol=1e-3)


# ---- 1. no silent trust downgrade -------------------------------------------------------
def test_no_dealer_and_no_choice_is_refused_with_the_ways_out(cluster2):
    inputs, _ = mul_inputs()
    with pytest.raises(TrustModelError) as err:
        cluster2.run(mul_program(), inputs)
    message = str(err.value)
    assert "no dealer" in message and "[dealer]" in message and "triples='he'" in message
    assert "triples='client'" in message


def test_client_triples_never_cover_a_stored_tensor(cluster2):
    stored = cluster2.upload_model("owner-weights", {"y": safelight.encode(np.ones(8))})
    inputs, _ = mul_inputs()
    with pytest.raises(TrustModelError, match="unmask stored tensors"):
        cluster2.run(mul_program(), {"x": inputs["x"], "y": stored["y"]}, triples="client")


def test_client_triples_run_when_asked_and_every_secret_is_the_clients(cluster2):
    still_serves(cluster2)


def test_denoise_on_a_cluster_without_a_dealer_is_refused(tmp_path, cluster2):
    from PIL import Image

    Image.fromarray(np.full((16, 16), 128, np.uint8)).save(tmp_path / "in.png")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "safelight",
            "denoise",
            str(tmp_path / "in.png"),
            str(tmp_path / "out.png"),
            "--sigma",
            "25",
            "--cluster",
            str(cluster2.config.path or cluster2.workdir / "cluster.toml"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "no dealer" in proc.stderr and "--no-dealer" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out.png").exists()


# ---- 4. caps, handshake timeout, descriptor exhaustion ----------------------------------
def spawn_party(config_path: Path, party: int, nofile: int | None = None) -> tuple[subprocess.Popen, int]:
    def limit():
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "safelight",
            "serve",
            "--config",
            str(config_path),
            "--party",
            str(party),
            "--peers-from-stdin",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=limit,
    )
    line = proc.stdout.readline()
    assert line.startswith(b"READY"), line
    return proc, int(line.split(b":")[-1])


@pytest.fixture
def hand_spawned(tmp_path):
    """Two party servers started by hand (party 0 with only 64 file descriptors)."""
    from safelight.net.certs import create_cluster_certs

    create_cluster_certs(tmp_path / "certs", 2)
    limits = ServerLimits(max_connections=1000, max_handshakes=1000, handshake_timeout=3.0)
    spawn = ClusterConfig((PartyAddress("127.0.0.1", 0),) * 2, tmp_path / "certs", 10.0, limits=limits)
    spawn_path = spawn.save(tmp_path / "spawn.toml")
    procs, ports = zip(*(spawn_party(spawn_path, i, 64 if i == 0 else None) for i in range(2)))
    peers = json.dumps({"parties": [["127.0.0.1", p] for p in ports], "dealer": None}).encode()
    for proc in procs:
        proc.stdin.write(b"PEERS " + peers + b"\n")
        proc.stdin.flush()
    config = ClusterConfig(tuple(PartyAddress("127.0.0.1", p) for p in ports), tmp_path / "certs", 10.0)
    cluster = safelight.Cluster(config, safelight.net.certs.Identity.from_dir(tmp_path / "certs", "client"))
    yield cluster, procs
    for proc in procs:
        proc.stdin.close()
        proc.terminate()
        proc.wait(10)


def test_descriptor_exhaustion_does_not_kill_the_server(hand_spawned):
    cluster, procs = hand_spawned
    addr = cluster.config.parties[0]
    flood = [socket.create_connection((addr.host, addr.port), timeout=5) for _ in range(80)]
    try:
        # the server ran out of descriptors while these were accepted; it must still be alive
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and procs[0].poll() is None:
            time.sleep(0.1)  # bounded observation window, not synchronisation
        assert procs[0].poll() is None, "party-0 exited when it ran out of file descriptors"
    finally:
        for s in flood:
            s.close()
    still_serves(cluster)
    assert procs[0].poll() is None


def test_connection_and_handshake_caps_and_handshake_timeout():
    limits = ServerLimits(max_handshakes=4, handshake_timeout=2.0)
    with safelight.Cluster.local(2, limits=limits, timeout=10.0) as cluster:
        addr = cluster.config.parties[0]
        started = time.monotonic()
        flood = [socket.create_connection((addr.host, addr.port), timeout=5) for _ in range(10)]
        closed_at = []
        with selectors.DefaultSelector() as sel:
            for s in flood:
                sel.register(s, selectors.EVENT_READ)
            while len(closed_at) < len(flood) and time.monotonic() - started < 5:
                for key, _ in sel.select(timeout=0.1):  # readable: EOF or reset from the server
                    closed_at.append(time.monotonic() - started)
                    sel.unregister(key.fileobj)
                    key.fileobj.close()
        assert len(closed_at) == len(flood), closed_at
        assert sum(t < 1.5 for t in closed_at) >= 6, closed_at  # over the cap: refused at once
        assert max(closed_at) < 5.0, closed_at  # the others: at the handshake timeout
        still_serves(cluster)


# ---- 5. memory per connection and per message -------------------------------------------
def test_sealed_stream_buffers_are_lazy_bounded_and_released():
    a, b = socket.socketpair()
    key = bytes(32)
    left, right = SealedStream(a, key, key), SealedStream(b, key, key)

    def held(stream):
        return len(stream._out) + len(stream._cipher) + len(stream._plain)

    assert held(left) == 0 and held(right) == 0  # an idle connection holds nothing
    left.sendall(b"hello")
    buf = bytearray(5)
    right.recv_into(memoryview(buf))
    assert bytes(buf) == b"hello" and held(left) < 1024 and held(right) < 1024
    big = np.arange(3 << 20, dtype=np.uint8).tobytes()
    sender = threading.Thread(target=left.sendall, args=(big,))
    sender.start()
    got = bytearray(len(big))
    view, pos = memoryview(got), 0
    while pos < len(got):
        pos += right.recv_into(view[pos:], len(got) - pos)
    sender.join()
    assert bytes(got) == big and held(left) <= MAX_RECORD + 64 and held(right) <= 2 * (MAX_RECORD + 64)
    left.close()
    right.close()
    assert held(left) == 0 and held(right) == 0


def test_oversized_control_message_and_wrong_first_frame_are_refused_from_the_header(cluster2):
    # a 5 MiB SUBMIT (over the 4 MiB default): refused without waiting for its body
    ch = raw_tls(cluster2)
    started = time.monotonic()
    ch.sock.sendall(HEADER.pack(MAGIC, 1, MsgType.SUBMIT, 0, b"\0" * 16, 5 << 20))
    with pytest.raises(ProtocolError, match="limit 4194304"):
        ch.expect(MsgType.RESULT)
    ch.close()
    # a first frame that is a 1 GiB tensor: refused from its header, nothing allocated
    ch = raw_tls(cluster2)
    ch.sock.sendall(HEADER.pack(MAGIC, 1, MsgType.TENSOR, 0, b"\0" * 16, 1 << 30))
    with pytest.raises(ProtocolError, match="TENSOR where"):
        ch.expect(MsgType.RESULT)
    ch.close()
    assert time.monotonic() - started < 3.0
    still_serves(cluster2)


# ---- 6. admission control -------------------------------------------------------------------
def test_job_over_the_memory_budget_is_refused_before_any_tensor():
    with safelight.Cluster.local(2, limits=ServerLimits(memory_budget=96 << 20), timeout=10.0) as cluster:
        p = Program(2)
        p.output(p.add(p.input("x", (4096, 4096)), p.input("y", (4096, 4096))), "z")  # 128 MiB each
        ch = raw_tls(cluster)  # no tensor is sent: the Program alone is refused
        ch.send_json(MsgType.SUBMIT, os.urandom(16), {"program": p.to_json(), "inputs": []})
        with pytest.raises(ResourceLimitError, match="memory budget"):
            ch.expect(MsgType.RESULT)
        ch.close()
        still_serves(cluster)


def test_tensor_larger_than_declared_is_refused_before_allocation(cluster2):
    p = mul_program((4,))
    ch = raw_tls(cluster2)
    ch.send_json(
        MsgType.SUBMIT,
        os.urandom(16),
        {
            "program": p.to_json(),
            "preprocessing": {"source": "client", "seed": "00" * 16},
            "inputs": [{"name": "x", "kind": "share"}, {"name": "y", "kind": "share"}],
        },
    )
    meta = json.dumps({"name": "x", "dtype": "uint64", "shape": [1 << 28]}).encode()
    ch.sock.sendall(
        HEADER.pack(MAGIC, 1, MsgType.TENSOR, 0, b"\0" * 16, META_LEN.size + len(meta) + (8 << 28))
        + META_LEN.pack(len(meta))
        + meta
    )
    started = time.monotonic()
    with pytest.raises(ProtocolError, match="expected"):
        ch.expect(MsgType.RESULT)
    assert time.monotonic() - started < 3.0
    ch.close()
    still_serves(cluster2)


def test_jobs_over_the_job_count_wait_then_are_refused_clearly():
    with safelight.Cluster.local(2, limits=ServerLimits(max_jobs=1), timeout=4.0) as cluster:
        # a job that party 0 admits and holds (~4 s) while it waits for party 1, which never hears of it
        holder = raw_tls(cluster)
        holder.send_json(
            MsgType.SUBMIT,
            os.urandom(16),
            {
                "program": mul_program().to_json(),
                "preprocessing": {"source": "client", "seed": "00" * 16},
                "inputs": [
                    {"name": "x", "kind": "seed", "seed": "11" * 16},
                    {"name": "y", "kind": "seed", "seed": "22" * 16},
                ],
            },
        )
        holder.expect(MsgType.PROGRESS)  # a heartbeat (after 1 s): the job was admitted and runs
        inputs, _ = mul_inputs()
        with pytest.raises(ResourceLimitError, match="busy"):
            cluster.run(mul_program(), inputs, triples="client")
        holder.close()
        # once the held job times out, the server admits jobs again
        deadline = time.monotonic() + 10
        while True:
            try:
                still_serves(cluster)
                break
            except ResourceLimitError:
                assert time.monotonic() < deadline


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    """A process's resident memory (or its peak, ``VmHWM``) in MiB."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field}")


def test_memory_is_given_back_after_a_job():
    """A job of many 4 MiB steps (heap-sized arrays, which the allocator would keep): the
    server frees each after its last use and returns the heap to the OS when idle."""
    shape = (1 << 19,)
    p = Program(2)
    x, y = p.input("x", shape), p.input("y", shape)
    for _ in range(80):
        x = p.add(x, y)
    p.output(x, "z")
    with safelight.Cluster.local(2, timeout=30.0) as cluster:
        pid = cluster.processes[1].pid
        still_serves(cluster)
        before = rss_mib(pid)
        values = np.zeros(shape)
        job = cluster.run(p, {"x": safelight.encode(values), "y": safelight.encode(values)})
        after = rss_mib(pid)
    assert safelight.decode(job.outputs["z"]).shape == shape
    assert after - before < 64, (before, after)  # all steps together: 320 MiB


# ---- 7. known failures reach the client at once --------------------------------------------
def test_a_party_that_lost_the_model_is_reported_at_once():
    with safelight.Cluster.local(2, dealer=True) as cluster:  # the default 30 s timeout
        # the model exists on party 0 only, as after party 1 restarted without a store directory
        w = safelight.encode(np.ones(8))
        ch = raw_tls(cluster, 0)
        ch.send_json(
            MsgType.STORE,
            b"\0" * 16,
            {"model": "m", "inputs": [{"name": "y", "kind": "seed", "seed": w.payloads[0].seed.hex(), "shape": [8]}]},
        )
        ch.expect(MsgType.RESULT)
        ch.close()
        from safelight.runtime.client import StoredTensor

        inputs, _ = mul_inputs()
        started = time.monotonic()
        with pytest.raises(ProgramError, match="party-1: unknown model id 'm'.*upload it again"):
            cluster.run(mul_program(), {"x": inputs["x"], "y": StoredTensor("m", "y", (8,), 2, 16)})
        assert time.monotonic() - started < 3.0
        still_ok = cluster.run(mul_program(), inputs)
        assert still_ok.triples == "dealer"


def test_a_dead_dealer_is_reported_at_once():
    with safelight.Cluster.local(2, dealer=True) as cluster:  # the default 30 s timeout
        cluster.processes[-1].kill()
        cluster.processes[-1].wait()
        inputs, _ = mul_inputs()
        started = time.monotonic()
        with pytest.raises(PeerUnavailableError, match="dealer"):
            cluster.run(mul_program(), inputs)
        assert time.monotonic() - started < 3.0
        still_serves(cluster)  # the parties are free again


def test_a_dealer_dying_while_dealing_is_reported_at_once():
    n = 1 << 21
    p = Program(2)
    x, y = p.input("x", (n,)), p.input("y", (n,))
    for _ in range(60):  # ~1 GB of corrections: dealing takes well over the half second below
        x = p.mul(x, y)
    p.output(x, "z")
    values = safelight.encode(np.full(n, 0.5))
    with safelight.Cluster.local(2, dealer=True) as cluster:  # the default 30 s timeout
        killed = []

        def kill():
            time.sleep(0.5)
            cluster.processes[-1].kill()
            killed.append(time.monotonic())

        killer = threading.Thread(target=kill)
        killer.start()
        with pytest.raises(PeerUnavailableError, match="dealer"):
            cluster.run(p, {"x": values, "y": values})
        failed_at = time.monotonic()
        killer.join()
        assert failed_at - killed[0] < 3.0


# ---- 8. malformed input is a protocol error, never an internal one ----------------------------
def answer_to(cluster, body: bytes) -> str:
    ch = raw_tls(cluster)
    ch.sock.sendall(HEADER.pack(MAGIC, 1, MsgType.SUBMIT, 0, os.urandom(16), len(body)) + body)
    try:
        ch.expect(MsgType.RESULT)
    except safelight.errors.SafelightError as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        ch.close()
    return "accepted"


def test_deeply_nested_json_is_a_protocol_error(cluster2):
    answer = answer_to(cluster2, b"[" * 100_000 + b"]" * 100_000)
    assert answer.startswith("ProtocolError") and "nested too deeply" in answer
    assert "internal error" not in answer_to(cluster2, b'{"program": ' + b"[" * 5000 + b"]" * 5000 + b"}")


def _mutations():
    """Values to put anywhere in a valid SUBMIT."""
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=True),
        st.text(max_size=8),
        st.lists(st.integers(-5, 2**40), max_size=4),
        st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
    )


def _paths(obj, path=()):
    yield path
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*path, i))


def _valid_submit():
    p = Program(2)
    x = p.input("x", (2, 3, 8, 8))
    w = p.input("w", (4, 3, 3, 3))
    p.output(p.relu(p.conv2d(x, w, padding=1)), "y")
    submit = {
        "program": p.to_json(),
        "preprocessing": {"source": "client", "seed": "00" * 16},
        "inputs": [{"name": "x", "kind": "seed", "seed": "11" * 16}, {"name": "w", "kind": "seed", "seed": "22" * 16}],
    }
    return submit


def _replaced(submit, path, value):
    target = submit
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return submit


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_malformed_submits_never_cause_an_internal_error(cluster2, data):
    submit = _valid_submit()
    paths = list(_paths(submit))[1:]
    path = data.draw(st.sampled_from(paths))
    answer = answer_to(cluster2, json.dumps(_replaced(submit, path, data.draw(_mutations()))).encode())
    assert "internal error" not in answer, (path, answer)


def test_a_list_or_an_object_anywhere_in_a_submit_is_never_an_internal_error(cluster2):
    """Every place at once, not by chance: values that cannot be hashed or compared once made
    the source lookup fail with a TypeError (found by the fuzz test above)."""
    for path in list(_paths(_valid_submit()))[1:]:
        for value in ([], {}, [1, [2]]):
            answer = answer_to(cluster2, json.dumps(_replaced(_valid_submit(), path, value)).encode())
            assert "internal error" not in answer, (path, value, answer)


# ---- 19. no folders left behind -------------------------------------------------------------------
def test_stale_cluster_folders_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale, live, fresh = (tmp_path / f"{WORKDIR_PREFIX}{n}" for n in ("stale", "live", "fresh"))
    for folder in (stale, live, fresh):
        (folder / "certs").mkdir(parents=True)
    (stale / OWNER_FILE).write_text(str(dead.pid))
    (live / OWNER_FILE).write_text(str(os.getpid()))
    assert remove_stale_workdirs(tmp_path) == [stale]  # fresh has no owner yet but is young
    assert live.exists() and fresh.exists() and not stale.exists()


def test_a_killed_client_leaves_no_servers_and_its_folder_is_cleaned(tmp_path):
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import safelight, sys\n"
                "c = safelight.Cluster.local(2, dealer=True)\n"
                "print(c.workdir, *[p.pid for p in c.processes], flush=True)\n"
                "sys.stdin.read()\n"
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    workdir, *pids = child.stdout.readline().split()
    child.kill()
    child.wait()
    deadline = time.monotonic() + 10
    while any(_running(int(pid)) for pid in pids):
        assert time.monotonic() < deadline, "servers outlived their killed client"
        time.sleep(0.05)
    assert Path(workdir).exists()
    with safelight.Cluster.local(1):  # any later cluster cleans up after the killed one
        assert not Path(workdir).exists()


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_the_admission_estimate_bounds_a_real_jobs_peak_memory():
    """Calibration guard: a private FFDNet job's peak resident memory on each party stays
    below what admission reserved for it."""
    from safelight.protocols.preprocessing import Plan
    from safelight.runtime.admission import job_memory
    from safelight.runtime.client import GC_BYTES_PER_OT, PREPROCESS_BUDGET
    from safelight.tasks import denoise

    size = 48
    model = denoise.denoiser(1, size, size)
    per_op = GC_BYTES_PER_OT * model.program.ot_demand() > PREPROCESS_BUDGET  # the client's choice
    ots = model.program.ot_demand_per_step(per_op)
    plan = Plan(model.program.correlations())
    need_mib = [
        job_memory(model.program, plan, per_op, False, ots, corrections=party == 1) / 2**20 for party in (0, 1)
    ]  # party 1 receives the dealer's corrections
    with safelight.Cluster.local(2, dealer=True, timeout=60.0) as cluster:
        denoise.upload(cluster)
        base = [rss_mib(p.pid) for p in cluster.processes[:2]]
        noisy = np.random.default_rng(3).uniform(0, 1, (size, size, 3))
        denoise.run(cluster, [noisy], 25)
        peaks = [rss_mib(p.pid, "VmHWM") for p in cluster.processes[:2]]
    for b, peak, need in zip(base, peaks, need_mib):
        assert peak - b < need, (base, peaks, need_mib)
