"""The worker's IDS join (streams/engine/join.py, driven by the worker's steps in-process through
tests/support/driver.py): it decides what ``lapse replay`` decides, in either arrival order, and
lets go of keys nothing can meet any more."""

from __future__ import annotations

from streams.engine import Replay, loads_policy, parse_event
from streams.engine.join import ALERT_GRACE_S, refresh_s
from tests.support.driver import T0, ServiceDriver

POLICY = '[defaults]\nidle = "1d"\nabsolute = "30d"\n[ids]\nrevoke = ["critical"]\nlookback = "1h"\n'
IP = "198.51.100.7"


def replay_ids(events: list[dict]) -> list[str]:
    r = Replay(loads_policy(POLICY))
    out = []
    for e in events:
        out += [o.value["id"] for o in r.feed(parse_event(e)) if o.kind == "decision"]
    return sorted(out)


async def test_an_alert_that_arrives_before_the_sightings_it_concerns_decides_what_replay_decides(tmp_path):
    d = ServiceDriver(tmp_path, POLICY)
    events = [
        {"type": "login", "ts": T0, "user": "ann", "session": "s1", "ip": IP},
        {"type": "alert", "ts": T0 + 30, "severity": "critical", "src_ip": IP},
        # seen on the flagged IP before the alert, arriving after it (another path, slower)
        {"type": "login", "ts": T0 + 20, "user": "bob", "session": "s2", "ip": IP},
        {"type": "login", "ts": T0 + 25, "user": "cy", "session": "s3", "ip": "203.0.113.5"},
    ]
    for e in events:
        d.now = max(d.now, e["ts"])
        if e["type"] == "alert":
            d.pipe("ids-alerts", e, IP)
        else:
            d.pipe("identity", e, e["user"])
    got = d.decisions()
    assert sorted((x["reason"], x["session"]) for x in got) == [("ids_alert", "s1"), ("ids_alert", "s2")]
    assert sorted(x["id"] for x in got) == replay_ids(events)


async def test_join_keys_nothing_can_meet_any_more_leave_the_table_with_a_tombstone(tmp_path):
    d = ServiceDriver(tmp_path, POLICY)
    d.pipe("identity", {"type": "login", "ts": T0, "user": "ann", "session": "s1", "ip": IP}, "ann")
    await d.advance(1)
    assert {IP, "session:s1"} <= set(d.service._sightings_data)
    await d.advance(3600 + refresh_s(3600) + ALERT_GRACE_S)
    changelog = d.service._sightings_changelog_name
    tombstones = {k.decode() for t, k, v, _ in d.changelog() if t == changelog and v is None}
    assert tombstones == {IP, "session:s1"}
    assert not {IP, "session:s1"} & set(d.service._sightings_data)
    # an alert on the IP now meets nobody: the session was idle for longer than the lookback
    d.pipe("ids-alerts", {"type": "alert", "ts": d.now, "severity": "critical", "src_ip": IP}, IP)
    assert d.decisions() == []


async def test_a_busy_session_stays_in_the_join_and_is_revoked_by_an_alert_hours_later(tmp_path):
    d = ServiceDriver(tmp_path, POLICY)
    d.pipe("identity", {"type": "login", "ts": T0, "user": "ann", "session": "s1", "ip": IP}, "ann")
    for _ in range(3 * 3600 // 60):
        await d.advance(60)
        d.pipe("activity", {"type": "activity", "ts": d.now, "user": "ann", "session": "s1", "ip": IP,
                            "action": "GET /"}, "ann")
    # both keys are held here: the join was told in the user's own steps, nothing went on the topic
    assert [k for t, k, v, _ in d.service.sender.records if t == d.topic("sightings")] == []
    for key in (IP, "session:s1"):  # refreshed all along, not only at login
        (user, session, ts), = d.service._sightings_data[key]["s"]
        assert (user, session) == ("ann", "s1") and d.now - ts <= refresh_s(3600)
    d.pipe("ids-alerts", {"type": "alert", "ts": d.now, "severity": "critical", "src_ip": IP}, IP)
    assert [(x["reason"], x["session"]) for x in d.decisions()] == [("ids_alert", "s1")]
