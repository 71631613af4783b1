"""Feed freshness against the real broker: heartbeats produced per partition (as the worker's
timer does) make a RevocationClient with ``max_feed_age_s`` fresh; a partition without a genuine
heartbeat, a forged heartbeat or time passing without heartbeats make the middleware answer 503;
a heartbeat never revokes anything; a restarted client is fresh again from the retained ones."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from enforce import RevocationClient, RevocationMiddleware, session_from
from streams.publish import SetSigner, build_jwks, encode_message, generate_key
from streams.publish.heartbeat import heartbeat_message
from tests.support.clock import Clock

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]

ISS, AUD = "https://lapse.test/", "https://gateway.test/"
PARTITIONS = 3
MAX_AGE = 10.0


def decision(session: str) -> dict:
    return {"id": f"d-{uuid.uuid4().hex}", "action": "revoke", "reason": "ids_alert", "session": session,
            "user": "u1", "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


async def wait_for(pred, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"not in time: {what}"
        await asyncio.sleep(0.01)


async def ok(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def test_heartbeats_keep_the_feed_fresh_and_their_absence_fails_closed(kafka_bootstrap, unique_topic, tmp_path):
    good, evil = generate_key(tmp_path / "good.pem"), generate_key(tmp_path / "evil.pem")
    jwks = build_jwks(good)
    signer = SetSigner(good, ISS, AUD)
    forger = SetSigner(type(good)(evil.key, good.kid, evil.alg), ISS, AUD)  # claims our kid
    topic = await unique_topic("revocations-hb", partitions=PARTITIONS,
                               config={"cleanup.policy": "compact,delete"})
    clock = Clock(time.time())  # the gateway's clock, advanced by hand instead of sleeping

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()

    async def beat(by: SetSigner, partitions) -> None:
        for p in partitions:
            key, value = heartbeat_message(by, clock(), partition=p)
            await producer.send_and_wait(topic, key=key, value=value, partition=p)

    def new_client() -> RevocationClient:
        return RevocationClient(kafka_bootstrap, topic, jwks, ISS, AUD, ttl_s=3600, clock=clock,
                                max_feed_age_s=MAX_AGE)

    client = new_client()
    gateway = RevocationMiddleware(ok, client, session_from(cookie="sid", header="x-session-id"))
    try:
        await client.start()
        await client.wait_until_caught_up(timeout=30)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway), base_url="http://gw") as http:
            # an empty topic proves nothing about the worker: stale until every partition beats
            r = await http.get("/", headers={"x-session-id": "s-good"})
            assert r.status_code == 503 and r.json() == {"error": "revocations_stale"}
            assert r.headers["retry-after"] == "1"

            await beat(signer, range(PARTITIONS - 1))
            await wait_for(lambda: client.counters["heartbeats"] == PARTITIONS - 1, "two heartbeats read")
            assert not client.fresh  # the last partition has not been heard from

            await beat(forger, [PARTITIONS - 1])
            await wait_for(lambda: client.counters["bad_heartbeats"] == 1, "forged heartbeat read")
            assert not client.fresh
            assert (await http.get("/", headers={"x-session-id": "s-good"})).status_code == 503

            await beat(signer, [PARTITIONS - 1])
            await wait_for(lambda: client.fresh, "fresh once every partition beat")
            assert (await http.get("/", headers={"x-session-id": "s-good"})).status_code == 200

            # revocations still work alongside heartbeats; heartbeats revoke nothing
            await producer.send_and_wait(topic, key=b"s-bad", value=encode_message(decision("s-bad"), signer))
            await wait_for(lambda: client.is_revoked("s-bad"), "revocation applied")
            assert (await http.get("/", headers={"cookie": "sid=decoy; sid=s-bad"})).status_code == 401
            assert len(client.state) == 1

            # the worker goes quiet: once the bound passes the gateway fails closed
            clock.t += MAX_AGE + 1
            assert not client.fresh and client.feed_age() > MAX_AGE
            assert (await http.get("/", headers={"x-session-id": "s-good"})).status_code == 503
            await beat(forger, range(PARTITIONS))             # forgeries do not revive it
            await wait_for(lambda: client.counters["bad_heartbeats"] == 1 + PARTITIONS, "forgeries read")
            assert not client.fresh

            await beat(signer, range(PARTITIONS))
            await wait_for(lambda: client.fresh, "fresh again")
            assert (await http.get("/", headers={"x-session-id": "s-good"})).status_code == 200
    finally:
        await client.stop()

    # a restarted gateway reads the retained heartbeats from the beginning and is fresh again
    restarted = new_client()
    try:
        await restarted.start()
        await restarted.wait_until_caught_up(timeout=30)
        await wait_for(lambda: restarted.fresh, "restarted client fresh")
        assert restarted.is_revoked("s-bad") and len(restarted.state) == 1
        assert restarted.counters["bad_heartbeats"] == 1 + PARTITIONS
    finally:
        await restarted.stop()
        await producer.stop()
