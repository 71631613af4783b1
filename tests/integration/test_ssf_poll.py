"""RFC 8936 poll delivery from a real ``lapse ssf``: SETs the worker's key signed on the real
revocations topic, polled with maxEvents / returnImmediately, acknowledged, errors reported with
setErrs, unacknowledged ones offered again; draining with acks ends empty."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from enforce import wire
from streams.config import Settings
from streams.topics import create_topics
from tests.integration.test_ssf_support import (
    RX_AUD, SsfProcess, auth, decision, keys, prefix, publish_decisions, verify_with_jwks,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(180)]


async def test_poll_drains_with_acks(kafka_bootstrap, tmp_path):
    pfx = prefix()
    await create_topics(Settings.load({"LAPSE_BOOTSTRAP": kafka_bootstrap, "LAPSE_TOPIC_PREFIX": pfx}))
    k = keys(tmp_path)
    ssf = SsfProcess(kafka_bootstrap, pfx, tmp_path, k, extra_env={"LAPSE_SSF_REDELIVER_S": "1",
                                                                  "LAPSE_SSF_POLL_WAIT_S": "20"}).start()
    try:
        await ssf.wait_ready()
        async with httpx.AsyncClient(base_url=ssf.url, timeout=30) as http:
            disc = (await http.get("/.well-known/ssf-configuration")).json()
            jwks = (await http.get(disc["jwks_uri"])).json()
            r = await http.post(disc["configuration_endpoint"], headers=auth(), json={
                "delivery": {"method": "urn:ietf:rfc:8936"}, "events_requested": [wire.SESSION_REVOKED]})
            assert r.status_code == 201, r.text
            stream = r.json()
            url = stream["delivery"]["endpoint_url"]
            assert url == f"{ssf.url}/ssf/poll/{stream['stream_id']}"
            assert (await http.post(url, json={})).status_code == 401

            # a long poll (returnImmediately false) waits for the first SET
            step_up = decision(99, action="step_up", reason="anomaly")
            decisions = [decision(i) for i in range(25)] + [step_up]
            long_poll = asyncio.create_task(http.post(url, headers=auth(), json={"maxEvents": 5}))
            # a negative-timing check, not a wait for a worker: the step-up (an event this stream
            # did not request) is published after the poll was sent, and once the transmitter has
            # demonstrably read it the poll has had that whole round trip to return, and has not
            await publish_decisions(kafka_bootstrap, pfx, k["worker"], [step_up])
            end = time.monotonic() + 60
            while (await http.get("/health")).json()["counters"]["records"] < 1:
                assert time.monotonic() < end, "lapse ssf did not read the step-up decision"
                await asyncio.sleep(0.05)
            assert not long_poll.done()
            t0 = time.monotonic()
            await publish_decisions(kafka_bootstrap, pfx, k["worker"], decisions[:-1])
            first = (await long_poll).json()
            assert first["sets"] and time.monotonic() - t0 < 15
            want = {d["id"] for d in decisions if d["action"] == "revoke"}  # step_up: not requested

            got: dict[str, str] = dict(first["sets"])
            acks = list(first["sets"])
            refused = None
            end = time.monotonic() + 60
            while True:
                assert time.monotonic() < end, f"only {len(got)} of {len(want)} polled"
                body = {"ack": acks, "maxEvents": 7, "returnImmediately": True}
                if refused is None and got:
                    refused = next(iter(got))
                    acks.remove(refused) if refused in acks else None
                    body = {"ack": acks, "setErrs": {refused: {"err": "invalid_key", "description": "test"}},
                            "maxEvents": 7, "returnImmediately": True}
                r = (await http.post(url, headers=auth(), json=body)).json()
                assert len(r["sets"]) <= 7
                got.update(r["sets"])
                acks = list(r["sets"])
                if set(got) >= want and not r["sets"] and not r["moreAvailable"]:
                    break
                if not r["sets"]:
                    await asyncio.sleep(0.1)
            assert set(got) == want
            for jti, token in got.items():
                c = verify_with_jwks(token, jwks, ssf.url, RX_AUD)
                assert c["jti"] == jti and list(c["events"]) == [wire.SESSION_REVOKED]
            # drained: nothing left, not even after the redelivery time
            await asyncio.sleep(1.2)  # deliberate passage of time: past LAPSE_SSF_REDELIVER_S (1 s)
            r = (await http.post(url, headers=auth(), json={"returnImmediately": True})).json()
            assert r == {"sets": {}, "moreAvailable": False}
            health = (await http.get("/ssf/delivery", params={"stream_id": stream["stream_id"]}, headers=auth())).json()
            assert health["pending"] == 0 and [f["jti"] for f in health["failed"]] == [refused]

            # an unacknowledged SET is offered again after LAPSE_SSF_REDELIVER_S
            extra = decision(200)
            await publish_decisions(kafka_bootstrap, pfx, k["worker"], [extra])
            r1 = (await http.post(url, headers=auth(), json={"maxEvents": 10})).json()
            assert list(r1["sets"]) == [extra["id"]]
            r2 = (await http.post(url, headers=auth(), json={"returnImmediately": True})).json()
            assert r2["sets"] == {}  # offered, not yet acknowledged: not again at once
            await asyncio.sleep(1.1)  # deliberate passage of time: past LAPSE_SSF_REDELIVER_S (1 s)
            r3 = (await http.post(url, headers=auth(), json={"returnImmediately": True})).json()
            assert r3["sets"] == r1["sets"]  # same jti, same bytes
            r4 = (await http.post(url, headers=auth(), json={"ack": [extra["id"]], "maxEvents": 0})).json()
            assert r4 == {"sets": {}, "moreAvailable": False}
    finally:
        ssf.stop()
