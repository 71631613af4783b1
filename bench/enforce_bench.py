"""Enforcement latency: signed revocation produced -> RevocationClient.is_revoked(session) is true.

Against a real broker, under background load (other sessions' signed revocations on the same
topic), compared with a raw aiokafka produce -> consume baseline measured in the same run and
process, plus sign / verify rates per second.

    .venv/bin/python bench/enforce_bench.py                       # 1,000 trials, 500 msg/s background
    .venv/bin/python bench/enforce_bench.py --trials 200 --background-rate 2000 --json out.json

The broker is LAPSE_BOOTSTRAP / --bootstrap, or a private one started like the tests do.
Single process, single event loop: producer, background load and consumers share it (and the
machine's cores), so the figures are an upper bound on what the client itself adds.

Also reported: the middleware's own cost per request (no network: the ASGI call with an
in-memory client), for a genuine header, a genuine cookie among others, no session, and a
hostile Cookie header of the largest accepted size built to maximise the session-id work.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from common import fresh_topic, percentile, record  # noqa: E402  (also puts the repo on sys.path)

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402

from enforce import RevocationClient, RevocationMiddleware, SetVerifier, session_from  # noqa: E402
from enforce.sessions import MAX_COOKIE_BYTES  # noqa: E402
from streams.publish import SetSigner, build_jwks, encode_message, generate_key  # noqa: E402

ISS, AUD = "https://lapse.bench/", "https://gateway.bench/"


def decision(session: str) -> dict:
    return {"id": f"d-{uuid.uuid4().hex}", "action": "revoke", "reason": "ids_alert", "session": session,
            "user": "u-bench", "sso_session": None, "app": None,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "policy": ["defaults"],
            "policy_version": "bench", "score": None, "evidence": {}}


def summary(ms: list[float]) -> dict:
    return {"n": len(ms), "p50_ms": round(percentile(ms, 50), 3), "p99_ms": round(percentile(ms, 99), 3),
            "max_ms": round(max(ms), 3), "mean_ms": round(statistics.fmean(ms), 3)}


def crypto_rates(tmp: Path, n: int) -> dict:
    out = {}
    for kty in ("ed25519", "rsa"):
        key = generate_key(tmp / f"{kty}.pem", kty=kty, bits=2048)
        signer = SetSigner(key, ISS, AUD)
        verifier = SetVerifier(build_jwks(key), ISS, AUD)
        ds = [decision(f"s{i}") for i in range(n)]
        t = time.perf_counter()
        tokens = [signer.sign(d) for d in ds]
        sign_s = time.perf_counter() - t
        t = time.perf_counter()
        for tok in tokens:
            verifier.verify(tok)
        verify_s = time.perf_counter() - t
        out[f"{key.alg}" + ("-2048" if kty == "rsa" else "")] = {
            "sign_per_s": round(n / sign_s), "verify_per_s": round(n / verify_s)}
    return out


class _Lookups:
    """The two O(1) lookups of a caught-up, fresh client, without the client."""

    caught_up = fresh = True

    def is_revoked(self, s: str) -> bool:
        return s == "revoked"

    def requires_step_up(self, s: str) -> bool:
        return False


async def middleware_cost(n: int) -> dict:
    """Microseconds per request spent in RevocationMiddleware (the wrapped app does nothing)."""

    async def app(scope, receive, send) -> None:
        return None

    async def receive() -> dict:
        return {"type": "http.request"}

    async def send(message) -> None:
        return None

    mw = RevocationMiddleware(app, _Lookups(), session_from(cookie="sid", header="x-session-id"))
    base = [(b"host", b"gw"), (b"accept", b"*/*"), (b"user-agent", b"bench")]
    cases = {
        "header": [*base, (b"x-session-id", b"s-0123456789abcdef")],
        "cookie": [*base, (b"cookie", b"theme=dark; lang=en-GB; sid=s-0123456789abcdef; _ga=GA1.2.3.4")],
        "no_session": base,
        # the costliest shape found: one quoted value of backslash escapes filling the size cap
        "hostile_cookie": [*base, (b"cookie", b'sid="' + b"\\" * (MAX_COOKIE_BYTES - 6) + b'"')],
    }
    out = {}
    for name, headers in cases.items():
        scope = {"type": "http", "path": "/", "method": "GET", "headers": headers}
        reps = n if name != "hostile_cookie" else max(1, n // 100)
        t = time.perf_counter()
        for _ in range(reps):
            await mw(scope, receive, send)
        out[name] = round((time.perf_counter() - t) / reps * 1e6, 2)
    return out


async def run(args: argparse.Namespace, bootstrap: str, tmp: Path) -> dict:
    key = generate_key(tmp / "signing.pem")
    signer = SetSigner(key, ISS, AUD)
    tag = uuid.uuid4().hex[:8]
    rev_topic = await fresh_topic("revocations", args.partitions, bootstrap)
    raw_topic = await fresh_topic("raw", args.partitions, bootstrap)
    await asyncio.sleep(1.0)  # let partition leadership settle

    pending: dict[bytes, tuple[float, asyncio.Future]] = {}
    loop = asyncio.get_running_loop()

    def on_applied(outcome: str, k: bytes | None) -> None:
        entry = pending.pop(k, None) if k is not None else None
        if entry is not None:
            assert client.is_revoked(k.decode()), "callback before state"
            entry[1].set_result(time.perf_counter() - entry[0])

    client = RevocationClient(bootstrap, rev_topic, build_jwks(key), ISS, AUD, ttl_s=3600,
                              on_applied=on_applied, poll_timeout_ms=args.poll_ms)
    raw_consumer = AIOKafkaConsumer(raw_topic, bootstrap_servers=bootstrap, group_id=None,
                                    auto_offset_reset="latest", enable_auto_commit=False)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=args.acks, linger_ms=0)
    bg_producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=args.acks, linger_ms=5)
    await asyncio.gather(client.start(), raw_consumer.start(), producer.start(), bg_producer.start())
    await client.wait_until_caught_up()

    async def raw_loop() -> None:
        while True:
            batches = await raw_consumer.getmany(timeout_ms=args.poll_ms, max_records=2000)
            now = time.perf_counter()
            for msgs in batches.values():
                for m in msgs:
                    entry = pending.pop(m.key, None)
                    if entry is not None:
                        entry[1].set_result(now - entry[0])

    # background: pre-signed revocations of other sessions, on both topics, at a steady rate
    bg_pool = [encode_message(decision(f"bg-{i}"), signer) for i in range(args.bg_pool)]
    bg_sent = 0

    async def background() -> None:
        nonlocal bg_sent
        if args.background_rate <= 0:
            return
        tick = 0.01
        per_tick = max(1, int(args.background_rate * tick))
        i = 0
        while True:
            t = time.perf_counter()
            for _ in range(per_tick):
                v = bg_pool[i % len(bg_pool)]
                k = f"bg-{i}".encode()
                await bg_producer.send(rev_topic, key=k, value=v)  # enqueue; delivery is batched
                await bg_producer.send(raw_topic, key=k, value=v)
                i += 1
            bg_sent = i
            await asyncio.sleep(max(0.0, tick - (time.perf_counter() - t)))

    tasks = [asyncio.create_task(raw_loop()), asyncio.create_task(background())]
    await asyncio.sleep(0.5)  # let the load settle

    enforce_ms: list[float] = []
    raw_ms: list[float] = []
    # pre-sign the trial messages: signing cost is reported separately (sign/s)
    trials = [(f"trial-{tag}-{i}", encode_message(decision(f"trial-{tag}-{i}"), signer)) for i in range(args.trials)]
    for i, (session, value) in enumerate(trials):
        for topic, sink, payload in ((rev_topic, enforce_ms, value), (raw_topic, raw_ms, value)):
            k = session.encode()
            fut = loop.create_future()
            pending[k] = (time.perf_counter(), fut)
            await producer.send(topic, key=k, value=payload)
            sink.append(await asyncio.wait_for(fut, timeout=30) * 1000)
        await asyncio.sleep(random.uniform(0, args.gap_ms / 1000))

    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    counters = client.counters
    await asyncio.gather(client.stop(), raw_consumer.stop(), producer.stop(), bg_producer.stop())
    return {
        "enforce": summary(enforce_ms),
        "raw_aiokafka": summary(raw_ms),
        "background_msgs_per_topic": bg_sent,
        "client_counters": counters,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bootstrap", default=os.environ.get("LAPSE_BOOTSTRAP"))
    p.add_argument("--trials", type=int, default=1000)
    p.add_argument("--background-rate", type=float, default=500.0, help="background msgs/s per topic")
    p.add_argument("--bg-pool", type=int, default=5000, help="distinct pre-signed background messages")
    p.add_argument("--partitions", type=int, default=3)
    p.add_argument("--acks", default="all", choices=["all", "1", "0"])
    p.add_argument("--poll-ms", type=int, default=200)
    p.add_argument("--gap-ms", type=float, default=5.0, help="random pause between trials (0..gap)")
    p.add_argument("--crypto-n", type=int, default=2000)
    p.add_argument("--middleware-n", type=int, default=100_000, help="requests per middleware cost case")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = p.parse_args()
    if args.acks != "all":
        args.acks = int(args.acks)

    broker = None
    bootstrap = args.bootstrap
    if not bootstrap:
        from tests.support.broker import ensure_broker
        broker = ensure_broker()
        bootstrap = broker.bootstrap
    try:
        with tempfile.TemporaryDirectory(prefix="lapse-bench-") as tmp:
            rates = crypto_rates(Path(tmp), args.crypto_n)
            mw_us = asyncio.run(middleware_cost(args.middleware_n))
            result = asyncio.run(run(args, bootstrap, Path(tmp)))
    finally:
        if broker is not None:
            broker.stop()
    result["crypto"] = rates
    result["middleware_us_per_request"] = mw_us
    result["config"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    e, r = result["enforce"], result["raw_aiokafka"]
    print(f"trials={e['n']} background={args.background_rate:.0f} msg/s/topic partitions={args.partitions} acks={args.acks}")
    print(f"{'':24}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}{'mean ms':>10}")
    for name, s in (("signed -> is_revoked", e), ("raw aiokafka baseline", r)):
        print(f"{name:24}{s['p50_ms']:>10.2f}{s['p99_ms']:>10.2f}{s['max_ms']:>10.2f}{s['mean_ms']:>10.2f}")
    print(f"overhead vs baseline: p50 {e['p50_ms'] - r['p50_ms']:+.2f} ms, p99 {e['p99_ms'] - r['p99_ms']:+.2f} ms")
    for alg, rr in rates.items():
        print(f"{alg:>10}: sign {rr['sign_per_s']:>7}/s   verify {rr['verify_per_s']:>7}/s")
    print("middleware us/request: " + ", ".join(f"{k} {v:.2f}" for k, v in mw_us.items()))
    print(f"client counters: {result['client_counters']}")
    record("enforce", trials=e["n"], background_msgs_per_s=args.background_rate, partitions=args.partitions,
           enforce_p50_ms=e["p50_ms"], enforce_p99_ms=e["p99_ms"], raw_p50_ms=r["p50_ms"], raw_p99_ms=r["p99_ms"],
           crypto=rates, middleware_us=mw_us)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
