"""Adaptive-model snapshots on the compacted ``model-snapshots`` topic.

The per-user half of the model (each user's feature profile) lives in ``UserState.profile`` and so
in the changelog-backed users table: it moves with its partition. The global half (calibrators,
optional River detector) is per worker; it is snapshotted every ``SNAPSHOT_EVERY_S`` under the
app id and restored when a worker starts, so a restart does not begin a new warm-up.

A snapshot is a pickle (River models are pickled; river is pinned exactly). Unpickling data from
a topic would let anyone who can write that topic run code in the worker, so every snapshot is
authenticated with an HMAC-SHA256 whose key is derived from the worker's signing key, and a
snapshot that does not verify is ignored with a warning.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from typing import Any

log = logging.getLogger("lapse.snapshots")

SNAPSHOT_EVERY_S = 30.0
_TAG = b"lapse-model-snapshot-v1"


def snapshot_key(secret_material: bytes) -> bytes:
    """The HMAC key for snapshots, derived from secret material (never the material itself).

    >>> len(snapshot_key(b"secret"))
    32
    """
    return hashlib.sha256(_TAG + secret_material).digest()


def seal(blob: bytes, key: bytes) -> bytes:
    """``mac || blob``.

    >>> k = snapshot_key(b"s"); open_sealed(seal(b"model", k), k)
    b'model'
    >>> open_sealed(seal(b"model", k), snapshot_key(b"other")) is None
    True
    """
    return hmac.new(key, blob, hashlib.sha256).digest() + blob


def open_sealed(sealed: bytes, key: bytes) -> bytes | None:
    """The blob if its MAC verifies, else ``None``."""
    if len(sealed) < 32:
        return None
    mac, blob = sealed[:32], sealed[32:]
    if not hmac.compare_digest(mac, hmac.new(key, blob, hashlib.sha256).digest()):
        return None
    return blob


def key_material_from_env(env: dict[str, str] | None = None) -> bytes:
    """The signing key's PEM bytes (file or variable), the secret the snapshot key derives from."""
    env = dict(os.environ if env is None else env)
    if env.get("LAPSE_SIGNING_KEY"):
        return env["LAPSE_SIGNING_KEY"].encode()
    path = env.get("LAPSE_SIGNING_KEY_FILE")
    if path:
        with open(path, "rb") as f:
            return f.read()
    raise ValueError("no signing key configured: model snapshots cannot be authenticated")


async def load_latest(settings: Any, app_id: str, key: bytes) -> bytes | None:
    """Read the compacted snapshot topic to its end; the newest verified snapshot for ``app_id``."""
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
        newest: bytes | None = None
        while any(await consumer.position(tp) < ends[tp] for tp in tps):
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for r in records:
                    if r.key == app_id.encode() and r.value:
                        blob = open_sealed(r.value, key)
                        if blob is None:
                            log.warning("lapse: ignoring a model snapshot at offset %d that does not verify", r.offset)
                        else:
                            newest = blob
        return newest
    finally:
        await consumer.stop()
