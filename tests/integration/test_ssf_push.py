"""A receiver registers a push stream with a real ``lapse ssf``, gets the verification event, then
the session-revoked SET of a session a real ``lapse worker`` revoked; both verify with PyJWT
against the keys the discovery document's jwks_uri publishes."""

from __future__ import annotations

import time

import httpx
import pytest

from enforce import wire
from streams.config import Settings
from streams.topics import create_topics
from tests.integration.test_ssf_support import (
    AUDIENCE, ISSUER, RX_AUD, TOKEN_OTHER, TOKEN_READ, Receiver, SsfProcess, auth, claims_of, keys, prefix,
    verify_with_jwks, wait_for,
)
from tests.support.worker import IDS_POLICY, WorkerProcess, produce, write_policy

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(240)]

POLICY = IDS_POLICY


async def test_push_stream_gets_verification_then_the_workers_revocation(kafka_bootstrap, tmp_path):
    pfx = prefix()
    await create_topics(Settings.load({"LAPSE_BOOTSTRAP": kafka_bootstrap, "LAPSE_TOPIC_PREFIX": pfx}))
    k = keys(tmp_path)
    worker = WorkerProcess(kafka_bootstrap, pfx, f"{pfx}app", write_policy(tmp_path / "p.toml", POLICY), k["worker"],
                           tmp_path, extra_env={"LAPSE_SET_ISSUER": ISSUER, "LAPSE_SET_AUDIENCE": AUDIENCE}).start()
    ssf = SsfProcess(kafka_bootstrap, pfx, tmp_path, k).start()
    try:
        await ssf.wait_ready()
        async with Receiver() as rx, httpx.AsyncClient(base_url=ssf.url, timeout=10) as http:
            disc = (await http.get("/.well-known/ssf-configuration")).json()
            assert disc["spec_version"] == "1_0" and disc["issuer"] == ssf.url
            assert set(disc["delivery_methods_supported"]) == {"urn:ietf:rfc:8935", "urn:ietf:rfc:8936"}
            jwks = (await http.get(disc["jwks_uri"])).json()

            # no token, a read-only token: refused
            body = {"delivery": {"method": "urn:ietf:rfc:8935", "endpoint_url": rx.url,
                                 "authorization_header": "Bearer rx-inbound-secret"},
                    "events_requested": [wire.SESSION_REVOKED, wire.RISK_LEVEL_CHANGE, "urn:example:unknown"],
                    "description": "push test"}
            assert (await http.post(disc["configuration_endpoint"], json=body)).status_code == 401
            assert (await http.post(disc["configuration_endpoint"], json=body, headers=auth(TOKEN_READ))).status_code == 403
            r = await http.post(disc["configuration_endpoint"], json=body, headers=auth())
            assert r.status_code == 201, r.text
            stream = r.json()
            sid = stream["stream_id"]
            assert stream["aud"] == RX_AUD and stream["iss"] == ssf.url
            assert stream["events_delivered"] == [wire.SESSION_REVOKED, wire.RISK_LEVEL_CHANGE]
            assert "authorization_header" not in stream["delivery"]
            # another receiver cannot see it
            assert (await http.get(disc["configuration_endpoint"], params={"stream_id": sid},
                                   headers=auth(TOKEN_OTHER))).status_code == 404

            r = await http.post(disc["verification_endpoint"], json={"stream_id": sid, "state": "vf-123"}, headers=auth())
            assert r.status_code == 204
            await wait_for(lambda: len(rx.got) >= 1, 20, "the verification event")
            first = rx.got[0]
            assert first["headers"]["Content-Type"] == "application/secevent+jwt"
            assert first["headers"]["Authorization"] == "Bearer rx-inbound-secret"
            v = verify_with_jwks(rx.tokens()[0], jwks, ssf.url, RX_AUD)
            assert v["events"] == {wire.VERIFICATION: {"state": "vf-123"}}
            assert v["sub_id"] == {"format": "opaque", "id": sid}

            await worker.wait_ready()
            now = time.time()
            await produce(kafka_bootstrap, pfx, [
                ("identity", {"type": "login", "ts": now, "user": "ann", "session": "ann-1", "ip": "192.0.2.10"}),
                ("activity", {"type": "activity", "ts": now + 0.1, "user": "ann", "session": "ann-1", "ip": "192.0.2.10"}),
            ])
            await produce(kafka_bootstrap, pfx, [
                ("ids-alerts", {"type": "alert", "ts": time.time(), "severity": 1, "signature": "ET TROJAN beacon",
                                "src_ip": "192.0.2.10"}),
            ])

            def revoked():
                return [c for c in map(claims_of, rx.tokens()) if wire.SESSION_REVOKED in c["events"]]

            await wait_for(lambda: revoked(), 90, f"the session-revoked SET\n{ssf.tail()}")
            (token,) = [t for t in rx.tokens() if wire.SESSION_REVOKED in claims_of(t)["events"]]
            c = verify_with_jwks(token, jwks, ssf.url, RX_AUD)
            assert c["sub_id"]["format"] == "complex"
            assert c["sub_id"]["session"] == {"format": "opaque", "id": "ann-1"}
            ev = c["events"][wire.SESSION_REVOKED]
            assert ev["reason_admin"]["en"].startswith("ids_alert") and ev["initiating_entity"] == "system"
            assert c["txn"] and c["jti"]
            r = await http.get(disc["status_endpoint"], params={"stream_id": sid}, headers=auth())
            assert r.json() == {"stream_id": sid, "status": "enabled"}
            health = (await http.get("/health")).json()
            assert health["counters"]["source_rejected"] == 0
    finally:
        ssf.stop()
        worker.stop()
