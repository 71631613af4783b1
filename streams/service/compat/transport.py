"""Faust's aiokafka transport with a cheaper per-message delivery step (broker URL ``lapse://``).

Faust's consumer hands every fetched message to the agents' queues through
``Service.wait_first(callback(message), suspend_flow.wait())``, so that a rebalance can abandon a
delivery that is blocked. That costs four asyncio tasks and an ``asyncio.wait`` per message,
about 30-50 us: as much as everything lapse itself does with an event.

:class:`Consumer` keeps Faust's loop and its rules, and changes one thing: while flow is active
(no rebalance in progress), the delivery is awaited directly. Delivery only waits when an agent's
queue is full, which Faust's buffer-pressure handling avoids by pausing the partition first; if
a rebalance begins during such a wait, the message is delivered once the agent makes room, as if
it had been buffered before the rebalance (Faust's acks and offsets treat it the same way). While
flow is suspended, the original guarded delivery is used.

Topics listed in ``app.lapse_inboxes`` (``{topic: Inbox}``, set by ``streams.service.app``) skip
Faust's conductor and streams altogether: their messages are appended to that
:class:`~streams.service.pipeline.inbox.Inbox`, whose reader tracks and acks them (see that module) a batch
at a time with :meth:`Consumer.track_batch` and :meth:`Consumer.ack_batch`: Faust's per-message
``track_message`` (a WeakSet entry and three sensor calls) and ``ack`` (a lock each) cost ~8 % of
the worker's CPU. A batch is counted in flight until acked, and :meth:`Consumer.wait_empty` (what a
rebalance waits on before it commits and gives partitions away) waits for that count too.

The transport is selected by the broker URL scheme: :func:`register` adds ``lapse`` to Faust's
transport registry, and ``streams.service.app`` uses ``lapse://host:port`` URLs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from faust.transport import drivers
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types.tuples import ack_lock
from mode.utils.futures import notify

from streams.service.pipeline.inbox import InboxMessage

__all__ = ["Consumer", "Transport", "register", "SCHEME"]

SCHEME = "lapse"
#: how many messages are delivered before the loop yields to other tasks (as Faust does)
YIELD_EVERY = 100


#: longest a fetch waits at the broker for data (Faust hard-codes 1,500 ms). Requests on the same
#: connection queue behind it, so on an idle partition set every offset query (the catch-up's end
#: offsets, the earliest offsets of never-committed partitions, at each assignment) waits up to
#: this long, which would add seconds to every restart. A fetch still returns as soon as a record arrives, so a
#: shorter wait costs only more empty fetches while idle.
FETCH_MAX_WAIT_MS = 100


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, creating its aiokafka consumer with :data:`FETCH_MAX_WAIT_MS`."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read when the consumer starts its fetcher
        return consumer


class Consumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer; delivery without per-message tasks while flow is active."""

    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    #: inbox messages taken for processing and not yet acked (see track_batch)
    lapse_in_flight = 0
    #: the first offset of each partition dropped since the last perform_seek (see _drain_messages)
    lapse_dropped: dict[Any, int] | None = None

    def track_batch(self, messages: Sequence[Any]) -> None:
        """Inbox messages taken for processing: in flight until :meth:`ack_batch`."""
        self.lapse_in_flight += len(messages)

    def ack_batch(self, messages: Sequence[Any]) -> None:
        """Faust's ``ack`` bookkeeping for a batch tracked with :meth:`track_batch`, under one lock:
        an acked offset is committable once every offset before it is acked too."""
        acks_enabled_for = self.app.topics.acks_enabled_for
        committed_offset, acked_index, acked = self._committed_offset, self._acked_index, self._acked
        with ack_lock:
            for message in messages:
                if message.acked:
                    continue
                message.acked = True
                if not acks_enabled_for(message.topic):
                    continue
                tp, offset = message.tp, message.offset
                committed = committed_offset[tp]
                if committed is None or offset >= committed:
                    index = acked_index[tp]
                    if offset not in index:
                        index.add(offset)
                        acked[tp].append(offset)
                        self._n_acked += 1
            self.lapse_in_flight -= len(messages)
            notify(self._waiting_for_ack)

    async def wait_empty(self) -> None:
        """Faust's wait for every started message to be acked, inbox batches included, and for every
        decided step (timer ticks too: ``app.lapse_drained``) to have handed its changelog over.
        ``app.lapse_commit_point()`` first makes a commit point of whatever waits for one
        (streams/service/pipeline/interval.py)."""
        commit_point = getattr(self.app, "lapse_commit_point", None) or (lambda: None)
        commit_point()  # state and messages held back for the commit interval: committed by it
        while not self.should_stop and self.lapse_in_flight > 0:
            await self.commit()
            if self.lapse_in_flight <= 0:
                break
            await self._wait_for_ack(timeout=1)
            commit_point()  # a batch decided meanwhile
        drained = getattr(self.app, "lapse_drained", None)
        if drained is not None and not self.should_stop:
            await drained()
        await super().wait_empty()

    async def perform_seek(self) -> None:
        """Faust's seek of every assigned partition to its committed offset, and of a partition
        without one to its beginning (``auto_offset_reset=earliest``).

        Faust leaves a partition without a committed offset wherever the fetcher got to. Messages
        fetched while flow was suspended (during recovery or a rebalance) are dropped, because a
        seek is to re-read them; for such a partition nothing would ever re-read them. Seen as an
        IDS alert, at offset 0 of its partition and never committed, that a worker restarted after
        kill -9 never re-decided.
        """
        await super().perform_seek()
        self.lapse_dropped = {}  # what was dropped before this seek is read again from where it points
        fresh = [tp for tp in self.assignment()
                 if self._committed_offset.get(tp) is None and not self._is_changelog_tp(tp)]
        if fresh:
            earliest = await self.earliest_offsets(*fresh)
            await self._read_again({tp: earliest.get(tp) or 0 for tp in fresh})

    async def _fetch(self, timeout: float) -> list[tuple[Any, Any]]:
        """Faust's ``getmany`` as one list: the same records, checks and Message objects, built in
        one synchronous pass rather than an async generator step per message, with the partition's
        highwater read once per partition, not per message. Partitions with fewer records come
        first (an IDS alert is not queued behind a fetch of thousands of activity events). Records
        of inbox topics become :class:`~streams.service.pipeline.inbox.InboxMessage`."""
        records, active_partitions = await self._wait_next_records(timeout)
        if records is None or self.should_stop:
            return []
        if not self.flow_active:  # as Faust's getmany: seek back to the committed offsets
            try:
                await self.perform_seek()
            except Exception as exc:
                self.log.warning(f"exception performing seek when flow not active {exc}")
            return []
        to_message = self._to_message
        inboxes = getattr(self.app, "lapse_inboxes", None) or {}
        buffered = self._buffered_partitions
        track_end = self.app.monitor.track_tp_end_offset
        out: list[tuple[Any, Any]] = []
        for tp in sorted(records, key=lambda t: len(records[t])):
            if active_partitions is not None and tp not in active_partitions and tp not in buffered:
                continue
            track_end(tp, self.highwater(tp))
            # an inbox's readers need a few fields, not a Faust Message (see InboxMessage)
            make = InboxMessage if tp.topic in inboxes else to_message
            out.extend((tp, make(tp, r)) for r in records[tp])
        return out

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - exercised by the worker tests
        callback = self.callback
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
                messages = await self._fetch(timeout=1.0)
                await asyncio.sleep(0)
                if self.should_stop:
                    continue
                if self.lapse_dropped and flow_active() and not suspended():
                    messages = await self._rewind(messages)
                generation_id = self.app.consumer_generation_id
                for i, (tp, message) in enumerate(messages):
                    since_yield += 1
                    if since_yield > YIELD_EVERY:
                        since_yield = 0
                        await asyncio.sleep(0)  # (mode's Service.sleep(0) costs a task and a wait)
                        if self.app.consumer_generation_id != generation_id:
                            self._note_dropped(messages[i:])
                            break  # a rebalance happened meanwhile (as Faust's getmany)
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
                            self._note_dropped([(tp, message)])  # read again (see _rewind)
                            continue
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

    def _note_dropped(self, messages: Sequence[tuple[Any, Any]]) -> None:
        """Messages fetched but not delivered (flow suspended, or a new generation)."""
        if self.lapse_dropped is None:
            self.lapse_dropped = {}
        dropped = self.lapse_dropped
        for tp, message in messages:
            if tp not in dropped or message.offset < dropped[tp]:
                dropped[tp] = message.offset

    async def _rewind(self, messages: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
        """Flow is active again: seek every partition that dropped messages since the last
        ``perform_seek`` back to the first of them, and deliver nothing of those partitions from
        this fetch.

        Faust drops what is fetched while flow is suspended and relies on the seek to committed
        offsets that ends a rebalance; messages fetched between that seek and the flow's resumption
        were lost until the next rebalance (seen: two identity events a worker restarted after
        kill -9 never decided)."""
        rewind = {tp: offset for tp, offset in (self.lapse_dropped or {}).items() if tp in self.assignment()}
        self.lapse_dropped = {}
        if rewind:
            self.log.info(f"lapse: reading again from {len(rewind)} partitions' first undelivered offsets")
            await self._read_again(rewind)
        return [(tp, m) for tp, m in messages if tp not in rewind]

    async def _read_again(self, offsets: dict[Any, int]) -> None:
        """Seek these partitions to these offsets and forget what was delivered of them, so the
        messages from there on are delivered (again)."""
        await self.seek_wait(offsets)
        for tp in offsets:
            self._read_offset[tp] = None


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
