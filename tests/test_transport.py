"""Transport: framing, TLS 1.3 mutual authentication, sealed records and their failure modes."""

import os
import socket
import threading

import numpy as np
import pytest

import safelight
from safelight.errors import PeerUnavailableError, ProtocolError
from safelight.net.certs import Identity, create_cluster_certs
from safelight.net.sealed import MAX_RECORD
from safelight.net.transport import MsgType, accept_tls, connect, server_context


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    create_cluster_certs(d, 1)
    return d


def pair(certs, records="sealed", server_records=None):
    """A connected (client channel, server channel) over loopback."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    box = {}

    def accept():
        raw, _ = listener.accept()
        try:
            box["server"] = accept_tls(
                raw, server_context(Identity.from_dir(certs, "party-0")), 5.0, server_records or records
            )
        except Exception as exc:  # reported to the test
            box["error"] = exc
            raw.close()

    t = threading.Thread(target=accept)
    t.start()
    try:
        client = connect("127.0.0.1", port, Identity.from_dir(certs, "client"), "party-0", 5.0, records=records)
    finally:
        t.join()
        listener.close()
    if "error" in box:
        raise box["error"]
    return client, box["server"]


@pytest.mark.parametrize("records", ["sealed", "tls"])
@pytest.mark.parametrize("n", [0, 1, 1000, MAX_RECORD // 8, MAX_RECORD // 8 + 1, 3 * MAX_RECORD // 8 + 5])
def test_tensors_and_json_round_trip(certs, records, n):
    client, server = pair(certs, records)
    data = np.random.default_rng(n).integers(0, 2**64, n, dtype=np.uint64)
    job = os.urandom(16)
    t = threading.Thread(
        target=lambda: (client.send_json(MsgType.SUBMIT, job, {"a": [1, 2]}), client.send_tensor(job, "x", data))
    )
    t.start()
    first, second = server.recv(), server.recv()
    t.join()
    assert first.type == MsgType.SUBMIT and first.json == {"a": [1, 2]} and first.job_id == job
    assert second.name == "x" and second.array.dtype == np.uint64
    np.testing.assert_array_equal(second.array, data)
    assert server.bytes_received == client.bytes_sent
    server.send_json(MsgType.RESULT, job, {"ok": True})
    assert client.recv().json == {"ok": True}
    client.close()
    server.close()


@pytest.mark.parametrize("records", ["sealed", "tls"])
def test_a_tensor_arrives_straight_into_a_given_buffer_and_a_mismatch_is_refused(certs, records):
    client, server = pair(certs, records)
    data = np.random.default_rng(5).integers(0, 2**64, 3 * MAX_RECORD // 8 + 5, dtype=np.uint64)
    job = os.urandom(16)
    t = threading.Thread(target=lambda: [client.send_tensor(job, "x", data) for _ in range(2)])
    t.start()
    buffer = np.zeros((2, data.size), dtype=np.uint64)
    with pytest.raises(ValueError, match="contiguous"):  # refused before anything is read
        server.expect(MsgType.TENSOR, into=buffer[:, 0])
    frame = server.expect(MsgType.TENSOR, into=buffer[1])
    assert np.shares_memory(frame.array, buffer) and np.array_equal(buffer[1], data) and not buffer[0].any()
    with pytest.raises(ProtocolError, match="was due"):  # one element short of what arrives
        server.expect(MsgType.TENSOR, into=np.zeros(data.size - 1, dtype=np.uint64))
    t.join()
    client.close()
    server.close()


def test_sealed_records_reject_tampering(certs):
    client, server = pair(certs)
    raw = client.sock.sock  # the TCP socket under the sealed stream
    raw.sendall(b"\x00\x00\x01\x00" + os.urandom(256))  # a well-formed length, forged ciphertext
    with pytest.raises(ProtocolError, match="authentication"):
        server.recv()
    client.close()
    server.close()


def test_sealed_records_reject_bad_lengths_and_cut_streams(certs):
    client, server = pair(certs)
    client.sock.sock.sendall(b"\xff\xff\xff\xff")
    with pytest.raises(ProtocolError, match="record length"):
        server.recv()
    client, server = pair(certs)
    client.sock.sock.sendall(b"\x00\x00\x01\x00" + b"x" * 10)
    client.sock.sock.shutdown(socket.SHUT_WR)
    with pytest.raises(ProtocolError, match="middle of a record"):
        server.recv()


def test_mismatched_record_modes_are_a_clear_error(certs):
    with pytest.raises((ProtocolError, PeerUnavailableError)):
        client, server = pair(certs, records="tls", server_records="sealed")
        client.send_json(MsgType.SUBMIT, os.urandom(16), {})
        server.recv()


def test_pure_tls_cluster_runs_jobs():
    from safelight.program.program import Program

    with safelight.Cluster.local(2, records="tls", timeout=10) as cluster:
        assert cluster.config.records == "tls"
        p = Program(2)
        x = p.input("x", (100,))
        p.output(p.reveal(x), "y")
        job = cluster.run(p, {"x": safelight.encode(np.arange(100.0))})
        np.testing.assert_allclose(safelight.decode(job.outputs["y"]), np.arange(100.0), atol=1e-4)
