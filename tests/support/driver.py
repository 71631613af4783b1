"""A service-level test driver in the spirit of Kafka Streams' TopologyTestDriver.

It runs the worker's own decision steps (``Service._decide_user_batch``, ``_decide_join_batch``,
``_decide_raw_batch``, the expiry tick) in-process, with an injected clock and without a broker:
pipe records in, advance the clock, read what came out, assert nothing extra came out.

Records the worker produces onto its internal topics (``sightings``, ``user-requests``) and the
canonical events the adapters produce are routed back in on their partition, as the broker would
deliver them, until nothing is left to deliver (:meth:`ServiceDriver.pump`). Real-broker tests
keep what only a broker shows: delivery, recovery, rebalance and ``kill -9``.
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
from streams.service.partitioning import partition_for
from streams.service.sealed import MAGIC

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
    """One worker owning every partition, its clock at ``T0 + at``.

    Parameters
    ----------
    tmp : Path
        The worker's data folder (nothing is written there by the steps).
    policy : str
        Policy TOML.
    partitions : int
        Partitions of the keyed topics.
    engine_kwargs : dict
        Passed to :class:`~streams.engine.Engine` (``max_sessions``, ...).
    """

    def __init__(self, tmp: Path, policy: str = "", *, partitions: int = 6, env: dict[str, str] | None = None,
                 **engine_kwargs: Any) -> None:
        self.now = T0
        settings = Settings.load({"LAPSE_BOOTSTRAP": "127.0.0.1:1", "LAPSE_DATA_DIR": str(tmp),
                                  "LAPSE_PARTITIONS": str(partitions),
                                  "LAPSE_INTERNAL_KEY": "service-driver-internal-key-0123456789", **(env or {})})
        parsed = loads_policy(policy)
        self.service = svc = Service(settings, lambda store: Engine(parsed, store, **engine_kwargs),
                                     lambda decision: orjson.dumps({"decision": decision}), clock=lambda: self.now)
        svc.sender = _Sender()  # type: ignore[assignment]
        svc.committer = _Committer()  # type: ignore[assignment]
        svc._assigned_user_partitions = set(range(partitions))
        svc.catchup.waited_s = 0.0  # deadlines may fire: nothing to catch up with
        svc.ready = True
        self.partitions = partitions
        self._offsets: dict[tuple[str, int], int] = {}
        self._taken = 0
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
        """Deliver what the worker produced on its own input topics until nothing is left."""
        inputs = self.user_topics | self.join_topics | {self.topic(t) for t in ("identity", "activity", "ids-alerts")}
        for _ in range(max_rounds):
            new = self.service.sender.records[self._taken:]
            self._taken = len(self.service.sender.records)
            by_lane: dict[str, list[Msg]] = {"user": [], "join": [], "raw": []}
            for topic, key, value, partition in new:
                if topic in inputs:
                    p = partition if partition is not None else partition_for(key or b"", self.partitions)
                    msg = self.message(topic, value, key, p)
                    by_lane[self._lane(topic)].append(msg)
            if not any(by_lane.values()):
                return
            self._decide(by_lane)
        raise AssertionError(f"the worker kept producing to its own inputs after {max_rounds} rounds")

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

    def decisions(self) -> list[dict[str, Any]]:
        return [v["decision"] for _, v in self.records("revocations")]

    def dead_letters(self) -> list[dict[str, Any]]:
        return [v for _, v in self.records("dead-letters")]

    def audits(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [v for _, v in self.records("audit") if kind is None or v.get("kind") == kind]
