"""Batch mode (issue 19): every image of a folder as its own private job on Dask, lanes of
servers (started on loopback, or server pools named in cluster.toml), a resumable manifest."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from safelight import cli
from safelight.batch import run_batch
from safelight.batch.jobs import TaskSpec
from safelight.batch.manifest import MANIFEST
from safelight.batch.runner import PREFETCH
from safelight.errors import InputError
from safelight.images import read_image
from safelight.net.certs import create_cluster_certs
from safelight.net.config import ClusterConfig
from safelight.runtime.cluster import Cluster, wait_ready
from safelight.tasks import filter as filter_task

pytest.importorskip("dask.distributed")

BLUR = TaskSpec("filter", {"kernel": "gaussian:1"})


def _photos(folder: Path, count: int = 3) -> list[str]:
    """Small real photos, one in a subfolder (the walk is recursive)."""
    sources = [data.astronaut(), data.camera(), data.coffee(), data.chelsea()]
    names = []
    for i in range(count):
        name = f"sub/photo{i}.png" if i == count - 1 else f"photo{i}.png"
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(sources[i % len(sources)][100:140, 120:164]).save(folder / name)
        names.append(name)
    return names


def _single_job(path: Path) -> np.ndarray:
    image = read_image(path)
    with Cluster.local(2) as cluster:
        result = filter_task.run(image.pixels, cluster=cluster, kernel="gaussian:1")
    return filter_task.to_image(result.values, "gaussian:1", image.pixels.dtype)


def test_outputs_equal_single_jobs_and_the_manifest_records_each(tmp_path):
    names = _photos(tmp_path / "in")
    summary = run_batch(BLUR, tmp_path / "in", tmp_path / "out", lanes=1)
    assert (summary.images, summary.done, summary.failures, summary.skipped) == (3, 3, [], 0)
    assert set(summary.bytes_sent) == {"party-0", "party-1"} and min(summary.bytes_sent.values()) > 0
    for name in names:
        batch = read_image(tmp_path / "out" / name).pixels.astype(int)
        assert np.abs(batch - _single_job(tmp_path / "in" / name).astype(int)).max() <= 1  # the truncations' last bit
    lines = [json.loads(line) for line in (tmp_path / "out" / MANIFEST).read_text().splitlines()]
    assert sorted(r["input"] for r in lines) == sorted(names) and all(r["status"] == "ok" for r in lines)


def test_features_and_watermark_batches_write_what_the_single_commands_do(tmp_path):
    from safelight.tasks import watermark

    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(data.camera()[200:240, 200:248]).save(folder / "corner.png")
    features = run_batch(TaskSpec("features", {"feature": "harris"}), folder, tmp_path / "features")
    assert (features.done, features.failures) == (1, [])
    record = json.loads((tmp_path / "features" / "corner.png.json").read_text())
    assert record["feature"] == "harris" and isinstance(record["keypoints"], list)

    Image.fromarray(data.astronaut()[:160, :160]).save(folder / "corner.png")
    key = tmp_path / "wm.key"
    watermark.keygen(key)
    spec = TaskSpec("watermark", {"key": str(key), "message": "c0ffee0123456789"})
    marked = run_batch(spec, folder, tmp_path / "marked")
    assert (marked.done, marked.failures) == (1, [])
    photo = read_image(tmp_path / "marked" / "corner.png").pixels
    found = watermark.detect(photo, key=watermark.load_key(key), plain=True)
    assert found.outputs == "c0ffee0123456789" and found.extras["present"]


def test_denoise_takes_the_no_dealer_and_model_id_options(tmp_path):
    """Two servers with no dealer make their own randomness, and loopback lanes get the model
    under the id the jobs ask for."""
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(data.astronaut()[200:216, 200:216]).save(folder / "tiny.png")
    spec = TaskSpec("denoise", {"sigma": 25.0, "no_dealer": True, "model_id": "mine"})
    summary = run_batch(spec, folder, tmp_path / "out")
    assert (summary.done, summary.failures) == (1, []) and set(summary.bytes_sent) == {"party-0", "party-1"}


def test_a_dask_scheduler_of_ones_own_runs_the_jobs(tmp_path):
    from dask.distributed import LocalCluster

    _photos(tmp_path / "in", 2)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as dask:
        summary = run_batch(BLUR, tmp_path / "in", tmp_path / "out", lanes=2, scheduler=dask.scheduler_address)
    assert (summary.done, summary.failures, summary.lanes) == (2, [], 2)


def test_a_rerun_skips_what_an_interrupted_batch_finished(tmp_path):
    names = _photos(tmp_path / "in", 4)

    def interrupt(record, finished, total):
        if finished == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch(BLUR, tmp_path / "in", tmp_path / "out", on_record=interrupt)
    finished = [json.loads(line)["input"] for line in (tmp_path / "out" / MANIFEST).read_text().splitlines()]
    assert len(finished) == 2
    stamps = {n: (tmp_path / "out" / n).stat().st_mtime_ns for n in finished}
    again = run_batch(BLUR, tmp_path / "in", tmp_path / "out")
    assert (again.skipped, again.done, again.failures) == (2, 2, [])
    assert {r["input"] for r in again.records} == set(names) - set(finished)
    assert all((tmp_path / "out" / n).stat().st_mtime_ns == stamps[n] for n in finished)  # not redone
    (tmp_path / "out" / names[0]).unlink()  # a lost output is made again
    third = run_batch(BLUR, tmp_path / "in", tmp_path / "out")
    assert (third.skipped, third.done) == (3, 1)


def test_an_unreadable_file_fails_alone_with_one_line(tmp_path, capsys):
    _photos(tmp_path / "in", 2)
    (tmp_path / "in" / "broken.png").write_bytes(b"not a png at all")
    args = ["batch", "filter", str(tmp_path / "in"), str(tmp_path / "out"), "--kernel", "gaussian:1", "--json"]
    code = cli.main(args)
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and (out["done"], out["failed"]) == (2, 1)
    (failure,) = out["failures"]
    assert failure["input"] == "broken.png" and "\n" not in failure["error"] and failure["error"]


def test_empty_folder_and_bad_options_are_one_clear_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    assert cli.main(["batch", "filter", str(tmp_path / "empty"), str(tmp_path / "out"), "--kernel", "box:3"]) == 2
    assert "no images under" in capsys.readouterr().err
    _photos(tmp_path / "in", 1)
    assert cli.main(["batch", "filter", str(tmp_path / "in"), str(tmp_path / "out"), "--kernel", "blur"]) == 2
    assert cli.main(["batch", "denoise", str(tmp_path / "in"), str(tmp_path / "out"), "--sigma", "500"]) == 2
    err = capsys.readouterr().err
    assert err.count("safelight: error:") == 2
    with pytest.raises(InputError):
        spec = TaskSpec("watermark", {"key": str(tmp_path / "missing.key"), "message": "0" * 16})
        run_batch(spec, tmp_path / "in", tmp_path / "o")


# ---- server pools: lanes named in cluster.toml ----------------------------------------------------


def _free_ports(count: int, host: str = "127.0.0.1") -> int:
    """A port p with p .. p + count - 1 free (for a pool's consecutive ports)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind((host, 0))
            base = s.getsockname()[1]
        if base + count >= 65536:
            continue
        try:
            for k in range(count):
                with socket.socket() as probe:
                    probe.bind((host, base + k))
            return base
        except OSError:
            continue
    raise RuntimeError("no run of free ports")


class Pool:
    """``safelight serve --lane L`` processes for every party and lane of a cluster.toml."""

    def __init__(self, folder: Path, host: str = "127.0.0.1", lanes: int = 2, launch: list[str] | None = None):
        self.folder, self.launch, self.processes = folder, launch or [], {}
        create_cluster_certs(folder / "certs", 2)
        ports = [_free_ports(lanes, host) if not launch else 7400, 0]
        ports[1] = ports[0] + lanes if not launch else 7500
        text = '[cluster]\ncerts = "certs"\ntimeout = 10.0\n'
        for port in ports:
            text += f'\n[[party]]\nhost = "{host}"\nport = {port}\nlanes = {lanes}\n'
        self.config = folder / "cluster.toml"
        self.config.write_text(text)
        self.lanes = lanes

    def start(self, party: int, lane: int) -> None:
        log = self.folder / f"party{party}-lane{lane}.log"
        with open(log, "wb") as fh:
            proc = subprocess.Popen(
                [*self.launch, sys.executable, "-m", "safelight", "serve", "--config", str(self.config)]
                + ["--party", str(party), "--lane", str(lane)],
                stdout=fh,
                stderr=subprocess.STDOUT,
            )
        self.processes[(party, lane)] = proc
        wait_ready(proc, log, f"party {party} lane {lane}", time.monotonic() + 60)

    def start_all(self) -> Pool:
        for lane in range(self.lanes):
            for party in range(2):
                self.start(party, lane)
        return self

    def stop(self, party: int, lane: int) -> None:
        proc = self.processes.pop((party, lane))
        proc.terminate()
        proc.wait(timeout=30)

    def close(self) -> None:
        for key in list(self.processes):
            self.stop(*key)


def test_cluster_toml_lanes_and_serve_lane(tmp_path):
    pool = Pool(tmp_path)
    config = ClusterConfig.load(pool.config)
    assert config.lanes == 2 and config.lane(1).parties[0].port == config.parties[0].port + 1
    two_hosts = tmp_path / "two-hosts.toml"
    two_hosts.write_text(
        '[cluster]\ncerts = "certs"\n[[party]]\nhosts = ["10.0.0.5", "10.0.0.8"]\nport = 7400\nlanes = 2\n'
        '[[party]]\nhosts = ["10.0.0.6", "10.0.0.9"]\nport = 7400\nlanes = 2\n'
    )
    wide = ClusterConfig.load(two_hosts)
    assert wide.lanes == 4 and [wide.lane(i).parties[1].host for i in range(4)] == ["10.0.0.6"] * 2 + ["10.0.0.9"] * 2
    uneven = tmp_path / "uneven.toml"
    uneven.write_text(two_hosts.read_text().replace('hosts = ["10.0.0.6", "10.0.0.9"]', 'host = "10.0.0.6"'))
    with pytest.raises(Exception, match="same number of lanes"):
        ClusterConfig.load(uneven)
    assert cli.main(["serve", "--config", str(pool.config), "--party", "0"]) == 2  # which lane?


def test_a_dead_lane_fails_only_its_images_and_a_rerun_completes_them(tmp_path, capsys):
    names = _photos(tmp_path / "in", 4)
    pool = Pool(tmp_path / "pool").start_all()
    try:
        pool.stop(1, 1)  # lane 1 loses a server
        code = cli.main(
            ["batch", "filter", str(tmp_path / "in"), str(tmp_path / "out"), "--kernel", "gaussian:1"]
            + ["--cluster", str(pool.config), "--json"]
        )
        out = json.loads(capsys.readouterr().out)
        # lane 1 held at most PREFETCH images when its first job failed; lane 0 did the rest
        assert code == 1 and out["lanes"] == 2 and 1 <= out["failed"] <= PREFETCH
        assert out["done"] == 4 - out["failed"]
        assert all("lane 1" in failure["error"] for failure in out["failures"])
        pool.start(1, 1)  # back: the rerun completes the failed images only
        again = run_batch(BLUR, tmp_path / "in", tmp_path / "out", cluster=str(pool.config))
        assert (again.skipped, again.done, again.failures) == (out["done"], out["failed"], [])
        assert all((tmp_path / "out" / n).exists() for n in names)
    finally:
        pool.close()


# ---- the remote-lane path across network namespaces ---------------------------------------------


def _namespace_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "no ip command (iproute2)"
    return None


@pytest.mark.skipif(_namespace_unavailable() is not None, reason=str(_namespace_unavailable()))
def test_lanes_in_another_network_namespace(tmp_path):
    """The servers in a namespace of their own (another host, as far as the network goes),
    reached over a veth pair; the client, the Dask workers and the batch stay here."""
    tag = uuid.uuid4().hex[:6]
    ns, outer, inner = f"slb-{tag}", f"slbo{tag}", f"slbi{tag}"
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
    try:
        run("ip", "netns", "add", ns)
        run("ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
        run("ip", "link", "set", inner, "netns", ns)
        run("ip", "addr", "add", "10.79.0.1/24", "dev", outer)
        run("ip", "link", "set", outer, "up")
        run("ip", "netns", "exec", ns, "ip", "addr", "add", "10.79.0.2/24", "dev", inner)
        run("ip", "netns", "exec", ns, "ip", "link", "set", inner, "up")
        run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
    except subprocess.CalledProcessError as exc:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        pytest.skip(f"cannot make a network namespace here: {exc.stderr.decode().strip()}")
    pool = None
    try:
        pool = Pool(tmp_path / "pool", host="10.79.0.2", launch=["ip", "netns", "exec", ns]).start_all()
        names = _photos(tmp_path / "in", 3)
        summary = run_batch(BLUR, tmp_path / "in", tmp_path / "out", cluster=str(pool.config))
        assert (summary.done, summary.failures, summary.lanes) == (3, [], 2)
        assert {r["lane"] for r in summary.records} <= {0, 1}
        for name in names:
            batch = read_image(tmp_path / "out" / name).pixels.astype(int)
            assert np.abs(batch - _single_job(tmp_path / "in" / name).astype(int)).max() <= 1
    finally:
        if pool is not None:
            pool.close()
        subprocess.run(["ip", "link", "del", outer], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
