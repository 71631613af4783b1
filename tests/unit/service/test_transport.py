"""The worker's consumer: Faust's aiokafka consumer with lapse's fetch wait (no broker needed)."""

from __future__ import annotations

from streams.config import Settings
from streams.engine import Engine, loads_policy
from streams.service.app import Service
from streams.service.transport import FETCH_MAX_WAIT_MS, ConsumerThread


async def test_the_workers_kafka_consumer_waits_at_most_fetch_max_wait_ms_for_data(tmp_path):
    """Offset queries queue behind a fetch on the same connection; Faust's 1,500 ms wait made each
    assignment's end-offset and earliest-offset queries take a second or more."""
    settings = Settings.load({"LAPSE_BOOTSTRAP": "127.0.0.1:1", "LAPSE_DATA_DIR": str(tmp_path)})
    service = Service(settings, lambda store: Engine(loads_policy(""), store), lambda d: b"")
    consumer = service.app.consumer
    assert type(consumer._thread) is ConsumerThread
    kafka_consumer = consumer._thread._create_worker_consumer(consumer.transport)
    assert kafka_consumer._fetch_max_wait_ms == FETCH_MAX_WAIT_MS == 100
