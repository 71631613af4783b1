"""Admin API, policy reload and sealed internal records against a live worker on the real broker."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid

import httpx
import orjson
import pytest
import pytest_asyncio

from tests.support.broker import REPO
from tests.support.worker import TopicReader, WorkerProcess, make_key, produce, write_policy

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(300)]

TOKEN = "ann:" + "a" * 8 + "-operator-token-1"
ANN = TOKEN.split(":", 1)[1]

POLICY = """
[defaults]
idle = "{idle}"
absolute = "12h"

[[rules]]
name = "admins"
roles = ["admin"]
idle = "{idle}"

[ids]
revoke = ["critical", "high"]
step_up = ["medium"]
lookback = "10m"
"""


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def live(kafka_bootstrap, tmp_path_factory):
    from streams.config import Settings
    from streams.topics import create_topics

    tmp = tmp_path_factory.mktemp("operator")
    prefix = f"t{uuid.uuid4().hex[:8]}."
    await create_topics(Settings.load({"LAPSE_BOOTSTRAP": kafka_bootstrap, "LAPSE_TOPIC_PREFIX": prefix}))
    policy = write_policy(tmp / "policy.toml", POLICY.format(idle="1h"))
    worker = WorkerProcess(kafka_bootstrap, prefix, f"{prefix}app", policy, make_key(tmp), tmp,
                           extra_env={"LAPSE_ADMIN_TOKEN": TOKEN}).start()
    try:
        await worker.wait_ready()
        yield {"worker": worker, "prefix": prefix, "tmp": tmp, "bootstrap": kafka_bootstrap,
               "base": f"http://127.0.0.1:{worker.web_port}"}
    finally:
        worker.stop()


def _auth(token: str = ANN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _wait(fn, timeout: float, what: str):
    end = time.time() + timeout
    while True:
        got = await fn()
        if got:
            return got
        assert time.time() < end, f"timed out waiting for {what}"
        await asyncio.sleep(0.3)


async def test_every_api_route_needs_the_token(live):
    async with httpx.AsyncClient(base_url=live["base"], timeout=10) as http:
        for path in ("/api/policy", "/api/overview", "/api/users/u1", "/api/sessions/s1", "/api/audit?user=u1",
                     "/api/decisions/recent", "/api/timeline?user=u1"):
            r = await http.get(path)
            assert r.status_code == 401, path
            assert r.headers["WWW-Authenticate"].startswith("Bearer")
            assert (await http.get(path, headers=_auth("wrong-token-of-some-length"))).status_code == 401, path
            assert (await http.get(path, headers={"Authorization": ANN})).status_code == 401, path  # no scheme
        r = await http.post("/api/revoke", json={"user": "u1"})
        assert r.status_code == 401
        r = await http.post("/api/revoke", json={"user": "u1"}, headers=_auth("nope-nope-nope-nope"))
        assert r.status_code == 401
        ok = await http.get("/api/policy", headers=_auth())
        assert ok.status_code == 200 and ok.json()["version"]
        assert (await http.get("/dashboard")).status_code == 200  # the page itself is public; its data is not
        metrics = (await http.get("/metrics")).text
    assert 'lapse_admin_requests_total{route="policy",status="401"}' in metrics


async def test_manual_revoke_publishes_a_manual_revocation_and_an_admin_action_audit(live):
    prefix, bootstrap = live["prefix"], live["bootstrap"]
    now = time.time()
    user = f"mr-{uuid.uuid4().hex[:6]}"
    async with TopicReader(bootstrap, prefix + "revocations") as rev, TopicReader(bootstrap, prefix + "audit") as aud, \
            httpx.AsyncClient(base_url=live["base"], timeout=15) as http:
        await produce(bootstrap, prefix, [
            ("identity", {"type": "login", "ts": now, "user": user, "session": f"{user}-s1", "ip": "10.1.1.1"}),
            ("identity", {"type": "login", "ts": now, "user": user, "session": f"{user}-s2", "ip": "10.1.1.2"}),
        ])
        await aud.wait_for(lambda vs: sum(v.get("kind") == "session_start" and v["user"] == user for v in vs) == 2, 30)
        r = await http.get(f"/api/users/{user}", headers=_auth())
        assert r.status_code == 200 and {s["session"] for s in r.json()["sessions"] if s["live"]} == {
            f"{user}-s1", f"{user}-s2"}
        r = await http.get(f"/api/sessions/{user}-s1", headers=_auth())
        assert r.status_code == 200 and r.json()["live"] and r.json()["deadlines"]["next"]

        r = await http.post("/api/revoke", headers=_auth(),
                            json={"user": user, "session": f"{user}-s1", "note": "laptop reported stolen"})
        assert r.status_code == 202, r.text
        req = r.json()["request"]
        assert r.json()["operator"] == "ann"

        await rev.wait_for(lambda vs: any(v["decision"]["user"] == user for v in vs), 30)
        [msg] = [v for v in rev.values() if v["decision"]["user"] == user]
        d = msg["decision"]
        assert (d["action"], d["reason"], d["session"]) == ("revoke", "manual", f"{user}-s1")
        assert d["evidence"]["operator"] == "ann" and d["evidence"]["initiating_entity"] == "admin"
        assert d["evidence"]["note"] == "laptop reported stolen" and d["evidence"]["request"] == req
        assert d["policy_version"]
        import jwt  # the SET says an admin initiated it

        claims = jwt.decode(msg["set"], options={"verify_signature": False})
        event = next(iter(claims["events"].values()))
        assert event["initiating_entity"] == "admin"

        await aud.wait_for(lambda vs: any(v.get("kind") == "admin_action" and v["user"] == user for v in vs), 30)
        [act] = [v for v in aud.values() if v.get("kind") == "admin_action" and v["user"] == user]
        assert act["detail"]["operator"] == "ann" and act["detail"]["action"] == "revoke"
        assert act["detail"]["decisions"] == [d["id"]] and act["detail"]["request"] == req

        # the audit query reads the same records back, filtered by session and time
        async def audit_has_it():
            r = await http.get("/api/audit", headers=_auth(),
                               params={"user": user, "session": f"{user}-s1", "since": now - 60, "until": time.time() + 60})
            kinds = [x["kind"] for x in r.json()["records"]]
            return kinds if "admin_action" in kinds else None

        kinds = await _wait(audit_has_it, 20, "admin_action in /api/audit")
        assert kinds[0] == "session_start" and "session_end" in kinds
        r = await http.get("/api/audit", headers=_auth(), params={"user": user, "until": now - 3600})
        assert r.json()["records"] == []

        # state: s1 ended by hand, s2 untouched; the decision is in the recent feed
        us = (await http.get(f"/api/users/{user}", headers=_auth())).json()
        by = {s["session"]: s for s in us["sessions"]}
        assert not by[f"{user}-s1"]["live"] and by[f"{user}-s1"]["end_reason"] == "manual"
        assert by[f"{user}-s2"]["live"]
        feed = (await http.get("/api/decisions/recent", headers=_auth())).json()["decisions"]
        assert any(x["id"] == d["id"] for x in feed)

        # bad requests are refused before anything is produced
        assert (await http.post("/api/revoke", headers=_auth(), json={"session": 5})).status_code == 400
        assert (await http.post("/api/revoke", headers=_auth(), content=b"not json")).status_code == 400


async def _produce_raw(bootstrap: str, topic: str, key: bytes, value: bytes) -> int:
    """One record exactly as given (no sealing); its offset."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        return (await producer.send_and_wait(topic, key=key, value=value)).offset
    finally:
        await producer.stop()


def _worker_sealer(live):
    from streams.config import Settings
    from streams.service.sealed import Sealer

    env = live["worker"].env
    return Sealer.from_settings(Settings.load(env), env=env)


async def test_forged_policy_records_are_refused_counted_audited_and_change_nothing(live):
    from streams.service.policy_publish import publish_record, seal_record
    from streams.service.sealed import Sealer
    from streams.engine import loads_policy

    prefix, bootstrap = live["prefix"], live["bootstrap"]
    topic = prefix + "policy"
    now = time.time()
    user = f"fp-{uuid.uuid4().hex[:6]}"
    text = POLICY.format(idle="0.001s")  # in force, it would end every session at once
    rec = publish_record(loads_policy(text), text, "forged.toml", "mallory", now)
    async with TopicReader(bootstrap, prefix + "audit") as aud, \
            httpx.AsyncClient(base_url=live["base"], timeout=15) as http:
        before = (await http.get("/api/policy", headers=_auth())).json()["version"]
        await produce(bootstrap, prefix, [("identity", {"type": "login", "ts": now, "user": user,
                                                        "session": f"{user}-s", "ip": "10.2.2.2"})])
        await aud.wait_for(lambda vs: any(v.get("kind") == "session_start" and v["user"] == user for v in vs), 30)
        offsets = {
            await _produce_raw(bootstrap, topic, b"current", orjson.dumps(rec)): "unsealed",
            await _produce_raw(bootstrap, topic, b"current", seal_record(Sealer(b"m" * 32), topic, rec)): "unknown_key",
            # sealed with the workers' key, but for user-requests: moved onto the policy topic
            await _produce_raw(bootstrap, topic, b"current", seal_record(_worker_sealer(live), prefix + "user-requests",
                                                                         rec)): "bad_tag",
        }

        def forged(vs):
            got = {v["detail"]["offset"]: v["detail"]["reason"] for v in vs if v.get("kind") == "forged_record"
                   and v["detail"]["topic"] == topic and v["detail"]["offset"] in offsets}
            return got if got == offsets else None

        await aud.wait_for(forged, 30)
        [audit] = [v for v in aud.values() if v.get("kind") == "forged_record" and v["detail"]["offset"] == min(offsets)]
        assert audit["detail"]["partition"] == 0 and audit["user"] == "internal:policy"
        policy = (await http.get("/api/policy", headers=_auth())).json()
        assert policy["version"] == before and policy["engine_version"] == before
        assert {r["offset"]: r["reason"] for r in policy["rejected"] if r["offset"] in offsets} == offsets
        us = (await http.get(f"/api/users/{user}", headers=_auth())).json()
        assert [s["live"] for s in us["sessions"]] == [True]
        metrics = (await http.get("/metrics")).text
        for reason in offsets.values():
            assert f'lapse_forged_records_total{{reason="{reason}",topic="policy"}} 1.0' in metrics, reason


async def test_a_forged_manual_revoke_is_refused_and_audited_and_revokes_nothing(live):
    prefix, bootstrap = live["prefix"], live["bootstrap"]
    now = time.time()
    user = f"fr-{uuid.uuid4().hex[:6]}"
    forged = orjson.dumps({"kind": "manual_revoke", "user": user, "session": None, "operator": "alice", "note": "",
                           "ts": now, "request": "forged-1", "auth": "named token"})
    async with TopicReader(bootstrap, prefix + "audit") as aud, \
            TopicReader(bootstrap, prefix + "revocations") as rev, \
            httpx.AsyncClient(base_url=live["base"], timeout=15) as http:
        await produce(bootstrap, prefix, [("identity", {"type": "login", "ts": now, "user": user,
                                                        "session": f"{user}-s", "ip": "10.3.3.3"})])
        await aud.wait_for(lambda vs: any(v.get("kind") == "session_start" and v["user"] == user for v in vs), 30)
        offset = await _produce_raw(bootstrap, prefix + "user-requests", user.encode(), forged)
        def refusals(vs):
            return [v for v in vs if v.get("kind") == "forged_record"
                    and v["detail"]["topic"] == prefix + "user-requests" and v["detail"]["key"] == user]

        await aud.wait_for(refusals, 30)
        refused = refusals(aud.values())
        assert refused[0]["detail"]["offset"] == offset and refused[0]["detail"]["reason"] == "unsealed"
        assert not [v for v in aud.values() if v.get("kind") == "admin_action" and v["user"] == user]
        assert not [v for v in rev.values() if v["decision"]["user"] == user]
        us = (await http.get(f"/api/users/{user}", headers=_auth())).json()
        assert [s["live"] for s in us["sessions"]] == [True]
        metrics = (await http.get("/metrics")).text
        assert 'lapse_forged_records_total{reason="unsealed",topic="user-requests"} 1.0' in metrics


async def test_bad_policy_is_refused_and_a_tightened_one_revokes_sessions_over_their_new_limit(live):
    prefix, bootstrap, tmp = live["prefix"], live["bootstrap"], live["tmp"]
    env = {**live["worker"].env}
    async with httpx.AsyncClient(base_url=live["base"], timeout=15) as http:
        before = (await http.get("/api/policy", headers=_auth())).json()["version"]

        bad = write_policy(tmp / "bad.toml", POLICY.format(idle="1h") + '\n[[rules]]\nname = "x"\nidle = "soon"\n')
        out = subprocess.run([sys.executable, "-m", "streams.cli", "policy", "publish", str(bad)], env=env, cwd=REPO,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode != 0
        assert "rules[1].idle" in out.stderr, out.stderr  # refused before anything reached the topic
        assert (await http.get("/api/policy", headers=_auth())).json()["version"] == before

        now = time.time()
        users = [f"tp-{uuid.uuid4().hex[:6]}-{i}" for i in range(3)]
        async with TopicReader(bootstrap, prefix + "revocations") as rev, \
                TopicReader(bootstrap, prefix + "audit") as aud:
            await produce(bootstrap, prefix, [("identity", {"type": "login", "ts": now, "user": u, "session": f"{u}-s",
                                                            "roles": ["admin"] if i == 0 else ["staff"]})
                                              for i, u in enumerate(users)])
            await aud.wait_for(lambda vs: sum(v.get("kind") == "session_start" and v["user"] in users
                                              for v in vs) == 3, 30)
            await asyncio.sleep(3.0)  # every session is now idle for > 2 s
            tight = write_policy(tmp / "tight.toml", POLICY.format(idle="2s"))
            out = subprocess.run([sys.executable, "-m", "streams.cli", "policy", "publish", str(tight),
                                  "--operator", "ann"], env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
            assert out.returncode == 0, out.stderr
            published_at = time.time()
            await rev.wait_for(lambda vs: {v["decision"]["user"] for v in vs} >= set(users), 30)
            arrived = max(t for _, v, t in rev.records if v["decision"]["user"] in users)
            decisions = [v["decision"] for v in rev.values() if v["decision"]["user"] in users]
            await aud.wait_for(lambda vs: any(v.get("kind") == "admin_action"
                                              and v["detail"].get("action") == "policy_publish" for v in vs), 15)
            tightened = [v for v in aud.values() if v.get("kind") == "policy_tightened" and v["user"] in users]
        after = (await http.get("/api/policy", headers=_auth())).json()
        assert after["version"] != before and after["source"] == "topic" and after["operator"] == "ann"
        assert 'idle = "2s"' in after["text"]
        assert {d["reason"] for d in decisions} == {"idle_timeout"}
        assert {d["policy_version"] for d in decisions} == {after["version"]}
        assert all(d["evidence"]["seconds"] == 2.0 and "tightened_at" in d["evidence"] for d in decisions)
        assert len(tightened) == 3 and all(t["detail"]["policy_version"] == after["version"] for t in tightened)
        assert arrived - published_at < 10.0, "the tighter limit applies at once, not at the next restart"
        metrics = (await http.get("/metrics")).text
        assert f'lapse_policy_info{{version="{after["version"]}"}} 1.0' in metrics
        assert 'lapse_policy_reloads_total{result="applied"}' in metrics
        for name in ("lapse_events_in_total", "lapse_invalid_events", "lapse_decisions_total",
                     "lapse_decision_latency_seconds", "lapse_deadline_lateness_seconds_bucket", "lapse_live_sessions",
                     "lapse_last_inbound_age_seconds", "lapse_anomaly_score"):
            assert name in metrics, name
