"""Adaptive-model snapshots on the compacted ``model-snapshots`` topic.

The per-user half of the model (each user's feature profile) lives in ``UserState.profile`` and so
in the changelog-backed users table: it moves with its partition. The global half (calibrators,
optional River detector) is per worker; it is snapshotted every ``SNAPSHOT_EVERY_S`` under the
app id and restored when a worker starts, so a restart does not begin a new warm-up.

A snapshot is a pickle (River models are pickled; river is pinned exactly). Unpickling data from
a topic would let anyone who can write that topic run code in the worker, so every snapshot is
sealed like every internal record (streams/service/pipeline/sealed.py: HMAC-SHA256 bound to the topic and
the app id, under the key the workers share) and a snapshot that does not open is never
unpickled: it is counted, logged and ignored. The newest snapshot *by seal time* wins, so an old
snapshot re-produced onto the topic does not roll the model back.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from streams.service.pipeline.sealed import ForgedRecord, Opened, Sealer, refuse

log = logging.getLogger("lapse.snapshots")

SNAPSHOT_EVERY_S = 30.0
_UNBOUND_TOPIC = "model-snapshots"  # the binding of the transitional seal() below


def seal_snapshot(sealer: Sealer, topic: str, app_id: str, blob: bytes) -> bytes:
    """The record value of a snapshot produced to ``topic`` (full name) under key ``app_id``.

    >>> s = Sealer(b"k" * 32); v = seal_snapshot(s, "lapse.model-snapshots", "lapse", b"model")
    >>> open_snapshot(s, "lapse.model-snapshots", "lapse", v).payload
    b'model'
    >>> open_snapshot(s, "lapse.model-snapshots", "other-app", v)
    Traceback (most recent call last):
    ...
    streams.service.pipeline.sealed.ForgedRecord: bad_tag: tag does not verify for this topic and key (altered, moved to another topic or key, or forged)
    """
    return sealer.seal(topic, app_id.encode(), blob)


def open_snapshot(sealer: Sealer, topic: str, app_id: str, value: bytes | None) -> Opened:
    """``(blob, sealed_at)``; raises :class:`ForgedRecord`."""
    return sealer.open_stamped(topic, app_id.encode(), value)


# -- transitional: the three calls streams/service/app.py makes today (snapshot_key(key_material_
# from_env()), seal(blob, key), load_latest(settings, app_id, key)); they go once it calls
# seal_snapshot / load_latest with the Service's Sealer.

def key_material_from_env(env: dict[str, str] | None = None) -> Sealer:
    """The internal-record sealer of this process (``LAPSE_INTERNAL_KEY[_FILE]``, else derived
    from the signing key); raises ``ConfigError`` when neither is configured."""
    return Sealer.from_env(env)


def snapshot_key(material: Sealer) -> Sealer:
    """The sealer itself (snapshots are sealed like every internal record)."""
    if not isinstance(material, Sealer):
        raise TypeError("snapshot_key: expected the Sealer of key_material_from_env()")
    return material


def seal(blob: bytes, key: Sealer) -> bytes:
    """A snapshot sealed without the record key (only the snapshot domain); see seal_snapshot."""
    return key.seal(_UNBOUND_TOPIC, b"", blob)


async def load_latest(settings: Any, app_id: str, sealer: Sealer, *, metrics: Any = None) -> bytes | None:
    """Read the compacted snapshot topic to its end; the blob of the newest (by seal time)
    snapshot for ``app_id`` that opens. Records that do not open are counted (``metrics``) and
    logged, never unpickled."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    topic = settings.topic("model-snapshots")
    consumer = AIOKafkaConsumer(**settings.kafka_kwargs(), enable_auto_commit=False, group_id=None,
                                max_partition_fetch_bytes=16 * 1024 * 1024)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            return None
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        newest: Opened | None = None
        while any(await consumer.position(tp) < ends[tp] for tp in tps):
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for r in records:
                    if r.key != app_id.encode() or not r.value:
                        continue
                    got = _open_any(sealer, topic, app_id, r.value)
                    if isinstance(got, ForgedRecord):
                        refuse(metrics, topic, r.partition, r.offset, r.key, got, time.time())
                    elif newest is None or got.sealed_at >= newest.sealed_at:
                        newest = got
        return newest.payload if newest is not None else None
    finally:
        await consumer.stop()


def _open_any(sealer: Sealer, topic: str, app_id: str, value: bytes) -> Opened | ForgedRecord:
    try:
        return open_snapshot(sealer, topic, app_id, value)
    except ForgedRecord as err:
        if err.reason != "bad_tag":
            return err
        try:  # a snapshot of the transitional seal() (not bound to the record key)
            return sealer.open_stamped(_UNBOUND_TOPIC, b"", value)
        except ForgedRecord:
            return err
