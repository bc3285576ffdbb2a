"""Cluster configuration (cluster.toml): where each party listens and which certificates to use.

Example::

    [cluster]
    certs = "certs"        # relative to this file
    timeout = 30.0         # seconds before a silent peer is declared dead
    records = "sealed"     # or "tls": see safelight.net.sealed
    store = "models"       # optional: servers keep uploaded model shares here (else in memory)

    [[party]]
    host = "10.0.0.5"
    port = 7400

    [[party]]
    host = "10.0.0.6"
    port = 7400

    [dealer]               # optional: a non-colluding process that deals triples
    host = "10.0.0.7"
    port = 7400

    [limits]               # optional: how much a server lets clients take (defaults shown)
    max_connections = 128  # open connections; more are closed at once
    max_handshakes = 16    # connections not yet authenticated
    handshake_timeout = 10.0   # seconds to finish TLS and send the first message
    max_control_mib = 4    # largest JSON message (a Program, a request) a server reads
    memory_budget_mib = 0  # jobs admitted at once need at most this much; 0: half the RAM
    max_jobs = 4           # jobs run at once; more wait (up to the timeout), then are refused

Server pools (lanes, for ``safelight batch``): a ``[[party]]`` (and the ``[dealer]``) may
list ``hosts = ["10.0.0.5", "10.0.0.8"]`` instead of one ``host``, and ``lanes = N``: N
``safelight serve --lane L`` processes on consecutive ports from ``port`` on every host.
Lane L of the cluster is the L-th address of every party (hosts in order, then ports);
every party and the dealer must offer the same number of lanes. Lane 0 is what a single
job uses.

A port of 0 (only for servers spawned by ``Cluster.local``) means "bind any free
port": the spawner reads the bound port from the server and tells every server
where its peers are.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from ..errors import ConfigError

DEFAULT_TIMEOUT = 30.0
MIB = 1 << 20


def physical_memory() -> int:
    """Bytes of RAM on this machine (0 when the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


@dataclass(frozen=True)
class ServerLimits:
    """What one server grants its clients (see the ``[limits]`` table above)."""

    max_connections: int = 128
    max_handshakes: int = 16
    handshake_timeout: float = 10.0
    max_control_bytes: int = 4 * MIB
    memory_budget: int = 0  # bytes; 0: half the physical memory
    max_jobs: int = 4

    @property
    def memory_bytes(self) -> int:
        return self.memory_budget or max(physical_memory() // 2, 1 << 30)

    @classmethod
    def from_toml(cls, table: object, where: str) -> ServerLimits:
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: [limits] must be a table")
        unknown = set(table) - {
            "max_connections",
            "max_handshakes",
            "handshake_timeout",
            "max_control_mib",
            "memory_budget_mib",
            "max_jobs",
        }
        if unknown:
            raise ConfigError(f"{where}: unknown [limits] keys {sorted(unknown)}")
        base = cls()

        def number(key: str, default: float, kind: type, minimum: float) -> float:
            value = table.get(key, default)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or kind is int
                and value != int(value)
                or value < minimum
            ):
                raise ConfigError(f"{where}: limits.{key} must be a number >= {minimum:g}, got {value!r}")
            return kind(value)

        return cls(
            max_connections=number("max_connections", base.max_connections, int, 1),
            max_handshakes=number("max_handshakes", base.max_handshakes, int, 1),
            handshake_timeout=number("handshake_timeout", base.handshake_timeout, float, 0.1),
            max_control_bytes=int(number("max_control_mib", base.max_control_bytes / MIB, float, 0.01) * MIB),
            memory_budget=int(number("memory_budget_mib", 0, float, 0) * MIB),
            max_jobs=number("max_jobs", base.max_jobs, int, 1),
        )

    def to_toml(self) -> list[str]:
        return [
            "[limits]",
            f"max_connections = {self.max_connections}",
            f"max_handshakes = {self.max_handshakes}",
            f"handshake_timeout = {float(self.handshake_timeout)}",
            f"max_control_mib = {self.max_control_bytes / MIB}",
            f"memory_budget_mib = {self.memory_budget / MIB}",
            f"max_jobs = {self.max_jobs}",
            "",
        ]


@dataclass(frozen=True)
class PartyAddress:
    host: str
    port: int


@dataclass(frozen=True)
class ClusterConfig:
    """Addresses of the parties, the certificate directory and the peer timeout."""

    parties: tuple[PartyAddress, ...]
    certs: Path
    timeout: float = DEFAULT_TIMEOUT
    path: Path | None = None
    dealer: PartyAddress | None = None
    records: str = "sealed"
    store: Path | None = None  # where servers keep uploaded model shares (memory only when unset)
    limits: ServerLimits = ServerLimits()
    # every lane's address of each party (and of the dealer), when a server pool serves
    # several lanes; empty for one lane (``parties`` and ``dealer`` are lane 0)
    pools: tuple[tuple[PartyAddress, ...], ...] = ()
    dealer_pool: tuple[PartyAddress, ...] = ()

    @property
    def n(self) -> int:
        return len(self.parties)

    @property
    def lanes(self) -> int:
        """How many independent server sets (lanes) this cluster offers."""
        return len(self.pools[0]) if self.pools else 1

    def lane(self, index: int) -> ClusterConfig:
        """The one-lane configuration of lane ``index``: its address of every party and dealer."""
        if not 0 <= index < self.lanes:
            raise ConfigError(f"lane {index} does not exist: {self.path or 'the cluster'} has {self.lanes} lane(s)")
        if not self.pools:
            return self
        return dataclasses.replace(
            self,
            parties=tuple(pool[index] for pool in self.pools),
            dealer=self.dealer_pool[index] if self.dealer_pool else None,
            pools=(),
            dealer_pool=(),
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> ClusterConfig:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"cluster config {path} does not exist") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cluster config {path} is not valid TOML: {exc}") from None
        section = data.get("cluster", {})
        entries = data.get("party", [])
        if not isinstance(entries, list) or len(entries) < 1:
            raise ConfigError(f"{path}: add one [[party]] table per server (host, port)")

        def pool(entry: object, what: str) -> tuple[PartyAddress, ...]:
            """Every lane's address: ``lanes`` consecutive ports on each of ``hosts`` (or ``host``)."""
            try:
                hosts = entry["hosts"] if "hosts" in entry else [entry["host"]]  # type: ignore[index,operator]
                port, lanes = int(entry["port"]), entry.get("lanes", 1)  # type: ignore[index,union-attr]
            except (KeyError, TypeError, ValueError, AttributeError):
                raise ConfigError(f"{path}: {what} needs a host (string) and a port (integer)") from None
            if not isinstance(hosts, list) or not hosts or not all(isinstance(h, str) and h for h in hosts):
                raise ConfigError(f"{path}: {what} hosts must be a list of host names")
            if isinstance(lanes, bool) or not isinstance(lanes, int) or lanes < 1:
                raise ConfigError(f"{path}: {what} lanes must be a whole number >= 1, got {lanes!r}")
            if not 0 <= port or port + lanes - 1 >= 65536:
                raise ConfigError(f"{path}: {what} port {port} is not a TCP port")
            return tuple(PartyAddress(host, port + k) for host in hosts for k in range(lanes))

        pools = [pool(entry, f"party {i}") for i, entry in enumerate(entries)]
        dealer_pool = pool(data["dealer"], "dealer") if "dealer" in data else ()
        sizes = {len(p) for p in pools} | ({len(dealer_pool)} if dealer_pool else set())
        if len(sizes) != 1:
            raise ConfigError(
                f"{path}: every party and the dealer must offer the same number of lanes (hosts x lanes), "
                f"got {[len(p) for p in pools]}{f' and {len(dealer_pool)} for the dealer' if dealer_pool else ''}"
            )
        parties = [p[0] for p in pools]
        dealer = dealer_pool[0] if dealer_pool else None
        if sizes == {1}:
            pools, dealer_pool = [], ()
        certs = Path(section.get("certs", "certs"))
        if not certs.is_absolute():
            certs = path.parent / certs
        try:
            timeout = float(section.get("timeout", DEFAULT_TIMEOUT))
        except (TypeError, ValueError):
            raise ConfigError(f"{path}: cluster.timeout must be a number of seconds") from None
        if timeout <= 0:
            raise ConfigError(f"{path}: cluster.timeout must be positive")
        records = str(section.get("records", "sealed"))
        if records not in ("sealed", "tls"):
            raise ConfigError(f'{path}: cluster.records must be "sealed" or "tls", got {records!r}')
        store = section.get("store")
        if store is not None:
            store = Path(str(store))
            if not store.is_absolute():
                store = path.parent / store
        limits = ServerLimits.from_toml(data.get("limits", {}), str(path))
        return cls(
            tuple(parties), certs, timeout, path, dealer, records, store, limits, tuple(pools), tuple(dealer_pool)
        )

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        lines = [
            "[cluster]",
            f'certs = "{self.certs.as_posix()}"',
            f"timeout = {float(self.timeout)}",
            f'records = "{self.records}"',
            *([f'store = "{self.store.as_posix()}"'] if self.store is not None else []),
            "",
        ]
        if self.pools:  # one lane per cluster file: what each lane's servers and clients read
            raise ConfigError("save one lane at a time: config.lane(i).save(path)")
        for party in self.parties:
            lines += ["[[party]]", f'host = "{party.host}"', f"port = {party.port}", ""]
        if self.dealer is not None:
            lines += ["[dealer]", f'host = "{self.dealer.host}"', f"port = {self.dealer.port}", ""]
        if self.limits != ServerLimits():
            lines += self.limits.to_toml()
        path.write_text("\n".join(lines))
        return path
