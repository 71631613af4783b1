"""RevocationClient and middleware against the real broker: signed revocations produced with
aiokafka are enforced; a restarted client still knows them; forged tokens are counted and ignored."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from enforce import RevocationClient, RevocationMiddleware, StepUp, session_from
from streams.publish import SetSigner, build_jwks, encode_message, generate_key

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]

ISS, AUD = "https://lapse.test/", "https://gateway.test/"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    good, evil = generate_key(d / "good.pem"), generate_key(d / "evil.pem")
    return good, evil, build_jwks(good)


def decision(session: str, action: str = "revoke", reason: str = "ids_alert") -> dict:
    return {"id": f"d-{uuid.uuid4().hex}", "action": action, "reason": reason, "session": session,
            "user": "u1", "sso_session": None, "app": None,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "policy": ["defaults"],
            "policy_version": "t", "score": None, "evidence": {}}


async def produce(bootstrap: str, topic: str, values: list[tuple[str, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in values:
            await producer.send_and_wait(topic, key=key.encode(), value=value)
    finally:
        await producer.stop()


def new_client(bootstrap, topic, jwks) -> RevocationClient:
    return RevocationClient(bootstrap, topic, jwks, ISS, AUD, ttl_s=3600)


async def wait_for(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_revocations_enforced_restart_and_forgery(kafka_bootstrap, unique_topic, keys):
    good, evil, jwks = keys
    topic = await unique_topic("revocations", partitions=3)
    signer = SetSigner(good, ISS, AUD)
    forger = SetSigner(type(good)(evil.key, good.kid, evil.alg), ISS, AUD)  # claims our kid

    await produce(kafka_bootstrap, topic, [
        ("s-early", encode_message(decision("s-early"), signer)),
        ("s-forged", encode_message(decision("s-forged"), forger)),
        ("s-junk", b'{"decision": {}, "set": "not.a.jws"}'),
    ])

    client = new_client(kafka_bootstrap, topic, jwks)
    await client.start()
    try:
        await client.wait_until_caught_up(timeout=30)
        assert client.is_revoked("s-early")
        assert not client.is_revoked("s-forged")
        c = client.counters
        assert c["revoked"] == 1 and c["forged"] == 1 and c["malformed"] == 1 and c["caught_up"] == 1

        # live: a revocation produced now turns is_revoked true; a duplicate is deduped by jti
        d = decision("s-live")
        msg = encode_message(d, signer)
        step = encode_message(decision("s-risky", action="step_up", reason="anomaly"), signer)
        await produce(kafka_bootstrap, topic, [("s-live", msg), ("s-live", msg), ("s-risky", step)])
        await wait_for(lambda: client.is_revoked("s-live") and client.requires_step_up("s-risky"))
        await wait_for(lambda: client.counters["duplicates"] == 1)
    finally:
        await client.stop()

    # restart: a fresh client reads from the beginning and still refuses earlier revocations
    restarted = new_client(kafka_bootstrap, topic, jwks)
    await restarted.start()
    try:
        await restarted.wait_until_caught_up(timeout=30)
        assert restarted.is_revoked("s-early") and restarted.is_revoked("s-live")
        assert restarted.requires_step_up("s-risky")
        assert not restarted.is_revoked("s-forged") and restarted.counters["forged"] == 1
    finally:
        await restarted.stop()


async def test_middleware_refuses_next_request(kafka_bootstrap, unique_topic, keys):
    good, _, jwks = keys
    topic = await unique_topic("revocations-mw")
    signer = SetSigner(good, ISS, AUD)
    client = new_client(kafka_bootstrap, topic, jwks)

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    mw = RevocationMiddleware(app, client, session_from(cookie="sid", header="x-session-id"),
                              StepUp(acr_values="urn:test:mfa"))
    await client.start()
    try:
        await client.wait_until_caught_up(timeout=30)  # empty topic: caught up at once
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=mw), base_url="http://gw") as http:
            assert (await http.get("/", headers={"x-session-id": "s-mw"})).status_code == 200
            await produce(kafka_bootstrap, topic, [("s-mw", encode_message(decision("s-mw"), signer))])
            await wait_for(lambda: client.is_revoked("s-mw"))
            r = await http.get("/", headers={"x-session-id": "s-mw"})
            assert r.status_code == 401 and r.json()["error"] == "session_revoked"
            assert (await http.get("/", headers={"x-session-id": "s-other"})).status_code == 200
    finally:
        await client.stop()
