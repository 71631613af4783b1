"""The worker on the real broker: same decisions as replay, crash recovery, failover, the adapters'
records delivered back to the worker, the IDS join across two workers of a group.

What the decision steps decide (poison records, vendor records, alerts routed between workers) is
tested in-process in tests/unit/service/test_service_steps.py; a live worker under hostile input
in tests/integration/test_hostile_worker.py.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import orjson
import pytest

from streams.engine import parse_ts
from tests.support import records
from tests.support.records import okta_session_start
from tests.support.worker import (TopicReader, WorkerProcess, decision_ids, wait_settled, make_key, produce, replay_ids,
                                  write_policy)

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(300)]

POLICY = """
[defaults]
idle = "{idle}"
absolute = "5m"

[networks]
corporate = ["10.0.0.0/8"]

[[rules]]
name = "admins"
roles = ["admin"]
idle = "{admin_idle}"

[ids]
revoke = ["critical", "high"]
step_up = ["medium"]
lookback = "10m"

[adaptive]
enabled = false
"""


async def _setup(kafka_bootstrap, tmp_path, idle="4s", admin_idle="3s"):
    from streams.config import Settings
    from streams.topics import create_topics

    prefix = f"t{uuid.uuid4().hex[:8]}."
    await create_topics(Settings.load({"LAPSE_BOOTSTRAP": kafka_bootstrap, "LAPSE_TOPIC_PREFIX": prefix}))
    policy = write_policy(tmp_path / "policy.toml", POLICY.format(idle=idle, admin_idle=admin_idle))
    return prefix, policy, make_key(tmp_path)


def _diff(expected: list[dict], values: list) -> str:
    got = {v["decision"]["id"]: v["decision"] for v in values}
    missing = [(d["reason"], d["action"], d["session"], d["at"]) for d in expected if d["id"] not in got]
    exp = {d["id"] for d in expected}
    extra = [(d["reason"], d["action"], d["session"], d["at"]) for i, d in got.items() if i not in exp]
    return f"missing {missing[:10]} extra {extra[:10]}"


def _stream(t0: float, users: int, tag: str) -> tuple[list[tuple[str, dict]], list[tuple[str, dict]]]:
    """Two phases of a realistic stream: logins + activity, then alerts and account events."""
    first, second = [], []
    for i in range(users):
        u = f"{tag}-u{i}"
        roles = ["admin"] if i % 7 == 0 else ["staff"]
        ip = f"10.9.{i // 250}.{i % 250}"
        ev = {"type": "login", "ts": t0 + i * 0.001, "user": u, "session": f"{u}-s", "roles": roles, "ip": ip,
              "channel": "web", "app": "portal"}
        if i % 10 == 3:
            ev["sso_session"] = f"{tag}-sso{i}"
            first.append(("identity", dict(ev, session=f"{u}-s2", app="mail", ts=t0 + i * 0.001 + 0.0005)))
        first.append(("identity", ev))
        first.append(("activity", {"type": "activity", "ts": t0 + 0.5 + i * 0.001, "user": u, "session": f"{u}-s",
                                   "ip": ip, "action": "GET", "resource": "/r", "bytes": 100, "status": 200}))
    t1 = t0 + 1.5
    second.append(("ids-alerts", {"type": "alert", "ts": t1, "severity": 1, "signature": "ET TROJAN test",
                                  "src_ip": f"10.9.0.{5}", "dest_ip": "203.0.113.5"}))
    second.append(("ids-alerts", {"type": "alert", "ts": t1 + 0.01, "severity": "medium", "signature": "ET SCAN",
                                  "src_ip": f"10.9.0.{8}"}))
    second.append(("identity", {"type": "user_disabled", "ts": t1 + 0.02, "user": f"{tag}-u11"}))
    second.append(("identity", {"type": "logout", "ts": t1 + 0.03, "user": f"{tag}-u13", "sso_session": f"{tag}-sso13"}))
    second.append(("identity", {"type": "logout", "ts": t1 + 0.04, "user": f"{tag}-u2", "session": f"{tag}-u2-s"}))
    return first, second


async def _split_between(w1: WorkerProcess, w2: WorkerProcess) -> None:
    """Both workers ready, and the group has split the 6 partitions between them."""
    await asyncio.gather(w1.wait_ready(), w2.wait_ready())
    end = time.time() + 60
    while True:
        p1 = set(w1.get("/ready")[1]["partitions"]) if w1.get("/ready")[0] == 200 else set()
        p2 = set(w2.get("/ready")[1]["partitions"]) if w2.get("/ready")[0] == 200 else set()
        if p1 and p2 and not p1 & p2 and len(p1 | p2) == 6:
            break
        assert time.time() < end, "partitions never split between the two workers"
        await asyncio.sleep(0.3)


def _inputs(prefix: str) -> list[str]:
    """Every topic a worker reads (its commits of these say what it has decided)."""
    return [prefix + t for t in ("identity", "activity", "ids-alerts", "sightings", "user-requests")]


async def test_worker_publishes_exactly_the_decision_ids_of_replay(kafka_bootstrap, tmp_path):
    prefix, policy, key = await _setup(kafka_bootstrap, tmp_path)
    worker = WorkerProcess(kafka_bootstrap, prefix, f"{prefix}app", policy, key, tmp_path).start()
    try:
        await worker.wait_ready()
        t0 = time.time()
        first, second = _stream(t0, 60, "eq")
        expected = replay_ids([e for _, e in first + second], policy, tmp_path)
        expected_ids = {d["id"] for d in expected}
        reasons = {d["reason"] for d in expected}
        assert {"idle_timeout", "ids_alert", "account_event", "sso_logout"} <= reasons
        assert any(d["action"] == "step_up" for d in expected)

        async with TopicReader(kafka_bootstrap, prefix + "revocations") as rev:
            await produce(kafka_bootstrap, prefix, first)
            # alerts meet the sightings of earlier uses whichever arrives first (they wait for them)
            await produce(kafka_bootstrap, prefix, second)
            await rev.wait_for(lambda vs: expected_ids <= set(decision_ids(vs)), timeout=60,
                               explain=lambda vs: _diff(expected, vs))
            await wait_settled(kafka_bootstrap, f"{prefix}app", _inputs(prefix), (rev,))  # nothing extra comes
            got = decision_ids(rev.values())
        assert set(got) == expected_ids
        assert len(got) == len(set(got)), "no duplicates without a crash"
        by_id = {v["decision"]["id"]: v["decision"] for v in rev.values()}
        for d in expected:
            assert (by_id[d["id"]]["reason"], by_id[d["id"]]["at"]) == (d["reason"], d["at"])
    finally:
        worker.stop()


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
async def test_kill_9_mid_stream_loses_no_decision_and_fires_missed_deadlines_on_recovery(kafka_bootstrap, tmp_path,
                                                                                          store):
    prefix, policy, key = await _setup(kafka_bootstrap, tmp_path, idle="5s", admin_idle="5s")
    app_id = f"{prefix}app"
    # the restarted worker keeps the data directory (with rocksdb://, its local databases)
    env = {"LAPSE_STORE": store, "LAPSE_DATA_DIR": str(tmp_path / "data")}
    worker = WorkerProcess(kafka_bootstrap, prefix, app_id, policy, key, tmp_path, extra_env=env).start()
    try:
        await worker.wait_ready()
        t0 = time.time()
        first, second = _stream(t0, 80, "k9")
        expected = replay_ids([e for _, e in first + second], policy, tmp_path)
        expected_ids = {d["id"] for d in expected}
        async with TopicReader(kafka_bootstrap, prefix + "revocations") as rev:
            await produce(kafka_bootstrap, prefix, first)
            await produce(kafka_bootstrap, prefix, second)
            # some decisions are out, the IDS alerts' among them: after a crash, an alert still in
            # flight competes with the idle deadlines that came due while the worker was down (the
            # session is revoked either way; which reason wins is a race this test does not pin)
            alert_ids = {d["id"] for d in expected if d["reason"] == "ids_alert"}
            await rev.wait_for(lambda vs: len(vs) >= 3 and alert_ids <= set(decision_ids(vs)), timeout=30)
            worker.kill9()
            killed_at = time.time()
            # the scenario, not a wait for the worker: every idle deadline passes while it is down
            last_deadline = max(parse_ts(d["at"]) for d in expected if d["reason"] == "idle_timeout")
            await asyncio.sleep(max(0.0, last_deadline - time.time()) + 0.5)
            restarted = WorkerProcess(kafka_bootstrap, prefix, app_id, policy, key, tmp_path, name="w1b",
                                      extra_env=env).start()
            try:
                ready_at = await restarted.wait_ready()
                await rev.wait_for(lambda vs: expected_ids <= set(decision_ids(vs)), timeout=120,
                                   explain=lambda vs: _diff(expected, vs) + "\n" + restarted.tail(40))
                arrivals = {v["decision"]["id"]: t for _, v, t in rev.records if t > killed_at}
            finally:
                restarted.stop()
        got = set(decision_ids(rev.values()))
        assert got == expected_ids, f"every expected decision arrives, nothing unexpected: {_diff(expected, rev.values())}"
        missed = [d for d in expected if d["reason"] == "idle_timeout" and d["id"] in arrivals]
        assert missed, "some idle deadlines passed while the worker was down"
        assert max(arrivals[d["id"]] for d in missed) - ready_at < 5.0, "missed deadlines fire right after recovery"
    finally:
        worker.kill9()


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
async def test_second_worker_takes_over_partitions_and_their_deadlines_still_fire(kafka_bootstrap, tmp_path, store):
    prefix, policy, key = await _setup(kafka_bootstrap, tmp_path, idle="12s", admin_idle="12s")
    app_id = f"{prefix}app"
    env = {"LAPSE_STORE": store}
    w1 = WorkerProcess(kafka_bootstrap, prefix, app_id, policy, key, tmp_path, name="w1", extra_env=env).start()
    w2 = WorkerProcess(kafka_bootstrap, prefix, app_id, policy, key, tmp_path, name="w2", extra_env=env).start()
    try:
        await _split_between(w1, w2)
        t0 = time.time()
        first, _ = _stream(t0, 60, "fo")
        expected = replay_ids([e for _, e in first], policy, tmp_path)
        expected_ids = {d["id"] for d in expected}
        assert {d["reason"] for d in expected} == {"idle_timeout", "sso_logout"}  # timeouts, and their SSO cascade
        async with TopicReader(kafka_bootstrap, prefix + "revocations") as rev:
            await produce(kafka_bootstrap, prefix, first)
            await wait_settled(kafka_bootstrap, app_id, _inputs(prefix))  # both workers hold live sessions now
            w2.stop()  # leaves the group: w1 takes over w2's partitions
            await w1.wait_ready(partitions=6, timeout=120)  # recovers every partition of both workers
            await rev.wait_for(lambda vs: expected_ids <= set(decision_ids(vs)), timeout=60)
            await wait_settled(kafka_bootstrap, app_id, _inputs(prefix), (rev,))  # w1 re-decided w2's input
        assert set(decision_ids(rev.values())) == expected_ids
        assert len(set(w1.get("/ready")[1]["partitions"])) == 6
    finally:
        w1.stop()
        w2.stop()


async def test_vendor_records_on_raw_topics_reach_the_live_worker_as_canonical_events_and_end_a_session(
        kafka_bootstrap, tmp_path):
    """An Okta sign-in and a Suricata alert, as the vendors emit them: the adapters' canonical events
    go back through the broker (the user's identity partition, the IP's ids-alerts partition) to the
    worker, which ends the session. (What the adapters decide, junk and skipped records included:
    test_service_steps.py; junk on every raw topic of a live worker: test_hostile_worker.py.)"""
    prefix, policy, key = await _setup(kafka_bootstrap, tmp_path, idle="1h", admin_idle="1h")
    worker = WorkerProcess(kafka_bootstrap, prefix, f"{prefix}app", policy, key, tmp_path).start()
    try:
        await worker.wait_ready()
        now = time.time()
        okta, eve_alert = okta_session_start(now), records.eve_alert(now + 2)
        async with TopicReader(kafka_bootstrap, prefix + "revocations") as rev:
            await produce(kafka_bootstrap, prefix, [("raw.okta", orjson.dumps(okta))])
            await produce(kafka_bootstrap, prefix, [("raw.suricata", orjson.dumps(eve_alert))])
            await rev.wait_for(lambda vs: len(vs) >= 1, timeout=60)
            raws = [prefix + f"raw.{f}" for f in ("okta", "keycloak", "suricata", "cloudtrail")]
            await wait_settled(kafka_bootstrap, f"{prefix}app", raws + _inputs(prefix), (rev,))
        [d] = [v["decision"] for v in rev.values()]
        assert (d["user"], d["session"], d["reason"]) == ("ann@example.com", "102ann-session", "ids_alert")
    finally:
        worker.stop()


def _partition(key: str) -> int:
    """The partition (of 6) Kafka's default partitioner gives ``key``."""
    from streams.service.pipeline.partitioning import partition_for

    return partition_for(key.encode(), 6)


def _key_on(partition: int, make, start: int = 0) -> str:
    """The first key ``make(i)`` that Kafka's default partitioner puts on ``partition`` (of 6)."""
    from streams.service.pipeline.partitioning import partition_for

    i = start
    while partition_for(make(i).encode(), 6) != partition:
        i += 1
    return make(i)


async def test_two_workers_of_a_group_join_each_alert_where_its_sightings_are_and_reach_users_on_either(
        kafka_bootstrap, tmp_path):
    """Two workers: the group gives each the same partitions of identity, ids-alerts, sightings and
    user-requests, so an alert meets its IP's sightings on one worker; a victim whose user lives
    there is revoked at once, one whose user lives on the other worker through user-requests,
    delivered by the broker. Victims are chosen on every (ip partition, user partition) pair p->p
    and p->p+1, so both routes are taken whichever way the group splits the partitions. (Which
    route each alert takes, and that no bystander is touched: test_service_steps.py.)"""
    prefix, policy, key = await _setup(kafka_bootstrap, tmp_path, idle="10m", admin_idle="10m")
    app_id = f"{prefix}app"
    w1 = WorkerProcess(kafka_bootstrap, prefix, app_id, policy, key, tmp_path, name="w1").start()
    w2 = WorkerProcess(kafka_bootstrap, prefix, app_id, policy, key, tmp_path, name="w2").start()
    try:
        await _split_between(w1, w2)
        t0 = time.time()
        victims, events = [], []
        for p in range(6):
            for q in (p, (p + 1) % 6):
                ip = _key_on(p, lambda i: f"10.20.{i // 250}.{i % 250}", start=len(victims) * 97)
                user = _key_on(q, lambda i: f"al-{p}-{q}-u{i}")
                victims.append((user, f"{user}-s", ip))
        for user, session, ip in victims:
            events.append(("identity", {"type": "login", "ts": t0, "user": user, "session": session, "ip": ip}))
        alerts = [("ids-alerts", {"type": "alert", "ts": t0 + 2, "severity": "critical", "signature": f"test {k}",
                                  "src_ip": ip}) for k, (_, _, ip) in enumerate(victims)]
        async with TopicReader(kafka_bootstrap, prefix + "revocations") as rev, \
                TopicReader(kafka_bootstrap, prefix + "user-requests") as req, \
                TopicReader(kafka_bootstrap, prefix + "sightings") as seen:
            await produce(kafka_bootstrap, prefix, events)
            await produce(kafka_bootstrap, prefix, alerts)
            want = {s for _, s, _ in victims}
            await rev.wait_for(lambda vs: want <= {v["decision"]["session"] for v in vs}, timeout=60)
            await wait_settled(kafka_bootstrap, app_id, _inputs(prefix), (rev, req, seen))  # nothing extra comes
            got = [v["decision"] for v in rev.values()]
            remote = [v for v in req.values() if v.get("kind") == "target"]
            travelled = {k.decode() for k, v, _ in seen.records if v.get("kind") == "sighting"}
        assert sorted(d["session"] for d in got) == sorted(want), "each victim revoked once"
        assert {d["reason"] for d in got} == {"ids_alert"}
        assert 0 < len(remote) < len(victims), f"both routes taken: {len(remote)} of {len(victims)} via user-requests"
        # a sighting travels only to a key held by the other worker: an IP on its user's own
        # partition never does; some on the next partition do (the group's split has a boundary)
        same = {ip for user, _, ip in victims if _partition(user) == _partition(ip)}
        assert not travelled & same
        assert travelled & ({ip for _, _, ip in victims} - same)
    finally:
        w1.stop()
        w2.stop()


async def _committed_lag(bootstrap: str, group: str, topics: list[str]) -> int:
    """Messages on ``topics`` that ``group`` has not committed."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    admin, consumer = AIOKafkaAdminClient(bootstrap_servers=bootstrap), AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        await consumer._client.force_metadata_update()  # so that partitions_for_topic knows the topics
        tps = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or ())]
        assert tps, f"no partitions known for {topics}"
        ends = await consumer.end_offsets(tps)
        return sum(end - max(committed[tp].offset, 0) if tp in committed else end for tp, end in ends.items())
    finally:
        await consumer.stop()
        await admin.close()


async def test_busy_users_state_is_written_once_per_commit_interval_and_offsets_commit_without_more_input(
        kafka_bootstrap, tmp_path):
    from streams.engine.state import UserState

    prefix, policy, key = await _setup(kafka_bootstrap, tmp_path, idle="10m", admin_idle="10m")
    app_id = f"{prefix}app"
    worker = WorkerProcess(kafka_bootstrap, prefix, app_id, policy, key, tmp_path,
                           extra_env={"LAPSE_COMMIT_INTERVAL_S": "2"})
    try:
        t0 = time.time()
        users = [f"ci-u{i}" for i in range(4)]
        events = [("identity", {"type": "login", "ts": t0, "user": u, "session": f"{u}-s", "ip": "10.1.1.1"})
                  for u in users]
        n = 4000  # 40+ batches of 100, each touching every user
        events += [("activity", {"type": "activity", "ts": t0 + 0.001 * (i + 1), "user": users[i % 4],
                                 "session": f"{users[i % 4]}-s", "ip": "10.1.1.1", "action": "GET"})
                   for i in range(n)]
        await produce(kafka_bootstrap, prefix, events)  # a backlog: the worker is never quiet until the end
        started = time.time()
        worker.start()
        inputs = [prefix + "identity", prefix + "activity"]
        end = time.time() + 90
        # no input follows the last event: the timer's commit point must still commit its offset
        while await _committed_lag(kafka_bootstrap, app_id, inputs) > 0:
            assert time.time() < end, f"offsets never committed:\n{worker.tail(30)}"
            await asyncio.sleep(0.3)
        elapsed = time.time() - started
        changelog = f"{app_id}-users-changelog"
        async with TopicReader(kafka_bootstrap, changelog) as log:
            await log.wait_for(lambda vs: len(vs) >= len(users), timeout=30)
            await log.wait_end(30)
            records = list(log.records)
        per_user = {u: [v for k, v, _ in records if k == u.encode()] for u in users}
        for u, values in per_user.items():
            # one record per commit point that followed a change (at most one per 2 s, plus the last),
            # where one per batch would be 10+
            assert 1 <= len(values) <= elapsed / 2 + 2, (u, len(values), elapsed)
            last = UserState.from_dict(values[-1]).sessions[f"{u}-s"]
            assert last.events_n == n // 4 + 1, "the last record holds the login and every activity event"
    finally:
        worker.stop()
