"""What the guards against hostile input cost a worker: throughput with 10 % hostile records
against 0 %, measured in the same run on the real broker.

Each run puts N records on the input topics (``identity``, ``activity``), starts a worker, and
times it from its /ready to the moment every input record is committed by its group and every
output the records owe is on its topic (decisions, audit records and, for the hostile run, one
dead letter per hostile record). The clean run is bench/service_bench.py's synthetic stream; the
hostile run is the same stream with every tenth record replaced by a hostile one (malformed JSON,
wrong types, absurd or skewed times, 300-deep nesting, oversized fields, unknown types, networks as
addresses, garbage bytes, null values), each of which the worker must dead-letter. Runs alternate
(clean, hostile, clean, hostile, ...) so that drift on a shared machine hits both alike; the best
rate of each is compared. Rates count every input record, hostile ones included.

    .venv/bin/python bench/hostile_bench.py [--events 100000] [--sessions 10000] [--rounds 3]

against LAPSE_BOOTSTRAP (default 127.0.0.1:9092). Goal: the hostile run within 5 % of the clean one.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import orjson

from common import BOOTSTRAP, delete_bench_topics, record
from service_bench import Progress, expected_outputs, process_cpu_s, produce_all, setup, synthetic

from tests.support.worker import WorkerProcess  # noqa: E402  (service_bench put the repository on sys.path)

#: each run's time limit (the whole benchmark: rounds x 2 runs of at most this)
RUN_LIMIT_S = 120.0


def hostile_record(i: int, now: float) -> tuple[str, bytes, bytes | None]:
    """The i-th hostile record (topic, key, value): one of a dozen kinds, each dead-lettered."""
    u = f"h{i % 997}"
    j = orjson.dumps
    ts = now
    kinds = (
        lambda: ("activity", b'{"type":"activity","ts":%d,"user":"%s","session":' % (ts, u.encode())),  # cut JSON
        lambda: ("activity", j({"type": "activity", "ts": -1e12, "user": u, "session": "s", "action": "GET"})),
        lambda: ("identity", j({"type": "login", "ts": "0001-01-01T00:00:00+01:00", "user": u, "session": "s"})),
        lambda: ("activity", j({"type": "activity", "ts": ts + 86400, "user": u, "session": "s"})),  # skewed
        lambda: ("identity", j({"type": "login", "ts": ts, "user": 42, "session": ["s"]})),  # wrong types
        lambda: ("activity", b'{"type":"activity","ts":%d,"user":"%s","session":"s","x":' % (ts, u.encode())
                 + b"[" * 300 + b"]" * 300 + b"}"),  # 300-deep nesting
        lambda: ("activity", j({"type": "activity", "ts": ts, "user": u, "session": "s", "bytes": -1})),
        lambda: ("identity", j({"type": "teleport", "ts": ts, "user": u})),  # unknown type
        lambda: ("identity", j({"type": "login", "ts": ts, "user": u, "session": "s", "ip": "203.0.113.0/24"})),
        lambda: ("activity", j({"type": "activity", "ts": ts, "user": u, "session": "s", "resource": "r" * 4000})),
        lambda: ("identity", b"\xff\xfe\x00 garbage \x80"),
        lambda: ("activity", None),  # a null value
        lambda: ("identity", b'{"type":"login","ts":NaN,"user":"%s","session":"s"}' % u.encode()),
    )
    topic, value = kinds[i % len(kinds)]()
    return topic, u.encode(), value


def with_hostile(items: list[tuple[str, bytes, bytes]], share: float, now: float) -> tuple[list, int]:
    """``items`` with ``share`` of all records replaced by hostile ones, spread evenly over the
    activity records (never a login: the sessions and their decisions stay the same); returns the
    records and how many are hostile."""
    target = round(share * len(items))
    if target <= 0:
        return list(items), 0
    activity = [i for i, it in enumerate(items) if it[0] == "activity"]
    step = len(activity) / target
    chosen = {activity[min(len(activity) - 1, int(k * step + step - 1))] for k in range(target)}
    out, n = [], 0
    for i, item in enumerate(items):
        if i in chosen:
            out.append(hostile_record(n, now))
            n += 1
        else:
            out.append(item)
    return out, n


def _check_hostile(records: list, now: float) -> None:
    """Every hostile record of the mix is one the worker refuses (so one dead letter each)."""
    from streams.service.pipeline.ingest import Rejected, decode

    for _, _, value in records:
        assert isinstance(decode(value, now), Rejected), value[:100] if value else value


async def run_once(tmp: Path, n: int, sessions: int, share: float) -> dict:
    prefix, policy, key = await setup(tmp, idle="1h")
    now = time.time()
    clean = synthetic(n, sessions, now - 60, prefix)
    items, hostile = with_hostile(clean, share, now)
    _check_hostile([it for it in items if it[1].startswith(b"h")], now)  # clean keys start with the prefix, "b..."
    kept = [it for it in items if not it[1].startswith(b"h")]
    dec, aud = expected_outputs(kept, policy, now)
    want = dec + aud + hostile
    await produce_all(prefix, items)
    w = WorkerProcess(BOOTSTRAP, prefix, f"{prefix}app", policy, key, tmp, name=f"hb-{prefix}").start()
    try:
        ready = await w.wait_ready(timeout=120)
        cpu0 = process_cpu_s(w.proc.pid)
        inputs = [prefix + "identity", prefix + "activity"]
        outputs = [prefix + "audit", prefix + "revocations", prefix + "dead-letters"]
        async with Progress() as progress:
            while True:
                got = await progress.end_total(outputs)
                lag = await progress.lag(f"{prefix}app", inputs)
                if got >= want and lag == 0:
                    break
                if w.proc.poll() is not None:
                    raise RuntimeError(f"the worker exited with {w.proc.returncode}:\n{w.tail()}")
                if time.time() - ready > RUN_LIMIT_S:
                    raise RuntimeError(f"only {got}/{want} outputs, lag {lag} after {RUN_LIMIT_S:.0f} s")
                await asyncio.sleep(0.1)
        elapsed = time.time() - ready
        cpu = process_cpu_s(w.proc.pid) - cpu0 if cpu0 is not None else None
        dead = await progress_dead(prefix)
    finally:
        w.stop()
    if dead != hostile:
        raise RuntimeError(f"{dead} dead letters for {hostile} hostile records")
    return {"records": len(items), "hostile": hostile, "outputs": want, "seconds": round(elapsed, 2),
            "records_per_s": round(len(items) / elapsed),
            "worker_cpu_us_per_record": round(cpu / len(items) * 1e6, 1) if cpu is not None else None}


async def progress_dead(prefix: str) -> int:
    """Dead letters on the run's topic (the worker heartbeats nothing there)."""
    async with Progress() as p:
        return await p.end_total([prefix + "dead-letters"])


async def main(args) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="lapse-hostile-bench-"))
    runs: dict[float, list[dict]] = {0.0: [], args.share: []}
    try:
        for r in range(args.rounds):
            for share in (0.0, args.share):
                res = await run_once(tmp, args.events, args.sessions, share)
                runs[share].append(res)
                print(f"  round {r + 1}, {share:.0%} hostile: {res['records_per_s']:,} records/s "
                      f"({res['seconds']} s, {res['hostile']:,} dead letters), worker CPU "
                      f"{res['worker_cpu_us_per_record']} us/record", file=sys.stderr)
    finally:
        print(f"deleted {await delete_bench_topics()} benchmark topics", file=sys.stderr)
    clean = max(runs[0.0], key=lambda x: x["records_per_s"])
    dirty = max(runs[args.share], key=lambda x: x["records_per_s"])
    ratio = dirty["records_per_s"] / clean["records_per_s"]
    cpu_ratio = (dirty["worker_cpu_us_per_record"] / clean["worker_cpu_us_per_record"]
                 if clean["worker_cpu_us_per_record"] and dirty["worker_cpu_us_per_record"] else None)
    record("hostile_throughput", events=args.events, sessions=args.sessions, rounds=args.rounds,
           hostile_share=args.share, clean_records_per_s=clean["records_per_s"],
           hostile_records_per_s=dirty["records_per_s"], ratio=round(ratio, 3),
           clean_cpu_us_per_record=clean["worker_cpu_us_per_record"],
           hostile_cpu_us_per_record=dirty["worker_cpu_us_per_record"],
           cpu_ratio=round(cpu_ratio, 3) if cpu_ratio else None,
           all_rates={f"{k:.2f}": [x["records_per_s"] for x in v] for k, v in runs.items()})
    print(f"worker throughput: {clean['records_per_s']:,} records/s clean vs {dirty['records_per_s']:,} records/s "
          f"with {args.share:.0%} hostile (ratio {ratio:.3f}; guards cost {max(0.0, 1 - ratio):.1%}, goal < 5 %); "
          f"worker CPU {clean['worker_cpu_us_per_record']} vs {dirty['worker_cpu_us_per_record']} us/record")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=100_000, help="input records per run")
    ap.add_argument("--sessions", type=int, default=10_000)
    ap.add_argument("--share", type=float, default=0.10, help="share of hostile records in the hostile run")
    ap.add_argument("--rounds", type=int, default=3, help="alternating clean/hostile pairs of runs")
    asyncio.run(main(ap.parse_args()))
