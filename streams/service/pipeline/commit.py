"""Steps 3-5 of the commit order, for every step that decided, in the order they decided.

A *step* is one decide pass of the worker: a batch of input events, an expiry tick, the IDS join's
batch, a policy switch. The step itself is synchronous (:mod:`streams.engine` mutates state in
memory) and ends by submitting a :class:`Ticket`; the worker goes on deciding the next step while
this one's records travel. One task, :meth:`Committer.run`, then takes the tickets in order:

1. **decide** (the step, before its ticket) — the engine mutates state in memory; the state of
   every user the step touched is serialized into the ticket's changelog records *now*, so the
   changelog can never carry the effects of a later step whose decisions are still in flight;
2. **produce** — the step's decisions, audit records, sightings, forwards and dead letters were
   submitted to the :class:`~streams.service.pipeline.outbox.BatchSender` before the ticket;
3. **await** — the broker acknowledged every one of them (``ticket.sent`` resolves to their
   delivery futures);
4. **changelog** — only then are the ticket's changelog records handed to the producer, and the
   committer waits for the broker to acknowledge them (a record the broker refuses, say for its
   size, stops the committer before any offset covers it);
5. **offsets** — the step's input messages are acked; Faust commits acked offsets.

A crash anywhere re-processes the steps whose offsets were not committed, against a changelog
that never ran ahead of the acknowledged decisions: the engine re-decides the same ids. A failure
in 3 or 4 is not skipped: the committer stops and raises (the worker crashes and restarts from the
last commit), since writing a later step's changelog over a lost decision would lose it for good.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from streams.service.pipeline.outbox import BatchSender, Record
from streams.service.pipeline.pending import Pending

__all__ = ["Ticket", "Committer", "CommitFailed"]


class CommitFailed(RuntimeError):
    """A step's records were not acknowledged; later steps may not commit over it."""


class Ticket:
    """One decided step on its way to commit.

    Attributes
    ----------
    sent : asyncio.Future
        Resolves to the delivery futures of the step's records (from ``BatchSender.submit``).
    changelog : list of Record
        The touched state, serialized at decide time; written after ``sent``'s futures resolve.
    messages : list
        Input messages (Faust ``Message``) to ack after the changelog is handed over.
    done : asyncio.Future
        Resolves when the step is committed (or fails with the reason).
    """

    __slots__ = ("sent", "changelog", "messages", "done")

    def __init__(self, sent: asyncio.Future, changelog: list[Record], messages: Iterable[Any] = ()) -> None:
        self.sent = sent
        self.changelog = changelog
        self.messages = list(messages)
        self.done: asyncio.Future = asyncio.get_running_loop().create_future()


class Committer:
    """Takes tickets in order through steps 3-5.

    Parameters
    ----------
    sender : BatchSender
        Where the changelog records go (the same sender as the steps' own records).
    ack : callable
        ``ack(messages)``: marks a step's input messages processed (the consumer's ``ack_batch``).
    max_pending : int
        Tickets in flight before :meth:`room` makes the deciding side wait.
    on_changelog : callable, optional
        ``on_changelog(records, futures)`` once a ticket's changelog records are handed over (step
        4), with their delivery futures: a RocksDB store writes them locally then
        (streams/service/state/livestate.py).

    Examples
    --------
    >>> async def demo():
    ...     class Producer:  # what BatchSender needs of aiokafka, for a doctest without a broker
    ...         def create_batch(self): return Batch()
    ...         async def partitions_for(self, topic): return {0}
    ...         async def send_batch(self, batch, topic, partition):
    ...             fut = asyncio.get_running_loop().create_future(); fut.set_result(None); return fut
    ...     class Batch:
    ...         def append(self, **kw): return True
    ...         def close(self): pass
    ...     sender, acked = BatchSender(Producer), []
    ...     committer = Committer(sender, acked.extend)
    ...     tasks = [asyncio.create_task(sender.run()), asyncio.create_task(committer.run())]
    ...     t = committer.submit(Ticket(sender.submit([("audit", b"u1", b"{}", None)]),
    ...                                 [("users-changelog", b"u1", b"{}", 0)], ["m1", "m2"]))
    ...     await t.done
    ...     for task in tasks: task.cancel()
    ...     return acked, sender.records_sent
    >>> asyncio.run(demo())
    (['m1', 'm2'], 2)
    """

    def __init__(self, sender: BatchSender, ack: Callable[[Any], None], *, max_pending: int = 8,
                 on_changelog: Callable[[list[Record], list[asyncio.Future]], None] | None = None) -> None:
        if not isinstance(sender, BatchSender):
            raise TypeError(f"Committer: sender must be a BatchSender, got {type(sender).__name__}")
        if not callable(ack):
            raise TypeError("Committer: ack must be callable(messages)")
        self.sender = sender
        self.ack = ack
        if on_changelog is not None and not callable(on_changelog):
            raise TypeError("Committer: on_changelog must be callable(records, futures)")
        self.on_changelog = on_changelog
        self._queue: Pending[Ticket] = Pending("Committer", max_pending)
        self.failed: BaseException | None = None
        self.committed = 0

    def submit(self, ticket: Ticket) -> Ticket:
        """Queue ``ticket`` behind every ticket submitted before it (synchronous)."""
        if self.failed is not None:
            ticket.done.set_exception(CommitFailed(f"an earlier step failed: {self.failed!r}"))
            return ticket
        self._queue.push(ticket)
        return ticket

    async def room(self) -> None:
        """Wait until fewer than ``max_pending`` tickets are in flight."""
        await self._queue.room()

    async def drained(self) -> None:
        """Wait until every ticket submitted so far is committed (or failed)."""
        if self._queue:
            await asyncio.wait([self._queue.last().done])

    async def run(self) -> None:
        while True:
            await self._queue.items()
            ticket = self._queue.peek()
            try:
                futures = await ticket.sent
                if futures:
                    await asyncio.gather(*futures)                           # 3. acknowledged
                handed = await self.sender.submit(ticket.changelog)          # 4. changelog handed over
                if self.on_changelog is not None and ticket.changelog:
                    self.on_changelog(ticket.changelog, handed)
                if handed:  # ... and acknowledged: a refused changelog record must never be acked over
                    await asyncio.gather(*handed)
                if ticket.messages:                                          # 5. offsets
                    self.ack(ticket.messages)
            except BaseException as exc:
                self.failed = exc
                reason = exc if isinstance(exc, asyncio.CancelledError) else CommitFailed(
                    f"a step's records were not acknowledged: {exc!r}")
                while self._queue:
                    t = self._queue.pop()
                    if not t.done.done():
                        t.done.set_exception(CommitFailed(f"not committed: {exc!r}"))
                    t.done.exception()  # retrieved: no "never retrieved" warning for failed waiters
                raise reason from exc
            self._queue.pop()
            self.committed += 1
            ticket.done.set_result(None)
