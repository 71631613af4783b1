"""End-to-end benchmarks of one lapse worker on the local broker.

1. **throughput** — N canonical events already on the input topics; a worker starts; the clock runs
   from the worker's /ready to the moment every decision and audit record the engine owes (counted
   by replaying the same stream in-process) is on its topic. Compared with raw aiokafka
   passthrough (consume -> produce -> commit) of the same messages, measured in the same run.
   ``--adaptive`` adds two workers through a backlog of the tuning simulator's stream (the
   model's features need devices, networks and a person's pace), one with ``[adaptive] enabled =
   true`` and one without, against passthrough of the same messages, all in the same run.
2. **alert latency** — an IDS alert produced -> its revocation on the topic, p50/p99, while a
   background producer keeps ~5k events/s flowing.
3. **timeout lateness** — publish time (the decision's Kafka timestamp) minus the deadline, p99.
4. **recovery** — kill -9 a worker holding S live sessions, restart it, time to /ready; projected
   linearly to 1M sessions.

    python bench/service_bench.py [--events 200000] [--sessions 20000] [--skip recovery]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson

from enforce.wire import HEARTBEAT_KEY
from streams.service.pipeline.sealed import MAGIC, OVERHEAD

from common import BOOTSTRAP, REPO, delete_bench_topics, fresh_topic, percentile, record

sys.path.insert(0, str(REPO))
from tests.support.worker import TopicReader, WorkerProcess, make_key, write_policy  # noqa: E402

POLICY = """
[defaults]
idle = "{idle}"
absolute = "12h"
[ids]
revoke = ["critical", "high"]
lookback = "1h"
[adaptive]
enabled = {adaptive}
"""


def synthetic(n: int, sessions: int, t0: float, tag: str) -> list[tuple[str, bytes, bytes]]:
    """(topic, key, value): one login per session, then activity, on event time starting at t0."""
    out = []
    per = max(1, n // sessions)
    for s in range(sessions):
        u = f"{tag}u{s % (sessions // 2 or 1)}"
        out.append(("identity", u.encode(), orjson.dumps({
            "type": "login", "ts": t0 + s * 1e-4, "user": u, "session": f"{tag}s{s}", "channel": "web",
            "ip": f"10.{s % 250}.{(s // 250) % 250}.{s % 7}", "roles": ["staff"], "app": "portal"})))
    i = 0
    while len(out) < n:
        s = i % sessions
        u = f"{tag}u{s % (sessions // 2 or 1)}"
        out.append(("activity", u.encode(), orjson.dumps({
            "type": "activity", "ts": t0 + 1 + i * 1e-5, "user": u, "session": f"{tag}s{s}",
            "ip": f"10.{s % 250}.{(s // 250) % 250}.{s % 7}", "action": "GET", "resource": f"/api/items/{i % 997}",
            "bytes": 1000 + i % 5000, "status": 200})))
        i += 1
    del per
    return out


def expected_outputs(items, policy_path: Path, now: float) -> tuple[int, int]:
    """Decisions and audit records the engine owes for these events at wall time ``now``."""
    from streams.engine import Engine, load_policy, parse_event

    eng = Engine(load_policy(str(policy_path)))
    dec = aud = 0
    for _, _, v in items:
        for o in eng.handle(parse_event(v), now):
            dec += o.kind == "decision"
            aud += o.kind == "audit"
    return dec, aud


async def produce_all(prefix: str, items) -> None:
    from aiokafka import AIOKafkaProducer

    p = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=5, max_batch_size=256 * 1024)
    await p.start()
    try:
        futs = []
        for topic, k, v in items:
            futs.append(await p.send(prefix + topic, key=k, value=v))
            if len(futs) >= 5000:
                await asyncio.gather(*futs)
                futs.clear()
        await asyncio.gather(*futs)
    finally:
        await p.stop()


async def topic_partitions(consumer, topic: str) -> list:
    """The topic's partitions as TopicPartitions (refreshing metadata once if it is not known yet)."""
    from aiokafka import TopicPartition

    parts = consumer.partitions_for_topic(topic) or set()
    if not parts:
        await consumer._client.force_metadata_update()
        parts = consumer.partitions_for_topic(topic) or set()
    return [TopicPartition(topic, p) for p in sorted(parts)]


async def count_topic(topic: str) -> int:
    from aiokafka import AIOKafkaConsumer

    c = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP)
    await c.start()
    try:
        tps = await topic_partitions(c, topic)
        ends = await c.end_offsets(tps)
        return sum(ends.values())
    finally:
        await c.stop()


class Progress:
    """End offsets and a group's lag, read by one long-lived consumer and admin client."""

    async def __aenter__(self) -> "Progress":
        from aiokafka import AIOKafkaConsumer
        from aiokafka.admin import AIOKafkaAdminClient

        self.admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
        self.consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP)
        await self.admin.start()
        await self.consumer.start()
        self._tps: dict[str, list] = {}
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()
        await self.admin.close()

    async def _partitions(self, topics: list[str]) -> list:
        out = []
        for t in topics:
            if t not in self._tps:
                self._tps[t] = await topic_partitions(self.consumer, t)
            out += self._tps[t]
        return out

    async def end_total(self, topics: list[str]) -> int:
        return sum((await self.consumer.end_offsets(await self._partitions(topics))).values())

    async def lag(self, group: str, topics: list[str]) -> int:
        committed = await self.admin.list_consumer_group_offsets(group)
        tps = await self._partitions(topics)
        ends = await self.consumer.end_offsets(tps)
        return sum(ends[tp] - (committed[tp].offset if tp in committed and committed[tp].offset >= 0 else 0)
                   for tp in tps)


async def group_lag(group: str, topics: list[str]) -> int:
    """Messages on ``topics`` that consumer group ``group`` has not committed yet."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    c = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    await c.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        tps = []
        for topic in topics:
            tps += await topic_partitions(c, topic)
        ends = await c.end_offsets(tps)
        lag = 0
        for tp in tps:
            meta = committed.get(tp)
            lag += ends[tp] - (meta.offset if meta is not None and meta.offset >= 0 else 0)
        return lag
    finally:
        await c.stop()
        await admin.close()


async def read_with_times(topic: str) -> list[tuple[int, dict]]:
    """Every record of ``topic`` as (producer CreateTime in ms, parsed value)."""
    from aiokafka import AIOKafkaConsumer

    c = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, auto_offset_reset="earliest", enable_auto_commit=False)
    await c.start()
    try:
        tps = await topic_partitions(c, topic)
        c.assign(tps)
        ends = await c.end_offsets(tps)
        await c.seek_to_beginning(*tps)
        out: list[tuple[int, dict]] = []
        async def behind() -> bool:
            for tp in tps:
                if await c.position(tp) < ends[tp]:
                    return True
            return False

        while await behind():
            for recs in (await c.getmany(timeout_ms=500)).values():
                for r in recs:
                    if r.value and r.key != HEARTBEAT_KEY:
                        value = r.value[OVERHEAD:] if r.value[:3] == MAGIC else r.value  # sealed: its payload
                        out.append((r.timestamp, orjson.loads(value)))
        return out
    finally:
        await c.stop()


async def hop_breakdown(prefix: str, sent_ms: dict[str, float]) -> dict:
    """Where an alert's time goes, from producer timestamps: alert produced -> the worker produces the
    revocation (the bench reader's own fetch excluded), and how many alerts took the longer route
    (forwarded inside the IDS join, or resolved to a user of another worker via user-requests)."""
    forwarded = {v["alert"]["signature"] for _, v in await read_with_times(prefix + "sightings")
                 if v.get("kind") == "alert" and isinstance(v.get("alert"), dict)}
    requested = {v["alert"]["signature"] for _, v in await read_with_times(prefix + "user-requests")
                 if v.get("kind") == "target" and isinstance(v.get("alert"), dict)}
    rev: dict[str, int] = {}
    for t, v in await read_with_times(prefix + "revocations"):
        sig = ((v.get("decision") or {}).get("evidence") or {}).get("signature")
        if sig:
            rev.setdefault(sig, t)
    produced = [rev[sig] - t0 for sig, t0 in sent_ms.items() if sig in rev]
    return {"alert_to_produced_p50_ms": round(percentile(produced, 50), 1),
            "alert_to_produced_p99_ms": round(percentile(produced, 99), 1),
            "forwarded_in_join": len(forwarded & set(sent_ms)), "via_user_requests": len(requested & set(sent_ms))}


async def setup(tmp: Path, idle: str, adaptive: bool = False):
    from streams.config import Settings
    from streams.topics import create_topics

    prefix = f"b{uuid.uuid4().hex[:8]}."
    await create_topics(Settings.load({"LAPSE_BOOTSTRAP": BOOTSTRAP, "LAPSE_TOPIC_PREFIX": prefix}))
    policy = write_policy(tmp / f"policy-{prefix}toml", POLICY.format(idle=idle, adaptive=str(adaptive).lower()))
    return prefix, policy, make_key(tmp)


async def bench_throughput(tmp: Path, n: int, sessions: int, store: str = "memory://") -> dict:
    from kafka_baseline import passthrough

    prefix, policy, key = await setup(tmp, idle="1h")
    now = time.time()
    items = synthetic(n, sessions, now - 60, prefix)
    dec, aud = expected_outputs(items, policy, now)
    # baseline: the same messages through raw aiokafka, in this run
    src, dst = await fresh_topic("svc-src"), await fresh_topic("svc-dst")
    await produce_all("", [(src, k, v) for _, k, v in items])
    base = await passthrough(src, dst, len(items))
    await produce_all(prefix, items)
    w = WorkerProcess(BOOTSTRAP, prefix, f"{prefix}app", policy, key, tmp, name=f"tp-{prefix}",
                      extra_env={"LAPSE_STORE": store}).start()
    try:
        ready = await w.wait_ready(timeout=120)
        cpu0 = process_cpu_s(w.proc.pid)
        want = dec + aud
        # done = every input event consumed and committed by the worker's group (Faust commits
        # every second, so this over-counts by up to ~1 s) and every output owed is on its topic.
        # One consumer and one admin client for the whole wait: a new pair per poll cost the
        # bench (and the broker) more CPU than the worker could spare on 2 cores
        inputs = [prefix + "identity", prefix + "activity"]
        async with Progress() as progress:
            while True:
                got = await progress.end_total([prefix + "audit", prefix + "revocations"])
                lag = await progress.lag(f"{prefix}app", inputs)
                if got >= want and lag == 0:
                    break
                if time.time() - ready > 600:
                    raise RuntimeError(f"only {got}/{want} outputs, lag {lag} after 600 s")
                await asyncio.sleep(0.1)
        elapsed = time.time() - ready
        cpu = process_cpu_s(w.proc.pid) - cpu0 if cpu0 is not None else None
    finally:
        w.stop()
    rate = n / elapsed
    return {"events": n, "sessions": sessions, "store": store, "outputs": dec + aud, "worker_events_per_s": round(rate),
            "passthrough_per_s": round(base), "ratio_to_passthrough": round(rate / base, 2),
            # steadier than the rate on a shared 2-core box: the worker's own CPU per event
            "worker_cpu_us_per_event": round(cpu / n * 1e6, 1) if cpu is not None else None}


def simulated(users: int, hours: float, end: float) -> list[dict]:
    """The tuning simulator's stream (models.simulate, with its attacks), moved so that its last
    event is at ``end``."""
    from models.simulate import simulate
    from streams.engine import parse_ts, rfc3339

    raw, _ = simulate(users=users, hours=hours, seed=5, attack_rate=0.05)
    shift = end - max(parse_ts(e["ts"]) for e in raw)
    return [dict(e, ts=rfc3339(parse_ts(e["ts"]) + shift)) for e in raw]


def routed(events: list[dict], tag: str) -> list[tuple[str, bytes, bytes]]:
    """(topic, key, value) of each event, its users and sessions renamed apart for this run."""
    from streams.cli.produce import route

    out = []
    for e in events:
        e = dict(e)
        for f in ("user", "session", "sso_session"):
            if e.get(f) is not None:
                e[f] = tag + str(e[f])
        topic, key = route(e)
        out.append((topic, key.encode(), orjson.dumps(e)))
    return out


async def bench_model_throughput(tmp: Path, users: int, hours: float) -> dict:
    """One worker with ``[adaptive] enabled = true`` through a backlog of the simulator's stream
    (devices, networks, locations, a person's pace, attacks), against, in the same run, a worker
    with the model off through the same stream and raw passthrough of the same messages. The
    clock stops when the worker's group has committed every input: its outputs go out before its
    offsets are committed (the commit order), so they are on their topics by then."""
    from kafka_baseline import passthrough

    end = time.time() - 60
    src, dst = await fresh_topic("svc-src"), await fresh_topic("svc-dst")
    events = simulated(users, hours, end)
    items = routed(events, "")
    await produce_all("", [(src, k, v) for _, k, v in items])
    base = await passthrough(src, dst, len(items))
    out: dict = {"events": len(items), "users": users, "hours": hours, "passthrough_per_s": round(base)}
    for adaptive in (False, True):
        prefix, policy, key = await setup(tmp, idle="1h", adaptive=adaptive)
        items = routed(events, prefix)
        await produce_all(prefix, items)
        w = WorkerProcess(BOOTSTRAP, prefix, f"{prefix}app", policy, key, tmp, name=f"ad-{prefix}").start()
        try:
            ready = await w.wait_ready(timeout=120)
            cpu0 = process_cpu_s(w.proc.pid)
            inputs = [prefix + t for t in ("identity", "activity", "ids-alerts")]
            async with Progress() as progress:
                while await progress.lag(f"{prefix}app", inputs) > 0:
                    if time.time() - ready > 900:
                        raise RuntimeError("inputs not committed after 900 s")
                    await asyncio.sleep(0.1)
                elapsed = time.time() - ready
                outputs = await progress.end_total([prefix + "audit", prefix + "revocations"])
            cpu = process_cpu_s(w.proc.pid) - cpu0 if cpu0 is not None else None
        finally:
            w.stop()
        rate = len(items) / elapsed
        name = "model_on" if adaptive else "model_off"
        out[name] = {"outputs": outputs, "worker_events_per_s": round(rate),
                     "ratio_to_passthrough": round(rate / base, 2),
                     "worker_cpu_us_per_event": round(cpu / len(items) * 1e6, 1) if cpu is not None else None}
    return out


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process (Linux /proc), or None elsewhere."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


async def bench_alert_latency(tmp: Path, trials: int, background_rate: float) -> dict:
    """IDS alert produced -> (a) the revocation on the topic, (b) a gateway's middleware refuses the
    session's next request (enforcement client + ASGI middleware, as in docs/enforcement.md)."""
    import httpx
    from aiokafka import AIOKafkaProducer

    from enforce import RevocationClient, RevocationMiddleware, StepUp, session_from
    from streams.publish import build_jwks
    from streams.publish.keys import load_signing_key

    prefix, policy, key = await setup(tmp, idle="1h")
    issuer, audience = "https://lapse.local/", "lapse-enforcement"
    w = WorkerProcess(BOOTSTRAP, prefix, f"{prefix}app", policy, key, tmp, name=f"al-{prefix}").start()
    p = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=1)
    client = RevocationClient(BOOTSTRAP, prefix + "revocations", build_jwks(load_signing_key(key)), issuer,
                              audience, ttl_s=12 * 3600)

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    gateway = RevocationMiddleware(app, client, session_from(cookie="sid", header="x-session-id"), StepUp())
    stop = asyncio.Event()
    sent_bg = 0
    try:
        await w.wait_ready(timeout=120)
        await p.start()
        await client.start()
        await client.wait_until_caught_up(timeout=60)

        async def background():
            nonlocal sent_bg
            i = 0
            t_start = time.time()
            while not stop.is_set():
                for _ in range(50):
                    s = i % 5000
                    u = f"bg{s}"
                    ev = {"type": "activity", "ts": time.time(), "user": u, "session": f"bgs{s}",
                          "ip": f"10.1.{s // 250}.{s % 250}", "action": "GET", "resource": "/x", "bytes": 300}
                    await p.send(prefix + "activity", key=u.encode(), value=orjson.dumps(ev))
                    i += 1
                sent_bg = i
                delay = t_start + i / background_rate - time.time()
                await asyncio.sleep(max(0.0, delay))

        topic_ms, refused_ms = [], []
        sent_ms: dict[str, float] = {}
        async with TopicReader(BOOTSTRAP, prefix + "revocations") as rev, \
                httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway), base_url="http://gw") as http:
            bg = asyncio.create_task(background())
            for k in range(trials):  # every victim logs in first; the IDS join learns their IPs
                u, ip = f"victim{k}", f"172.16.{k // 250}.{k % 250}"
                await p.send(prefix + "identity", key=u.encode(), value=orjson.dumps(
                    {"type": "login", "ts": time.time(), "user": u, "session": f"v{k}", "ip": ip}))
            await asyncio.sleep(3.0)
            # steady state: the worker has caught up with the start-up burst (every background
            # session and victim is new, each sends sightings to the IDS join) before trials begin
            inputs = [prefix + t for t in ("identity", "activity", "sightings", "user-requests")]
            steady_by = time.time() + 120
            while await group_lag(f"{prefix}app", inputs) > background_rate * 0.2 and time.time() < steady_by:
                await asyncio.sleep(0.5)
            seen = 0
            for k in range(trials):
                ip, sid = f"172.16.{k // 250}.{k % 250}", f"v{k}"
                alert = {"type": "alert", "ts": time.time(), "severity": 1, "signature": f"bench {k}", "src_ip": ip}
                t_sent = time.time()
                sent_ms[alert["signature"]] = t_sent * 1000
                await p.send_and_wait(prefix + "ids-alerts", key=ip.encode(), value=orjson.dumps(alert))
                end, t_topic = t_sent + 10, None
                while time.time() < end:
                    if t_topic is None:
                        for _, v, t in rev.records[seen:]:
                            if v["decision"]["session"] == sid:
                                t_topic = t
                    # the gateway's own check is O(1) and local; one real request confirms the 401
                    if client.is_revoked(sid):
                        r = await http.get("/", headers={"x-session-id": sid})
                        if r.status_code == 401:
                            refused_ms.append((time.time() - t_sent) * 1000)
                        break
                    await asyncio.sleep(0.001)
                if t_topic is not None:
                    topic_ms.append((t_topic - t_sent) * 1000)
                seen = len(rev.records)
            stop.set()
            await bg
        hops = await hop_breakdown(prefix, sent_ms)
    finally:
        stop.set()
        await client.stop()
        await p.stop()
        w.stop()
    return {"trials": trials, "refused": len(refused_ms), "background_events_per_s": background_rate,
            "background_sent": sent_bg,
            "alert_to_revocation_p50_ms": round(percentile(topic_ms, 50), 1),
            "alert_to_revocation_p99_ms": round(percentile(topic_ms, 99), 1),
            "alert_to_revocation_p90_ms": round(percentile(topic_ms, 90), 1),
            "alert_to_revocation_max_ms": round(max(topic_ms, default=float("nan")), 1),
            "alert_to_refused_p50_ms": round(percentile(refused_ms, 50), 1),
            "alert_to_refused_p99_ms": round(percentile(refused_ms, 99), 1), **hops}


async def bench_lateness(tmp: Path, sessions: int) -> dict:
    from aiokafka import AIOKafkaConsumer

    from streams.engine import parse_ts

    prefix, policy, key = await setup(tmp, idle="3s")
    w = WorkerProcess(BOOTSTRAP, prefix, f"{prefix}app", policy, key, tmp, name=f"lt-{prefix}").start()
    try:
        await w.wait_ready(timeout=120)
        now = time.time()
        items = [("identity", f"l{s}".encode(), orjson.dumps({"type": "login", "ts": now + s * 0.002,
                                                             "user": f"l{s}", "session": f"ls{s}"}))
                 for s in range(sessions)]
        await produce_all(prefix, items)
        c = AIOKafkaConsumer(prefix + "revocations", bootstrap_servers=BOOTSTRAP, auto_offset_reset="earliest")
        await c.start()
        late = []
        try:
            end = time.time() + 60
            while len(late) < sessions and time.time() < end:
                for recs in (await c.getmany(timeout_ms=500)).values():
                    for r in recs:
                        if r.key == HEARTBEAT_KEY:
                            continue
                        d = orjson.loads(r.value)["decision"]
                        at = parse_ts(d["at"])
                        late.append(r.timestamp / 1000 - at)
        finally:
            await c.stop()
    finally:
        w.stop()
    return {"sessions": sessions, "timeouts_seen": len(late), "lateness_p50_s": round(percentile(late, 50), 3),
            "lateness_p99_s": round(percentile(late, 99), 3), "lateness_max_s": round(max(late), 3) if late else None}


def _rss_mib(pid: int) -> float | None:
    """Resident memory of a process in MiB (Linux ``/proc``), or ``None`` elsewhere."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


async def bench_recovery(tmp: Path, sessions: int, store: str = "memory://") -> dict:
    """kill -9 and restart. memory://: the new worker reads the whole changelog; rocksdb://: it keeps
    the data directory, so it reads only the changelog written after its databases' persisted offsets."""
    prefix, policy, key = await setup(tmp, idle="12h")
    now = time.time()
    items = [("identity", f"r{s // 2}".encode(), orjson.dumps({
        "type": "login", "ts": now - 30 + s * 1e-5, "user": f"r{s // 2}", "session": f"rs{s}",
        "ip": f"10.2.{s % 250}.{(s // 250) % 250}", "channel": "web", "roles": ["staff"]})) for s in range(sessions)]
    await produce_all(prefix, items)
    app_id = f"{prefix}app"
    env = {"LAPSE_STORE": store, "LAPSE_DATA_DIR": str(tmp / f"rc-{prefix}-data")}
    w = WorkerProcess(BOOTSTRAP, prefix, app_id, policy, key, tmp, name=f"rc-{prefix}", extra_env=env).start()
    try:
        await w.wait_ready(timeout=180)
        while await count_topic(prefix + "audit") < sessions:
            await asyncio.sleep(0.5)
        await asyncio.sleep(3.0)  # changelog flushed, offsets committed
    finally:
        w.kill9()
    killed = time.time()
    w2 = WorkerProcess(BOOTSTRAP, prefix, app_id, policy, key, tmp, name=f"rc2-{prefix}", extra_env=env).start()
    try:
        ready = await w2.wait_ready(timeout=600)
        rss = _rss_mib(w2.proc.pid)  # the recovered worker holding every session
    finally:
        w2.stop()
    recovery = ready - killed
    import re

    m = re.findall(r"deadline index rebuilt over partitions .* in ([0-9.]+)s", w2.tail(400))
    return {"live_sessions": sessions, "store": store, "restart_to_ready_s": round(recovery, 1),
            "index_rebuild_s": float(m[-1]) if m else None,
            "projected_1M_s": round(recovery * 1_000_000 / sessions, 0), "rss_mib": rss}


async def main(args) -> None:
    try:
        await run_all(args)
    finally:
        print(f"deleted {await delete_bench_topics()} benchmark topics", file=sys.stderr)


async def run_all(args) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="lapse-bench-"))
    skip = set(args.skip or [])
    if args.adaptive:
        r = await bench_model_throughput(tmp, args.adaptive_users, args.adaptive_hours)
        record("service_throughput_adaptive", **r)
        print(f"worker end-to-end, the simulator's stream ({r['events']:,} events, {r['users']:,} users, "
              f"{r['hours']:g} h), raw passthrough {r['passthrough_per_s']:,} msg/s:")
        for name in ("model_off", "model_on"):
            m = r[name]
            print(f"  [adaptive] {'enabled' if name == 'model_on' else 'off'}: {m['worker_events_per_s']:,} "
                  f"events/s ({m['ratio_to_passthrough']}x), {m['outputs']:,} outputs; worker CPU "
                  f"{m['worker_cpu_us_per_event']} us/event")
    if "throughput" not in skip:
        r = await bench_throughput(tmp, args.events, args.sessions, args.store)
        record("service_throughput", **r)
        print(f"worker end-to-end ({args.store}): {r['worker_events_per_s']:,} events/s vs raw passthrough "
              f"{r['passthrough_per_s']:,} msg/s ({r['ratio_to_passthrough']}x), {r['outputs']:,} outputs; "
              f"worker CPU {r['worker_cpu_us_per_event']} us/event")
    if "latency" not in skip:
        r = await bench_alert_latency(tmp, args.trials, args.background)
        record("service_alert_latency", **r)
        print(f"IDS alert -> revocation on the topic: p50 {r['alert_to_revocation_p50_ms']} ms, p90 "
              f"{r['alert_to_revocation_p90_ms']} ms, p99 {r['alert_to_revocation_p99_ms']} ms, max "
              f"{r['alert_to_revocation_max_ms']} ms; -> middleware refuses the next request: p50 "
              f"{r['alert_to_refused_p50_ms']} ms, p99 {r['alert_to_refused_p99_ms']} ms "
              f"({r['refused']}/{r['trials']}, background {args.background:.0f} events/s)")
        print("  alert produced -> revocation produced by the worker: p50 {alert_to_produced_p50_ms} ms, p99 "
              "{alert_to_produced_p99_ms} ms; forwarded inside the join: {forwarded_in_join}, via user-requests: "
              "{via_user_requests}".format(**r))
    if "lateness" not in skip:
        r = await bench_lateness(tmp, args.lateness_sessions)
        record("service_lateness", **r)
        print(f"timeout lateness: p50 {r['lateness_p50_s']} s, p99 {r['lateness_p99_s']} s over {r['timeouts_seen']}")
    if "recovery" not in skip:
        for store in args.recovery_stores:
            r = await bench_recovery(tmp, args.recovery_sessions, store)
            record("service_recovery", **r)
            print(f"recovery after kill -9 with {r['live_sessions']:,} live sessions ({store}): {r['restart_to_ready_s']} s "
                  f"to ready (index rebuild {r['index_rebuild_s']} s); projected 1M: {r['projected_1M_s']:.0f} s; "
                  f"worker RSS once ready: {r['rss_mib']} MiB")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--sessions", type=int, default=20_000)
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--background", type=float, default=5000.0)
    ap.add_argument("--lateness-sessions", type=int, default=2000)
    ap.add_argument("--recovery-sessions", type=int, default=100_000)
    ap.add_argument("--store", default="memory://", help="LAPSE_STORE of the throughput run")
    ap.add_argument("--recovery-stores", nargs="*", default=["memory://", "rocksdb://"])
    ap.add_argument("--skip", nargs="*", choices=["throughput", "latency", "lateness", "recovery"])
    ap.add_argument("--adaptive", action="store_true",
                    help="also: one worker with [adaptive] enabled through the simulator's stream")
    ap.add_argument("--adaptive-users", type=int, default=1000)
    ap.add_argument("--adaptive-hours", type=float, default=48.0)
    os.environ.setdefault("LAPSE_BOOTSTRAP", BOOTSTRAP)
    asyncio.run(main(ap.parse_args()))
