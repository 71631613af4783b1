"""Every lapse topic, declared once, and ``lapse topics create`` to apply the declaration.

Keyed topics that one agent joins (identity, activity, user requests) share one partition count
so that a user's events and state are co-partitioned.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field

import click

from streams.config import Settings

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str  # without prefix
    role: str  # input | output | internal
    key: str  # what the message key is
    description: str
    partitions: int | None = None  # None: Settings.partitions (co-partitioned keyed topics)
    config: dict[str, str] = field(default_factory=dict)


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec("identity", "input", "user", "canonical identity events: login, refresh, reauth, logout, account events",
              config={"retention.ms": str(7 * DAY_MS)}),
    TopicSpec("activity", "input", "user", "canonical per-request activity from gateways and apps",
              config={"retention.ms": str(3 * DAY_MS)}),
    TopicSpec("ids-alerts", "input", "ip", "canonical IDS alerts (Suricata EVE after adaptation)",
              config={"retention.ms": str(7 * DAY_MS)}),
    TopicSpec("raw.okta", "input", "any", "Okta System Log events as Okta emits them", config={"retention.ms": str(3 * DAY_MS)}),
    TopicSpec("raw.keycloak", "input", "any", "Keycloak user/admin events (JSON or key=value lines)", config={"retention.ms": str(3 * DAY_MS)}),
    TopicSpec("raw.suricata", "input", "any", "Suricata EVE JSON lines", config={"retention.ms": str(3 * DAY_MS)}),
    TopicSpec("raw.cloudtrail", "input", "any", "AWS CloudTrail records", config={"retention.ms": str(3 * DAY_MS)}),
    TopicSpec("revocations", "output", "session", "decisions (revoke / step_up) with a signed CAEP SET; enforcement points read it from the start",
              config={"cleanup.policy": "compact,delete", "retention.ms": str(31 * DAY_MS)}),
    TopicSpec("audit", "output", "user", "lifecycle and decision audit records: who, when, why",
              config={"retention.ms": str(400 * DAY_MS)}),
    TopicSpec("dead-letters", "output", "source topic", "messages lapse could not use, with the original bytes and the reason",
              partitions=1, config={"retention.ms": str(14 * DAY_MS)}),
    TopicSpec("policy", "internal", "'current'", "published policy versions (compacted)", partitions=1,
              config={"cleanup.policy": "compact"}),
    TopicSpec("model-snapshots", "internal", "worker partition", "adaptive model snapshots (compacted)", partitions=1,
              config={"cleanup.policy": "compact"}),
    TopicSpec("sightings", "internal", "ip:/session:", "who used an IP or session id, for the IDS join", config={"retention.ms": str(2 * DAY_MS)}),
    TopicSpec("user-requests", "internal", "user", "IDS alerts resolved to a user, and admin requests", config={"retention.ms": str(2 * DAY_MS)}),
)


def spec(name: str) -> TopicSpec:
    for t in TOPICS:
        if t.name == name:
            return t
    raise KeyError(f"no lapse topic named {name!r}")


async def create_topics(settings: Settings, specs: tuple[TopicSpec, ...] = TOPICS) -> dict[str, str]:
    """Create every missing topic; returns {topic: "created" | "exists"}. Idempotent."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(**settings.kafka_kwargs())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        result: dict[str, str] = {}
        new = []
        for t in specs:
            full = settings.topic(t.name)
            if full in existing:
                result[full] = "exists"
                continue
            new.append(NewTopic(full, num_partitions=t.partitions or settings.partitions, replication_factor=1
                                if settings.bootstrap.startswith("127.0.0.1") else -1, topic_configs=dict(t.config)))
            result[full] = "created"
        if new:
            resp = await admin.create_topics(new)
            for topic, code, message in getattr(resp, "topic_errors", []) or getattr(resp, "topic_error_codes", []):
                if code not in (0, 36):  # 36 = TOPIC_ALREADY_EXISTS (a concurrent create)
                    raise RuntimeError(f"creating topic {topic} failed: error {code} {message}")
        return result
    finally:
        await admin.close()


async def ensure_topics(settings: Settings, extra: tuple[TopicSpec, ...] = (), *, timeout_s: float = 60.0,
                        log=None) -> list[str]:
    """Create what is missing of lapse's topics (and ``extra``, whose names are already full), then
    wait until the broker's metadata lists every one of them; returns those still missing at the
    timeout (the worker goes on, and Faust will rebalance when they appear).

    A worker calls this before it joins its consumer group: a group leader that does not see a
    topic yet assigns none of its partitions ("Ignoring missing topic"), and on a broker that
    just started, a topic created a moment earlier can be missing from its metadata for a while.
    """
    from aiokafka import AIOKafkaConsumer

    try:
        await create_topics(settings)
        if extra:
            await create_topics(dataclasses.replace(settings, topic_prefix=""), extra)
    except Exception as exc:  # no permission to create, say: the operator's topics may exist already
        if log is not None:
            log.warning("lapse: could not create topics (%s); waiting for them to exist", exc)
    want = {settings.topic(t.name) for t in TOPICS} | {t.name for t in extra}
    client = AIOKafkaConsumer(**settings.kafka_kwargs())
    await client.start()
    try:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while True:
            missing = sorted(want - set(await client.topics()))
            if not missing or loop.time() >= end:
                return missing
            await asyncio.sleep(0.2)
    finally:
        await client.stop()


@click.group("topics")
def topics_cmd() -> None:
    """Declared Kafka topics."""


@topics_cmd.command("list")
def list_cmd() -> None:
    """Print every lapse topic with its role and settings."""
    s = Settings.load()
    for t in TOPICS:
        click.echo(f"{s.topic(t.name):28} {t.role:9} key={t.key:16} partitions={t.partitions or s.partitions} {t.config}")


@topics_cmd.command("create")
def create_cmd() -> None:
    """Create the lapse topics that do not exist yet (idempotent)."""
    s = Settings.load()
    for topic, status in asyncio.run(create_topics(s)).items():
        click.echo(f"{status:8} {topic}")
