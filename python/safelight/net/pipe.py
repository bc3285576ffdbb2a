"""The pipe the OT protocols run over (:class:`safelight.ot.Pipe`), on the network's channels."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError, ProtocolError
from .transport import MsgType


class ChannelPipe:
    """A :class:`Pipe` over the runtime's Channels.

    Parameters
    ----------
    out, inp : Channel
        The channel this party writes on and the one it reads from (the two
        one-way links of :class:`~safelight.net.peers.JobLinks`); they may
        be the same two-way channel.
    job_id : bytes
        16-byte job id put in every frame.
    """

    def __init__(self, out: Any, inp: Any, job_id: bytes = bytes(16)) -> None:
        if len(job_id) != 16:
            raise InputError(f"job_id must be 16 bytes, got {len(job_id)}")
        self.out, self.inp, self.job_id = out, inp, job_id

    @classmethod
    def from_links(cls, links: Any, peer: int) -> ChannelPipe:
        """The pipe to ``peer`` over a job's :class:`~safelight.net.peers.JobLinks`."""
        return cls(links.sender(peer), links.receiver(peer), links.job_id)

    @property
    def peer(self) -> str:
        return str(getattr(self.inp, "peer", "the peer"))

    def send(self, name: str, array: np.ndarray) -> None:
        self.out.send_tensor(self.job_id, name, array)

    def recv(self, name: str) -> np.ndarray:
        frame = self.inp.expect(MsgType.TENSOR)
        if frame.name != name:
            raise ProtocolError(f"{self.peer} sent tensor {frame.name!r} where {name!r} was expected")
        return frame.array
