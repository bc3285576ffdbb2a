"""Cluster configuration (cluster.toml): where each party listens and which certificates to use.

Example::

    [cluster]
    certs = "certs"        # relative to this file
    timeout = 30.0         # seconds before a silent peer is declared dead
    records = "sealed"     # or "tls": see safelight.runtime.sealed
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
"""

from __future__ import annotations

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

    @property
    def n(self) -> int:
        return len(self.parties)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ClusterConfig":
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
        def address(entry: object, what: str) -> PartyAddress:
            try:
                host, port = str(entry["host"]), int(entry["port"])  # type: ignore[index]
            except (KeyError, TypeError, ValueError):
                raise ConfigError(f"{path}: {what} needs a host (string) and a port (integer)") from None
            if not 0 < port < 65536:
                raise ConfigError(f"{path}: {what} port {port} is not a TCP port")
            return PartyAddress(host, port)

        parties = [address(entry, f"party {i}") for i, entry in enumerate(entries)]
        dealer = address(data["dealer"], "dealer") if "dealer" in data else None
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
        return cls(tuple(parties), certs, timeout, path, dealer, records, store)

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
        for party in self.parties:
            lines += ["[[party]]", f'host = "{party.host}"', f"port = {party.port}", ""]
        if self.dealer is not None:
            lines += ["[dealer]", f'host = "{self.dealer.host}"', f"port = {self.dealer.port}", ""]
        path.write_text("\n".join(lines))
        return path
