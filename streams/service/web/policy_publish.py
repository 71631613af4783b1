"""Policy reload without restart: publish a validated policy to the compacted ``policy`` topic, and
follow that topic in every worker.

Publisher (``lapse policy publish FILE``)
    Validates FILE with the engine's loader (a bad file is refused, every error naming its key),
    then produces ``{"version", "text", "source", "published_at", "operator"}`` under key
    ``"current"`` to ``<prefix>policy`` (compacted: the latest version survives), sealed
    (streams/service/pipeline/sealed.py: the publisher needs the workers' internal key, i.e.
    ``LAPSE_INTERNAL_KEY[_FILE]`` or their signing key), and an ``admin_action`` audit record
    (``action: policy_publish``) to the audit topic.

Follower (one per worker, started by :func:`streams.service.web.admin.register`)
    Not a Faust agent: an agent would join the consumer group and only one worker would own the
    topic's single partition. The follower reads the topic *outside* the group (no group id,
    from the beginning), so **every** worker sees every version. It first reads up to the
    topic's end offset (so a restart never applies an old, superseded version), then applies
    the newest valid version once the worker is ready, in one synchronous step on the event
    loop: ``engine.set_policy(policy, now)`` switches the policy and re-evaluates every live
    session, and the outputs (``policy_tightened`` audits, revocations of sessions now over a
    limit) go through ``Service.publish`` — the same commit order as any batch. A record that
    fails validation in the worker is logged, counted and ignored: the policy in force stays.

    A record that does not open (unsealed, sealed with another key, moved from another topic or
    key, altered) or that was sealed before the record the follower took last (a replayed older
    policy: ``stale``) is never applied: it is logged, counted
    (``lapse_forged_records_total{topic="policy",reason}``), listed under ``rejected`` and
    audited (``forged_record`` with topic, partition, offset and reason) once the worker is ready.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from streams.engine.decisions import Output, audit, rfc3339, stable_id
from streams.engine.policy import Policy, PolicyError, load_policy, loads_policy
from streams.service.pipeline.sealed import ForgedRecord, Sealer, refuse, sealer_of

if TYPE_CHECKING:
    from streams.config import Settings
    from streams.service.app import Service

log = logging.getLogger("lapse.policy")

POLICY_KEY = b"current"


def publish_record(policy: Policy, text: str, source: str, operator: str, now: float) -> dict[str, Any]:
    """The value written to the policy topic."""
    return {"version": policy.version, "text": text, "source": source, "published_at": rfc3339(now),
            "operator": operator}


def parse_record(value: bytes | None) -> tuple[Policy, dict[str, Any]]:
    """Validate a policy-topic value; raise ``PolicyError`` (naming keys) or ``ValueError``."""
    if value is None:
        raise ValueError("tombstone (no policy)")
    rec = orjson.loads(value)
    if not isinstance(rec, dict) or not isinstance(rec.get("text"), str):
        raise ValueError("policy record without a 'text' string")
    policy = loads_policy(rec["text"], f"policy topic ({rec.get('source', '?')})")
    if rec.get("version") and rec["version"] != policy.version:
        raise ValueError(f"version mismatch: record says {rec['version']}, text is {policy.version}")
    return policy, rec


def seal_record(sealer: Sealer, topic: str, rec: dict[str, Any]) -> bytes:
    """The policy-topic value of ``rec`` (key ``"current"``), sealed for ``topic`` (full name)."""
    return sealer.seal(topic, POLICY_KEY, orjson.dumps(rec))


async def publish(settings: "Settings", path: str | Path, operator: str | None = None,
                  now: float | None = None, *, sealer: Sealer | None = None) -> dict[str, Any]:
    """Validate ``path`` and publish it, sealed; returns the published record (without the text).

    Raises ``PolicyError`` before anything is sent when the file is invalid, and ``ConfigError``
    when no internal key is configured (``sealer`` defaults to ``Sealer.from_settings(settings)``).
    """
    from aiokafka import AIOKafkaProducer

    from streams.topics import create_topics, spec

    policy = load_policy(path)  # raises PolicyError naming each bad key
    sealer = sealer or Sealer.from_settings(settings)
    text = Path(path).read_text(encoding="utf-8")
    now = time.time() if now is None else now
    operator = operator or getpass.getuser()
    rec = publish_record(policy, text, str(path), operator, now)
    await create_topics(settings, (spec("policy"), spec("audit")))
    producer = AIOKafkaProducer(acks="all", **settings.kafka_kwargs())
    await producer.start()
    try:
        topic = settings.topic("policy")
        await producer.send_and_wait(topic, key=POLICY_KEY, value=seal_record(sealer, topic, rec))
        act = audit("admin_action", f"admin:{operator}", None, now, f"policy_publish:{policy.version}@{now!r}",
                    {"operator": operator, "action": "policy_publish", "version": policy.version,
                     "source": str(path), "via": "cli"})
        await producer.send_and_wait(settings.topic("audit"), key=act.key.encode(), value=orjson.dumps(act.value))
    finally:
        await producer.stop()
    return {k: v for k, v in rec.items() if k != "text"}


@dataclass
class PolicyState:
    """What ``/api/policy`` shows: the policy in force, where it came from, recent changes."""

    version: str
    text: str | None
    source: str
    applied_at: float
    published_at: str | None = None
    operator: str | None = None
    history: deque = field(default_factory=lambda: deque(maxlen=20))
    rejected: deque = field(default_factory=lambda: deque(maxlen=10))

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "text": self.text, "source": self.source,
                "applied_at": rfc3339(self.applied_at), "published_at": self.published_at,
                "operator": self.operator, "history": list(self.history), "rejected": list(self.rejected)}


class PolicyFollower:
    """Reads the policy topic outside the consumer group and applies new versions (see module doc)."""

    def __init__(self, service: "Service", state: PolicyState, sealer: Sealer | None = None) -> None:
        self.service = service
        self.state = state
        self.sealer = sealer
        self.pending: tuple[Policy, dict[str, Any]] | None = None
        self.caught_up = False
        #: seal time of the newest record taken: a record sealed before it is a replay (stale)
        self.sealed_at = float("-inf")
        #: forged_record audits waiting for the worker to be ready
        self.refused: list[Output] = []

    async def run(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        from streams.topics import create_topics, spec

        settings = self.service.settings
        topic = settings.topic("policy")
        if self.sealer is None:
            self.sealer = sealer_of(self.service)
        while True:  # the topic may not exist yet on a fresh cluster
            try:
                await create_topics(settings, (spec("policy"),))
                break
            except Exception as exc:  # noqa: BLE001 - broker not reachable yet: retry
                log.warning("lapse: policy topic not available yet: %s", exc)
                await asyncio.sleep(2.0)
        consumer = AIOKafkaConsumer(group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
                                    **settings.kafka_kwargs())
        await consumer.start()
        try:
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            end = (await consumer.end_offsets([tp]))[tp]
            self.caught_up = end == 0
            while True:
                batches = await consumer.getmany(tp, timeout_ms=250)
                for record in batches.get(tp, []):
                    self._take(record)
                if not self.caught_up and await consumer.position(tp) >= end:
                    self.caught_up = True
                await self.maybe_apply()
        finally:
            await consumer.stop()

    def _take(self, record: Any) -> None:
        assert self.sealer is not None
        try:
            opened = self.sealer.open_stamped(record.topic, record.key, record.value)
            if opened.sealed_at < self.sealed_at:
                raise ForgedRecord("stale", f"sealed at {rfc3339(opened.sealed_at)}, before the policy record "
                                            f"taken last ({rfc3339(self.sealed_at)}): a replay")
        except ForgedRecord as err:
            self._refuse(record, err)
            return
        try:
            policy, rec = parse_record(opened.payload)
        except Exception as exc:  # any record that is not a policy: refused, never the follower's end
            errors = exc.errors if isinstance(exc, PolicyError) else [f"{type(exc).__name__}: {str(exc)[:300]}"]
            log.error("lapse: policy record at offset %s refused, policy in force stays: %s", record.offset, errors)
            self.service.metrics.policy_reloads.labels("refused").inc()
            self.state.rejected.append({"offset": record.offset, "errors": errors, "at": rfc3339(time.time())})
            return
        self.sealed_at = opened.sealed_at
        self.pending = (policy, rec)

    def _refuse(self, record: Any, err: ForgedRecord) -> None:
        """Never applied: counted, logged, listed in ``rejected``, audited when the worker is ready."""
        now = time.time()
        self.refused.append(refuse(self.service.metrics, record.topic, record.partition, record.offset,
                                   record.key, err, now))
        self.state.rejected.append({"offset": record.offset, "errors": [f"refused ({err})"],
                                    "reason": err.reason, "at": rfc3339(now)})

    async def maybe_apply(self) -> None:
        if not self.service.ready:
            return
        if self.refused:
            outs, self.refused = self.refused, []
            await self.service.publish(outs, self.service.clock())
        if self.pending is None or not self.caught_up:
            return
        policy, rec = self.pending
        self.pending = None
        try:
            await apply_policy(self.service, self.state, policy, rec)
        except Exception as exc:  # a worker that restarts reads the same record again: never crash on it
            log.exception("lapse: applying policy %s failed", rec.get("version"))
            self.service.metrics.policy_reloads.labels("refused").inc()
            self.state.rejected.append({"version": rec.get("version"), "errors": [f"{type(exc).__name__}: {exc}"[:300]],
                                        "at": rfc3339(time.time())})


async def apply_policy(service: "Service", state: PolicyState, policy: Policy, rec: dict[str, Any]) -> int:
    """Switch the worker to ``policy`` atomically and publish what re-evaluation decided."""
    async with service.deciding:  # the commit order of Service.publish, as for a batch
        return await _apply_policy(service, state, policy, rec)


async def _apply_policy(service: "Service", state: PolicyState, policy: Policy, rec: dict[str, Any]) -> int:
    engine = service.engine
    now = service.clock()
    if policy.version == engine.policy.version:
        state.text, state.source = rec.get("text", state.text), "topic"
        state.published_at, state.operator = rec.get("published_at"), rec.get("operator")
        return 0
    old = engine.policy.version
    outputs = engine.set_policy(policy, now)  # synchronous: no event is decided between old and new
    state.history.appendleft({"version": old, "replaced_at": rfc3339(now)})
    state.version, state.text, state.source, state.applied_at = policy.version, rec.get("text"), "topic", now
    state.published_at, state.operator = rec.get("published_at"), rec.get("operator")
    service.metrics.set_policy_version(policy.version)
    service.metrics.policy_reloads.labels("applied").inc()
    await service.publish(outputs, now)
    n = sum(1 for o in outputs if o.kind == "decision")
    log.info("lapse: policy %s -> %s applied (%d outputs, %d decisions)", old, policy.version, len(outputs), n)
    return n


def initial_state(service: "Service") -> PolicyState:
    """The policy the worker started with (its file), before the topic says otherwise."""
    from streams.config import default_policy_path

    path = service.settings.policy or default_policy_path()
    try:
        text: str | None = Path(path).read_text(encoding="utf-8")
    except OSError:
        text = None
    version = service.engine.policy.version
    if text is not None:
        try:
            if loads_policy(text).version != version:
                text = None  # the engine was built from something else (tests, embedding)
        except PolicyError:
            text = None
    return PolicyState(version=version, text=text, source=f"file:{path}", applied_at=service.clock())


def request_id(*parts: object) -> str:
    return stable_id(*parts)[:16]
