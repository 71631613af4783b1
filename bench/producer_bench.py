"""aiokafka's per-record ``send()`` against its batch API, as the worker's outbox uses it.

    .venv/bin/python bench/producer_bench.py [--records 100000]

The same 300-byte records, keyed by 20k users, to a fresh 6-partition topic, acks=all, in steps of
200 awaited together (as a worker step is): ``send()`` (the baseline, Kafka's default partitioner),
``send()`` with the partition given, and ``create_batch``/``send_batch`` with one builder per
partition (``streams/service/pipeline/outbox.py``). Prints records/s and CPU per record of this process.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from common import BOOTSTRAP, REPO, fresh_topic, record

sys.path.insert(0, str(REPO))
from streams.service.pipeline.partitioning import partition_for  # noqa: E402

VALUE = b'{"x":"' + b"1" * 292 + b'"}'
STEP = 200


async def run(n: int) -> dict:
    from aiokafka import AIOKafkaProducer

    topic = await fresh_topic("producer-bench")
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=5, max_batch_size=512 * 1024, acks=-1)
    await producer.start()
    try:
        nparts = len(await producer.partitions_for(topic))
        keys = [f"user{i % 20000}".encode() for i in range(n)]
        parts = [partition_for(k, nparts) for k in keys]

        async def send(with_partition: bool) -> None:
            for start in range(0, n, STEP):
                futs = [await producer.send(topic, VALUE, key=keys[i], partition=parts[i] if with_partition else None)
                        for i in range(start, min(n, start + STEP))]
                await asyncio.gather(*futs)

        async def batch() -> None:
            for start in range(0, n, STEP):
                builders = {}
                for i in range(start, min(n, start + STEP)):
                    b = builders.get(parts[i])
                    if b is None:
                        b = builders[parts[i]] = producer.create_batch()
                    b.append(key=keys[i], value=VALUE, timestamp=None)
                futs = []
                for p, b in builders.items():
                    b.close()
                    futs.append(await producer.send_batch(b, topic, partition=p))
                await asyncio.gather(*futs)

        out = {}
        for name, fn in (("send", lambda: send(False)), ("send_partition", lambda: send(True)), ("batch", batch)):
            wall, cpu = time.perf_counter(), time.process_time()
            await fn()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            out[f"{name}_per_s"] = round(n / wall)
            out[f"{name}_cpu_us"] = round(cpu / n * 1e6, 1)
        return out
    finally:
        await producer.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=100_000)
    a = ap.parse_args()
    r = asyncio.run(run(a.records))
    record("producer", records=a.records, **r)
    print(f"producer.send() (baseline)    : {r['send_per_s']:>9,} records/s, {r['send_cpu_us']} us CPU/record")
    print(f"producer.send(partition=...)  : {r['send_partition_per_s']:>9,} records/s, {r['send_partition_cpu_us']} us CPU/record")
    print(f"create_batch/send_batch       : {r['batch_per_s']:>9,} records/s, {r['batch_cpu_us']} us CPU/record "
          f"({r['batch_per_s'] / r['send_per_s']:.1f}x the baseline)")


if __name__ == "__main__":
    main()
