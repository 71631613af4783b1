"""Service behaviour through the worker's own decision steps, in-process (tests/support/driver.py):
poison records, vendor records on the raw topics, the IDS join across two workers that split the
partitions, the policy topic and forged internal records. Exact decisions, and nothing extra.

These were broker tests (tests/integration/test_service.py, test_operator.py); the broker tests
keep what only a broker shows: delivery, recovery, rebalance, ``kill -9``, a live worker staying up
(tests/integration/test_hostile_worker.py).
"""

from __future__ import annotations

import base64

import orjson
import pytest

from streams.engine import loads_policy
from streams.service.web.admin import revoke_envelope
from streams.service.pipeline.partitioning import partition_for
from streams.service.web.policy_publish import seal_record
from streams.service.pipeline.sealed import OVERHEAD, Sealer, seal_request
from tests.support import records
from tests.support.driver import T0, ServiceDriver, settle
from tests.support.records import OPERATOR_POLICY, okta_session_start

POLICY = OPERATOR_POLICY + """
[adaptive]
enabled = false
"""
LAX = POLICY.format(idle="1h")


def login(user: str, at: float = 0.0, **kw: object) -> dict:
    return {"type": "login", "ts": T0 + at, "user": user, "session": f"{user}-s", **kw}


def alert(ip: str, at: float = 2.0, severity: str = "critical", **kw: object) -> dict:
    return {"type": "alert", "ts": T0 + at, "severity": severity, "signature": "ET MALWARE test", "src_ip": ip, **kw}


def revoked(d: ServiceDriver) -> list[tuple[str, str, str]]:
    return [(x["session"], x["action"], x["reason"]) for x in d.decisions()]


@pytest.fixture
def d(tmp_path):
    return ServiceDriver(tmp_path, LAX)


# ---------------------------------------------------------------------------------------------- poison records

async def test_poison_records_are_dead_lettered_with_their_reasons_and_their_neighbours_in_the_batch_decided(d):
    poison = [
        ("identity", b'{"type": "login", "ts": '),  # invalid JSON
        ("identity", b"x" * (1024 * 1024)),  # a 1 MiB blob
        ("identity", orjson.dumps({"type": "login", "ts": T0, "user": 42, "session": ["s"]})),  # wrong types
        ("activity", orjson.dumps({"type": "teleport", "ts": T0, "user": "u"})),  # unknown type
        ("identity", orjson.dumps({"type": "login", "ts": T0 + 86400, "user": "skew", "session": "x"})),
    ]
    batch = ([("identity", login("before"), "before", None)]
             + [(topic, value, "poison", None) for topic, value in poison]
             + [("identity", login("after"), "after", None),
                ("identity", {"type": "user_disabled", "ts": T0 + 1, "user": "after"}, "after", None)])
    d.pipe_batch(batch)
    dead = d.dead_letters()
    assert [(x["topic"], x["field"], x["stage"]) for x in dead] == [
        (d.topic("identity"), None, "ingest"), (d.topic("identity"), None, "ingest"),
        (d.topic("identity"), "user", "ingest"), (d.topic("activity"), "type", "ingest"),
        (d.topic("identity"), "ts", "ingest")]
    assert "JSON" in dead[0]["reason"] and dead[1]["reason"].startswith("oversized")
    assert dead[4]["reason"].startswith("clock skew")
    assert dead[1]["raw_bytes"] == 1024 * 1024 and dead[1]["raw_truncated"] and not dead[0]["raw_truncated"]
    # each names where it came from, and keeps the bytes (cut to 64 KiB)
    where, offsets = [], {}
    for topic, _, key, _ in batch:  # each record's partition and offset, as the broker numbers them
        tp = (d.topic(topic), partition_for(key.encode(), d.partitions))
        where.append(tp + (offsets.setdefault(tp, [0])[0],))
        offsets[tp][0] += 1
    assert [(x["topic"], x["partition"], x["offset"]) for x in dead] == where[1:6]
    assert [base64.b64decode(x["raw_b64"]) for x in dead] == [v[:64 * 1024] for _, v in poison]
    assert all(x["error"] is None for x in dead)
    assert [a["session"] for a in d.audits("session_start")] == ["before-s", "after-s"]
    assert revoked(d) == [("after-s", "revoke", "account_event")]
    assert [a["kind"] for a in d.audits()] == ["session_start", "session_start", "session_end"]
    await d.advance(1800)  # the neighbour before them is live and times out as any session does
    assert revoked(d)[1:] == []
    await d.advance(1800)
    assert revoked(d)[1:] == [("before-s", "revoke", "idle_timeout")]


# ---------------------------------------------------------------------------------------------- vendor records

async def test_vendor_records_on_raw_topics_are_adapted_and_an_okta_session_ends_on_a_suricata_alert(d):
    okta, eve_alert, eve_dns = okta_session_start(T0), records.eve_alert(T0 + 2), records.eve_dns(T0)
    d.pipe("raw.okta", okta)
    d.pipe("raw.suricata", eve_dns)
    d.pipe("raw.okta", b'{"eventType": 17}')
    assert d.decisions() == []
    assert [(a["user"], a["session"]) for a in d.audits("session_start")] == [("ann@example.com", "102ann-session")]
    # the login went to its user's partition of identity, as the canonical event
    [(key, event)] = d.records("identity")
    assert key == b"ann@example.com" and (event["type"], event["ip"]) == ("login", "192.0.2.77")
    d.pipe("raw.suricata", eve_alert)
    [x] = d.decisions()
    assert (x["user"], x["session"], x["action"], x["reason"]) == ("ann@example.com", "102ann-session", "revoke",
                                                                   "ids_alert")
    [(key, _)] = d.records("ids-alerts")
    assert key == b"192.0.2.77"
    [dead] = d.dead_letters()  # the junk; the DNS record is skipped and counted, not dead-lettered
    assert (dead["stage"], dead["topic"], dead["offset"]) == ("adapter", d.topic("raw.okta"), 1) and dead["field"]
    assert d.metric("lapse_skipped_records_total", topic=d.topic("raw.suricata"), kind="suricata") == 1
    assert d.produced()["revocations"] == 1 and d.produced()["dead-letters"] == 1


# ---------------------------------------------------------------------------------------- the IDS join, two workers

def _key_on(partition: int, make, start: int = 0) -> str:
    """The first key ``make(i)`` that Kafka's default partitioner puts on ``partition`` (of 6)."""
    i = start
    while partition_for(make(i).encode(), 6) != partition:
        i += 1
    return make(i)


def _targets(d: ServiceDriver) -> list[tuple[str, str, str]]:
    """The alert targets ``d`` sent to another worker's user partition: (user, session, via)."""
    return [(v["user"], v["session"], v["via"]) for _, v in d.records("user-requests") if v.get("kind") == "target"]


@pytest.fixture
def pair(tmp_path):
    """Two workers of one group: ``a`` owns partitions 0-2 of every input topic, ``b`` 3-5."""
    a = ServiceDriver(tmp_path / "a", LAX, owns={0, 1, 2})
    b = ServiceDriver(tmp_path / "b", LAX, owns={3, 4, 5})
    return a, b


def _owner(pair, key: str) -> ServiceDriver:
    p = partition_for(key.encode(), 6)
    return next(d for d in pair if p in d.owned)


async def test_an_alert_on_another_workers_ip_reaches_the_users_partition_through_user_requests(pair):
    a, b = pair
    ip = _key_on(0, lambda i: f"10.20.0.{i}")  # the alert is joined on a
    user = _key_on(3, lambda i: f"victim{i}")  # the user lives on b
    b.pipe("identity", login(user, ip=ip), user)
    # b's sighting of the IP is a's to join: it crosses over (with that of the session, if a holds it)
    assert (b.topic("sightings"), ip.encode(), 0) in [(t, k, p) for t, k, _, p in b.handoffs]
    assert {t for t, _, _, _ in b.handoffs} == {b.topic("sightings")}
    settle(a, b)
    a.pipe("ids-alerts", alert(ip), ip)
    assert a.decisions() == []  # a does not hold the user: it sends the target to b's partition
    assert _targets(a) == [(user, f"{user}-s", ip)]
    [(topic, key, _, p)] = a.handoffs
    assert (topic, key, p) == (a.topic("user-requests"), user.encode(), 3)
    settle(a, b)
    assert revoked(b) == [(f"{user}-s", "revoke", "ids_alert")]
    assert b.decisions()[0]["evidence"]["signature"] == "ET MALWARE test"
    assert a.decisions() == [] and _targets(b) == [] and a.dead_letters() == b.dead_letters() == []
    assert a.handoffs == b.handoffs == []


async def test_an_alert_on_an_ip_of_the_users_own_worker_is_decided_there_without_a_request(pair):
    a, b = pair
    ip = _key_on(4, lambda i: f"10.20.0.{i}")
    user = _key_on(5, lambda i: f"victim{i}")  # both on b
    b.pipe("identity", login(user, ip=ip), user)
    assert b.handoffs == []
    b.pipe("ids-alerts", alert(ip), ip)
    assert revoked(b) == [(f"{user}-s", "revoke", "ids_alert")]
    assert _targets(b) == [] and b.handoffs == []
    assert a.produced() == {}  # a saw nothing of it


async def test_alerts_reach_every_victim_once_whichever_worker_holds_the_ip_and_the_user_and_no_bystander(pair):
    """Victims on every (ip partition, user partition) pair p->p and p->p+1: within one worker and
    across, both ways."""
    a, b = pair
    victims = []
    for p in range(6):
        for q in (p, (p + 1) % 6):
            ip = _key_on(p, lambda i: f"10.20.{i // 250}.{i % 250}", start=len(victims) * 97)
            user = _key_on(q, lambda i: f"al-{p}-{q}-u{i}")
            victims.append((user, ip))
    bystanders = [(f"al-by{i}", f"10.21.0.{i + 1}") for i in range(6)]
    for user, ip in bystanders + victims:
        _owner(pair, user).pipe("identity", login(user, ip=ip), user)
    settle(a, b)
    for k, (_, ip) in enumerate(victims):
        _owner(pair, ip).pipe("ids-alerts", alert(ip, signature=f"test {k}"), ip)
    settle(a, b)
    for d in pair:  # each victim revoked once, by the worker that owns the user, and no bystander
        want = sorted((f"{u}-s", "revoke", "ids_alert") for u, _ in victims if _owner(pair, u) is d)
        assert sorted(revoked(d)) == want
        # a target crossed to the other worker exactly when the user lives there
        sent = sorted((u, f"{u}-s", ip) for u, ip in victims if _owner(pair, ip) is d and _owner(pair, u) is not d)
        assert sorted(_targets(d)) == sent and sent
        assert d.dead_letters() == [] and d.handoffs == []
    assert sum(len(_targets(d)) for d in pair) == 2  # 2->3 and 5->0 cross; the other ten stay


# ---------------------------------------------------------------------------------------------- the policy topic

async def test_forged_policy_records_are_refused_counted_audited_and_the_policy_in_force_stays(d):
    before = d.engine.policy.version
    d.pipe("identity", login("fp", ip="10.2.2.2"), "fp")
    forged = POLICY.format(idle="0.001s")  # in force, it would end every session at once
    rec = orjson.loads(d.policy_record(forged)[OVERHEAD:])  # the record as published, without its seal
    await d.pipe_policy(orjson.dumps(rec))  # unsealed
    await d.pipe_policy(d.policy_record(forged, sealer=Sealer(b"m" * 32)))  # sealed with another key
    # sealed with the workers' key, but for user-requests: moved onto the policy topic
    await d.pipe_policy(d.policy_record(forged, topic=d.topic("user-requests")))
    reasons = {0: "unsealed", 1: "unknown_key", 2: "bad_tag"}
    audits = d.audits("forged_record")
    assert [(x["detail"]["offset"], x["detail"]["reason"]) for x in audits] == list(reasons.items())
    assert {(x["user"], x["detail"]["topic"], x["detail"]["partition"]) for x in audits} == {
        ("internal:policy", d.topic("policy"), 0)}
    assert d.engine.policy.version == before and d.policy_state.version == before
    assert {r["offset"]: r["reason"] for r in d.policy_state.to_dict()["rejected"]} == reasons
    for reason in reasons.values():
        assert d.metric("lapse_forged_records_total", topic="policy", reason=reason) == 1
    assert d.metric("lapse_policy_reloads_total", result="applied") is None
    await d.advance(60)  # the session lives on under the policy in force
    assert d.decisions() == [] and d.engine.store["fp"].sessions["fp-s"].ended is None
    assert d.produced() == {"audit": 4}  # session_start and three refusals: nothing else


async def test_a_sealed_policy_record_that_fails_validation_is_refused_and_the_policy_in_force_stays(d):
    before = d.engine.policy.version
    d.pipe("identity", login("bp"), "bp")
    rec = orjson.loads(d.policy_record(POLICY.format(idle="2s"))[OVERHEAD:])
    rec["text"] += '\n[[rules]]\nname = "x"\nidle = "soon"\n'  # genuinely sealed, but no valid policy
    await d.pipe_policy(seal_record(d.service.sealer, d.topic("policy"), rec))
    await d.pipe_policy(None)  # a tombstone: no seal, so no policy either
    assert d.engine.policy.version == before and d.policy_state.version == before
    rejected = d.policy_state.to_dict()["rejected"]
    assert [r["offset"] for r in rejected] == [0, 1]
    assert any("rules[1].idle" in e for e in rejected[0]["errors"]) and "tombstone" in rejected[1]["errors"][0]
    assert d.metric("lapse_policy_reloads_total", result="refused") == 1
    assert [(x["detail"]["offset"], x["detail"]["reason"]) for x in d.audits("forged_record")] == [(1, "unsealed")]
    assert d.decisions() == []
    await d.advance(60)
    assert d.decisions() == []


async def test_a_tightened_policy_from_the_topic_revokes_sessions_over_their_new_limit_at_once(d):
    before = d.engine.policy.version
    users = ["tp-0", "tp-1", "tp-2"]
    for i, u in enumerate(users):
        d.pipe("identity", login(u, roles=["admin"] if i == 0 else ["staff"]), u)
    await d.advance(3)  # every session is idle for 3 s, under a 1 h limit
    assert d.decisions() == []
    tight = POLICY.format(idle="2s")
    await d.pipe_policy(d.policy_record(tight, operator="ann"))
    version = loads_policy(tight).version
    assert version != before and d.engine.policy.version == version
    decisions = d.decisions()
    assert sorted((x["session"], x["reason"]) for x in decisions) == [(f"{u}-s", "idle_timeout") for u in users]
    assert {x["policy_version"] for x in decisions} == {version}
    assert all(x["evidence"]["seconds"] == 2.0 and "tightened_at" in x["evidence"] for x in decisions)
    tightened = d.audits("policy_tightened")
    assert sorted(x["user"] for x in tightened) == users
    assert all(x["detail"]["policy_version"] == version for x in tightened)
    state = d.policy_state.to_dict()
    assert (state["version"], state["source"], state["operator"], state["text"]) == (version, "topic", "ann", tight)
    assert [h["version"] for h in state["history"]] == [before]
    assert d.metric("lapse_policy_info", version=version) == 1
    assert d.metric("lapse_policy_reloads_total", result="applied") == 1
    assert d.metric("lapse_decisions_total", action="revoke", reason="idle_timeout") == 3
    await d.advance(3600)  # nothing fires twice
    assert len(d.decisions()) == 3


# ---------------------------------------------------------------------------------------------- forged user-requests

async def test_a_forged_manual_revoke_is_refused_audited_and_revokes_nothing_and_a_sealed_one_revokes(d):
    user = "fr-victim"
    d.pipe("identity", login(user, ip="10.3.3.3"), user)
    envelope = revoke_envelope(user, None, "alice", "", T0 + 1, "forged-1", "named token")
    d.pipe("user-requests", envelope, user)  # unsealed: anyone who can write the topic
    [refused] = d.audits("forged_record")
    assert {k: refused["detail"][k] for k in ("topic", "partition", "offset", "reason", "key")} == {
        "topic": d.topic("user-requests"), "partition": partition_for(user.encode(), 6), "offset": 0,
        "reason": "unsealed", "key": user}
    [dead] = d.dead_letters()
    assert dead["field"] == "seal" and "unsealed" in dead["reason"]
    assert d.decisions() == [] and d.audits("admin_action") == []
    assert d.engine.store[user].sessions[f"{user}-s"].ended is None
    assert d.metric("lapse_forged_records_total", topic="user-requests", reason="unsealed") == 1
    # the same request sealed by the admin API (the workers' key) is applied
    topic = d.topic("user-requests")
    d.pipe("user-requests", seal_request(d.service.sealer, topic, user.encode(), envelope), user)
    assert revoked(d) == [(f"{user}-s", "revoke", "manual")]
    assert d.decisions()[0]["evidence"]["operator"] == "alice"
    [act] = d.audits("admin_action")
    assert act["detail"]["request"] == "forged-1" and act["detail"]["decisions"] == [d.decisions()[0]["id"]]
    assert len(d.audits("forged_record")) == 1 and len(d.dead_letters()) == 1
