"""Faust's aiokafka transport with a cheaper per-message delivery step (broker URL ``lapse://``).

Faust's consumer hands every fetched message to the agents' queues through
``Service.wait_first(callback(message), suspend_flow.wait())``, so that a rebalance can abandon a
delivery that is blocked. That costs four asyncio tasks and an ``asyncio.wait`` per message,
measured here at ~30-50 us: as much as everything lapse itself does with an event.

:class:`Consumer` keeps Faust's loop and its rules, and changes one thing: while flow is active
(no rebalance in progress), the delivery is awaited directly. Delivery only waits when an agent's
queue is full, which Faust's buffer-pressure handling avoids by pausing the partition first; if
a rebalance begins during such a wait, the message is delivered once the agent makes room, as if
it had been buffered before the rebalance (Faust's acks and offsets treat it the same way). While
flow is suspended, the original guarded delivery is used.

Topics listed in ``app.lapse_inboxes`` (``{topic: Inbox}``, set by ``streams.service.app``) skip
Faust's conductor and streams altogether: their messages are appended to that
:class:`~streams.service.inbox.Inbox`, whose reader tracks and acks them (see that module).

The transport is selected by the broker URL scheme: :func:`register` adds ``lapse`` to Faust's
transport registry, and ``streams.service.app`` uses ``lapse://host:port`` URLs.
"""

from __future__ import annotations

from typing import Any

from faust.transport import drivers
from faust.transport.drivers import aiokafka as faust_aiokafka

__all__ = ["Consumer", "Transport", "register", "SCHEME"]

SCHEME = "lapse"
#: how many messages are delivered before the loop yields to other tasks (as Faust does)
YIELD_EVERY = 100


class Consumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer; delivery without per-message tasks while flow is active."""

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - exercised by the worker tests
        callback = self.callback
        getmany = self.getmany
        stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        read_offset = self._read_offset
        suspended = self.suspend_flow.is_set
        flow_active = self.app.flow_control.is_active
        acks_enabled_for = self.app.topics.acks_enabled_for
        inboxes = getattr(self.app, "lapse_inboxes", None) or {}
        since_yield = 0
        try:
            while not (stopped() or fetcher_stopped()):
                messages = getmany(timeout=1.0)
                await self.sleep(0)
                if self.should_stop:
                    continue
                async for tp, message in messages:
                    since_yield += 1
                    if since_yield > YIELD_EVERY:
                        since_yield = 0
                        await self.sleep(0)
                    offset = message.offset
                    last = read_offset.get(tp)
                    if last is not None and offset < last:
                        continue  # already delivered (a re-fetch after a seek)
                    if last and offset - last > 1 and acks_enabled_for(message.topic):
                        await self._add_gap(tp, last + 1, offset)  # offsets missing (compaction, aborts)
                    if self._commit_every is not None and self._n_acked >= self._commit_every:
                        self._n_acked = 0
                        await self.commit()
                    inbox = inboxes.get(tp.topic)
                    if inbox is not None:
                        # the users' hot topics: straight into the inbox their batch task reads
                        if inbox.full():
                            await self.wait_first(inbox.wait_not_full(), self.suspend_flow.wait())
                        if not (flow_active() and not suspended()):
                            continue  # a rebalance began: Faust seeks back to the committed offset
                        inbox.put(message)
                    elif flow_active() and not suspended():
                        await callback(message)
                    else:
                        await self.wait_first(callback(message), self.suspend_flow.wait())
                    read_offset[tp] = offset
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise


class Transport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with lapse's :class:`Consumer`."""

    Consumer = Consumer


def register() -> None:
    """Make ``lapse://`` broker URLs resolve to :class:`Transport` (idempotent).

    >>> register()
    >>> drivers.by_url("lapse://127.0.0.1:9092") is Transport
    True
    """
    drivers.TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"
