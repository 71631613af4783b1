"""The broker itself: keyed produce, a two-consumer group, and a rebalance that loses nothing."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(240)]

N = 10_000
KEYS = 97


async def _produce(bootstrap: str, topic: str, start: int, stop: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    await producer.start()
    try:
        batch = []
        for i in range(start, stop):
            key = f"user-{i % KEYS}".encode()
            batch.append(producer.send(topic, key=key, value=f'{{"seq": {i}}}'.encode()))
            if len(batch) >= 1000:
                await asyncio.gather(*batch)
                batch = []
        await asyncio.gather(*batch)
    finally:
        await producer.stop()


END = b"#end"


async def _markers(bootstrap: str, topic: str, partitions: int) -> None:
    """One ``END`` record (seq -1) on each partition."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await asyncio.gather(*[producer.send(topic, key=END, value=b'{"seq": -1}', partition=p)
                               for p in range(partitions)])
    finally:
        await producer.stop()


class Member:
    """A group member that records (key, seq) and commits after each processed batch."""

    def __init__(self, bootstrap: str, topic: str, group: str, seen: dict[bytes, list[int]]):
        self.consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
            auto_offset_reset="earliest", session_timeout_ms=10_000, heartbeat_interval_ms=500,
            max_poll_records=200,
        )
        self.seen = seen
        self.count = 0
        self.task: asyncio.Task | None = None
        self.stopping = False

    async def start(self) -> None:
        await self.consumer.start()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while not self.stopping:  # a stop lands between batches, after the commit
            batches = await self.consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for r in records:
                    self.seen[r.key].append(int(r.value.decode().split(":")[1].strip(" }")))
                    self.count += 1
            if batches:
                await self.consumer.commit()

    async def stop(self) -> None:
        assert self.task is not None
        self.stopping = True
        await self.task
        await self.consumer.stop()  # leaves the group: the rebalance hands its partitions over


async def _wait(predicate, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        if loop.time() > end:
            raise AssertionError("timed out")
        await asyncio.sleep(0.1)


async def test_group_of_two_keeps_per_key_order_and_loses_nothing_across_a_rebalance(kafka_bootstrap, unique_topic):
    topic = await unique_topic("foundation", partitions=6)
    group = f"{topic}.group"
    seen: dict[bytes, list[int]] = defaultdict(list)

    a = Member(kafka_bootstrap, topic, group, seen)
    b = Member(kafka_bootstrap, topic, group, seen)
    await a.start()
    await b.start()
    # the group settles first, so that both members own partitions when the messages arrive
    await _wait(lambda: len(a.consumer.assignment()) + len(b.consumer.assignment()) == 6
                and a.consumer.assignment() and b.consumer.assignment(), 60)
    await _produce(kafka_bootstrap, topic, 0, N)
    await _wait(lambda: sum(len(v) for v in seen.values()) >= N, 90)
    assert a.count > 0 and b.count > 0, "both members of the group must have received partitions"
    assert a.consumer.assignment() and b.consumer.assignment()
    assert not a.consumer.assignment() & b.consumer.assignment()

    # stop one member: the survivor must take over every partition from the committed offsets
    await b.stop()
    await _produce(kafka_bootstrap, topic, N, 2 * N)
    await _wait(lambda: sum(len(v) for v in seen.values()) >= 2 * N, 90)
    # an end marker on every partition: a re-delivery past a committed offset would arrive before
    # its partition's marker (order is per partition), so once all markers are in, nothing extra can
    await _markers(kafka_bootstrap, topic, 6)
    await _wait(lambda: len(seen.get(END, ())) == 6, 60)
    del seen[END]
    assert len(a.consumer.assignment()) == 6
    await a.stop()

    all_seqs = sorted(s for v in seen.values() for s in v)
    assert all_seqs == list(range(2 * N)), "every message exactly once: none lost, none re-delivered"
    for key, seqs in seen.items():
        assert seqs == sorted(seqs), f"order of {key!r} broken"
    # committed offsets cover the whole topic
    probe = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
    await probe.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(6)]
        ends = await probe.end_offsets(tps)
        for tp in tps:
            assert await probe.committed(tp) == ends[tp]
    finally:
        await probe.stop()
