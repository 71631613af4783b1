"""``kill -9`` of ``lapse ssf`` in the middle of push delivery loses nothing and reorders nothing:
after a restart on the same state directory the receiver has every SET, in the order the stream
queued them; a SET it may get twice is byte for byte the same token (same jti)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from enforce import wire
from streams.config import Settings
from streams.topics import create_topics
from tests.integration.test_ssf_support import (
    Receiver, SsfProcess, auth, claims_of, decision, keys, prefix, publish_decisions, wait_for, wait_ssf_drained,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(240)]


async def test_kill9_mid_delivery_loses_and_reorders_nothing(kafka_bootstrap, tmp_path):
    pfx = prefix()
    # one partition: the topic's order is the stream's order, so the test can check it exactly
    await create_topics(Settings.load({"LAPSE_BOOTSTRAP": kafka_bootstrap, "LAPSE_TOPIC_PREFIX": pfx,
                                       "LAPSE_PARTITIONS": "1"}))
    k = keys(tmp_path)
    ssf = SsfProcess(kafka_bootstrap, pfx, tmp_path, k).start()
    flaky = {"n": 0}

    async def slow(request, body):
        await asyncio.sleep(0.005)
        flaky["n"] += 1
        if flaky["n"] % 17 == 0:  # now and then a 503: retried, in place
            from aiohttp import web
            return web.json_response({"err": "temporarily_unavailable"}, status=503)
        return None

    first = [decision(i) for i in range(300)]
    later = [decision(1000 + i) for i in range(100)]
    try:
        await ssf.wait_ready()
        async with Receiver(slow) as rx, httpx.AsyncClient(base_url=ssf.url, timeout=10) as http:
            r = await http.post("/ssf/streams", headers=auth(), json={
                "delivery": {"method": "urn:ietf:rfc:8935", "endpoint_url": rx.url},
                "events_requested": [wire.SESSION_REVOKED]})
            assert r.status_code == 201
            await publish_decisions(kafka_bootstrap, pfx, k["worker"], first)
            await wait_for(lambda: len(rx.got) >= 60, 60, "deliveries before the kill")
            ssf.kill9()
            before = len(rx.got)
            assert before < len(first), "delivery finished before the kill: slow the receiver down"
            await publish_decisions(kafka_bootstrap, pfx, k["worker"], later)  # while it is down
            ssf = SsfProcess(kafka_bootstrap, pfx, tmp_path, k, port=ssf.port).start()
            await ssf.wait_ready()
            want = [d["id"] for d in first + later]
            await wait_for(lambda: {claims_of(t)["jti"] for t in rx.tokens()} >= set(want), 90,
                           f"every SET after the restart\n{ssf.tail()}")
            # settled before checking for duplicates: the restarted lapse ssf has read the whole
            # topic and has nothing left queued, so no (duplicate) SET can still arrive
            await wait_ssf_drained(kafka_bootstrap, pfx + "revocations", tmp_path / "ssf-state")
        tokens = rx.tokens()
        jtis = [claims_of(t)["jti"] for t in tokens]
        seen: dict[str, str] = {}
        order: list[str] = []
        for jti, token in zip(jtis, tokens):
            if jti in seen:
                assert seen[jti] == token, "a duplicate must be the same token"
                continue
            seen[jti] = token
            order.append(jti)
        assert order == want
        dups = len(jtis) - len(order)
        assert dups <= 64, f"{dups} duplicates: more than one batch re-sent"
        # the queue is empty, and the same stream survived the restart
        async with httpx.AsyncClient(base_url=ssf.url, timeout=10) as http:
            (stream,) = (await http.get("/ssf/streams", headers=auth())).json()
            h = (await http.get("/ssf/delivery", params={"stream_id": stream["stream_id"]}, headers=auth())).json()
            assert h["pending"] == 0 and h["failed"] == []
    finally:
        ssf.stop()
