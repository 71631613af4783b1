"""The commit order of pipelined steps (streams/service/pipeline/commit.py) and the batch sender
(streams/service/pipeline/outbox.py), driven by a stand-in producer whose acknowledgements the test
releases by hand. The real producer and broker are exercised by tests/integration."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from streams.service.pipeline.commit import CommitFailed, Committer, Ticket
from streams.service.pipeline.outbox import BatchSender


class Batch:
    def __init__(self, limit: int) -> None:
        self.records: list[tuple] = []
        self.limit = limit
        self.closed = False

    def append(self, *, key, value, timestamp):
        if self.closed or len(self.records) >= self.limit:
            self.closed = True
            return None
        self.records.append((key, value))
        return object()

    def close(self):
        self.closed = True


class Producer:
    """What BatchSender uses of AIOKafkaProducer; every delivery future waits for ``release``."""

    def __init__(self, batch_limit: int = 1000, partitions: int = 3) -> None:
        self.batch_limit = batch_limit
        self.partitions = partitions
        self.sent: list[tuple[str, int, list]] = []  # (topic, partition, records) in hand-over order
        self.futures: list[asyncio.Future] = []

    def create_batch(self):
        return Batch(self.batch_limit)

    async def partitions_for(self, topic):
        return set(range(self.partitions))

    def _future(self):
        fut = asyncio.get_running_loop().create_future()
        self.futures.append(fut)
        return fut

    async def send_batch(self, batch, topic, *, partition):
        self.sent.append((topic, partition, list(batch.records)))
        return self._future()

    async def send(self, topic, value=None, key=None, partition=None):
        self.sent.append((topic, partition, [(key, value)]))
        return self._future()

    def release(self, i: int, exc: BaseException | None = None) -> None:
        if exc is None:
            self.futures[i].set_result(None)
        else:
            self.futures[i].set_exception(exc)


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def _release_changelogs(producer: Producer, until: asyncio.Future) -> None:
    """Acknowledge changelog records as they are handed over, until ``until`` resolves."""
    for _ in range(200):
        if until.done():
            return
        await _settle()
        for (topic, _, _), fut in zip(producer.sent, producer.futures):
            if topic == "changelog" and not fut.done():
                fut.set_result(None)
    raise AssertionError("not committed")


@contextlib.asynccontextmanager
async def _pipeline(producer: Producer):
    """A sender and a committer running on ``producer``, stopped on exit."""
    sender = BatchSender(lambda: producer)
    acked: list[str] = []
    committer = Committer(sender, acked.extend)
    tasks = [asyncio.create_task(sender.run()), asyncio.create_task(committer.run())]
    try:
        yield sender, committer, acked, tasks
    finally:
        for t in tasks:
            t.cancel()


def _step(sender: BatchSender, committer: Committer, name: str, partition: int) -> Ticket:
    sent = sender.submit([("revocations", name.encode(), b"decision", partition)])
    return committer.submit(Ticket(sent, [("changelog", name.encode(), b"state", partition)], [f"{name}-msg"]))


async def test_tickets_commit_in_decide_order_even_when_a_later_step_is_acknowledged_first():
    producer = Producer()
    async with _pipeline(producer) as (sender, committer, acked, tasks):
        first = _step(sender, committer, "a", 0)
        second = _step(sender, committer, "b", 1)
        await _settle()
        assert [s[0] for s in producer.sent] == ["revocations", "revocations"]  # both produced at once
        producer.release(1)  # the second step's decision is acknowledged first
        await _settle()
        assert acked == [] and not second.done.done(), "nothing commits ahead of the first step"
        assert [s[0] for s in producer.sent].count("changelog") == 0
        producer.release(0)
        await _release_changelogs(producer, second.done)
        assert first.done.done()
        changelog = [recs[0][0] for topic, _, recs in producer.sent if topic == "changelog"]
        assert changelog == [b"a", b"b"], "changelog written after the decisions, in decide order"
        assert acked == ["a-msg", "b-msg"]
        assert committer.committed == 2


async def test_a_step_whose_records_fail_stops_every_later_commit():
    producer = Producer()
    async with _pipeline(producer) as (sender, committer, acked, tasks):
        first = _step(sender, committer, "a", 0)
        second = _step(sender, committer, "b", 1)
        await _settle()
        producer.release(1)
        producer.release(0, RuntimeError("broker said no"))
        with pytest.raises(CommitFailed):
            await asyncio.wait_for(tasks[1], 1)  # the committer raises: the worker crashes
        assert first.done.exception() is not None and second.done.exception() is not None
        assert acked == [], "no offset commits over a lost decision"
        assert not [s for s in producer.sent if s[0] == "changelog"], "no state written over it either"
        late = _step(sender, committer, "c", 2)
        assert isinstance(late.done.exception(), CommitFailed)


async def test_sender_keeps_each_partitions_order_and_sends_oversized_records_alone():
    producer = Producer(batch_limit=2)
    sender = BatchSender(lambda: producer)
    task = asyncio.create_task(sender.run())
    try:
        records = [("audit", f"k{i}".encode(), f"v{i}".encode(), i % 2) for i in range(5)]
        first = sender.submit(records)
        second = sender.submit([("audit", b"k5", b"v5", 0), ("audit", b"big", b"x" * 10, None)])
        producer.batch_limit = 2
        futures = await asyncio.wait_for(first, 1)
        await asyncio.wait_for(second, 1)
        per_partition: dict[int, list] = {}
        for topic, partition, recs in producer.sent:
            per_partition.setdefault(partition, []).extend(v for _, v in recs)
        assert per_partition[0][:4] == [b"v0", b"v2", b"v4", b"v5"], "partition 0 in submission order"
        assert per_partition[1] == [b"v1", b"v3"]
        assert len(futures) == 3  # partition 0 filled one batch of 2 and started another; partition 1 one
        assert sender.records_sent == 7
    finally:
        task.cancel()


async def test_a_record_larger_than_an_empty_batch_goes_out_on_its_own():
    producer = Producer(batch_limit=0)  # no record fits a batch
    sender = BatchSender(lambda: producer)
    task = asyncio.create_task(sender.run())
    try:
        futures = await asyncio.wait_for(sender.submit([("dead-letters", b"t", b"x" * 100, 0)]), 1)
        assert len(futures) == 1 and producer.sent == [("dead-letters", 0, [(b"t", b"x" * 100)])]
    finally:
        task.cancel()


def test_bad_configuration_fails_fast_with_a_named_message():
    with pytest.raises(TypeError, match="BatchSender: get_producer"):
        BatchSender(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Committer: max_pending"):
        Committer(BatchSender(lambda: None), print, max_pending=0)


async def test_a_refused_changelog_record_stops_the_committer_before_its_offsets_are_acked():
    producer = Producer()
    async with _pipeline(producer) as (sender, committer, acked, tasks):
        first = _step(sender, committer, "a", 0)
        await _settle()
        producer.release(0)  # the decision is acknowledged ...
        await _settle()
        assert [s[0] for s in producer.sent] == ["revocations", "changelog"]
        producer.release(1, RuntimeError("MessageSizeTooLargeError"))  # ... its state is refused
        with pytest.raises(CommitFailed):
            await asyncio.wait_for(tasks[1], 1)  # the committer raises: the worker crashes
        assert acked == [], "no offset commits over state the broker refused"
        assert first.done.exception() is not None
