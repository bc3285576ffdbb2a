"""No third party: the two servers make their own correlated randomness (lattice HE for
convolutions and matrix products, oblivious transfer for the rest; see
:mod:`safelight.protocols.dealer_free`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import InputError, ProtocolError
from .. import dealer_free
from ..preprocessing import Material, Plan
from .base import RandomnessSource, register_source


@register_source
class DealerFree(RandomnessSource):
    name = "he"
    who_deals = (
        "the two servers themselves: lattice HE for convolutions and matrix products, "
        "oblivious transfer for elementwise products and truncation pairs"
    )
    note = "two servers only; no third party, more computation and traffic"
    made_by_servers = True

    def check(self, parties: int, has_dealer: bool) -> None:
        if parties != 2:
            raise InputError(f"triples='he' (dealer-free) needs exactly two servers, the cluster has {parties}")

    def material(
        self, ctx: Any, plan: Plan, program: Any, spec: dict[str, Any], received: dict[str, np.ndarray]
    ) -> Material:
        if ctx.parties != 2:
            raise ProtocolError("dealer-free preprocessing (triples='he') runs between exactly two servers")
        return dealer_free.generate(plan, ctx)
