"""SSF delivery: a revocation on the topic -> the receiver's push endpoint, and SETs per second per
stream (push and poll), each against a baseline measured in the same run.

    .venv/bin/python bench/ssf_bench.py                         # 300 latency trials, 3,000 SETs per rate
    .venv/bin/python bench/ssf_bench.py --trials 500 --sets 5000 --json out.json

A real ``lapse ssf serve`` process on 127.0.0.1 reads a real broker (LAPSE_BOOTSTRAP /
--bootstrap, or a private one started like the tests do); the receiver is an aiohttp server in
this process. Figures:

* latency: signed decision produced -> its re-signed SET at the push endpoint (p50 / p99), paced;
  baselines: the same record produced -> consumed by a plain aiokafka consumer, and one raw
  aiohttp POST of a SET-sized body to the same endpoint;
* push rate: a paused stream's queue of N SETs drained in order after it is enabled; baseline:
  a sequential raw aiohttp POST loop of the same bodies to the same endpoint (what one ordered
  stream can do at best);
* poll rate: N queued SETs drained with maxEvents = 1000 and acks; baseline: the same number of
  SET-sized strings fetched in pages of 1,000 from a raw aiohttp endpoint;
* fan-out rate: records read, verified, re-signed (RS256 2048) and committed to the queue.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from common import REPO, percentile, record  # noqa: E402  (also puts the repo on sys.path)

import httpx  # noqa: E402
from aiohttp import ClientSession, web  # noqa: E402
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402

from enforce import wire  # noqa: E402
from streams.config import Settings  # noqa: E402
from streams.publish import SetSigner, build_jwks, encode_message, generate_key  # noqa: E402
from streams.topics import create_topics  # noqa: E402

ISS, AUD = "https://lapse.bench/", "gw.bench"
TOKEN = "bench-" + "k" * 40


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def decision(i: int) -> dict:
    return {"id": f"d-{uuid.uuid4().hex}", "action": "revoke", "reason": "ids_alert", "session": f"s-{i}",
            "user": f"u-{i % 500}", "sso_session": None, "app": None,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "policy": ["defaults"],
            "policy_version": "bench", "score": None, "evidence": {}}


def summary(ms: list[float]) -> dict:
    return {"n": len(ms), "p50_ms": round(percentile(ms, 50), 3), "p99_ms": round(percentile(ms, 99), 3),
            "max_ms": round(max(ms), 3), "mean_ms": round(statistics.fmean(ms), 3)}


class Rx:
    """Push endpoint: records arrival time by jti."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.count = 0
        self.last = 0.0
        self.page: bytes = b"{}"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        now = time.perf_counter()
        self.count += 1
        self.last = now
        if request.headers.get("X-Bench") != "raw":
            payload = body.split(b".")[1]
            import base64

            jti = json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))["jti"]
            self.arrivals.setdefault(jti, now)
        return web.Response(status=202)

    async def page_handler(self, request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=self.page, content_type="application/json")


async def wait_until(pred, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.002)


async def run(args: argparse.Namespace, bootstrap: str, tmp: Path) -> dict:
    pfx = f"b{uuid.uuid4().hex[:8]}."
    await create_topics(Settings.load({"LAPSE_BOOTSTRAP": bootstrap, "LAPSE_TOPIC_PREFIX": pfx,
                                       "LAPSE_PARTITIONS": str(args.partitions)}))
    topic = pfx + "revocations"
    worker_key = generate_key(tmp / "w.pem")
    generate_key(tmp / "ssf.pem", kty="rsa", bits=2048)
    (tmp / "w-jwks.json").write_text(json.dumps(build_jwks(worker_key)))
    signer = SetSigner(worker_key, ISS, AUD)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, LAPSE_BOOTSTRAP=bootstrap, LAPSE_TOPIC_PREFIX=pfx, LAPSE_SET_ISSUER=ISS,
               LAPSE_SET_AUDIENCE=AUD, LAPSE_SSF_PORT=str(port), LAPSE_SSF_SIGNING_KEY_FILE=str(tmp / "ssf.pem"),
               LAPSE_SSF_SOURCE_JWKS=str(tmp / "w-jwks.json"), LAPSE_SSF_TOKENS=f"bench {TOKEN} ssf.manage",
               LAPSE_SSF_STATE_DIR=str(tmp / "state"), LAPSE_SSF_ALLOW_HTTP_PUSH="1",
               LAPSE_SSF_MIN_VERIFICATION_S="0")
    log = open(tmp / "ssf.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "ssf", "serve", "--loglevel", "warning"], env=env,
                            cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    rx = Rx()
    app = web.Application()
    app.router.add_post("/events", rx.handle)
    app.router.add_post("/page", rx.page_handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    rx_url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, acks=1)
    await producer.start()
    raw = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="latest",
                           enable_auto_commit=False)
    await raw.start()
    result: dict = {"partitions": args.partitions, "trials": args.trials, "sets": args.sets}
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            end = time.monotonic() + 60
            while True:
                try:
                    if (await http.get("/health")).json()["feed_ready"]:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() > end:
                    raise RuntimeError("lapse ssf did not start:\n" + (tmp / "ssf.log").read_text()[-3000:])
                await asyncio.sleep(0.1)
            push = (await http.post("/ssf/streams", headers=auth, json={
                "delivery": {"method": "urn:ietf:rfc:8935", "endpoint_url": rx_url + "/events"},
                "events_requested": [wire.SESSION_REVOKED]})).json()["stream_id"]

            # -- latency: topic -> push endpoint, paced; and topic -> plain consumer --------------
            raw_arrival: dict[str, float] = {}

            async def read_raw():
                while True:
                    for msgs in (await raw.getmany(timeout_ms=100)).values():
                        now = time.perf_counter()
                        for m in msgs:
                            raw_arrival.setdefault(json.loads(m.value)["decision"]["id"], now)

            reader = asyncio.create_task(read_raw())
            await asyncio.sleep(1.0)
            sent: dict[str, float] = {}
            for i in range(args.trials + 20):
                d = decision(i)
                value = encode_message(d, signer)
                t0 = time.perf_counter()
                await producer.send(topic, key=d["session"].encode(), value=value)
                if i >= 20:  # the first ones warm connections up
                    sent[d["id"]] = t0
                await asyncio.sleep(1.0 / args.rate)
            await wait_until(lambda: all(j in rx.arrivals for j in sent), 60, "every latency trial at the receiver")
            reader.cancel()
            lat = [(rx.arrivals[j] - t) * 1000 for j, t in sent.items()]
            base_kafka = [(raw_arrival[j] - t) * 1000 for j, t in sent.items() if j in raw_arrival]
            sample = next(iter(rx.arrivals))  # a SET-sized body for the raw POSTs
            body = b"x" * 900
            posts = []
            async with ClientSession() as s:
                for _ in range(args.trials):
                    t0 = time.perf_counter()
                    async with s.post(rx_url + "/events", data=body, headers={"X-Bench": "raw",
                                      "Content-Type": "application/secevent+jwt"}) as r:
                        await r.read()
                    posts.append((time.perf_counter() - t0) * 1000)
            result["latency_topic_to_push_endpoint"] = summary(lat)
            result["baseline_topic_to_consumer"] = summary(base_kafka)
            result["baseline_raw_post"] = summary(posts)
            del sample

            # -- push rate: a paused stream's queue drained in order -----------------------------
            await http.post("/ssf/status", headers=auth, json={"stream_id": push, "status": "paused"})
            t_fan = time.perf_counter()
            ids = []
            for i in range(args.sets):
                d = decision(i)
                ids.append(d["id"])
                await producer.send(topic, key=d["session"].encode(), value=encode_message(d, signer))
            await producer.flush()

            async def pending(sid):
                return (await http.get("/ssf/delivery", params={"stream_id": sid}, headers=auth)).json()["pending"]

            end = time.monotonic() + 300
            while await pending(push) < args.sets:
                assert time.monotonic() < end, "fan-out too slow"
                await asyncio.sleep(0.05)
            fan_s = time.perf_counter() - t_fan
            before = rx.count
            t0 = time.perf_counter()
            await http.post("/ssf/status", headers=auth, json={"stream_id": push, "status": "enabled"})
            await wait_until(lambda: rx.count - before >= args.sets, 300, "the push queue drained")
            push_s = rx.last - t0
            delivered = sum(1 for j in ids if j in rx.arrivals)
            async with ClientSession() as s:
                t1 = time.perf_counter()
                for _ in range(args.sets):
                    async with s.post(rx_url + "/events", data=body, headers={"X-Bench": "raw"}) as r:
                        await r.read()
                raw_post_s = time.perf_counter() - t1
            result["fanout_sets_per_s"] = round(args.sets / fan_s, 1)
            result["push_sets_per_s"] = round(args.sets / push_s, 1)
            result["baseline_raw_post_loop_per_s"] = round(args.sets / raw_post_s, 1)
            result["push_all_delivered"] = delivered == args.sets

            # -- poll rate --------------------------------------------------------------------------
            await http.delete("/ssf/streams", params={"stream_id": push}, headers=auth)
            poll = (await http.post("/ssf/streams", headers=auth, json={
                "delivery": {"method": "urn:ietf:rfc:8936"}, "events_requested": [wire.SESSION_REVOKED]})).json()
            for i in range(args.sets):
                d = decision(i)
                await producer.send(topic, key=d["session"].encode(), value=encode_message(d, signer))
            await producer.flush()
            end = time.monotonic() + 300
            while await pending(poll["stream_id"]) < args.sets:
                assert time.monotonic() < end, "fan-out too slow"
                await asyncio.sleep(0.05)
            endpoint = poll["delivery"]["endpoint_url"]
            got, acks = 0, []
            some_token = None
            t0 = time.perf_counter()
            while True:
                r = (await http.post(endpoint, headers=auth, json={"ack": acks, "maxEvents": 1000,
                                                                   "returnImmediately": True})).json()
                acks = list(r["sets"])
                got += len(acks)
                if r["sets"]:
                    some_token = next(iter(r["sets"].values()))
                if not r["sets"] and not r["moreAvailable"]:
                    break
            poll_s = time.perf_counter() - t0
            assert got == args.sets, got
            rx.page = json.dumps({"sets": {f"j{i}": some_token for i in range(1000)}, "moreAvailable": True}).encode()
            async with ClientSession() as s:
                t1 = time.perf_counter()
                for _ in range(max(1, args.sets // 1000)):
                    async with s.post(rx_url + "/page", json={"ack": [f"j{i}" for i in range(1000)]}) as resp:
                        await resp.json()
                raw_page_s = time.perf_counter() - t1
            result["poll_sets_per_s"] = round(args.sets / poll_s, 1)
            result["baseline_raw_page_fetch_per_s"] = round(max(1, args.sets // 1000) * 1000 / raw_page_s, 1)
    finally:
        await raw.stop()
        await producer.stop()
        await runner.cleanup()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bootstrap", default=os.environ.get("LAPSE_BOOTSTRAP"))
    p.add_argument("--trials", type=int, default=300)
    p.add_argument("--rate", type=float, default=50.0, help="latency trials per second")
    p.add_argument("--sets", type=int, default=3000, help="SETs per throughput run")
    p.add_argument("--partitions", type=int, default=6)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    bootstrap = args.bootstrap
    broker = None
    if not bootstrap:
        from tests.support.broker import ensure_broker

        broker = ensure_broker()
        bootstrap = broker.bootstrap
    try:
        with tempfile.TemporaryDirectory() as tmp:
            result = asyncio.run(run(args, bootstrap, Path(tmp)))
    finally:
        if broker is not None:
            broker.stop()
    record("ssf", **result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
