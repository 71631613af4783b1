"""A bounded in-process buffer of consumed Kafka messages, taken out in batches.

The users' hot topics (identity, activity) do not go through Faust's per-event stream machinery:
the worker's consumer (``streams.service.compat.transport``) appends their messages here, and one task
takes them out in batches. Faust's stream hands an agent one event per event-loop iteration (it
awaits ``sleep(0)`` per event), so with a busy loop a batch fills at a few thousand events per
second whatever the agent does; a batch taken from this inbox costs one wake-up.

Faust's rebalance protocol still applies: the inbox is registered with ``app.flow_control``, which
clears it when partitions are revoked (Faust seeks every partition back to its committed offset
afterwards), and the taker tracks every message it takes with ``consumer.track_message`` and acks
it when done, so Faust's ``wait_empty`` waits for a batch in progress before it gives partitions
away.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

__all__ = ["Inbox", "InboxMessage", "ClearOnSuspend"]


class InboxMessage:
    """A consumed record as the inbox's readers see it: what they and the consumer's batch acks use
    of Faust's ``Message`` (building one of those, with its dozen more fields, cost ~5 % of the
    worker's CPU).

    Examples
    --------
    >>> from collections import namedtuple
    >>> Record = namedtuple("Record", "topic partition offset timestamp key value")
    >>> m = InboxMessage(("activity", 2), Record("activity", 2, 41, 1767225600500, b"u1", b"{}"))
    >>> m.tp, m.offset, m.timestamp, m.key, m.acked
    (('activity', 2), 41, 1767225600.5, b'u1', False)
    """

    __slots__ = ("tp", "topic", "partition", "offset", "timestamp", "key", "value", "acked")

    def __init__(self, tp: Any, record: Any) -> None:
        self.tp = tp
        self.topic = record.topic
        self.partition = record.partition
        self.offset = record.offset
        ts = record.timestamp
        self.timestamp = ts / 1000.0 if ts is not None else None  # seconds, as Faust's Message
        self.key = record.key
        self.value = record.value
        self.acked = False


class Inbox:
    """Messages in arrival order; ``take`` returns up to ``max_n`` of them.

    Parameters
    ----------
    maxsize : int
        ``full()`` is true from this many messages on; the consumer then waits (``wait_not_full``)
        before it adds more.

    Examples
    --------
    >>> import asyncio
    >>> async def demo():
    ...     box = Inbox(maxsize=3)
    ...     for m in "abcd":
    ...         box.put(m)
    ...     first = await box.take(2, within=0.01)
    ...     rest = await box.take(10, within=0.01)
    ...     return first, rest, box.full(), len(box)
    >>> asyncio.run(demo())
    (['a', 'b'], ['c', 'd'], False, 0)
    """

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"Inbox: maxsize must be at least 1, got {maxsize!r}")
        self.maxsize = maxsize
        self._items: deque[Any] = deque()
        self._not_empty = asyncio.Event()
        self._not_full = asyncio.Event()
        self._not_full.set()

    def __len__(self) -> int:
        return len(self._items)

    def full(self) -> bool:
        return len(self._items) >= self.maxsize

    def put(self, item: Any) -> None:
        """Append one message (never blocks: the caller checks ``full()`` first)."""
        self._items.append(item)
        self._not_empty.set()
        if len(self._items) >= self.maxsize:
            self._not_full.clear()

    async def wait_not_full(self) -> None:
        await self._not_full.wait()

    def clear(self) -> None:
        """Drop everything (called by Faust's flow control on rebalance)."""
        self._items.clear()
        self._not_empty.clear()
        self._not_full.set()

    async def take(self, max_n: int, within: float) -> list[Any]:
        """Wait for at least one message, then up to ``within`` seconds for ``max_n``; return them."""
        items = self._items
        while not items:
            self._not_empty.clear()
            await self._not_empty.wait()
        if len(items) < max_n and within > 0:
            await asyncio.sleep(within)  # let a small batch grow: one wake-up per batch, not per event
        n = min(max_n, len(items))
        out = [items.popleft() for _ in range(n)]
        if not items:
            self._not_empty.clear()
        if len(items) < self.maxsize:
            self._not_full.set()
        return out


class ClearOnSuspend:
    """Registers an :class:`Inbox` with Faust's flow control so that it is cleared when a rebalance
    suspends the flow (its messages may belong to partitions that move away; Faust seeks every
    partition back to its committed offset afterwards), and *not* when the flow resumes.

    ``FlowControlEvent.resume()`` clears every managed queue too. A worker's table recovery ends by
    seeking to the committed offsets and then resuming, so clearing on resume would drop messages
    the consumer delivered in between although it had read past them: a restarted worker would
    never decide them (the kill -9 integration test covers this).

    Examples
    --------
    >>> class Flow:  # what FlowControlEvent offers
    ...     active, queues = True, []
    ...     def is_active(self): return self.active
    ...     def manage_queue(self, q): self.queues.append(q)
    ...     def clear(self): [q.clear() for q in self.queues]
    >>> box, flow = Inbox(10), Flow()
    >>> keep = ClearOnSuspend(box, flow)
    >>> box.put("m"); flow.clear(); len(box)        # a resume's clear: kept
    1
    >>> flow.active = False; flow.clear(); len(box)  # a suspension's clear: dropped
    0
    """

    def __init__(self, inbox: Inbox, flow_control: Any) -> None:
        if not isinstance(inbox, Inbox):
            raise TypeError(f"ClearOnSuspend: expected an Inbox, got {type(inbox).__name__}")
        self.inbox = inbox
        self.flow_control = flow_control
        flow_control.manage_queue(self)  # held weakly by Faust: the service keeps this object

    def clear(self) -> None:
        if not self.flow_control.is_active():
            self.inbox.clear()
