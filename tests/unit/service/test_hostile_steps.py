"""The worker's decision steps on hostile records, in-process (tests/support/driver.py): a record
that cannot be decided goes to dead letters with its reason, and never stops a step, poisons state
or hides another record."""

from __future__ import annotations

import orjson
import pytest

from streams.engine import parse_ts
from tests.support.driver import T0, ServiceDriver

POLICY = '[defaults]\nidle = "30m"\nabsolute = "12h"\n[ids]\nrevoke = ["critical"]\n'


def login(user: str, session: str, at: float = 0.0, **kw: object) -> dict:
    return {"type": "login", "ts": T0 + at, "user": user, "session": session, **kw}


def activity(user: str, session: str, at: float = 0.0, **kw: object) -> dict:
    return {"type": "activity", "ts": T0 + at, "user": user, "session": session, "action": "GET /", **kw}


@pytest.fixture
def d(tmp_path):
    return ServiceDriver(tmp_path, POLICY)


async def test_an_activity_record_with_an_absurd_ts_is_dead_lettered_and_the_session_still_times_out(d):
    d.pipe("identity", login("ann", "s1"), "ann")
    d.pipe("activity", {"type": "activity", "ts": -1e12, "user": "ann", "session": "s1", "action": "GET /"}, "ann")
    assert [dl["field"] for dl in d.dead_letters()] == ["ts"]
    await d.advance(1800)
    assert [(x["reason"], x["session"]) for x in d.decisions()] == [("idle_timeout", "s1")]
    assert parse_ts(d.decisions()[0]["at"]) == T0 + 1800


async def test_a_login_in_year_one_is_dead_lettered_with_the_ts_field(d):
    d.pipe("identity", login("ann", "s1", ts="0001-01-01T00:00:00+01:00") | {"ts": "0001-01-01T00:00:00+01:00"}, "ann")
    (dl,) = d.dead_letters()
    assert dl["field"] == "ts" and dl["stage"] == "ingest"
    assert d.decisions() == [] and len(d.engine.store) == 0


async def test_a_deeply_nested_alert_is_dead_lettered_and_the_next_alert_still_revokes(d):
    d.pipe("identity", login("ann", "s1", ip="203.0.113.9"), "ann")
    good = {"type": "alert", "ts": T0 + 6, "severity": "critical", "src_ip": "203.0.113.9", "signature": "C2"}
    d.pipe_batch([("ids-alerts", _deep_bytes(300), "203.0.113.9", None),
                  ("ids-alerts", good, "203.0.113.9", None)])
    assert len(d.dead_letters()) == 1
    assert [(x["reason"], x["session"]) for x in d.decisions()] == [("ids_alert", "s1")]


def _deep_bytes(depth: int) -> bytes:
    """An alert whose ``extra`` nests ``depth`` objects deep (orjson cannot write it back)."""
    return (b'{"type":"alert","ts":%d,"severity":"critical","src_ip":"203.0.113.9","extra":' % int(T0 + 5)
            + b'{"a":' * depth + b'1' + b'}' * depth + b'}')


async def test_a_record_whose_decision_raises_is_dead_lettered_with_the_exception_and_its_neighbours_decided(d, monkeypatch):
    d.pipe("identity", login("ann", "s1"), "ann")
    d.pipe("identity", login("bob", "s2"), "bob")
    engine = d.engine
    real = engine.handle

    def handle(ev, now):
        if ev.user == "ann" and ev.type == "user_disabled":
            engine.store["ann"].sessions["s1"].last_active = float("nan")  # a bug leaves bad state, then raises
            raise ZeroDivisionError("bug")
        return real(ev, now)

    monkeypatch.setattr(engine, "handle", handle)
    d.pipe_batch([("identity", {"type": "user_disabled", "ts": T0 + 1, "user": "ann"}, "ann", None),
                  ("identity", {"type": "user_disabled", "ts": T0 + 1, "user": "bob"}, "bob", None)])
    (dl,) = d.dead_letters()
    assert dl["error"] == "ZeroDivisionError" and dl["stage"] == "decide"
    assert orjson.loads(__import__("base64").b64decode(dl["raw_b64"]))["user"] == "ann"
    # bob decided as without ann's record; ann's session, whose state the fault broke, fails closed
    assert sorted((x["reason"], x["session"]) for x in d.decisions()) == [("account_event", "s2"),
                                                                           ("engine_fault", "s1")]
    await d.advance(7200)  # nothing left that cannot be formatted or serialised
    assert all(x["reason"] != "idle_timeout" for x in d.decisions())
    assert all(orjson.loads(v) is not None for _, _, v, _ in d.changelog() if v)


async def test_a_deadline_that_raises_is_dead_lettered_and_the_other_deadlines_still_fire(d, monkeypatch):
    for i in range(3):
        d.pipe("identity", login(f"u{i}", f"s{i}"), f"u{i}")
    engine = d.engine
    real = engine._due

    def due(s, us, at, now, outs):
        if s.session == "s1":
            raise RuntimeError("bug in a deadline")
        return real(s, us, at, now, outs)

    monkeypatch.setattr(engine, "_due", due)
    await d.advance(1800)
    assert sorted((x["reason"], x["session"]) for x in d.decisions()) == [
        ("engine_fault", "s1"), ("idle_timeout", "s0"), ("idle_timeout", "s2")]
    assert [dl["stage"] for dl in d.dead_letters()] == ["expiry"]


async def test_an_unknown_sightings_record_is_dead_lettered_not_silently_dropped(d):
    d.pipe("sightings", {"kind": "sighting", "user": 5, "session": None, "ts": "x"}, "203.0.113.9")
    d.pipe("sightings", b"\xff not json", "203.0.113.9")
    assert [dl["stage"] for dl in d.dead_letters()] == ["ids-join", "ids-join"]


async def test_an_alert_on_an_ipv4_mapped_address_revokes_the_session_seen_on_the_ipv4_address(d):
    d.pipe("identity", login("ann", "s1", ip="203.0.113.9"), "ann")
    d.pipe("ids-alerts", {"type": "alert", "ts": T0 + 5, "severity": "critical", "src_ip": "::ffff:203.0.113.9"},
           "::ffff:203.0.113.9")
    assert [(x["reason"], x["session"]) for x in d.decisions()] == [("ids_alert", "s1")]


async def test_an_alert_naming_a_network_is_dead_lettered_with_the_reason(d):
    d.pipe("ids-alerts", {"type": "alert", "ts": T0 + 5, "severity": "critical", "src_ip": "203.0.113.0/24"},
           "203.0.113.0/24")
    (dl,) = d.dead_letters()
    assert dl["field"] == "src_ip" and "203.0.113.0/24" in dl["reason"]


async def test_throwaway_sessions_on_an_ip_never_evict_the_hijacked_session_from_the_ids_join(tmp_path):
    d = ServiceDriver(tmp_path, POLICY, max_sessions=10_000)
    d.pipe("identity", login("victim", "hijacked", ip="198.51.100.7"), "victim")
    d.pipe_batch([("identity", login(f"x{i}", f"throwaway{i}", at=1 + i * 0.001, ip="198.51.100.7"), f"x{i}", None)
                  for i in range(1500)])
    d.pipe("ids-alerts", {"type": "alert", "ts": T0 + 10, "severity": "critical", "src_ip": "198.51.100.7"},
           "198.51.100.7")
    revoked = {x["session"] for x in d.decisions() if x["reason"] == "ids_alert"}
    assert "hijacked" in revoked and len(revoked) == 1501


async def test_sessions_beyond_the_per_user_cap_are_revoked_as_they_start_and_the_others_stay(tmp_path):
    d = ServiceDriver(tmp_path, POLICY, max_sessions=5)
    d.pipe_batch([("identity", login("ann", f"s{i}", at=i), "ann", None) for i in range(8)])
    assert [(x["reason"], x["session"]) for x in d.decisions()] == [("session_limit", f"s{i}") for i in (5, 6, 7)]
    assert [a["session"] for a in d.audits("session_end")] == ["s5", "s6", "s7"]
    assert sum(1 for s in d.engine.store["ann"].sessions.values() if s.ended is None) == 5


async def test_a_user_opening_eleven_thousand_sessions_never_writes_a_changelog_record_the_broker_refuses(tmp_path):
    d = ServiceDriver(tmp_path, POLICY)
    d.pipe_batch([("identity", login("ann", f"session-{i:06d}-{'x' * 40}", at=i * 0.01), "ann", None)
                  for i in range(11_000)])
    sizes = [len(value) for _, key, value, _ in d.changelog() if key == b"ann"]
    assert sizes and max(sizes) <= d.service.settings.max_record_bytes
    assert sum(1 for s in d.engine.store["ann"].sessions.values() if s.ended is None) == 100


async def test_a_revoked_session_is_never_adopted_again_after_its_tombstone(d):
    d.pipe("identity", login("ann", "s1"), "ann")
    d.pipe("identity", {"type": "user_disabled", "ts": T0 + 10, "user": "ann"}, "ann")
    await d.advance(3 * 3600)  # past the one-hour tombstone
    assert not d.engine.store["ann"].sessions  # compact memory only
    before = len(d.decisions())
    d.pipe("activity", activity("ann", "s1", at=3 * 3600 + 1), "ann")
    again = d.decisions()[before:]
    assert [(x["reason"], x["session"]) for x in again] == [("account_event", "s1")]
    assert [a["session"] for a in d.audits("enforcement_gap")] == ["s1"]
    assert not d.engine.store["ann"].sessions and d.audits("session_start")[-1]["session"] == "s1"
    assert len(d.audits("session_start")) == 1


async def test_metric_labels_never_take_values_from_input_text(d):
    for i in range(200):
        d.pipe("identity", {"type": f"bogus-{i}", "ts": T0, "user": "ann"}, "ann")
    exposition = d.service.metrics.exposition().decode()
    assert "bogus" not in exposition
    assert len(d.dead_letters()) == 200


async def test_a_forged_sighting_cannot_point_an_ids_alert_at_a_victim(d):
    d.pipe("identity", login("victim", "s1", ip="10.9.9.9"), "victim")
    d.pipe("sightings", {"kind": "sighting", "user": "victim", "session": "s1", "ts": T0 + 1}, "198.51.100.66")
    d.pipe("ids-alerts", {"type": "alert", "ts": T0 + 5, "severity": "critical", "src_ip": "198.51.100.66"},
           "198.51.100.66")
    assert d.decisions() == []
    (dl,) = d.dead_letters()
    assert dl["field"] == "seal" and "unsealed" in dl["reason"]
    assert [a["kind"] for a in d.audits("forged_record")] == ["forged_record"]


def test_one_rfc3339_reader_a_time_without_a_zone_is_refused_everywhere():
    import pytest

    from models.features import _ts
    from streams.engine import InvalidEvent
    from streams.publish.set import InvalidDecision, epoch_seconds
    from streams.service.web.admin import parse_time

    assert _ts("2026-01-01T00:00:00Z") == parse_time("2026-01-01T00:00:00Z") == epoch_seconds("2026-01-01T00:00:00Z")
    with pytest.raises(InvalidEvent):
        _ts("2026-01-01T00:00:00")
    with pytest.raises(ValueError, match="zone"):
        parse_time("2026-01-01T00:00:00")
    with pytest.raises(InvalidDecision):
        epoch_seconds("2026-01-01T00:00:00")


async def test_an_alert_that_waited_for_sightings_decides_each_session_once(tmp_path):
    d = ServiceDriver(tmp_path, POLICY + 'step_up = ["medium"]\n')
    d.pipe("identity", login("ann", "s1"), "ann")  # no ip: no sighting on the address yet
    ip = "198.51.100.44"
    d.pipe("ids-alerts", {"type": "alert", "ts": T0 + 100, "severity": "medium", "src_ip": ip}, ip)
    assert d.decisions() == []  # waits for sightings of uses before it
    topic = d.topic("sightings")
    for ts in (T0 + 10, T0 + 20):  # the same session seen twice before the alert
        body = orjson.dumps({"kind": "sighting", "user": "ann", "session": "s1", "ts": ts})
        d.pipe("sightings", d.service.sealer.seal(topic, ip.encode(), body), ip)
    assert [(x["action"], x["session"]) for x in d.decisions()] == [("step_up", "s1")]
