"""Shared fixtures. Integration tests (marker ``kafka``) talk to a real Apache Kafka broker."""

from __future__ import annotations

import os
import uuid

import pytest

from tests.support.broker import Broker, ensure_broker


@pytest.fixture(scope="session")
def kafka_broker() -> Broker:
    broker = ensure_broker()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: Broker) -> str:
    """host:port of a real broker that answers metadata requests."""
    return kafka_broker.bootstrap


@pytest.fixture
def unique_topic(kafka_bootstrap: str):
    """Factory: ``await unique_topic("name", partitions=6)`` creates a fresh topic and returns its name."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    created: list[str] = []

    async def make(base: str = "t", partitions: int = 1, config: dict[str, str] | None = None) -> str:
        name = f"test.{base}.{uuid.uuid4().hex[:10]}"
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1,
                                                topic_configs=config or {})])
        finally:
            await admin.close()
        created.append(name)
        return name

    return make


@pytest.fixture
def topic_prefix() -> str:
    """A fresh ``LAPSE_TOPIC_PREFIX`` so a test's lapse topics never meet another test's."""
    return f"t{uuid.uuid4().hex[:8]}."


def pytest_collection_modifyitems(config, items):
    if os.environ.get("LAPSE_SKIP_KAFKA"):
        skip = pytest.mark.skip(reason="LAPSE_SKIP_KAFKA is set")
        for item in items:
            if "kafka" in item.keywords:
                item.add_marker(skip)
