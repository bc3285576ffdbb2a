"""The dealer process's side of a job: it deals correlated randomness to the parties.

A helper the user chose to trust not to collude with any server: it never sees an input,
a share or an opened value. Per job it draws one seed per party and streams the last
party's correction tensors one correlation at a time (bounded memory); for stored model
weights it derives masks that stay the same in every job (so the servers open a masked
weight once per model); with ``ots="dealer"`` it deals the garbled circuits' random OTs.
The parties' side is :class:`safelight.protocols.sources.dealer.DealerProcess`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time

from ..errors import ProtocolError
from ..net.certs import DEALER_NAME, Identity, party_name
from ..net.config import ClusterConfig
from ..net.peers import Mailbox
from ..net.transport import Channel, MsgType, connect
from ..ot import dealer_cot
from ..program.program import Program
from ..protocols import ot_dealt
from ..protocols.nonlinear import ot_path_demand
from ..protocols.preprocessing import OT_SOURCES, Plan, deal_streaming
from ..protocols.sources.dealer import OT_LABELS
from ..sharing import SEED_BYTES
from .admission import JOB_OVERHEAD, JobAdmission, correlation_bytes

log = logging.getLogger("safelight.dealer")


class Dealer:
    """Deals the jobs submitted to a dealer process (see the module docstring)."""

    def __init__(self, config: ClusterConfig, identity: Identity, mailbox: Mailbox, admission: JobAdmission) -> None:
        self.config, self.identity, self.mailbox, self.admission = config, identity, mailbox, admission
        self.mask_secret = secrets.token_bytes(32)  # derives the persistent weight masks

    def _derive(self, message: bytes) -> bytes:
        return hmac.new(self.mask_secret, message, hashlib.sha256).digest()

    def _persistent_masks(self, plan: Plan, stored: object) -> tuple[dict[str, list[bytes]], dict[str, str]]:
        """Masks of stored model weights that stay the same in every job of this dealer:
        per-party seeds derived from the dealer's secret, the model id, tensor and shape."""
        persistent, mask_ids = {}, {}
        if not isinstance(stored, dict):
            return persistent, mask_ids
        for name, ref in stored.items():
            key = f"w:{name}"
            if key not in plan.reuse_keys or not isinstance(ref, list) or len(ref) != 2:
                continue
            label = json.dumps([str(ref[0]), str(ref[1]), list(plan.reuse_keys[key].shape)]).encode()
            seeds = [self._derive(label + bytes([i]))[:SEED_BYTES] for i in range(self.config.n)]
            persistent[key], mask_ids[key] = seeds, self._derive(label + b"id")[:12].hex()
        return persistent, mask_ids

    def deal(self, channel: Channel, job_id: bytes, program: Program, plan: Plan, submit: dict) -> None:
        """Admit a dealing job (it holds one correction at a time, made from the largest
        correlation's components) and deal it; a client's abort ends it at once."""
        started = time.perf_counter()
        demand = ot_path_demand(program)
        need = JOB_OVERHEAD + 2 * max(correlation_bytes(plan).values(), default=0)
        need += demand.dealt_bytes(0) + demand.dealt_bytes(1)
        links = DealerLinks()
        with self.mailbox.job(job_id, links), self.admission.admit(need, wait=self.config.timeout / 2):
            self._deal_admitted(channel, job_id, submit, program, plan, demand, started, links)

    def _deal_admitted(
        self,
        channel: Channel,
        job_id: bytes,
        submit: dict,
        program: Program,
        plan: Plan,
        demand: ot_dealt.Demand,
        started: float,
        links: DealerLinks,
    ) -> None:
        ots = submit.get("ots", "iknp")
        if ots not in OT_SOURCES:
            raise ProtocolError(f"ots must be one of {OT_SOURCES}, got {ots!r}")
        persistent, mask_ids = self._persistent_masks(plan, submit.get("stored"))
        materials, corrections = deal_streaming(plan, self.config.n, persistent)
        n_ots = program.ot_demand() if ots == "dealer" else 0
        if n_ots:
            materials[0].ot_seed, materials[1].ot_seed = secrets.token_bytes(16), secrets.token_bytes(16)
            materials[1].ot_labels = dealer_cot(materials[0].ot_seed, materials[1].ot_seed, n_ots)
        # the OT-path comparisons' correlations (protocols.ot_dealt)
        otp_seeds, otp_tensors = ot_dealt.deal(demand) if demand else ([], [])
        generated = time.perf_counter() - started  # seeds and OT material; corrections below
        try:
            for party, material in enumerate(materials):
                addr = self.config.parties[party]
                link = connect(
                    addr.host,
                    addr.port,
                    self.identity,
                    party_name(party),
                    self.config.timeout,
                    records=self.config.records,
                )
                links.append(link)
                if self.mailbox.abort_reason(job_id) is not None:
                    link.interrupt()
                link.send_json(MsgType.PEER_HELLO, job_id, {"party": DEALER_NAME})
                header: dict[str, object] = {"seed": material.seed.hex()}
                if material.persistent:
                    header["persistent"] = {
                        k: {"seed": v.hex(), "mask": mask_ids[k]} for k, v in material.persistent.items()
                    }
                if material.ot_seed is not None:
                    header["ot_seed"] = material.ot_seed.hex()
                if party < len(otp_seeds):
                    header["otp_seed"] = otp_seeds[party].hex()
                link.send_json(MsgType.PREPROCESS, job_id, header)
                if material.ot_labels is not None:
                    link.send_tensor(job_id, OT_LABELS, material.ot_labels)
                for name, tensor in (otp_tensors[party] if party < len(otp_tensors) else {}).items():
                    link.send_tensor(job_id, name, tensor)
            pending = iter(corrections)
            while True:  # each correction is made, then sent, one at a time (bounded memory)
                t0 = time.perf_counter()
                item = next(pending, None)
                generated += time.perf_counter() - t0
                if item is None:
                    break
                links[-1].send_tensor(job_id, *item)
            sent = sum(link.bytes_sent for link in links)
        finally:
            for link in links:
                link.close()
        result = {
            "party": -1,
            "seconds": time.perf_counter() - started,
            "offline_seconds": generated,
            "online_seconds": 0.0,
            "setup_seconds": 0.0,
            "bytes_sent": sent + channel.bytes_sent,
            "bytes_received": channel.bytes_received,
            "peer_bytes_sent": sent,
            "peer_bytes_received": 0,
            "rounds": 0,
            "ops": {},
            "steps": [],
        }
        channel.send_json(MsgType.RESULT, job_id, result)
        log.info(
            "dealt job %s in %.3f s (%d correlations)", job_id.hex()[:8], result["seconds"], len(plan.correlations)
        )


class DealerLinks:
    """The dealer's links of one job, interrupted together when the job is aborted."""

    def __init__(self) -> None:
        self.channels: list[Channel] = []

    def append(self, channel: Channel) -> None:
        self.channels.append(channel)

    def __iter__(self):
        return iter(list(self.channels))

    def __getitem__(self, index: int) -> Channel:
        return self.channels[index]

    def interrupt(self) -> None:
        for link in self:
            link.interrupt()
