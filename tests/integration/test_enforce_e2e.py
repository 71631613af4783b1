"""End to end: an IDS alert reaches the worker, the worker revokes the session, and a gateway's
middleware (fed by the enforcement client) refuses that session's next request."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest

from enforce import RevocationClient, RevocationMiddleware, StepUp, session_from
from streams.publish import build_jwks
from streams.publish.keys import load_signing_key
from tests.support.worker import IDS_POLICY, WorkerProcess, make_key, produce, write_policy

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(240)]

POLICY = IDS_POLICY


async def test_a_session_the_worker_revokes_is_refused_by_the_middleware(kafka_bootstrap, tmp_path):
    from streams.config import Settings
    from streams.topics import create_topics

    prefix = f"t{uuid.uuid4().hex[:8]}."
    await create_topics(Settings.load({"LAPSE_BOOTSTRAP": kafka_bootstrap, "LAPSE_TOPIC_PREFIX": prefix}))
    policy, key = write_policy(tmp_path / "p.toml", POLICY), make_key(tmp_path)
    issuer, audience = "https://lapse.test/", "gw.test"
    worker = WorkerProcess(kafka_bootstrap, prefix, f"{prefix}app", policy, key, tmp_path,
                           extra_env={"LAPSE_SET_ISSUER": issuer, "LAPSE_SET_AUDIENCE": audience}).start()
    jwks = build_jwks(load_signing_key(key))
    # fail closed on a stale feed: only the worker's signed heartbeats keep this gateway serving
    client = RevocationClient(kafka_bootstrap, prefix + "revocations", jwks, issuer, audience, ttl_s=8 * 3600,
                              max_feed_age_s=30)

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    gateway = RevocationMiddleware(app, client, session_from(cookie="sid", header="x-session-id"),
                                   StepUp(acr_values="urn:test:mfa"))
    try:
        await worker.wait_ready()
        await client.start()
        await client.wait_until_caught_up(timeout=30)
        end = time.monotonic() + 60
        while not client.fresh:  # every partition's first heartbeat
            assert time.monotonic() < end, f"no fresh heartbeats: {client.counters}"
            await asyncio.sleep(0.05)
        now = time.time()
        await produce(kafka_bootstrap, prefix, [
            ("identity", {"type": "login", "ts": now, "user": "ann", "session": "ann-1", "ip": "192.0.2.10"}),
            ("identity", {"type": "login", "ts": now, "user": "bob", "session": "bob-1", "ip": "192.0.2.20"}),
            ("activity", {"type": "activity", "ts": now + 0.1, "user": "ann", "session": "ann-1", "ip": "192.0.2.10"}),
        ])
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway), base_url="http://gw") as http:
            assert (await http.get("/", headers={"x-session-id": "ann-1"})).status_code == 200
            await produce(kafka_bootstrap, prefix, [
                ("ids-alerts", {"type": "alert", "ts": time.time(), "severity": 1, "signature": "ET TROJAN beacon",
                                "src_ip": "192.0.2.10", "dest_ip": "203.0.113.7"}),
                ("ids-alerts", {"type": "alert", "ts": time.time(), "severity": "medium", "signature": "ET SCAN",
                                "src_ip": "192.0.2.20"}),
            ])
            end = time.monotonic() + 120
            while not (client.is_revoked("ann-1") and client.requires_step_up("bob-1")):
                assert time.monotonic() < end, f"not enforced in time: {client.counters}"
                await asyncio.sleep(0.05)
            refused = await http.get("/", headers={"x-session-id": "ann-1"})
            assert refused.status_code == 401 and refused.json()["error"] == "session_revoked"
            challenged = await http.get("/", headers={"x-session-id": "bob-1"})
            assert challenged.status_code == 401
            assert 'error="insufficient_user_authentication"' in challenged.headers["www-authenticate"]
            assert (await http.get("/", headers={"x-session-id": "carol-1"})).status_code == 200
        c = client.counters
        assert c["forged"] == 0 and c["malformed"] == 0 and c["bad_heartbeats"] == 0 and c["heartbeats"] > 0
    finally:
        await client.stop()
        worker.stop()
