"""Servers, transport and the embedded cluster: real processes talking TLS 1.3 on loopback."""

import os
import signal
import socket
import ssl
import subprocess
import sys
import time

import numpy as np
import pytest

import safelight
from safelight.errors import InputError, PeerUnavailableError, ProgramError, ProtocolError
from safelight.net.certs import Identity, create_cluster_certs
from safelight.net.transport import HEADER, MAGIC, MsgType, connect
from safelight.program.program import Program


def linear_program(parties, shape=(6, 7)):
    p = Program(parties)
    x, y = p.input("x", shape), p.input("y", shape)
    z = p.add_public(p.sub(p.add(x, p.neg(y)), y), 0.5)
    p.output(p.mul_public(z, 3, integer=True), "z")
    return p


@pytest.mark.parametrize("cluster_name", ["cluster2", "cluster3"])
def test_linear_program_equals_plaintext(request, cluster_name):
    cluster = request.getfixturevalue(cluster_name)
    n = cluster.parties
    rng = np.random.default_rng(n)
    x, y = rng.normal(size=(6, 7)), rng.normal(size=(6, 7))
    job = cluster.run(linear_program(n), {"x": safelight.encode(x, n), "y": safelight.encode(y, n)})
    out = safelight.decode(job.outputs["z"])
    np.testing.assert_allclose(out, 3 * (x - 2 * y + 0.5), atol=1e-4)
    assert len(job.parties) == n and job.rounds == 0
    assert all(p.bytes_received > 0 and p.bytes_sent > 0 for p in job.parties)
    assert job.wall_seconds > 0


def test_reveal_uses_peer_links_and_counts_rounds(cluster3):
    p = Program(3)
    x = p.input("x", (100,))
    p.output(p.reveal(p.reveal(x)), "opened")
    values = np.linspace(-5, 5, 100)
    job = cluster3.run(p, {"x": safelight.encode(values, 3)})
    np.testing.assert_allclose(safelight.decode(job.outputs["opened"]), values, atol=1e-4)
    assert job.rounds == 2
    assert all(s.peer_bytes_sent >= 2 * 2 * 800 for s in job.parties)


def test_rescale_after_public_product(cluster2):
    p = Program(2)
    x = p.input("x", (1000,))
    p.output(p.rescale(p.mul_public(x, -0.3)), "y")
    values = np.random.default_rng(3).uniform(-100, 100, 1000)
    out = safelight.decode(cluster2.run(p, {"x": safelight.encode(values)}).outputs["y"])
    scalar = np.round(-0.3 * 2**16) / 2**16  # the public scalar is quantised too
    np.testing.assert_allclose(out, scalar * values, atol=2 * 2.0**-16)


def test_input_mismatch_is_caught_before_upload(cluster2):
    p = linear_program(2)
    with pytest.raises(InputError, match="missing input"):
        cluster2.run(p, {"x": safelight.encode(np.zeros((6, 7)))})
    with pytest.raises(InputError, match="shape"):
        cluster2.run(p, {"x": safelight.encode(np.zeros((6, 7))), "y": safelight.encode(np.zeros((7, 6)))})
    with pytest.raises(InputError, match="parties"):
        cluster2.run(p, {"x": safelight.encode(np.zeros((6, 7)), 3), "y": safelight.encode(np.zeros((6, 7)), 3)})


def raw_tls(cluster, party=0):
    addr = cluster.config.parties[party]
    return connect(addr.host, addr.port, cluster.identity, f"party-{party}", 5.0)


def test_server_rejects_malformed_messages_and_keeps_serving(cluster2):
    # 1. garbage bytes after a valid handshake
    ch = raw_tls(cluster2)
    ch.sock.sendall(b"GET / HTTP/1.1\r\n\r\n" + b"\0" * 40)
    with pytest.raises((ProtocolError, PeerUnavailableError)):
        ch.expect(MsgType.RESULT)
    ch.close()
    # 2. a program with an unknown op
    ch = raw_tls(cluster2)
    bad = linear_program(2).to_json()
    bad["steps"][0]["op"] = "exfiltrate"
    ch.send_json(MsgType.SUBMIT, os.urandom(16), {"program": bad, "inputs": []})
    with pytest.raises(ProgramError, match="unknown op"):
        ch.expect(MsgType.RESULT)
    ch.close()
    # 3. an oversized control frame
    ch = raw_tls(cluster2)
    ch.sock.sendall(HEADER.pack(MAGIC, 1, MsgType.SUBMIT, 0, b"\0" * 16, 1 << 40))
    with pytest.raises(ProtocolError, match="control message"):
        ch.expect(MsgType.RESULT)
    ch.close()
    # 4. a client pretending to be a party
    ch = raw_tls(cluster2, 1)
    ch.send_json(MsgType.PEER_HELLO, os.urandom(16), {"party": 1})
    with pytest.raises(ProtocolError, match="may not open a link"):
        ch.expect(MsgType.RESULT)
    ch.close()
    # the servers still run jobs
    x = np.ones((6, 7))
    job = cluster2.run(linear_program(2), {"x": safelight.encode(x), "y": safelight.encode(x)})
    np.testing.assert_allclose(safelight.decode(job.outputs["z"]), 3 * (x - 2 * x + 0.5), atol=1e-4)


def test_unauthenticated_connections_are_refused(cluster2, tmp_path):
    addr = cluster2.config.parties[0]
    # no client certificate at all
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection((addr.host, addr.port), timeout=5) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            with ctx.wrap_socket(raw) as tls:
                tls.sendall(b"x" * 100)
                tls.recv(10)
    # a certificate from another CA
    create_cluster_certs(tmp_path / "other", 2)
    rogue = Identity.from_dir(tmp_path / "other", "client")
    with pytest.raises((ProtocolError, PeerUnavailableError)):
        ch = connect(addr.host, addr.port, rogue, "party-0", 5.0)
        ch.send_json(MsgType.SUBMIT, os.urandom(16), {})
        ch.expect(MsgType.RESULT)
    # plain TCP
    with socket.create_connection((addr.host, addr.port), timeout=5) as raw:
        raw.sendall(HEADER.pack(MAGIC, 1, MsgType.SUBMIT, 0, b"\0" * 16, 2) + b"{}")
        raw.settimeout(5)
        try:
            assert raw.recv(100) in (b"",) or True
        except OSError:
            pass
    x = np.ones((6, 7))
    cluster2.run(linear_program(2), {"x": safelight.encode(x), "y": safelight.encode(x)})
    log = cluster2.server_log(0)
    assert "rejected connection" in log


def test_logs_never_contain_seeds_or_shares(cluster2):
    x = np.random.default_rng(9).normal(size=(6, 7))
    enc_x, enc_y = safelight.encode(x), safelight.encode(x)
    cluster2.run(linear_program(2), {"x": enc_x, "y": enc_y})
    logs = cluster2.server_log(0) + cluster2.server_log(1)
    assert "job" in logs
    for enc in (enc_x, enc_y):
        assert enc.payloads[0].seed.hex() not in logs
        assert enc.payloads[0].seed.hex()[:16] not in logs
        assert str(int(enc.payloads[1].share.reshape(-1)[0])) not in logs


def test_killed_server_gives_clear_error_within_timeout():
    with safelight.Cluster.local(2, timeout=3.0) as cluster:
        cluster.processes[1].kill()
        cluster.processes[1].wait()
        t0 = time.monotonic()
        with pytest.raises(PeerUnavailableError, match="party-1"):
            cluster.run(
                linear_program(2), {"x": safelight.encode(np.ones((6, 7))), "y": safelight.encode(np.ones((6, 7)))}
            )
        assert time.monotonic() - t0 < 3.0 + 2


def test_server_that_stops_answering_mid_job_times_out():
    """A frozen peer (SIGSTOP) during an interactive job: the client gets an error within the timeout."""
    with safelight.Cluster.local(2, timeout=2.0) as cluster:
        p = Program(2)
        p.output(p.reveal(p.input("x", (10,))), "y")
        os.kill(cluster.processes[1].pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            with pytest.raises(PeerUnavailableError):
                cluster.run(p, {"x": safelight.encode(np.ones(10))})
            assert time.monotonic() - t0 < 2.0 * 3 + 2
        finally:
            os.kill(cluster.processes[1].pid, signal.SIGCONT)


def test_local_cluster_leaves_no_processes_behind():
    with safelight.Cluster.local(2) as cluster:
        pids = [p.pid for p in cluster.processes]
        workdir = cluster.workdir
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not workdir.exists()


def test_servers_exit_when_their_parent_dies(tmp_path):
    code = (
        "import safelight, sys\n"
        "c = safelight.Cluster.local(2)\n"
        "print(c.workdir, ' '.join(str(p.pid) for p in c.processes), flush=True)\n"
        "import os; os._exit(0)\n"  # die without cleaning up
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    workdir, *pids = out.stdout.split()
    pids = [int(p) for p in pids]
    assert len(pids) == 2
    deadline = time.monotonic() + 10
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [p for p in pids if _alive(p)]
        time.sleep(0.2)
    assert not alive
    from pathlib import Path

    from safelight.runtime.cluster import remove_stale_workdirs

    assert Path(workdir) in remove_stale_workdirs()  # what the next Cluster.local does first


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by init) counts as gone
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_cluster_from_config_and_remote_style_serve(tmp_path):
    """`safelight certs` + `safelight serve` processes + Cluster.from_config, as a remote deployment would."""
    import dataclasses
    import json

    from safelight.net.config import ClusterConfig, PartyAddress

    subprocess.run(
        [sys.executable, "-m", "safelight", "certs", str(tmp_path / "certs"), "--parties", "2"],
        check=True,
        capture_output=True,
    )
    # Port 0: each server binds a free port and reports it (no port is reserved in advance).
    cfg = ClusterConfig((PartyAddress("127.0.0.1", 0),) * 2, tmp_path / "certs", 5.0)
    spawn = cfg.save(tmp_path / "spawn.toml")
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "safelight",
                "serve",
                "--config",
                str(spawn),
                "--party",
                str(i),
                "--peers-from-stdin",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for i in range(2)
    ]
    try:
        ports = []
        for proc in procs:
            line = proc.stdout.readline()
            assert line.startswith(b"READY"), line
            ports.append(int(line.split(b":")[-1]))
        addresses = tuple(PartyAddress("127.0.0.1", p) for p in ports)
        path = dataclasses.replace(cfg, parties=addresses).save(tmp_path / "cluster.toml")
        for proc in procs:
            proc.stdin.write(
                b"PEERS " + json.dumps({"parties": [["127.0.0.1", p] for p in ports], "dealer": None}).encode() + b"\n"
            )
            proc.stdin.flush()
        cluster = safelight.Cluster.from_config(path)
        x = np.arange(42.0).reshape(6, 7)
        job = cluster.run(linear_program(2), {"x": safelight.encode(x), "y": safelight.encode(x)})
        np.testing.assert_allclose(safelight.decode(job.outputs["z"]), 3 * (-x + 0.5), atol=1e-4)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)


def test_long_preprocessing_is_not_mistaken_for_a_dead_server():
    """The servers send heartbeats during long silent phases: a job whose preprocessing runs
    well past the timeout still finishes (while a killed server is still reported within it)."""
    x = np.random.default_rng(9).uniform(-1, 1, 1 << 20)
    p = safelight.Program(2)
    p.output(p.relu(p.input("x", x.shape)), "y")
    with safelight.Cluster.local(2, dealer=True, timeout=1.5) as cluster:
        # the garbled path: its preprocessing is the long silent phase under test
        job = cluster.run(p, {"x": safelight.encode(x)}, preprocess="ahead", comparisons="gc")
    assert job.offline_seconds > 1.5
    np.testing.assert_allclose(safelight.decode(job.outputs["y"]), np.maximum(x, 0), atol=2**-15)
