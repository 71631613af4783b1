"""Enforcement client: follow lapse's revocations topic and answer "is this session still good?".

    client = RevocationClient("kafka:9092", "lapse.revocations", jwks="jwks.json",
                              issuer="https://lapse.example.com/", audience="https://gw.example.com/",
                              ttl_s=12 * 3600)
    await client.start()
    await client.wait_until_caught_up()     # every revocation already on the topic is known
    client.is_revoked("s1"); client.requires_step_up("s1")   # O(1), no I/O
    await client.stop()

The client consumes without a consumer group (nothing is committed; every instance sees every
partition) and always starts from the beginning of the topic, so a restarted gateway refuses
sessions revoked before it started. Keep the topic's retention >= ``ttl_s``.

With ``max_feed_age_s`` the client also knows when its view is too old to trust: the worker
signs a heartbeat onto every partition every few seconds, and ``fresh`` is false (the middleware
answers 503) once the stalest partition's newest verified heartbeat is older than the bound, be
it because the worker stopped, a partition lost its leader, or this consumer is stuck or lagging.
A quiet topic is not a stale one: heartbeats keep flowing when no session is revoked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError

from enforce.state import EnforceConfigError, Revocation, RevocationState
from enforce.verify import SetVerifier

log = logging.getLogger(__name__)


class NotCaughtUp(TimeoutError):
    """The client did not read up to the topic's end within the timeout."""


class RevocationClient:
    def __init__(
        self,
        bootstrap: str,
        topic: str,
        jwks: Mapping[str, Any] | str | os.PathLike[str],
        issuer: str,
        audience: str | Collection[str],
        ttl_s: float,
        *,
        absolute_timeout_s: float | None = None,
        clock: Callable[[], float] = time.time,
        poll_timeout_ms: int = 200,
        max_records: int = 500,
        on_applied: Callable[[str, bytes | None], None] | None = None,
        max_feed_age_s: float | None = None,
        **consumer_options: Any,
    ) -> None:
        if max_feed_age_s is not None and (
            isinstance(max_feed_age_s, bool) or not isinstance(max_feed_age_s, (int, float))
            or not math.isfinite(max_feed_age_s) or max_feed_age_s <= 0
        ):
            raise EnforceConfigError(
                f"max_feed_age_s must be a positive number of seconds (several heartbeat intervals) "
                f"or None, not {max_feed_age_s!r}"
            )
        if not isinstance(bootstrap, str) or not bootstrap:
            raise EnforceConfigError("bootstrap must be 'host:port[,host:port...]'")
        if not isinstance(topic, str) or not topic:
            raise EnforceConfigError("topic must name the revocations topic")
        forbidden = {"group_id", "enable_auto_commit", "auto_offset_reset"} & consumer_options.keys()
        if forbidden:
            raise EnforceConfigError(
                f"{sorted(forbidden)} cannot be set: the client reads from the beginning without a group"
            )
        self.bootstrap = bootstrap
        self.topic = topic
        self.verifier = SetVerifier(jwks, issuer, audience)
        self.state = RevocationState(self.verifier, ttl_s, absolute_timeout_s=absolute_timeout_s, clock=clock)
        self.poll_timeout_ms = poll_timeout_ms
        self.max_records = max_records
        self.on_applied = on_applied
        self.max_feed_age_s = None if max_feed_age_s is None else float(max_feed_age_s)
        self.consumer_options = {"metadata_max_age_ms": 5000, "client_id": "lapse-enforce", **consumer_options}
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._caught_up = asyncio.Event()
        self._targets: dict[TopicPartition, int] | None = None
        self._kafka_errors = 0
        self._partitions: frozenset[int] | None = None  # every partition of the topic, from metadata
        self.last_message_at: float | None = None

    # -- queries ------------------------------------------------------------------------------
    def is_revoked(self, session: str) -> bool:
        return self.state.is_revoked(session)

    def requires_step_up(self, session: str) -> bool:
        return self.state.requires_step_up(session)

    def revocation(self, session: str) -> Revocation | None:
        return self.state.revocation(session)

    def clear_step_up(self, session: str) -> None:
        self.state.clear_step_up(session)

    @property
    def caught_up(self) -> bool:
        return self._caught_up.is_set()

    def feed_age(self) -> float:
        """Seconds since the stalest partition of the topic was last shown alive by a verified
        heartbeat; ``math.inf`` before the partitions are known or while one has had none."""
        return self.state.feed_age(self._partitions)

    @property
    def fresh(self) -> bool:
        """True unless ``max_feed_age_s`` is set and :meth:`feed_age` exceeds it."""
        return self.max_feed_age_s is None or self.feed_age() <= self.max_feed_age_s

    @property
    def counters(self) -> dict[str, int]:
        return {**self.state.counters, "kafka_errors": self._kafka_errors, "caught_up": int(self.caught_up),
                "fresh": int(self.fresh)}

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("RevocationClient already started")
        self._caught_up = asyncio.Event()
        self._partitions = None
        self._consumer = AIOKafkaConsumer(
            self.topic,
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **self.consumer_options,
        )
        await self._consumer.start()
        self._task = asyncio.create_task(self._run(), name=f"lapse-enforce:{self.topic}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    async def __aenter__(self) -> RevocationClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def wait_until_caught_up(self, timeout: float = 30.0) -> None:
        """Return once every message that was on the topic when the client started is applied."""
        if self._task is None:
            raise RuntimeError("start() the client first")
        waiter = asyncio.ensure_future(self._caught_up.wait())
        done, _ = await asyncio.wait({waiter, self._task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if waiter not in done:
            waiter.cancel()
            if self._task in done:
                self._task.result()  # re-raise what killed the consumer loop
            if self._targets is None:
                raise NotCaughtUp(f"topic {self.topic!r} has no partitions after {timeout} s (does it exist?)")
            raise NotCaughtUp(f"not caught up on {self.topic!r} after {timeout} s (end offsets {self._targets})")

    # -- the loop -----------------------------------------------------------------------------
    async def _end_targets(self) -> dict[TopicPartition, int] | None:
        assert self._consumer is not None
        parts = self._consumer.partitions_for_topic(self.topic)
        if not parts:
            await self._consumer.topics()  # metadata refresh; the topic may not exist yet
            parts = self._consumer.partitions_for_topic(self.topic)
            if not parts:
                return None
        tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
        return await self._consumer.end_offsets(tps)

    async def _check_caught_up(self) -> None:
        assert self._consumer is not None
        if self._targets is None:
            self._targets = await self._end_targets()
            if self._targets is None:
                return
        for tp, end in self._targets.items():
            if end == 0:
                continue
            try:
                pos = await self._consumer.position(tp)
            except IllegalStateError:  # not assigned yet
                return
            if pos < end:
                return
        self._caught_up.set()
        log.info("revocations topic %s: caught up (%d entries)", self.topic, len(self.state))

    async def _run(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        last_sweep = time.monotonic()
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=self.poll_timeout_ms, max_records=self.max_records)
                n = 0
                for msgs in batches.values():
                    for msg in msgs:
                        outcome = self.state.apply_record(msg.key, msg.value, msg.partition)
                        if self.on_applied is not None:
                            try:
                                self.on_applied(outcome, msg.key)
                            except Exception:
                                log.exception("on_applied callback failed")
                        n += 1
                        if n % 64 == 0:
                            await asyncio.sleep(0)  # verifying is CPU work: let requests through
                if batches:
                    self.last_message_at = time.time()
                # every partition the topic has (not just those that delivered): a partition that
                # went silent, or one added since the start, must make the feed stale
                parts = consumer.partitions_for_topic(self.topic)
                if parts:
                    self._partitions = frozenset(parts)
                if not self._caught_up.is_set():
                    await self._check_caught_up()
            except asyncio.CancelledError:
                raise
            except KafkaError as exc:
                self._kafka_errors += 1
                log.warning("revocations consumer error (retrying): %r", exc)
                await asyncio.sleep(0.5)
            except Exception:  # never let one bad message stop enforcement
                self._kafka_errors += 1
                log.exception("revocations consumer loop error (continuing)")
                await asyncio.sleep(0.5)
            if time.monotonic() - last_sweep > 5.0:
                self.state.sweep()
                last_sweep = time.monotonic()
