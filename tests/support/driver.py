"""A service-level test driver in the spirit of Kafka Streams' TopologyTestDriver.

It runs the worker's own decision steps (``Service._decide_user_batch``, ``_decide_join_batch``,
``_decide_raw_batch``, the expiry tick) in-process, with an injected clock and without a broker:
pipe records in, advance the clock, read what came out, assert nothing extra came out.

Records the worker produces onto its internal topics (``sightings``, ``user-requests``) and the
canonical events the adapters produce are routed back in on their partition, as the broker would
deliver them, until nothing is left to deliver (:meth:`ServiceDriver.pump`). Real-broker tests
keep what only a broker shows: delivery, recovery, rebalance and ``kill -9``.

A driver may own only some partitions (``owns``), as one worker of a group does: what it produces
onto an input topic for a partition it does not own (a sighting of an IP another worker joins, an
alert's target whose user lives elsewhere, on ``user-requests``) waits in its hand-offs, and
:func:`settle` delivers those to the driver that owns the partition, until none is left.

The policy topic, which every worker follows outside the group, is fed with
:meth:`ServiceDriver.pipe_policy` (the worker's own follower takes and applies the record).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from streams.config import Settings
from streams.engine import Engine, loads_policy
from streams.service.app import RAW_FORMATS, Service
from streams.service.pipeline.partitioning import partition_for
from streams.service.web.policy_publish import POLICY_KEY, PolicyState, publish_record, seal_record
from streams.service.pipeline.sealed import MAGIC, Sealer, sealer_of

#: (topic, key, value, partition): a record as produced
Record = tuple[str, bytes | None, bytes | None, int]

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@dataclass
class Msg:
    """The fields of a Faust message that the decision steps read."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float


class _Sender:
    """Stands in for the batch sender: records are taken as delivered at once."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes | None, bytes | None, int | None]] = []

    def submit(self, records: list[Any]) -> asyncio.Future:
        self.records.extend(records)
        fut = asyncio.get_running_loop().create_future()
        fut.set_result([])
        return fut

    async def send_now(self) -> None:
        return None

    async def room(self) -> None:
        return None


class _Committer:
    def __init__(self) -> None:
        self.tickets: list[Any] = []

    def submit(self, ticket: Any) -> Any:
        self.tickets.append(ticket)
        if not ticket.done.done():
            ticket.done.set_result(None)
        return ticket

    async def room(self) -> None:
        return None


class ServiceDriver:
    """One worker owning every partition (or those in ``owns``), its clock at ``T0 + at``.

    Parameters
    ----------
    tmp : Path
        The worker's data folder (nothing is written there by the steps).
    policy : str
        Policy TOML.
    partitions : int
        Partitions of the keyed topics.
    owns : iterable of int, optional
        The partitions this worker owns (of every input topic: Faust co-partitions them); by
        default all. Records it produces for the others wait in :attr:`handoffs` (see :func:`settle`).
    engine_kwargs : dict
        Passed to :class:`~streams.engine.Engine` (``max_sessions``, ...).
    """

    def __init__(self, tmp: Path, policy: str = "", *, partitions: int = 6, owns: Iterable[int] | None = None,
                 env: dict[str, str] | None = None, **engine_kwargs: Any) -> None:
        self.now = T0
        settings = Settings.load({"LAPSE_BOOTSTRAP": "127.0.0.1:1", "LAPSE_DATA_DIR": str(tmp),
                                  "LAPSE_PARTITIONS": str(partitions),
                                  "LAPSE_INTERNAL_KEY": "service-driver-internal-key-0123456789", **(env or {})})
        parsed = loads_policy(policy)
        self.service = svc = Service(settings, lambda store: Engine(parsed, store, **engine_kwargs),
                                     lambda decision: orjson.dumps({"decision": decision}), clock=lambda: self.now)
        svc.sender = _Sender()  # type: ignore[assignment]
        svc.committer = _Committer()  # type: ignore[assignment]
        self.owned = frozenset(range(partitions) if owns is None else owns)
        if not self.owned <= set(range(partitions)):
            raise ValueError(f"owns {sorted(self.owned)}: the topics have partitions 0..{partitions - 1}")
        svc._assigned_user_partitions = set(self.owned)
        svc.catchup.waited_s = 0.0  # deadlines may fire: nothing to catch up with
        svc.ready = True
        self.partitions = partitions
        self._offsets: dict[tuple[str, int], int] = {}
        self._taken = 0
        #: records produced onto input topics for partitions another worker owns, not yet delivered
        self.handoffs: list[Record] = []
        n = settings.topic
        self.user_topics = {n("identity"), n("activity"), n("user-requests")}
        self.join_topics = {n("ids-alerts"), n("sightings")}
        self.raw_topics = {n(f"raw.{f}") for f in RAW_FORMATS}
        self.topic = n

    @property
    def engine(self) -> Engine:
        return self.service.engine

    # -- input -------------------------------------------------------------------------------------
    def message(self, topic: str, value: bytes | None, key: bytes | None = None,
                partition: int | None = None) -> Msg:
        if partition is None:
            partition = partition_for(key or b"", self.partitions) if key else 0
        if partition not in self.owned:
            raise ValueError(f"partition {partition} of {topic} belongs to another worker (this one owns "
                             f"{sorted(self.owned)}): pipe it into the driver that owns it")
        tp = (topic, partition)
        offset = self._offsets.get(tp, 0)
        self._offsets[tp] = offset + 1
        return Msg(topic, partition, offset, key, value, self.now)

    def pipe(self, topic: str, value: bytes | dict | None, key: str | bytes | None = None,
             partition: int | None = None) -> None:
        """One record on ``topic`` (short name, e.g. ``"activity"``), decided in a step of its own,
        then everything it caused on the internal topics (see :meth:`pump`)."""
        self.pipe_batch([(topic, value, key, partition)])

    def pipe_batch(self, items: Iterable[tuple[str, bytes | dict | None, str | bytes | None, int | None]]) -> None:
        """Records decided together, as one batch per lane (the order within a lane kept)."""
        by_lane: dict[str, list[Msg]] = {"user": [], "join": [], "raw": []}
        for topic, value, key, partition in items:
            if isinstance(value, dict):
                value = orjson.dumps(value)
            if isinstance(key, str):
                key = key.encode()
            msg = self.message(self.topic(topic), value, key, partition)
            by_lane[self._lane(msg.topic)].append(msg)
        self._decide(by_lane)
        self.pump()

    def _lane(self, topic: str) -> str:
        if topic in self.user_topics:
            return "user"
        if topic in self.join_topics:
            return "join"
        if topic in self.raw_topics:
            return "raw"
        raise ValueError(f"not an input topic of the worker: {topic}")

    def _decide(self, by_lane: dict[str, list[Msg]]) -> None:
        svc = self.service
        if by_lane["raw"]:
            svc._decide_raw_batch(by_lane["raw"])
        if by_lane["join"]:
            svc._decide_join_batch(by_lane["join"], ack=False)
        if by_lane["user"]:
            svc._decide_user_batch(by_lane["user"], ack=False)

    def pump(self, max_rounds: int = 20) -> None:
        """Deliver what the worker produced on its own input topics until nothing is left; records
        for partitions it does not own go to :attr:`handoffs` instead."""
        inputs = self.user_topics | self.join_topics | {self.topic(t) for t in ("identity", "activity", "ids-alerts")}
        for _ in range(max_rounds):
            new = self.service.sender.records[self._taken:]
            self._taken = len(self.service.sender.records)
            by_lane: dict[str, list[Msg]] = {"user": [], "join": [], "raw": []}
            for topic, key, value, partition in new:
                if topic in inputs:
                    p = partition if partition is not None else partition_for(key or b"", self.partitions)
                    if p not in self.owned:
                        self.handoffs.append((topic, key, value, p))
                        continue
                    msg = self.message(topic, value, key, p)
                    by_lane[self._lane(topic)].append(msg)
            if not any(by_lane.values()):
                return
            self._decide(by_lane)
        raise AssertionError(f"the worker kept producing to its own inputs after {max_rounds} rounds")

    def deliver(self, records: Iterable[Record]) -> None:
        """Records another worker produced onto this worker's partitions, decided as one batch per
        lane (in order), then everything they caused (see :meth:`pump`)."""
        by_lane: dict[str, list[Msg]] = {"user": [], "join": [], "raw": []}
        for topic, key, value, partition in records:
            by_lane[self._lane(topic)].append(self.message(topic, value, key, partition))
        self._decide(by_lane)
        self.pump()

    async def pipe_policy(self, value: bytes | None, key: bytes | None = POLICY_KEY) -> None:
        """One record on the policy topic (partition 0), read by the worker's own follower as it
        reads the topic outside the group, then applied (the worker is ready and caught up)."""
        follower = self.service.operator.follower
        if follower.sealer is None:  # the follower takes the Service's sealer when it starts
            follower.sealer = sealer_of(self.service)
        topic = self.topic("policy")
        offset = self._offsets.get((topic, 0), 0)
        self._offsets[(topic, 0)] = offset + 1
        follower._take(Msg(topic, 0, offset, key, value, self.now))
        follower.caught_up = True
        await follower.maybe_apply()
        self.pump()

    def policy_record(self, text: str, *, operator: str = "ann", sealer: Sealer | None = None,
                      topic: str | None = None) -> bytes:
        """What ``lapse policy publish`` writes for ``text``: sealed with the workers' key (or
        ``sealer``) for the policy topic (or ``topic``, full name: a record moved from elsewhere)."""
        rec = publish_record(loads_policy(text), text, "driver.toml", operator, self.now)
        return seal_record(sealer or self.service.sealer, topic or self.topic("policy"), rec)

    @property
    def policy_state(self) -> PolicyState:
        """What ``/api/policy`` shows (``.to_dict()``): the policy in force, its source, refusals."""
        return self.service.operator.policy

    async def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` on and run the expiry timer once."""
        self.now += seconds
        await self.service._expiry_tick()
        self.service.commit_point()  # the timer's next commit point, without waiting for it
        self.pump()

    # -- output ------------------------------------------------------------------------------------
    def records(self, topic: str) -> list[tuple[bytes | None, Any]]:
        """Every ``(key, parsed value)`` produced on ``topic`` (short name) so far."""
        name = self.topic(topic)
        out = []
        for t, key, value, _ in self.service.sender.records:
            if t == name:
                if value and value[:3] == MAGIC:  # sealed (user-requests): its payload
                    value = self.service.sealer.open(t, key, value)
                out.append((key, orjson.loads(value) if value else None))
        return out

    def changelog(self) -> list[tuple[str, bytes | None, bytes | None, int | None]]:
        """Every changelog record the steps handed to the committer, in order."""
        return [r for t in self.service.committer.tickets for r in t.changelog]

    def produced(self) -> dict[str, int]:
        """How many records went to each topic (short name) so far: what else came out."""
        prefix = self.topic("")
        out: dict[str, int] = {}
        for t, _, _, _ in self.service.sender.records:
            name = t[len(prefix):] if t.startswith(prefix) else t
            out[name] = out.get(name, 0) + 1
        return out

    def metric(self, name: str, **labels: str) -> float | None:
        """A sample of the worker's metrics (``None``: never set)."""
        return self.service.metrics.registry.get_sample_value(name, labels)

    def decisions(self) -> list[dict[str, Any]]:
        return [v["decision"] for _, v in self.records("revocations")]

    def dead_letters(self) -> list[dict[str, Any]]:
        return [v for _, v in self.records("dead-letters")]

    def audits(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [v for _, v in self.records("audit") if kind is None or v.get("kind") == kind]


def settle(*drivers: ServiceDriver, max_rounds: int = 20) -> None:
    """Deliver each driver's hand-offs to the driver that owns their partition (as the broker would
    deliver them to that worker), until no driver has any left."""
    for _ in range(max_rounds):
        moved = False
        for d in drivers:
            out, d.handoffs = d.handoffs, []
            orphans = [r for r in out if not any(r[3] in t.owned for t in drivers)]
            if orphans:
                raise AssertionError(f"no driver owns the partitions of {[(t, p) for t, _, _, p in orphans]}")
            for target in drivers:
                mine = [r for r in out if r[3] in target.owned]
                if mine:
                    moved = True
                    target.deliver(mine)
        if not moved:
            return
    raise AssertionError(f"the workers kept handing records to each other after {max_rounds} rounds")
