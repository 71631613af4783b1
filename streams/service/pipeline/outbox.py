"""Records to produce, handed to aiokafka one batch per partition, in the order they were staged.

aiokafka's ``producer.send()`` pays per record for an awaited metadata check, a pure-Python
murmur2 partitioner and a future. Its batch API (``create_batch`` / ``send_batch``) appends records
to one builder per (topic, partition), and each builder is one future: several times less CPU per
record (``python bench/producer_bench.py`` measures both, docs/benchmarks.md).

The engine's decide step is synchronous, so it stages its records in a plain list
(:data:`Record` tuples) and submits the list to a :class:`BatchSender`. One task sends the lists
in submission order, which keeps every partition's records in the order they were decided: a
second builder for a partition waits in aiokafka until the first one is drained, and only that
task waits, never the decide step.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from streams.service.pipeline.partitioning import partition_for
from streams.service.pipeline.pending import Pending

__all__ = ["Record", "BatchSender"]

log = logging.getLogger("lapse.outbox")

#: ``(topic, key, value, partition)``: ``partition`` None means Kafka's default partitioner on the
#: key (murmur2, as every Kafka client computes it); a ``None`` value is a tombstone.
Record = tuple[str, bytes | None, bytes | None, int | None]


class BatchSender:
    """Sends lists of records through aiokafka's batch API, one list after another.

    Parameters
    ----------
    get_producer : callable
        Returns the started ``AIOKafkaProducer`` (Faust's own, so Faust's flush before each offset
        commit covers every record handed over).
    max_pending : int
        Lists submitted but not yet handed to aiokafka before :meth:`room` makes callers wait.

    Notes
    -----
    :meth:`submit` returns a future that resolves, once every record of the list is in aiokafka's
    accumulator, to the delivery futures of its batches (each resolves when the broker
    acknowledged the batch). A record too large for an empty batch is sent alone with
    ``producer.send``.
    """

    def __init__(self, get_producer: Callable[[], Any], *, max_pending: int = 64) -> None:
        if not callable(get_producer):
            raise TypeError("BatchSender: get_producer must be callable() -> AIOKafkaProducer")
        self._get_producer = get_producer
        self._queue: Pending[tuple[list[Record], asyncio.Future]] = Pending("BatchSender", max_pending)
        self._lock = asyncio.Lock()
        self._partitions: dict[str, int] = {}
        self._pcache: dict[tuple[bytes, int], int] = {}
        self.records_sent = 0

    def submit(self, records: list[Record]) -> asyncio.Future:
        """Queue ``records`` (synchronously: the caller keeps its order among other submitters)."""
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        if not records:
            fut.set_result([])
            return fut
        self._queue.push((records, fut))
        return fut

    async def room(self) -> None:
        """Wait until fewer than ``max_pending`` lists are waiting to be handed over."""
        await self._queue.room()

    async def run(self) -> None:
        """The sending task: hand each list over in order; a failure fails that list's future."""
        while True:
            await self._queue.items()
            async with self._lock:
                await self._send_queued(yield_between=True)

    async def send_now(self) -> None:
        """Hand over what is queued from the calling task, unless the sending task is at it: one
        event-loop turn sooner for a step on an alert's critical path. Order is kept: lists are
        sent under one lock, oldest first."""
        if self._queue and not self._lock.locked():
            async with self._lock:
                await self._send_queued(yield_between=False)

    async def _send_queued(self, *, yield_between: bool) -> None:
        while self._queue:
            records, fut = self._queue.pop()
            try:
                futures = await self._send(records)
            except Exception as exc:  # the caller's commit step decides what a failure means
                if not fut.done():
                    fut.set_exception(exc)
                continue
            if not fut.done():
                fut.set_result(futures)
            if yield_between:
                await asyncio.sleep(0)  # send_batch rarely suspends: let the deciding tasks run between lists

    async def _partition_count(self, producer: Any, topic: str) -> int:
        n = self._partitions.get(topic)
        if n is None:
            n = self._partitions[topic] = len(await producer.partitions_for(topic))
        return n

    async def _send(self, records: list[Record]) -> list[asyncio.Future]:
        producer = self._get_producer()
        builders: dict[tuple[str, int], Any] = {}
        futures: list[asyncio.Future] = []
        pcache = self._pcache
        for topic, key, value, partition in records:
            if partition is None:
                n = self._partitions.get(topic) or await self._partition_count(producer, topic)
                if key is None:
                    partition = self.records_sent % n
                else:
                    partition = pcache.get((key, n))
                    if partition is None:
                        if len(pcache) >= 200_000:  # a pure-function cache, safe to drop
                            pcache.clear()
                        partition = pcache[(key, n)] = partition_for(key, n)
            tp = (topic, partition)
            builder = builders.get(tp)
            if builder is None or builder.append(key=key, value=value, timestamp=None) is None:
                if builder is not None:  # full (append closed it): hand it over, start another
                    futures.append(await producer.send_batch(builder, topic, partition=partition))
                builder = builders[tp] = producer.create_batch()
                if builder.append(key=key, value=value, timestamp=None) is None:
                    del builders[tp]  # larger than an empty batch: on its own
                    futures.append(await producer.send(topic, value=value, key=key, partition=partition))
            self.records_sent += 1
        for (topic, partition), builder in builders.items():
            builder.close()
            futures.append(await producer.send_batch(builder, topic, partition=partition))
        return futures
