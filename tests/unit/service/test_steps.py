"""The worker's steps (streams/service/steps/) as plain functions: messages and ``now`` in; outputs,
records to produce, touched state and counts out. No Faust app, no broker, no clock: each test
builds the steps over an engine, pipes messages in and asserts everything that came out."""

from __future__ import annotations

import orjson
import pytest

from streams.config import Settings
from streams.engine import Engine, loads_policy
from streams.service.pipeline.partitioning import partition_for
from streams.service.pipeline.sealed import Sealer
from streams.service.steps import Steps, TopicNames
from streams.engine.join import refresh_s
from tests.support.driver import T0, Msg
from tests.support.records import eve_alert, eve_dns, okta_session_start

POLICY = '[defaults]\nidle = "30m"\nabsolute = "12h"\n[ids]\nrevoke = ["critical"]\nlookback = "1h"\n'
PARTITIONS = 4
IP = "198.51.100.7"


class Harness:
    """Steps over one engine; ``owned`` partitions are this worker's."""

    def __init__(self, owned: set[int] | None = None) -> None:
        self.settings = Settings.load({"LAPSE_BOOTSTRAP": "127.0.0.1:1", "LAPSE_PARTITIONS": str(PARTITIONS)})
        self.names = TopicNames(self.settings)
        self.sealer = Sealer(b"steps-test-internal-key-0123456789")
        self.engine = Engine(loads_policy(POLICY))
        owned = set(range(PARTITIONS)) if owned is None else owned
        self.steps = Steps(self.engine, self.sealer, self.names,
                           partition_of=self.partition_of, join_partition_of=self.partition_of,
                           owns_user=lambda u: self.partition_of(u) in owned,
                           owns_join_key=lambda k: self.partition_of(k) in owned,
                           raw_format={self.settings.topic("raw.okta"): "okta",
                                       self.settings.topic("raw.suricata"): "suricata"},
                           max_skew_s=300, max_event_age_s=86400, max_record_bytes=1 << 20)
        self.join_table: dict[str, dict] = {}
        self.offset = 0

    @staticmethod
    def partition_of(key: str) -> int:
        return partition_for(key.encode(), PARTITIONS)

    def msg(self, topic: str, value: dict | bytes, key: str, partition: int | None = None) -> Msg:
        self.offset += 1
        raw = value if isinstance(value, bytes) else orjson.dumps(value)
        return Msg(self.settings.topic(topic), self.partition_of(key) if partition is None else partition,
                   self.offset, key.encode(), raw, T0)

    def login(self, user: str, session: str, ts: float = T0, ip: str = IP) -> Msg:
        return self.msg("identity", {"type": "login", "ts": ts, "user": user, "session": session, "ip": ip}, user)

    def apply_join(self, step) -> None:
        for key, entry in (step.join_state or {}).items():
            if entry is None:
                self.join_table.pop(key, None)
            else:
                self.join_table[key] = entry

    def by_topic(self, step) -> dict[str, list]:
        out: dict[str, list] = {}
        for topic, key, value, _ in step.records:
            out.setdefault(topic[len(self.settings.topic("")):], []).append((key, value))
        return out


def decisions(step) -> list[tuple[str, str, str]]:
    return [(o.value["action"], o.value["reason"], o.value["session"]) for o in step.outputs if o.kind == "decision"]


def test_a_login_starts_a_session_and_tells_the_join_who_uses_the_address():
    h = Harness()
    step = h.steps.decide_users([h.login("ann", "s1")], T0)
    assert [(o.kind, o.value["kind"]) for o in step.outputs] == [("audit", "session_start")]
    assert step.touched == ["ann"]
    assert set(h.by_topic(step)) == {"sightings"}
    keys = sorted(k.decode() for k, _ in h.by_topic(step)["sightings"])
    assert keys == sorted([IP, "session:s1"])
    assert step.dead_letters == 0 and step.tally.events_in == {(h.settings.topic("identity"), "login"): 1}


def test_a_hostile_record_goes_to_dead_letters_and_its_neighbours_are_decided_as_without_it():
    h = Harness()
    bad = h.msg("identity", b'{"type": "login", "ts": "never", "user": 7}', "ann")
    step = h.steps.decide_users([h.login("ann", "s1"), bad, h.login("bob", "s2")], T0)
    assert [o.value["session"] for o in step.outputs] == ["s1", "s2"]
    assert step.dead_letters == 1
    (dl_key, dl), = h.by_topic(step)["dead-letters"]
    record = orjson.loads(dl)
    assert record["offset"] == bad.offset and record["stage"] == "ingest" and record["reason"]
    assert sum(step.tally.invalid.values()) == 1


def test_an_event_far_outside_the_window_around_now_is_refused_with_the_field_at_fault():
    h = Harness()
    future = h.login("ann", "s1", ts=T0 + 3600)
    step = h.steps.decide_users([future], T0)
    assert step.outputs == [] and step.touched == []
    record = orjson.loads(h.by_topic(step)["dead-letters"][0][1])
    assert record["field"] == "ts" and "ahead" in record["reason"]
    assert step.tally.invalid == {(h.settings.topic("identity"), "ts"): 1}  # lapse_invalid_events' labels


def test_an_event_on_another_users_partition_is_forwarded_sealed_and_not_decided():
    h = Harness()
    wrong = (h.partition_of("ann") + 1) % PARTITIONS
    msg = h.login("ann", "s1")
    msg.partition = wrong
    step = h.steps.decide_users([msg], T0)
    assert step.outputs == [] and step.touched == [] and step.tally.forwarded == 1
    (key, value), = h.by_topic(step)["user-requests"]
    assert key == b"ann"
    assert h.sealer.open(h.names.user_requests, key, value) == msg.value
    assert "ann" not in h.engine.store


def test_a_user_request_not_sealed_by_a_worker_is_refused_audited_and_dead_lettered():
    h = Harness()
    h.steps.decide_users([h.login("ann", "s1")], T0)
    forged = h.msg("user-requests", {"kind": "target", "user": "ann", "session": "s1",
                                     "alert": {"type": "alert", "ts": T0, "severity": "critical", "src_ip": IP}}, "ann")
    step = h.steps.decide_users([forged], T0 + 1)
    assert decisions(step) == []
    assert [o.value["kind"] for o in step.outputs] == ["forged_record"]
    assert step.tally.forged and step.dead_letters == 1
    assert h.engine.live == 1  # ann's session still stands


def test_a_record_whose_decision_raises_is_dead_lettered_with_the_exception_and_the_rest_decided(monkeypatch):
    h = Harness()
    handle = h.engine.handle

    def handle_or_fail(event, now):
        if event.user == "mallory":
            raise RuntimeError("engine bug")
        return handle(event, now)

    monkeypatch.setattr(h.engine, "handle", handle_or_fail)
    step = h.steps.decide_users([h.login("mallory", "m1"), h.login("bob", "s2")], T0)
    assert [o.value["session"] for o in step.outputs] == ["s2"]
    record = orjson.loads(h.by_topic(step)["dead-letters"][0][1])
    assert record["error"] == "RuntimeError" and record["stage"] == "decide"
    assert step.tally.faults == {"decide": 1}
    assert step.tally.invalid == {(h.settings.topic("identity"), "fault"): 1}


def test_an_alert_on_an_address_in_use_revokes_the_session_that_used_it():
    h = Harness()
    users = h.steps.decide_users([h.login("ann", "s1")], T0)
    sightings = [h.msg("sightings", h.sealer.open(h.names.sightings, k, v), k.decode())
                 for k, v in h.by_topic(users)["sightings"]]
    for m in sightings:  # as a worker wrote them
        m.value = h.sealer.seal(m.topic, m.key, m.value)
    join = h.steps.decide_join(h.join_table, sightings, T0 + 1)
    assert join.outputs == [] and join.records == []
    h.apply_join(join)
    assert IP in h.join_table
    alert = h.msg("ids-alerts", {"type": "alert", "ts": T0 + 10, "severity": "critical", "src_ip": IP}, IP)
    step = h.steps.decide_join(h.join_table, [alert], T0 + 10)
    assert decisions(step) == [("revoke", "ids_alert", "s1")]
    assert step.touched == ["ann"] and step.dead_letters == 0
    assert set(h.by_topic(step)) == set()


def test_a_sighting_of_a_key_held_here_is_applied_in_the_step_and_only_other_workers_keys_travel():
    session_key = "session:s1"
    user = next(u for u in (f"user-{i}" for i in range(200))
                if Harness.partition_of(session_key) not in {Harness.partition_of(u), Harness.partition_of(IP)})
    h = Harness({Harness.partition_of(user), Harness.partition_of(IP)})  # the session's key is elsewhere
    step = h.steps.decide_users([h.login(user, "s1")], T0, join_data=h.join_table)
    assert step.join_state == {IP: {"s": [[user, "s1", T0]]}}
    assert h.join_table == {}  # read only: the shell applies the step's join_state
    (key, value), = h.by_topic(step)["sightings"]
    assert key == session_key.encode()
    assert orjson.loads(h.sealer.open(h.names.sightings, key, value)) == {
        "kind": "sighting", "user": user, "session": "s1", "ts": T0}
    # the record names the key's partition: the worker that holds it reads it there
    assert [p for t, _, _, p in step.records if t == h.names.sightings] == [Harness.partition_of(session_key)]


def test_the_joins_table_is_the_same_whether_its_sightings_are_applied_in_the_step_or_travel():
    events = [("ann", "s1", T0, IP), ("bob", "s2", T0 + 5, IP), ("ann", "s1", T0 + 400, "203.0.113.8"),
              ("cy", "s3", T0 + 401, IP), ("ann", "s1", T0 + 900, IP)]
    local, travelled = Harness(), Harness()
    for user, session, ts, ip in events:
        step = local.steps.decide_users([local.login(user, session, ts, ip)], ts, join_data=local.join_table)
        assert local.by_topic(step).get("sightings") is None
        local.apply_join(step)
        step = travelled.steps.decide_users([travelled.login(user, session, ts, ip)], ts)
        msgs = [travelled.msg("sightings", v, k.decode()) for k, v in travelled.by_topic(step)["sightings"]]
        travelled.apply_join(travelled.steps.decide_join(travelled.join_table, msgs, ts))
    assert local.join_table == travelled.join_table
    assert set(local.join_table) == {IP, "203.0.113.8", "session:s1", "session:s2", "session:s3"}


def test_an_alert_waiting_in_the_join_revokes_a_session_in_the_step_that_first_sees_it():
    h = Harness()
    alert = h.msg("ids-alerts", {"type": "alert", "ts": T0, "severity": "critical", "src_ip": IP}, IP)
    waiting = h.steps.decide_join(h.join_table, [alert], T0)
    assert decisions(waiting) == []  # nobody used the address yet: the alert waits for sightings
    h.apply_join(waiting)
    # the session was on the address before the alert; its event arrives after it
    step = h.steps.decide_users([h.login("ann", "s1", ts=T0 - 30)], T0 + 1, join_data=h.join_table)
    assert decisions(step) == [("revoke", "ids_alert", "s1")]
    assert "sightings" not in h.by_topic(step) and step.touched == ["ann", "ann"]
    h.apply_join(step)
    # within the alert's grace (the join's clock): a new session on the address meets it too; the
    # revoked one, seen again a refresh interval later (event time), is told to the join again
    now = T0 + 100
    again = h.steps.decide_users([h.login("ann", "s9", ts=now), h.msg("activity", {
        "type": "activity", "ts": T0 - 30 + refresh_s(3600), "user": "ann", "session": "s1", "ip": IP}, "ann")],
        now, join_data=h.join_table)
    assert ("revoke", "ids_alert", "s9") in decisions(again)
    assert {s for _, s, _ in again.join_state[IP]["s"]} == {"s1", "s9"}
    assert max(ts for _, s, ts in again.join_state[IP]["s"] if s == "s1") == T0 - 30 + refresh_s(3600)


def test_a_sighting_the_join_cannot_take_is_dead_lettered_and_the_users_decision_stands(monkeypatch):
    h = Harness()

    def broken(*args, **kwargs):
        raise RuntimeError("join down")

    monkeypatch.setattr(h.steps.join, "sighting", broken)
    step = h.steps.decide_users([h.login("ann", "s1"), h.login("bob", "s2", ip="203.0.113.8")], T0,
                                join_data=h.join_table)
    assert [(o.value["kind"], o.value["session"]) for o in step.outputs] == [
        ("session_start", "s1"), ("session_start", "s2")]
    assert h.engine.store["ann"].sessions["s1"].ended is None  # not repaired away: its state is sound
    letters = [orjson.loads(v) for _, v in h.by_topic(step)["dead-letters"]]
    assert [(x["stage"], x["error"]) for x in letters] == [("ids-join", "RuntimeError")] * 2
    assert step.tally.faults == {"ids-join": 2} and not step.join_state


def test_an_alert_implicating_a_user_of_another_worker_goes_to_that_users_partition():
    user = next(u for u in (f"user-{i}" for i in range(100)) if Harness.partition_of(u) != Harness.partition_of(IP))
    h = Harness({Harness.partition_of(IP)})  # the join key is held here; the user is not
    h.join_table[IP] = {"s": [[user, "s1", T0]]}
    alert = h.msg("ids-alerts", {"type": "alert", "ts": T0 + 10, "severity": "critical", "src_ip": IP}, IP)
    step = h.steps.decide_join(h.join_table, [alert], T0 + 10)
    assert decisions(step) == [] and step.touched == []
    (key, value), = h.by_topic(step)["user-requests"]
    env = orjson.loads(h.sealer.open(h.names.user_requests, key, value))
    assert (key, env["kind"], env["user"], env["session"]) == (user.encode(), "target", user, "s1")


def test_vendor_records_become_canonical_events_or_are_skipped_or_dead_lettered():
    h = Harness()
    okta = h.msg("raw.okta", okta_session_start(T0), "x")
    dns = h.msg("raw.suricata", eve_dns(T0), "x")
    alert = h.msg("raw.suricata", eve_alert(T0), "x")
    junk = h.msg("raw.okta", b"{not json", "x")
    step = h.steps.adapt_raw([okta, dns, alert, junk], T0)
    out = h.by_topic(step)
    assert [orjson.loads(v)["type"] for _, v in out["identity"]] == ["login"]
    assert [k for k, _ in out["ids-alerts"]] == [b"192.0.2.77"]
    assert len(out["dead-letters"]) == 1 and orjson.loads(out["dead-letters"][0][1])["stage"] == "adapter"
    assert sum(step.tally.skipped.values()) == 1
    assert set(out) == {"identity", "ids-alerts", "dead-letters"} and step.outputs == []


def test_the_tick_ends_idle_sessions_and_lets_go_of_join_keys_nothing_can_meet():
    h = Harness()
    h.steps.decide_users([h.login("ann", "s1")], T0)
    h.join_table[IP] = {"s": [["ann", "s1", T0]]}
    early = h.steps.tick(h.join_table, T0 + 29 * 60, expire=True)
    assert decisions(early) == []
    late = h.steps.tick(h.join_table, T0 + 2 * 3600, expire=True)
    assert decisions(late) == [("revoke", "idle_timeout", "s1")]
    assert late.join_state == {IP: None}
    held = h.steps.tick(h.join_table, T0 + 2 * 3600, expire=False)  # not caught up: no deadline fires
    assert decisions(held) == []


@pytest.mark.parametrize("now", [T0, T0 + 7])
def test_a_step_depends_only_on_its_messages_and_now(now):
    results = []
    for _ in range(2):
        h = Harness()
        msgs = [h.login("ann", "s1"), h.msg("identity", {"type": "logout", "ts": T0 + 5, "user": "ann",
                                                         "session": "s1"}, "ann")]
        step = h.steps.decide_users(msgs, now)
        # a seal carries its own time and nonce: compare what it seals
        records = [(t, k, h.sealer.open(t, k, v)) for t, k, v, _ in step.records]
        results.append(([o.value for o in step.outputs], records, step.touched))
    assert results[0] == results[1]
    assert results[0][0] and results[0][1]
