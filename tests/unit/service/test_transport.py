"""The worker's consumer: Faust's aiokafka consumer with lapse's fetch wait (no broker needed)."""

from __future__ import annotations

from streams.service.compat.transport import FETCH_MAX_WAIT_MS, ConsumerThread
from tests.support.service import offline_service


async def test_the_workers_kafka_consumer_waits_at_most_fetch_max_wait_ms_for_data(tmp_path):
    """Offset queries queue behind a fetch on the same connection; Faust's 1,500 ms wait made each
    assignment's end-offset and earliest-offset queries take a second or more."""
    service = offline_service(tmp_path)
    consumer = service.app.consumer
    assert type(consumer._thread) is ConsumerThread
    kafka_consumer = consumer._thread._create_worker_consumer(consumer.transport)
    assert kafka_consumer._fetch_max_wait_ms == FETCH_MAX_WAIT_MS == 100
