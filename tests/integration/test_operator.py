"""Admin API and policy reload against a live worker on the real broker.

What the worker decides on the policy topic (forged, invalid and tightened policies) and on forged
user-requests is tested in-process in tests/unit/service/test_service_steps.py; forged records on
every internal topic of a live worker in tests/integration/test_hostile_worker.py.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid

import httpx
import pytest
import pytest_asyncio

from tests.support.broker import REPO
from tests.support.records import OPERATOR_POLICY
from tests.support.worker import TopicReader, WorkerProcess, make_key, produce, write_policy

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(300)]

TOKEN = "ann:" + "a" * 8 + "-operator-token-1"
ANN = TOKEN.split(":", 1)[1]

POLICY = OPERATOR_POLICY


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


async def test_a_policy_published_with_the_cli_applies_on_the_live_worker_at_once(live):
    """``lapse policy publish`` puts a tighter policy on the topic; the running worker's follower
    reads it and revokes the sessions now over their limit within seconds, and the admin API shows
    it. (What a tightened, invalid or forged policy record decides: test_service_steps.py; a bad
    file refused by the CLI before it reaches the topic: tests/unit/operator.)"""
    prefix, bootstrap, tmp = live["prefix"], live["bootstrap"], live["tmp"]
    env = {**live["worker"].env}
    async with httpx.AsyncClient(base_url=live["base"], timeout=15) as http:
        before = (await http.get("/api/policy", headers=_auth())).json()["version"]
        now = time.time()
        users = [f"tp-{uuid.uuid4().hex[:6]}-{i}" for i in range(3)]
        async with TopicReader(bootstrap, prefix + "revocations") as rev, \
                TopicReader(bootstrap, prefix + "audit") as aud:
            # last active 3 s ago: over the 2 s limit published below, well within the 1 h in force
            await produce(bootstrap, prefix, [("identity", {"type": "login", "ts": now - 3, "user": u,
                                                            "session": f"{u}-s",
                                                            "roles": ["admin"] if i == 0 else ["staff"]})
                                              for i, u in enumerate(users)])
            await aud.wait_for(lambda vs: sum(v.get("kind") == "session_start" and v["user"] in users
                                              for v in vs) == 3, 30)
            assert not [v for v in rev.values() if v["decision"]["user"] in users]
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
        after = (await http.get("/api/policy", headers=_auth())).json()
        assert after["version"] != before and after["source"] == "topic" and after["operator"] == "ann"
        assert after["engine_version"] == after["version"] and 'idle = "2s"' in after["text"]
        assert {(d["reason"], d["policy_version"]) for d in decisions} == {("idle_timeout", after["version"])}
        assert len(decisions) == 3 and all("tightened_at" in d["evidence"] for d in decisions)
        assert arrived - published_at < 10.0, "the tighter limit applies at once, not at the next restart"
        metrics = (await http.get("/metrics")).text
        assert f'lapse_policy_info{{version="{after["version"]}"}} 1.0' in metrics
        assert 'lapse_policy_reloads_total{result="applied"}' in metrics
        for name in ("lapse_events_in_total", "lapse_invalid_events", "lapse_decisions_total",
                     "lapse_decision_latency_seconds", "lapse_deadline_lateness_seconds_bucket", "lapse_live_sessions",
                     "lapse_last_inbound_age_seconds", "lapse_anomaly_score"):
            assert name in metrics, name
