"""A real ``lapse worker`` on the real broker under hostile input on every input topic.

A corpus of hostile records (absurd times, 300-deep nesting, garbage bytes, null values, records near
1 MB, forged internal records, ...) goes onto every input topic first, then canary traffic whose
decisions are known. The worker keeps running and reports healthy, the canaries are revoked within
seconds, every hostile record is dead-lettered under its topic, partition and offset (records on
the policy topic, read outside the consumer group, are refused with a ``forged_record`` audit);
then the worker is killed (-9), restarted, becomes ready and decides new canaries. With the adaptive
model on, a flood of records that pass every check but sit at the model's limits (ten thousand new
addresses and devices for one user, 10^15 bytes, the corners of the map) is scored and acted on,
with no dead letter and no fault, and the canaries behind it are still revoked.

The in-process fuzzer (tests/unit/service/test_fuzz_inputs.py) covers the space of inputs; this
test covers what only a broker shows: delivery, the real producer and consumer, recovery.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import orjson
import pytest

from streams.adapters import adapt
from tests.support.worker import TopicReader, WorkerProcess, make_key, wait_settled, write_policy

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(240)]

POLICY = """
[defaults]
idle = "1h"
absolute = "12h"

[ids]
revoke = ["critical"]
lookback = "10m"

[adaptive]
enabled = false
"""

#: (topic, key, value, partition): partition None = the producer's partitioner for the key
Record = tuple[str, bytes | None, bytes | None, int | None]


async def _setup(bootstrap: str, tmp_path):
    from streams.config import Settings
    from streams.topics import create_topics

    prefix = f"t{uuid.uuid4().hex[:8]}."
    await create_topics(Settings.load({"LAPSE_BOOTSTRAP": bootstrap, "LAPSE_TOPIC_PREFIX": prefix}))
    return prefix, write_policy(tmp_path / "policy.toml", POLICY), make_key(tmp_path)


def _deep(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def hostile_corpus(now: float) -> list[Record]:
    """Records every one of which must be dead-lettered (or, on the policy topic, refused)."""
    ts = int(now)
    j = orjson.dumps
    near_mb = b'{"type":"login","ts":%d,"user":"h-big","session":"h-big","device":"' % ts + b"x" * 1_000_000 + b'"}'
    out: list[Record] = []
    for topic in ("identity", "activity", "ids-alerts", "user-requests", "sightings",
                  "raw.okta", "raw.keycloak", "raw.suricata", "raw.cloudtrail"):
        out += [
            (topic, b"h-null", None, None),                                   # a null value (tombstone)
            (topic, b"h-garbage", b"\xff\xfe\x00\x01 garbage \x80\x81", None),  # not UTF-8, not JSON
            (topic, None, b"", None),                                          # empty
            (topic, b"h-huge", b"\x00" * 1_000_000, None),                     # ~1 MB of NULs
            (topic, b"h-huge", near_mb, None),                                 # a ~1 MB login
            (topic, b"h-deep", b"[" * 300 + b"]" * 300, None),                 # 300-deep array
            (topic, b"h-nan", b'{"type":"login","ts":NaN,"user":"h-nan","session":"s"}', None),
        ]
    out += [
        # canonical topics: the findings, and their relatives
        ("activity", b"h-ann", j({"type": "activity", "ts": -1e12, "user": "h-ann", "session": "h-s1",
                                  "action": "GET /"}), None),
        ("ids-alerts", b"203.0.113.9", b'{"type":"alert","ts":%d,"severity":"critical","src_ip":"203.0.113.9",'
                                       b'"extra":' % ts + _deep(300) + b"}", None),
        ("identity", b"h-ann", j({"type": "login", "ts": "0001-01-01T00:00:00+01:00", "user": "h-ann",
                                  "session": "h-s1"}), None),
        ("identity", b"h-ann", j({"type": "login", "ts": "9999-12-31T23:59:59-01:00", "user": "h-ann",
                                  "session": "h-s1"}), None),
        ("identity", b"h-ann", b'{"type":"login","ts":%d,"user":"\\ud800","session":"h-s1"}' % ts, None),
        ("identity", b"h-ann", b'{"type":"login","ts":1e999,"user":"h-ann","session":"h-s1"}', None),
        ("identity", b"h-ann", j({"type": "login", "ts": ts, "user": None, "session": None}), None),
        ("identity", b"h-ann", j({"type": "login", "ts": ts, "user": ["h-ann"], "session": {"id": 1}}), None),
        ("identity", b"h-ann", j({"type": "login", "ts": ts, "user": "h-ann", "session": "h-s1",
                                  "ip": "203.0.113.0/24"}), None),
        ("identity", b"h-ann", j({"type": "login", "ts": ts, "user": "h-ann", "session": "h-s1",
                                  "device": "x" * 100_000}), None),
        ("identity", b"h-ann", j({"type": "alert", "ts": ts, "severity": "critical", "src_ip": "203.0.113.9"}), None),
        ("identity", b"h-ann", j([1, 2, 3]), None),
        ("identity", b"h-ann", j("login"), None),
        ("activity", b"h-ann", j({"type": "activity", "ts": ts, "user": "h-ann", "session": "h-s1",
                                  "bytes": -5}), None),
        ("activity", b"h-ann", j({"type": "activity", "ts": ts + 86400, "user": "h-ann", "session": "h-s1"}), None),
        ("activity", b"h-ann", j({"type": "teleport", "ts": ts, "user": "h-ann"}), None),
        ("ids-alerts", b"203.0.113.9", j({"type": "alert", "ts": ts, "severity": "critical",
                                          "src_ip": "203.0.113.0/24"}), None),
        ("ids-alerts", b"203.0.113.9", j({"type": "alert", "ts": ts, "severity": 9, "src_ip": "203.0.113.9"}), None),
        ("ids-alerts", b"203.0.113.9", j({"type": "login", "ts": ts, "user": "h-ann", "session": "h-s1"}), None),
        # internal topics: unsealed (forged) envelopes, well formed or not
        ("user-requests", b"h-ann", j({"kind": "target", "user": "h-ann", "session": "h-s1", "via": "203.0.113.9",
                                       "alert": {"type": "alert", "ts": ts, "severity": "critical",
                                                 "src_ip": "203.0.113.9"}}), None),
        ("user-requests", b"h-ann", j({"kind": "manual_revoke", "user": "h-ann", "session": None,
                                       "operator": "mallory", "ts": ts, "auth": "named token"}), None),
        ("user-requests", b"h-ann", j({"kind": "target", "user": "h-ann", "session": 5}), None),
        ("user-requests", b"h-ann", j({"type": "user_disabled", "ts": ts, "user": "h-ann"}), None),
        ("user-requests", b"h-ann", b"\xffLS\x01" + b"\x00" * 60 + b"{}", None),  # a seal that does not open
        ("sightings", b"203.0.113.9", j({"kind": "sighting", "user": "h-ann", "session": "h-s1", "ts": ts}), None),
        ("sightings", b"203.0.113.9", j({"kind": "alert", "alert": {"type": "alert", "ts": ts,
                                                                    "severity": "critical", "src_ip": "203.0.113.9"},
                                         "ts": ts, "received": ts}), None),
        # vendor topics: malformed records of each format
        ("raw.okta", None, j({"eventType": 17}), None),
        ("raw.okta", None, j({"eventType": "user.session.start", "published": "0001-01-01T00:00:00+01:00",
                              "actor": {"alternateId": "h-ann", "type": "User"}}), None),
        ("raw.keycloak", None, b"type=LOGIN, userId=", None),
        ("raw.suricata", None, j({"event_type": "alert", "timestamp": "0001-01-01T00:00:00+0100",
                                  "src_ip": "203.0.113.9", "alert": {"severity": 1}}), None),
        ("raw.suricata", None, j({"event_type": "alert", "timestamp": "2026-01-01T00:00:00+0000",
                                  "src_ip": "10.0.0.0/8", "alert": {"severity": 1}}), None),
        ("raw.cloudtrail", None, j({"Records": "x"}), None),
        # the policy topic (read by every worker outside the group): unsealed, garbage, null
        ("policy", b"current", j({"version": "forged", "text": "[defaults]\nidle = \"1s\"\n"}), 0),
        ("policy", b"current", b"\xff\xfe garbage", 0),
        ("policy", b"current", None, 0),
    ]
    for topic, _, value, _ in out:  # the corpus means what it says: every vendor record is refused
        if topic.startswith("raw."):
            assert adapt(topic[4:], value or b"").error is not None, (topic, value[:80] if value else value)
    return out


def canaries(now: float, tag: str) -> tuple[list[Record], list[Record], dict[str, str]]:
    """(logins, then an IDS alert on one login's IP and the other user disabled, {session: reason})."""
    ids, acct, ip = f"canary-ids-{tag}", f"canary-acct-{tag}", f"100.64.{len(tag) % 200}.{int(now) % 200 + 1}"
    j = orjson.dumps
    first = [("identity", ids.encode(), j({"type": "login", "ts": now, "user": ids, "session": f"{ids}-s",
                                           "ip": ip}), None),
             ("identity", acct.encode(), j({"type": "login", "ts": now, "user": acct, "session": f"{acct}-s",
                                            "ip": "100.64.250.250"}), None)]
    second = [("ids-alerts", ip.encode(), j({"type": "alert", "ts": now + 0.5, "severity": "critical",
                                             "signature": "ET MALWARE canary", "src_ip": ip}), None),
              ("identity", acct.encode(), j({"type": "user_disabled", "ts": now + 0.5, "user": acct}), None)]
    return first, second, {f"{ids}-s": "ids_alert", f"{acct}-s": "account_event"}


async def produce(bootstrap: str, prefix: str, records: list[Record]) -> list[tuple[str, int, int]]:
    """Produce in order; returns each record's (topic, partition, offset)."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2, max_request_size=2 * 1024 * 1024,
                                acks="all")
    await producer.start()
    try:
        futures = [await producer.send(prefix + topic, key=key, value=value, partition=partition)
                   for topic, key, value, partition in records]
        metas = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [(m.topic, m.partition, m.offset) for m in metas]


def _revoked(values: list[Any], expected: dict[str, str]) -> dict[str, str]:
    return {v["decision"]["session"]: v["decision"]["reason"] for v in values
            if v["decision"]["session"] in expected}


def _accounted(dead: list[Any], audits: list[Any]) -> set[tuple[str, int, int]]:
    out = {(d["topic"], d["partition"], d["offset"]) for d in dead}
    for a in audits:
        if a.get("kind") == "forged_record":
            det = a.get("detail") or {}
            out.add((det.get("topic"), det.get("partition"), det.get("offset")))
    return out


async def test_hostile_records_on_every_input_topic_never_stop_the_worker_or_hide_a_canary(kafka_bootstrap,
                                                                                         tmp_path):
    prefix, policy, key = await _setup(kafka_bootstrap, tmp_path)
    app_id = f"{prefix}app"
    worker = WorkerProcess(kafka_bootstrap, prefix, app_id, policy, key, tmp_path).start()
    restarted = None
    try:
        await worker.wait_ready()
        now = time.time()
        corpus = hostile_corpus(now)
        first, second, expected = canaries(now, "a")
        async with TopicReader(kafka_bootstrap, prefix + "dead-letters") as dlq, \
                TopicReader(kafka_bootstrap, prefix + "revocations") as rev, \
                TopicReader(kafka_bootstrap, prefix + "audit") as audit:
            hostile = await produce(kafka_bootstrap, prefix, corpus)
            canary_at = await produce(kafka_bootstrap, prefix, first)
            canary_at += await produce(kafka_bootstrap, prefix, second)
            t_canary = time.time()
            await rev.wait_for(lambda vs: _revoked(vs, expected) == expected, timeout=20,
                               explain=lambda vs: f"canaries revoked: {_revoked(vs, expected)}\n{worker.tail(30)}")
            canary_s = time.time() - t_canary
            want = set(hostile)
            await dlq.wait_for(lambda vs: want <= _accounted(vs, audit.values()), timeout=30,
                               explain=lambda vs: f"not dead-lettered: {sorted(want - _accounted(vs, audit.values()))}")
            dead = dlq.values()
            # each dead letter names its reason and stage; none is a fault (an exception in a step)
            by_where = {(d["topic"], d["partition"], d["offset"]): d for d in dead}
            for where in want:
                d = by_where.get(where)
                if d is not None:
                    assert d["reason"] and d["stage"] in ("ingest", "adapter", "ids-join"), d
                    assert d["error"] is None, d
            assert not set(canary_at) & set(by_where), "a canary was dead-lettered"
            assert len(want) == len(corpus) > 90
            assert worker.proc.poll() is None, f"the worker died:\n{worker.tail()}"
            status, health = worker.get("/health")
            assert status == 200 and health["status"] == "ok", health
            assert canary_s < 10, f"canaries took {canary_s:.1f}s"
            # Faust's own views would show who used which IP, without a token: they are off
            for path in ("/table/sightings/", "/table/users/", "/router/", "/graph/"):
                assert worker.get(path)[0] == 404, path
            # the policy in force was not replaced by the forged record
            forged = [a for a in audit.values() if a.get("kind") == "forged_record"]
            assert {a["detail"]["topic"] for a in forged} >= {prefix + "policy", prefix + "user-requests",
                                                              prefix + "sightings"}
            assert worker.get("/ready")[0] == 200

            # kill -9, restart: ready again (the hostile records re-read, if uncommitted, are harmless)
            worker.kill9()
            restarted = WorkerProcess(kafka_bootstrap, prefix, app_id, policy, key, tmp_path, name="w2").start()
            await restarted.wait_ready()
            now2 = time.time()
            first2, second2, expected2 = canaries(now2, "b")
            canary_at = await produce(kafka_bootstrap, prefix, first2)
            canary_at += await produce(kafka_bootstrap, prefix, second2)
            await rev.wait_for(lambda vs: _revoked(vs, expected2) == expected2, timeout=20,
                               explain=lambda vs: f"after restart: {_revoked(vs, expected2)}\n{restarted.tail(30)}")
            assert restarted.proc.poll() is None
            assert not set(canary_at) & _accounted(dlq.values(), []), "a canary was dead-lettered"
            # the first canaries' decisions stand: nothing re-decided differently after the restart
            assert _revoked(rev.values(), expected) == expected
    finally:
        worker.stop()
        if restarted is not None:
            restarted.stop()


def extreme_but_valid(now: float, n: int = 10_000) -> list[Record]:
    """Records that pass every check and reach the adaptive model at its limits: one user's ``n``
    requests over 50 sessions, each from an address, device, country and network never seen
    before, at the corners of the map, moving 10^15 bytes, privileged, within a few seconds; one
    in three without a device id, one in seven located without a network, one in eleven from a
    month ago (still inside the accepted age); and as many from one session of another user that
    stays where it is, without a device id."""
    j = orjson.dumps
    out: list[Record] = []
    for i in range(n):
        geo = {"country": f"Z{i % 26:d}{i // 26 % 26:d}", "lat": 90.0 if i % 2 else -90.0,
               "lon": 180.0 if i % 3 else -180.0, "asn": 4_294_967_295 - i}
        if i % 7 == 0:
            del geo["asn"]
        ev = {"type": "activity", "ts": now + (i % 1000) / 1000 - (30 * 86400 if i % 11 == 0 else 0),
              "user": "h-flood", "session": f"h-flood-{i % 50}",
              "ip": f"{10 + i % 200}.{i // 200 % 256}.{i % 251}.{i % 253}", "device": f"dev-{i:06d}",
              "action": "export", "bytes": 10 ** 15, "privileged": True, "geo": geo}
        if i % 3 == 0:
            del ev["device"]
        out.append(("activity", b"h-flood", j(ev), None))
        # another user's one session from one address and network, without a device id: after
        # its first request, each is the session's steady next request, at the same extremes
        out.append(("activity", b"h-steady", j({
            "type": "activity", "ts": now + (i % 1000) / 1000 - (30 * 86400 if i % 11 == 0 else 0),
            "user": "h-steady", "session": "h-steady", "ip": "203.0.113.200", "action": "export",
            "bytes": 10 ** 15, "privileged": True,
            "geo": {"country": "ZZ", "lat": 90.0, "lon": 180.0, "asn": 4_294_967_295}}), None))
    return out


async def test_with_the_adaptive_model_on_a_flood_of_extreme_valid_records_neither_stops_nor_blinds_the_worker(
        kafka_bootstrap, tmp_path):
    prefix, _, key = await _setup(kafka_bootstrap, tmp_path)
    policy = write_policy(tmp_path / "adaptive.toml", POLICY.replace("enabled = false", "enabled = true"))
    app_id = f"{prefix}app"
    worker = WorkerProcess(kafka_bootstrap, prefix, app_id, policy, key, tmp_path).start()
    try:
        await worker.wait_ready()
        now = time.time()
        first, second, expected = canaries(now, "m")
        async with TopicReader(kafka_bootstrap, prefix + "dead-letters") as dlq, \
                TopicReader(kafka_bootstrap, prefix + "revocations") as rev:
            await produce(kafka_bootstrap, prefix, extreme_but_valid(now))
            await produce(kafka_bootstrap, prefix, first)
            await produce(kafka_bootstrap, prefix, second)
            await rev.wait_for(lambda vs: _revoked(vs, expected) == expected, timeout=60,
                               explain=lambda vs: f"canaries revoked: {_revoked(vs, expected)}\n{worker.tail(30)}")
            # every input committed: all that can come of the flood has come
            await wait_settled(kafka_bootstrap, app_id, [prefix + t for t in (
                "identity", "activity", "ids-alerts", "sightings", "user-requests")], (dlq, rev), timeout=120)
            # the model acted on the flood (every request is new in every way), and no record of
            # it was refused or made a step raise
            assert any(v["decision"]["user"] == "h-flood" and v["decision"]["reason"] == "anomaly"
                       for v in rev.values())
            assert not dlq.values(), dlq.values()[:3]
            assert worker.proc.poll() is None, f"the worker died:\n{worker.tail()}"
            status, health = worker.get("/health")
            assert status == 200 and health["status"] == "ok", health
    finally:
        worker.stop()


async def test_sessions_seen_on_an_address_stay_joined_to_it_after_a_restart(kafka_bootstrap, tmp_path):
    prefix, policy, key = await _setup(kafka_bootstrap, tmp_path)
    app_id = f"{prefix}app"
    worker = WorkerProcess(kafka_bootstrap, prefix, app_id, policy, key, tmp_path).start()
    restarted = None
    n, ip = 1024, "198.51.100.77"
    try:
        await worker.wait_ready()
        now = time.time()
        logins = [("identity", (f"{i:05d}" + "u" * 1019).encode(), orjson.dumps(
            {"type": "login", "ts": now, "user": f"{i:05d}" + "u" * 1019, "session": f"{i:05d}" + "s" * 1019,
             "ip": ip}), None) for i in range(n)]
        async with TopicReader(kafka_bootstrap, prefix + "audit") as audit, \
                TopicReader(kafka_bootstrap, prefix + "revocations") as rev:
            await produce(kafka_bootstrap, prefix, logins)
            await audit.wait_for(lambda vs: sum(v.get("kind") == "session_start" for v in vs) >= n, timeout=60)
            # every input committed, so the join's changelog behind it was acknowledged first
            await wait_settled(kafka_bootstrap, app_id, [prefix + t for t in (
                "identity", "activity", "ids-alerts", "sightings", "user-requests")])
            worker.kill9()
            restarted = WorkerProcess(kafka_bootstrap, prefix, app_id, policy, key, tmp_path, name="w2").start()
            await restarted.wait_ready()
            await produce(kafka_bootstrap, prefix, [("ids-alerts", ip.encode(), orjson.dumps(
                {"type": "alert", "ts": time.time(), "severity": "critical", "src_ip": ip}), None)])
            await rev.wait_for(lambda vs: sum(v["decision"]["reason"] == "ids_alert" for v in vs) >= n, timeout=15,
                               explain=lambda vs: f"{sum(v['decision']['reason'] == 'ids_alert' for v in vs)} of {n}")
    finally:
        worker.stop()
        if restarted is not None:
            restarted.stop()
