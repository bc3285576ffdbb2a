"""A dealer process deals: a helper the user chose to trust not to collude with any server.

Each server gets a 16-byte seed (its shares of every mask and product expand from it); the
last server also gets one correction tensor per derived component. For stored model
weights the dealer keeps a mask per weight across jobs (``persistent``: the servers then
open the masked weight once per model). With ``ots="dealer"`` it also deals the garbled
circuits' random OTs: a seed for each of servers 0 and 1, and the evaluator's labels; for
comparisons on the OT path it deals their correlations (:mod:`..ot_dealt`), so that the
servers run no silent OT.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import InputError, ProtocolError
from ...net.transport import MsgType
from ...sharing import SEED_BYTES
from .. import gc_sign, ot_dealt
from ..nonlinear import ot_path_demand
from ..preprocessing import Material, Plan
from .base import RandomnessSource, register_source, seed_from

OT_LABELS = "ot:t"  # the evaluator's dealt OT labels (ots="dealer")


@register_source
class DealerProcess(RandomnessSource):
    name = "dealer"
    who_deals = "a separate dealer process"
    note = "must not collude with any server"
    third_party = True
    uses_dealer = True
    dealt = True

    def check(self, parties: int, has_dealer: bool) -> None:
        if not has_dealer:
            raise InputError("triples='dealer' but the cluster has no dealer (Cluster.local(..., dealer=True))")

    def submit(
        self, party: int, materials: list[Material] | None, options: dict[str, Any]
    ) -> tuple[dict[str, Any], list[tuple[str, np.ndarray]]]:
        return {"source": self.name, "ots": options.get("ots", "iknp")}, []

    def material(
        self, ctx: Any, plan: Plan, program: Any, spec: dict[str, Any], received: dict[str, np.ndarray]
    ) -> Material:
        link = ctx.links.dealer()
        frame = link.expect(MsgType.PREPROCESS)
        header = frame.json if isinstance(frame.json, dict) else {}
        dealt_ots = spec.get("ots") == "dealer" and ctx.party in (0, 1) and program.ot_demand() > 0
        seed = seed_from(header.get("seed"), "the dealer's preprocessing seed")
        ot_seed = seed_from(header.get("ot_seed"), "the dealer's OT seed") if dealt_ots else None
        persistent, mask_ids = self._persistent(plan, header.get("persistent", {}))
        last = ctx.party == ctx.parties - 1
        expected: dict[str, tuple[int, ...] | None] = dict(plan.correction_shapes()) if last else {}
        if dealt_ots and ctx.party == 1:
            expected[OT_LABELS] = None
        demand = ot_path_demand(program) if ctx.party in (0, 1) else ot_dealt.Demand()
        if demand:  # the OT-path comparisons' correlations, dealt (else they fall to silent OT)
            otp_seed = seed_from(header.get("otp_seed"), "the dealer's OT-path seed")
            expected.update(demand.shapes(ctx.party))
        tensors = ctx.receive_tensors(link, expected)
        labels = tensors.pop(OT_LABELS, None)
        if ot_seed is not None:
            gc_sign.install_dealer_ots(ctx, ot_seed, labels)
        if demand:
            ot_dealt.install(ctx, otp_seed, {name: tensors.pop(name) for name in demand.shapes(ctx.party)}, demand)
        return Material(seed, tensors, ot_seed=ot_seed, ot_labels=labels, persistent=persistent, mask_ids=mask_ids)

    @staticmethod
    def _persistent(plan: Plan, entries: object) -> tuple[dict[str, bytes], dict[str, str]]:
        """The dealer's persistent masks of stored weights: reuse key -> seed, and -> mask id."""
        persistent, mask_ids = {}, {}
        try:
            for key, entry in entries.items():  # type: ignore[union-attr]
                if key not in plan.reuse_keys:
                    raise ValueError(key)
                persistent[str(key)] = bytes.fromhex(str(entry["seed"]))
                mask_ids[str(key)] = str(entry["mask"])[:64]
                if len(persistent[key]) != SEED_BYTES:
                    raise ValueError(key)
        except (AttributeError, TypeError, KeyError, ValueError):
            raise ProtocolError("malformed persistent-mask entry from the dealer") from None
        return persistent, mask_ids
