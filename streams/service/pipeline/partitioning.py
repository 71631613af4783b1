"""Which partition a key lives on: Kafka's default partitioner (murmur2), as the Java client,
aiokafka and Faust's own producer compute it.

lapse keeps a user's events, state (changelog) and timers on one partition. Producers that key by
user with the default partitioner need nothing else; an event that arrives on another partition
is forwarded once to the internal ``user-requests`` topic, keyed by user.

>>> partition_for(b"alice", 6) == partition_for(b"alice", 6)
True
>>> 0 <= partition_for(b"bob", 6) < 6
True
"""

from __future__ import annotations

from aiokafka.partitioner import murmur2


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key`` among ``partitions``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
