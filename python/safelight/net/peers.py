"""Per-job links between servers.

For each job and each ordered pair of parties (i, j), party i dials party j
and opens a one-way link with a PEER_HELLO frame carrying the job id; party j
picks it up from a mailbox, whether it arrives before or after the job itself.
Each job gets its own sockets, so jobs never interleave on a link, and each
TLS connection carries data in one direction only: sending and receiving run
on different threads, and one TLS connection must never be read and written
concurrently (OpenSSL objects are not safe for that).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

import numpy as np

from ..errors import PeerUnavailableError, ProtocolError, SafelightError
from .certs import Identity, party_name
from .config import ClusterConfig
from .transport import Channel, MsgType, connect

DEALER = -1  # mailbox key of the dealer's link


class Interruptible(Protocol):
    def interrupt(self) -> None:
        """Unblock every send and receive of a job at once (they then fail)."""


class Mailbox:
    """Links dialled in by lower parties, waiting for their job; and the jobs' abort state.

    A job is aborted when the client says another participant failed: whatever the job
    waits for (a link in :meth:`take`, a peer's tensor on a registered link) ends at once
    with the reason, instead of at the timeout.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._waiting: dict[tuple[bytes, int], tuple[Channel, float]] = {}
        self._aborted: dict[bytes, tuple[SafelightError, float]] = {}
        self._running: dict[bytes, list[Interruptible]] = {}

    def abort(self, job_id: bytes, reason: SafelightError) -> None:
        with self._cond:
            self._aborted.setdefault(job_id, (reason, time.monotonic()))
            running = list(self._running.get(job_id, ()))
            self._cond.notify_all()
        for job in running:
            job.interrupt()

    def abort_reason(self, job_id: bytes) -> SafelightError | None:
        with self._cond:
            entry = self._aborted.get(job_id)
        return entry[0] if entry else None

    def register(self, job_id: bytes, job: Interruptible) -> None:
        """Interrupt ``job`` when ``job_id`` is aborted (at once if it already was)."""
        with self._cond:
            self._running.setdefault(job_id, []).append(job)
            aborted = job_id in self._aborted
        if aborted:
            job.interrupt()

    def unregister(self, job_id: bytes, job: Interruptible) -> None:
        with self._cond:
            jobs = self._running.get(job_id, [])
            if job in jobs:
                jobs.remove(job)
            if not jobs:
                self._running.pop(job_id, None)

    @contextmanager
    def job(self, job_id: bytes, links: Interruptible | None = None) -> Iterator[None]:
        """Run one job's part: ``links`` are interrupted if the job is aborted, and a failure
        that follows an abort is reported as the abort (its cause), not as a lost link."""
        if links is not None:
            self.register(job_id, links)
        try:
            yield
        except SafelightError:
            reason = self.abort_reason(job_id)
            if reason is not None:
                raise reason from None
            raise
        finally:
            if links is not None:
                self.unregister(job_id, links)

    def deliver(self, job_id: bytes, party: int, channel: Channel) -> None:
        with self._cond:
            old = self._waiting.pop((job_id, party), None)
            if old:
                old[0].close()
            self._waiting[(job_id, party)] = (channel, time.monotonic())
            self._cond.notify_all()

    def take(self, job_id: bytes, party: int, timeout: float) -> Channel:
        deadline = time.monotonic() + timeout
        with self._cond:
            while (job_id, party) not in self._waiting:
                if job_id in self._aborted:
                    raise self._aborted[job_id][0]
                left = deadline - time.monotonic()
                if left <= 0:
                    who = "the dealer" if party == DEALER else party_name(party)
                    raise PeerUnavailableError(
                        f"{who} did not connect for this job within {timeout:g} s; it may have died"
                    )
                self._cond.wait(left)
            return self._waiting.pop((job_id, party))[0]

    def reap(self, max_age: float) -> None:
        """Close links whose job never came (e.g. the client gave up)."""
        now = time.monotonic()
        with self._cond:
            for key, (channel, since) in list(self._waiting.items()):
                if now - since > max_age:
                    channel.close()
                    del self._waiting[key]
            for job_id, (_, since) in list(self._aborted.items()):
                if now - since > max_age:
                    del self._aborted[job_id]


class JobLinks:
    """The links of one job to the other parties, opened on first use."""

    def __init__(self, config: ClusterConfig, identity: Identity, party: int, job_id: bytes, mailbox: Mailbox) -> None:
        self.config, self.identity, self.party, self.job_id = config, identity, party, job_id
        self.mailbox = mailbox
        self.outgoing: dict[int, Channel] = {}
        self.incoming: dict[int, Channel] = {}
        self.rounds = 0
        self._interrupted = False
        mailbox.register(job_id, self)

    def interrupt(self) -> None:
        self._interrupted = True
        for ch in self._channels():
            ch.interrupt()

    def _check(self, peer: int) -> None:
        if peer == self.party or not 0 <= peer < self.config.n:
            raise ValueError(f"no link from party {self.party} to party {peer}")

    def sender(self, peer: int) -> Channel:
        """The link this party writes to ``peer`` on (dialled on first use)."""
        self._check(peer)
        if peer not in self.outgoing:
            addr = self.config.parties[peer]
            ch = connect(
                addr.host, addr.port, self.identity, party_name(peer), self.config.timeout, records=self.config.records
            )
            ch.send_json(MsgType.PEER_HELLO, self.job_id, {"party": self.party})
            self.outgoing[peer] = ch
            if self._interrupted:  # aborted while dialling
                ch.interrupt()
        return self.outgoing[peer]

    def receiver(self, peer: int) -> Channel:
        """The link this party reads from ``peer`` on (dialled in by the peer)."""
        self._check(peer)
        if peer not in self.incoming:
            self.incoming[peer] = self.mailbox.take(self.job_id, peer, self.config.timeout)
            if self._interrupted:
                self.incoming[peer].interrupt()
        return self.incoming[peer]

    def dealer(self) -> Channel:
        """The link on which the dealer sends this job's preprocessing."""
        if DEALER not in self.incoming:
            self.incoming[DEALER] = self.mailbox.take(self.job_id, DEALER, self.config.timeout)
            if self._interrupted:
                self.incoming[DEALER].interrupt()
        return self.incoming[DEALER]

    def exchange_all(self, array: np.ndarray) -> list[np.ndarray]:
        """One round: send ``array`` to every other party and receive theirs.

        Sends run on helper threads so that two parties sending large arrays to
        each other at once cannot deadlock on full TCP buffers.
        """
        peers = [p for p in range(self.config.n) if p != self.party]
        errors: list[BaseException] = []

        def send(peer: int) -> None:
            try:
                self.sender(peer).send_tensor(self.job_id, "x", array)
            except BaseException as exc:  # re-raised below, after the receives
                errors.append(exc)

        senders = [threading.Thread(target=send, args=(p,), daemon=True) for p in peers]
        for t in senders:
            t.start()
        received = {}
        for p in peers:
            frame = self.receiver(p).expect(MsgType.TENSOR)
            if frame.array is None or frame.array.shape != array.shape or frame.array.dtype != array.dtype:
                raise ProtocolError(f"{party_name(p)} sent a tensor of the wrong shape or dtype")
            received[p] = frame.array
        for t in senders:
            t.join()
        if errors:
            raise errors[0]
        self.rounds += 1
        received[self.party] = array
        return [received[p] for p in range(self.config.n)]

    def exchange(
        self,
        sends: dict[int, list[np.ndarray]],
        receive: dict[int, int],
        into: dict[int, list[np.ndarray]] | None = None,
    ) -> dict[int, list[np.ndarray]]:
        """One round with some peers: each peer in ``sends`` gets its arrays in order (on a
        helper thread, so that a ring of parties sending at once cannot deadlock), and
        ``receive[peer]`` arrays are read from each peer named there, into the buffers
        ``into[peer]`` names when given (each must match what arrives)."""
        errors: list[BaseException] = []

        def send(peer: int, arrays: list[np.ndarray]) -> None:
            try:
                channel = self.sender(peer)
                for array in arrays:
                    channel.send_tensor(self.job_id, "x", array)
            except BaseException as exc:  # re-raised below, after the receives
                errors.append(exc)

        senders = [threading.Thread(target=send, args=item, daemon=True) for item in sends.items()]
        for t in senders:
            t.start()
        received: dict[int, list[np.ndarray]] = {}
        for peer, count in receive.items():
            channel = self.receiver(peer)
            got = []
            buffers = (into or {}).get(peer, [])
            for k in range(count):
                frame = channel.expect(MsgType.TENSOR, into=buffers[k] if k < len(buffers) else None)
                if frame.array is None:
                    raise ProtocolError(f"{party_name(peer)} sent an empty tensor")
                got.append(frame.array)
            received[peer] = got
        for t in senders:
            t.join()
        if errors:
            raise errors[0]
        self.rounds += 1
        return received

    def barrier(self) -> None:
        """Wait until every party reached this point (a one-byte exchange, not a protocol round).

        Used between the offline and the online phase so that online timings do
        not include a peer still finishing its preprocessing.
        """
        self.exchange_all(np.zeros(1, dtype=np.uint8))
        self.rounds -= 1

    def _channels(self) -> list[Channel]:
        return [*self.outgoing.values(), *self.incoming.values()]

    @property
    def bytes_sent(self) -> int:
        return sum(ch.bytes_sent for ch in self._channels())

    @property
    def bytes_received(self) -> int:
        return sum(ch.bytes_received for ch in self._channels())

    def close(self) -> None:
        self.mailbox.unregister(self.job_id, self)
        for ch in self._channels():
            ch.close()
