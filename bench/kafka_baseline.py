"""Raw aiokafka on the local broker: produce rate and consume-then-produce (passthrough) rate.

This is the ceiling every lapse benchmark compares itself with, measured in the same run.
Messages are ~300-byte JSON canonical events keyed by user.

    python bench/kafka_baseline.py [--messages 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from common import BOOTSTRAP, fresh_topic, record, sample_event


async def produce(topic: str, n: int, bootstrap: str = BOOTSTRAP) -> float:
    """Produce n keyed messages; returns messages per second (acks=all, delivery awaited)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=256 * 1024, acks="all")
    await producer.start()
    try:
        t0 = time.perf_counter()
        pending = []
        for i in range(n):
            value = sample_event(i)
            pending.append(await producer.send(topic, key=value[33:43], value=value))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        return n / (time.perf_counter() - t0)
    finally:
        await producer.stop()


async def passthrough(src: str, dst: str, n: int, bootstrap: str = BOOTSTRAP) -> float:
    """Consume n messages from src and produce each to dst, committing per batch; messages per second."""
    consumer = AIOKafkaConsumer(src, bootstrap_servers=bootstrap, group_id=f"{src}.pass", auto_offset_reset="earliest",
                                enable_auto_commit=False, max_poll_records=5000, fetch_max_bytes=16 * 1024 * 1024)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=256 * 1024, acks="all")
    await consumer.start()
    await producer.start()
    try:
        done = 0
        t0 = None
        while done < n:
            batches = await consumer.getmany(timeout_ms=500)
            if t0 is None and batches:
                t0 = time.perf_counter()
            futs = []
            for records in batches.values():
                for r in records:
                    futs.append(await producer.send(dst, key=r.key, value=r.value))
            if futs:
                await asyncio.gather(*futs)  # produce, then flush, then commit offsets
                await consumer.commit()
                done += len(futs)
        return n / (time.perf_counter() - t0)
    finally:
        await consumer.stop()
        await producer.stop()


async def main(n: int) -> dict:
    src = await fresh_topic("baseline-src")
    dst = await fresh_topic("baseline-dst")
    prod_rate = await produce(src, n)
    pass_rate = await passthrough(src, dst, n)
    figures = {"messages": n, "message_bytes": len(sample_event(1)), "produce_per_s": round(prod_rate),
               "passthrough_per_s": round(pass_rate)}
    record("kafka_baseline", **figures)
    return figures


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=200_000)
    args = ap.parse_args()
    f = asyncio.run(main(args.messages))
    print(f"raw aiokafka produce:     {f['produce_per_s']:>9,} msg/s  ({f['message_bytes']} B messages, acks=all)")
    print(f"raw aiokafka passthrough: {f['passthrough_per_s']:>9,} msg/s  (consume -> produce -> commit)")
