"""The store's embedded default: a store directory on this machine whose two servers every
command starts on loopback and stops when it is done.

The directory (``~/.safelight/store`` unless told otherwise) holds what ``safelight store
init`` makes and later commands keep: the certificates, the owner keys, the key server's
OPRF key, ``store.toml`` and the data (blobs and the SQLite index; the index may live in
PostgreSQL instead, ``index`` in store.toml). A command spawns the
storage server and the key server as real processes (``safelight serve --role store|keyserver``,
mutual TLS with the directory's certificates, ports picked by the system), talks to them
like to remote ones, and stops them. One command at a time holds a directory (a lock file);
a second one waits for it.

The same directory serves other machines too: ``safelight serve --role store --config
DIR/store.toml`` (and ``--role keyserver``), then ``--config`` on the clients.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ..errors import ConfigError, InputError, PeerUnavailableError
from ..runtime.cluster import START_TIMEOUT, wait_ready
from .backends.base import DEFAULT_SCHEMA, URL_SCHEMES
from .service import KEYSERVER_NAME, STORE_NAME, StoreConfig

DEFAULT_OWNER = "owner"
CONFIG_NAME = "store.toml"
LOCK_TIMEOUT = 300.0
_OWNER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def default_store_dir() -> Path:
    """``~/.safelight/store``."""
    return Path.home() / ".safelight" / "store"


def check_owner_name(name: str) -> str:
    """An owner name is a certificate name and a file name: letters, digits, ``_.-``."""
    if not _OWNER_NAME.fullmatch(name) or name in (STORE_NAME, KEYSERVER_NAME) or name.startswith("party-"):
        raise InputError(f"owner name {name!r}: use 1-64 letters, digits, '_', '.', '-' (not a server's name)")
    return name


def init_store(
    root: str | os.PathLike,
    owners: Sequence[str] = (DEFAULT_OWNER,),
    host: str = "127.0.0.1",
    port: int = 7500,
    index: str | None = None,
    index_schema: str = DEFAULT_SCHEMA,
) -> Path:
    """Create a store directory: a CA with certificates for the two servers and each owner,
    ``store.toml`` (for serving it remotely on ``host:port`` and ``port + 1``; with port 0
    each server binds a free port when it starts and prints it, see :func:`start_servers`)
    and one owner key per owner. ``index``: a PostgreSQL URL for the index (schema
    ``index_schema``) instead of the SQLite file. Returns the path of ``store.toml``;
    refuses a directory that holds a store."""
    from ..net.certs import create_cluster_certs
    from .client import create_owner_key

    if not 0 <= port <= 65534:
        raise InputError(
            f"port {port}: use 1-65534 (the key server takes the next one), or 0 for ports "
            "the system picks when the servers start"
        )
    if index is not None and not index.startswith(URL_SCHEMES):
        raise InputError(f"--index takes a postgresql:// URL, not {index.split(':')[0]!r}...")
    root = Path(root)
    owners = tuple(dict.fromkeys(check_owner_name(o) for o in owners))
    if not owners:
        raise InputError("a store needs at least one owner")
    if (root / CONFIG_NAME).exists():
        raise ConfigError(f"{root / CONFIG_NAME} exists: this directory already holds a store")
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)  # owner keys and the key server's key live here
    create_cluster_certs(root / "certs", 1, clients=owners, extra_names=(STORE_NAME, KEYSERVER_NAME))
    for owner in owners:
        create_owner_key(root / f"{owner}.key")
    # store.toml last: its presence means the directory is complete
    return StoreConfig(
        Path("certs"),
        host,
        port,
        Path("store-data"),
        host,
        port + 1 if port else 0,
        Path("keyserver.key"),
        owners=owners,
        index=index,
        index_schema=index_schema,
    ).save(root / CONFIG_NAME)


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    """One command at a time per store directory (a second server process on the same data
    would take the first one's in-flight upload for an orphan file)."""
    fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline, told = time.monotonic() + LOCK_TIMEOUT, False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ConfigError(
                        f"{root} is still in use by another safelight command after "
                        f"{LOCK_TIMEOUT:g} s; try again when it has finished"
                    ) from None
                if not told:
                    print(f"safelight: waiting for another command using {root}", file=sys.stderr)
                    told = True
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)  # releases the lock


def _spawn(role: str, config_path: Path, log_path: Path) -> subprocess.Popen:
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "safelight",
                "serve",
                "--role",
                role,
                "--config",
                str(config_path),
                "--exit-with-parent",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )


def _wait_ready(role: str, proc: subprocess.Popen, log_path: Path, deadline: float) -> int:
    """The port from the server's ``READY <role> <port>`` line. The warnings it logged
    before that line (blob files quarantined at start, ...) are repeated on stderr, since
    its log is not kept; if it refused to start with one error line (a corrupt index, ...),
    that line is the error raised here."""
    try:
        found = wait_ready(proc, log_path, f"the {role} server", deadline, rb"READY %s (\d+)\n" % role.encode())
    except PeerUnavailableError:
        refusal = [
            line for line in log_path.read_text(errors="replace").splitlines() if line.startswith("safelight: error: ")
        ]
        if proc.poll() is not None and refusal:
            raise ConfigError(f"the {role} server did not start: {refusal[-1][len('safelight: error: ') :]}") from None
        raise
    for line in log_path.read_bytes()[: found.start()].decode(errors="replace").splitlines():
        for level in (" WARNING ", " ERROR "):
            if level in line:
                print(f"safelight: {role} server: {line.split(level, 1)[1]}", file=sys.stderr)
    return int(found.group(1))


def start_servers(
    config_path: str | os.PathLike, log_dir: str | os.PathLike
) -> tuple[list[subprocess.Popen], int, int]:
    """Spawn the storage server and the key server of ``config_path`` (``safelight serve
    --role store|keyserver``; they exit if this process dies) with their logs in
    ``log_dir``, and wait until both listen. Returns the processes and the ports they bound
    (read from their ``READY`` lines: with port 0 in the config the system picks free ones,
    so nothing reserves a port in advance). On failure the servers are stopped."""
    log_dir = Path(log_dir)
    roles = (STORE_NAME, KEYSERVER_NAME)
    processes: list[subprocess.Popen] = []
    try:
        for role in roles:
            processes.append(_spawn(role, Path(config_path), log_dir / f"{role}.log"))
        deadline = time.monotonic() + START_TIMEOUT
        store_port, key_port = (
            _wait_ready(role, proc, log_dir / f"{role}.log", deadline) for role, proc in zip(roles, processes)
        )
    except BaseException:
        stop_servers(processes)
        raise
    return processes, store_port, key_port


def stop_servers(processes: list[subprocess.Popen]) -> None:
    """Stop servers from :func:`start_servers` (SIGTERM: the store closes its index)."""
    for proc in processes:
        if proc.poll() is None:
            proc.terminate()
    for proc in processes:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def local_store(root: str | os.PathLike | None = None) -> Iterator[StoreConfig]:
    """Run a store directory's two servers on loopback for the duration of the block.

    Yields the :class:`StoreConfig` a :class:`~safelight.store.client.StoreClient` connects
    with. The servers are separate processes with the directory's certificates; they exit
    at the end of the block, or on their own if this process dies.
    """
    root = (Path(root) if root is not None else default_store_dir()).absolute()
    config_path = root / CONFIG_NAME
    if not config_path.is_file():
        raise ConfigError(
            f"no store in {root} (create one with: safelight store init"
            + ("" if root == default_store_dir().absolute() else f" --store-dir {root}")
            + ")"
        )
    saved = StoreConfig.load(config_path)
    with _locked(root):
        workdir = Path(tempfile.mkdtemp(prefix="safelight-store-"))
        processes: list[subprocess.Popen] = []
        try:
            loopback = dataclasses.replace(
                saved, store_host="127.0.0.1", store_port=0, key_host="127.0.0.1", key_port=0
            )
            processes, store_port, key_port = start_servers(loopback.save(workdir / CONFIG_NAME), workdir)
            yield dataclasses.replace(loopback, store_port=store_port, key_port=key_port)
        finally:
            stop_servers(processes)
            shutil.rmtree(workdir, ignore_errors=True)
