"""The randomness-source interface and registry (see the package docstring).

One class per source, one file each, registered by name (``Cluster.run(...,
triples=name)``). Every source produces the same :class:`~..preprocessing.Material` for
the same :class:`~..preprocessing.Plan`, so the online phase does not depend on it. The
client asks a source what to send each server (:meth:`RandomnessSource.submit`); each
server asks it for its material (:meth:`RandomnessSource.material`). Neither the client
nor the server names a source anywhere else: adding one is adding a file here.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ...errors import InputError, ProtocolError
from ..preprocessing import Material, Plan

Shape = tuple[int, ...]


class RandomnessSource:
    """The interface every source implements (client side, then server side)."""

    name: ClassVar[str]
    who_deals: ClassVar[str]
    note: ClassVar[str]
    third_party: ClassVar[bool] = False  # a helper outside the servers and the client
    uses_dealer: ClassVar[bool] = False  # the client submits the job to the cluster's dealer process too
    client_deals: ClassVar[bool] = False  # the client knows every mask: only its own secrets may be used
    dealt: ClassVar[bool] = False  # the last server receives the derived components as correction tensors
    made_by_servers: ClassVar[bool] = False  # the servers compute the correlations together (offline work)

    # ---- client ---------------------------------------------------------------------
    def check(self, parties: int, has_dealer: bool) -> None:
        """Raise InputError if this cluster cannot use the source."""

    def deal(self, plan: Plan, parties: int) -> list[Material] | None:
        """Material the client makes itself, one per server (None: the client deals nothing)."""
        return None

    def submit(
        self, party: int, materials: list[Material] | None, options: dict[str, Any]
    ) -> tuple[dict[str, Any], list[tuple[str, np.ndarray]]]:
        """The ``preprocessing`` entry of server ``party``'s SUBMIT, and the tensors the
        client sends it after its inputs."""
        return {"source": self.name}, []

    # ---- server ---------------------------------------------------------------------
    def expected_from_client(self, plan: Plan, party: int, parties: int) -> dict[str, Shape]:
        """Name -> shape of the tensors server ``party`` receives from the client with its inputs."""
        return {}

    def material(
        self, ctx: Any, plan: Plan, program: Any, spec: dict[str, Any], received: dict[str, np.ndarray]
    ) -> Material:
        """This server's material for the job (``received``: what :meth:`expected_from_client`
        announced). ``ctx`` is the job's Context (links, state, tensor receipt)."""
        raise NotImplementedError


SOURCES: dict[str, RandomnessSource] = {}


def register_source(cls: type[RandomnessSource]) -> type[RandomnessSource]:
    """Class decorator: make a source available by its name."""
    SOURCES[cls.name] = cls()
    return cls


def randomness_source(name: object) -> RandomnessSource:
    """The named source; an unknown one is a clear error (client side: InputError)."""
    source = SOURCES.get(name) if isinstance(name, str) else None
    if source is None:
        raise InputError(f"triples must be one of {sorted(SOURCES)}, got {name!r}")
    return source


def source_of(spec: object) -> RandomnessSource:
    """The source a SUBMIT names (server side: ProtocolError)."""
    name = spec.get("source") if isinstance(spec, dict) else None
    if not isinstance(name, str) or name not in SOURCES:  # a list or dict here is not even hashable
        raise ProtocolError(f"this program needs preprocessing: say where it comes from ({', '.join(sorted(SOURCES))})")
    return SOURCES[name]


def seed_from(value: object, what: str) -> bytes:
    """A 16-byte seed sent as hex."""
    try:
        seed = bytes.fromhex(str(value))
    except ValueError:
        seed = b""
    if len(seed) != 16:
        raise ProtocolError(f"{what} must be a 16-byte seed")
    return seed
