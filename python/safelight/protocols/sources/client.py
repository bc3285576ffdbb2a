"""The client deals: right only when the client owns every secret of the job.

Whoever deals knows the masks, so it can unmask any value opened with them. The client
therefore never deals by default, and never for a job that reads a stored tensor (a model
owner's weights): ``runtime.client`` refuses both.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..preprocessing import Material, Plan, deal
from .base import RandomnessSource, Shape, register_source, seed_from


@register_source
class ClientDealt(RandomnessSource):
    name = "client"
    who_deals = "the client submitting the job"
    note = "only when the client owns every secret of the job: the dealer can unmask openings"
    client_deals = True
    dealt = True

    def deal(self, plan: Plan, parties: int) -> list[Material]:
        return deal(plan, parties)

    def submit(
        self, party: int, materials: list[Material] | None, options: dict[str, Any]
    ) -> tuple[dict[str, Any], list[tuple[str, np.ndarray]]]:
        assert materials is not None
        mine = materials[party]
        return {"source": self.name, "seed": mine.seed.hex()}, list(mine.corrections.items())

    def expected_from_client(self, plan: Plan, party: int, parties: int) -> dict[str, Shape]:
        return plan.correction_shapes() if party == parties - 1 else {}

    def material(
        self, ctx: Any, plan: Plan, program: Any, spec: dict[str, Any], received: dict[str, np.ndarray]
    ) -> Material:
        return Material(seed_from(spec.get("seed"), "the client's preprocessing seed"), received)
