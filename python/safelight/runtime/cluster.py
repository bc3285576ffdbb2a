"""Clusters: the embedded default (servers spawned on loopback) and remote ones."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..errors import ConfigError, PeerUnavailableError
from ..net.certs import CLIENT_NAME, DEALER_NAME, Identity, create_cluster_certs
from ..net.config import DEFAULT_TIMEOUT, ClusterConfig, PartyAddress, ServerLimits
from ..program.program import Program
from ..sharing import SCHEMES, Encoded, check_parties
from .client import JobResult, ProgressCallback, StoredTensor, drop_model, run_job, upload_model

START_TIMEOUT = 60.0


def wait_ready(
    proc: subprocess.Popen, log_path: Path, what: str, deadline: float, ready: bytes = rb"READY "
) -> re.Match:
    """Wait for a spawned server's READY line (printed once it listens, so no probe
    connection is needed); a clear error if it exits first or misses ``deadline``."""
    while True:
        found = re.search(ready, log_path.read_bytes()[:4096])
        if found:
            return found
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise PeerUnavailableError(f"{what} exited during start-up:\n{tail}")
        if time.monotonic() > deadline:
            raise PeerUnavailableError(f"{what} did not start within {START_TIMEOUT:g} s")
        time.sleep(0.02)


OWNER_FILE = "owner.pid"
WORKDIR_PREFIX = "safelight-cluster-"
ORPHAN_AGE = 60.0  # seconds after which a folder without an owner file is stale


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_workdirs(root: Path | None = None) -> list[Path]:
    """Delete the folders of local clusters whose owner process is gone (a client that was
    killed before it could clean up). Returns what was removed."""
    root = Path(root or tempfile.gettempdir())
    removed = []
    for folder in root.glob(WORKDIR_PREFIX + "*"):
        try:
            pid = int((folder / OWNER_FILE).read_text().strip())
            stale = not _alive(pid)
        except FileNotFoundError:
            try:
                stale = time.time() - folder.stat().st_mtime > ORPHAN_AGE
            except OSError:
                continue
        except (OSError, ValueError):
            continue
        if stale:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


class Cluster:
    """A set of servers and the client identity used to talk to them.

    Use :meth:`local` for the embedded default or :meth:`from_config` for a
    remote cluster; both run jobs with :meth:`run`.
    """

    def __init__(
        self,
        config: ClusterConfig,
        identity: Identity,
        processes: list[subprocess.Popen] | None = None,
        workdir: Path | None = None,
        scheme: str = "additive",
    ) -> None:
        if scheme not in SCHEMES or (scheme == "rss3" and config.n != 3):
            raise ConfigError(f"scheme must be 'additive' or, on 3 servers, 'rss3'; got {scheme!r} on {config.n}")
        self.scheme = scheme  # how the tasks share their inputs on this cluster
        self.config = config
        self.identity = identity
        self.processes = processes or []
        self.workdir = workdir
        self.closed = False

    @property
    def parties(self) -> int:
        return self.config.n

    @classmethod
    def from_config(cls, path: str | os.PathLike, client: str = CLIENT_NAME, scheme: str = "additive") -> Cluster:
        """A remote cluster described by ``cluster.toml`` (servers already running); ``scheme``
        as for :meth:`local`."""
        config = ClusterConfig.load(path)
        return cls(config, Identity.from_dir(config.certs, client), scheme=scheme)

    @property
    def has_dealer(self) -> bool:
        return self.config.dealer is not None

    @classmethod
    def local(
        cls,
        parties: int = 2,
        timeout: float = DEFAULT_TIMEOUT,
        dealer: bool = False,
        records: str = "sealed",
        store: str | os.PathLike | None = None,
        limits: ServerLimits | None = None,
        scheme: str = "additive",
        hosts: Sequence[str] | None = None,
        launch: Sequence[Sequence[str]] | None = None,
    ) -> Cluster:
        """Start ``parties`` server processes on loopback with throwaway certificates
        (2 or 3 for secret sharing; 1 for a single homomorphic-encryption server).

        With ``dealer=True`` a dealer process is started too: a helper you
        choose to trust not to collude with any server, which deals the
        correlated randomness of interactive ops. Use as a context manager;
        closing stops every process and deletes the certificates. The servers
        also exit on their own if this process dies. ``records`` picks how bytes
        travel after the TLS 1.3 handshake (see :mod:`safelight.net.sealed`).
        ``store``: a directory where the servers keep uploaded model shares (in memory
        when None). ``limits``: what each server grants its clients. ``scheme``: how the
        tasks run on this cluster: ``"additive"`` (n-out-of-n shares, correlated randomness
        from a dealer or made by the servers) or ``"rss3"`` (three servers, replicated
        shares, honest majority: no dealer and no offline phase).

        ``hosts`` and ``launch`` (benchmarks on a shaped link, :mod:`safelight.bench.link`):
        the address each process binds instead of 127.0.0.1, and a command prefix each is
        started under (``ip netns exec NAME``), the parties in order, then the dealer.

        Every server binds a free port of its own choosing and reports it (no port is
        reserved in advance, so nothing can take it in between); this process then tells
        each server where the others listen. The throwaway folder records its owner's pid:
        folders of owners that were killed are removed by the next ``local``.
        """
        if parties != 1:  # one server: homomorphic-encryption programs only
            check_parties(parties)
        remove_stale_workdirs()
        workdir = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX))
        try:
            (workdir / OWNER_FILE).write_text(str(os.getpid()))
            create_cluster_certs(workdir / "certs", parties, extra_names=(DEALER_NAME,) if dealer else ())
            processes = parties + (1 if dealer else 0)
            hosts = list(hosts) if hosts is not None else ["127.0.0.1"] * processes
            launch = [list(prefix) for prefix in launch] if launch is not None else [[]] * processes
            if len(hosts) != processes or len(launch) != processes:
                raise ConfigError(f"hosts and launch need one entry per process ({processes})")
            config = ClusterConfig(
                tuple(PartyAddress(host, 0) for host in hosts[:parties]),
                workdir / "certs",
                timeout,
                dealer=PartyAddress(hosts[parties], 0) if dealer else None,
                records=records,
                store=None if store is None else Path(store).absolute(),
                limits=limits or ServerLimits(),
            )
            cluster = cls(config, Identity.from_dir(config.certs, CLIENT_NAME), [], workdir, scheme)
            try:
                cluster._spawn(config.save(workdir / "spawn.toml"), launch)
            except BaseException:
                cluster._stop_processes()
                raise
            return cluster
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise

    def _spawn(self, config_path: Path, launch: list[list[str]]) -> None:
        """Start the servers on port 0 (each under its ``launch`` prefix), read their ports,
        tell each where the others are."""
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        roles = [["--party", str(p)] for p in range(self.config.n)]
        if self.config.dealer is not None:
            roles.append(["--role", "dealer"])
        for index, role in enumerate(roles):
            log = open(self._log_path(index), "wb")
            self.processes.append(
                subprocess.Popen(
                    [
                        *launch[index],
                        sys.executable,
                        "-m",
                        "safelight",
                        "serve",
                        "--config",
                        str(config_path),
                        *role,
                        "--peers-from-stdin",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.PIPE,
                    env=env,
                )
            )
            log.close()
        deadline = time.monotonic() + START_TIMEOUT
        addresses = []
        for index, proc in enumerate(self.processes):
            name = f"party-{index}" if index < self.config.n else DEALER_NAME
            found = wait_ready(proc, self._log_path(index), f"server {name}", deadline, rb"READY \S+ ([^\s:]+):(\d+)")
            addresses.append(PartyAddress(found.group(1).decode(), int(found.group(2))))
        dealer = addresses[self.config.n] if self.config.dealer is not None else None
        self.config = dataclasses.replace(self.config, parties=tuple(addresses[: self.config.n]), dealer=dealer)
        self.config.save(self.workdir / "cluster.toml")  # for commands pointed at this cluster
        peers = json.dumps(
            {
                "parties": [[a.host, a.port] for a in self.config.parties],
                "dealer": None if dealer is None else [dealer.host, dealer.port],
            }
        )
        for proc in self.processes:
            assert proc.stdin is not None
            proc.stdin.write(f"PEERS {peers}\n".encode())
            proc.stdin.flush()  # the pipe stays open: its end tells the server we are gone

    def run(
        self,
        program: Program,
        inputs: Mapping[str, Encoded | StoredTensor],
        on_progress: ProgressCallback | None = None,
        triples: str | None = None,
        ots: str = "iknp",
        preprocess: str = "auto",
        keep: Mapping[str, str] | None = None,
        comparisons: str = "auto",
    ) -> JobResult:
        """Run a Program on encoded inputs; see :func:`safelight.runtime.client.run_job`."""
        if self.closed:
            raise ConfigError("this cluster has been closed; start a new one")
        return run_job(
            self.config, self.identity, program, inputs, on_progress, triples, ots, preprocess, keep, comparisons
        )

    def upload_model(self, model_id: str, tensors: Mapping[str, Encoded]) -> dict[str, StoredTensor]:
        """Store a model's shares on the servers; see :func:`safelight.runtime.client.upload_model`."""
        if self.closed:
            raise ConfigError("this cluster has been closed; start a new one")
        return upload_model(self.config, self.identity, model_id, tensors)

    def drop_model(self, model_id: str) -> bool:
        """Make every server forget a stored model; see :func:`safelight.runtime.client.drop_model`."""
        if self.closed:
            raise ConfigError("this cluster has been closed; start a new one")
        return drop_model(self.config, self.identity, model_id)

    def _log_path(self, index: int) -> Path:
        assert self.workdir is not None
        name = f"party-{index}" if index < self.config.n else DEALER_NAME
        return self.workdir / f"{name}.log"

    def server_log(self, party: int | str) -> str:
        """The captured log of a local server, by party index or "dealer" (empty for remote clusters)."""
        if self.workdir is None:
            return ""
        path = self._log_path(self.config.n if party == DEALER_NAME else int(party))
        return path.read_text(errors="replace") if path.exists() else ""

    def _stop_processes(self) -> None:
        for proc in self.processes:
            if proc.stdin is not None:
                try:
                    proc.stdin.close()
                except OSError:
                    pass
            if proc.poll() is None:
                proc.terminate()
        for proc in self.processes:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.processes = []

    def close(self) -> None:
        """Stop local servers and delete their throwaway certificates."""
        self.closed = True
        self._stop_processes()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "processes", None):
            self.close()
