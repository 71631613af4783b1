"""Per-user state stays bounded whatever one user (or someone writing under their name) sends,
and ended sessions are remembered long enough that no enforcement point can outlive the memory."""

from __future__ import annotations

import orjson

from engine_harness import T0, Driver, audits, decisions

BASIC = '[defaults]\nidle = "30m"\nabsolute = "12h"'


def test_an_ended_session_is_remembered_for_at_least_the_longest_absolute_limit():
    d = Driver('[defaults]\nidle = "30m"\nabsolute = "30d"')
    assert d.engine.remember_s >= 30 * 86400


def test_traffic_on_a_session_revoked_days_ago_is_an_enforcement_gap_with_its_revocation_issued_again():
    d = Driver(BASIC)
    d.send("login", 0, user="u1", session="s1")
    first = decisions(d.advance(1800))
    assert first == [("revoke", "idle_timeout", "s1", 1800.0)]
    d.advance(20 * 3600 - 10)  # long past the one-hour tombstone, within remember_s (a day here)
    assert not d.engine.store["u1"].sessions
    outs = d.send("activity", 20 * 3600, user="u1", session="s1")
    assert decisions(outs) == [("revoke", "idle_timeout", "s1", 1800.0)]
    assert audits(outs) == [("enforcement_gap", "s1")]
    again = d.send("activity", 20 * 3600 + 5, user="u1", session="s1")
    assert [o.value["id"] for o in again if o.kind == "decision"] == [o.value["id"] for o in outs if o.kind == "decision"]


def test_a_late_event_from_before_a_remembered_end_is_ignored():
    d = Driver(BASIC)
    d.send("login", 0, user="u1", session="s1")
    d.advance(1800)
    d.advance(3 * 3600)
    assert d.engine.handle(__import__("streams.engine", fromlist=["parse_event"]).parse_event(
        {"type": "activity", "ts": T0 + 100, "user": "u1", "session": "s1"}), d.now) == []


def test_remembered_ends_are_forgotten_after_remember_s_and_the_user_leaves_the_store():
    d = Driver(BASIC)
    d.send("login", 0, user="u1", session="s1")
    d.advance(1800)
    d.advance(1800 + 3600 + 1)
    assert d.engine.store["u1"].remembered("s1") is not None
    d.advance(1800 + d.engine.remember_s + 1)
    assert "u1" not in d.engine.store


def test_compact_memory_per_user_is_capped_and_forgetting_is_audited():
    from streams.engine import Engine, loads_policy, parse_event

    eng = Engine(loads_policy(BASIC), max_sessions=1000, max_ended=2, max_remembered=5)
    outs = []
    for i in range(10):
        outs += eng.handle(parse_event({"type": "login", "ts": T0 + i, "user": "u", "session": f"s{i}"}), T0 + i)
        outs += eng.handle(parse_event({"type": "logout", "ts": T0 + i, "user": "u", "session": f"s{i}"}), T0 + i)
    us = eng.store["u"]
    assert len([s for s in us.sessions.values() if s.ended is not None]) == 2 and len(us.ended) == 5
    assert eng.counts["forgotten"] == 3
    assert sum(o.value["detail"]["forgotten"] for o in outs if o.kind == "audit" and o.value["kind"] == "ended_sessions_forgotten") == 3


def test_shrink_fits_a_user_into_the_record_limit_without_dropping_a_live_session():
    from streams.engine import Engine, loads_policy, parse_event

    eng = Engine(loads_policy(BASIC), max_sessions=1000, max_ended=1000, max_remembered=100_000)
    for i in range(3000):
        eng.handle(parse_event({"type": "login", "ts": T0 + i, "user": "u", "session": f"s{i}-{'y' * 60}"}), T0 + i)
        if i >= 10:
            eng.handle(parse_event({"type": "logout", "ts": T0 + i, "user": "u", "session": f"s{i}-{'y' * 60}"}), T0 + i)
    us = eng.store["u"]
    assert len(us.to_json()) > 200_000
    value = eng.shrink("u", us, 100_000)
    assert len(value) <= 100_000
    back = orjson.loads(value)
    assert sum(1 for row in back["sessions"].values() if row[22] is None) == 10  # the live ones, all kept


def test_bad_engine_configuration_fails_fast_with_a_named_message():
    import pytest

    from streams.engine import Engine, loads_policy

    with pytest.raises(ValueError, match="max_sessions"):
        Engine(loads_policy(BASIC), max_sessions=0)


def test_a_user_wide_manual_revoke_read_again_later_never_ends_sessions_started_after_it():
    d = Driver(BASIC)
    d.send("login", 0, user="u1", session="old")
    first = d.engine.manual_revoke("u1", None, "ann", "lost laptop", T0 + 10, T0 + 10, request_id="r1")
    assert decisions(first) == [("revoke", "manual", "old", 10.0)]
    d.send("login", 100, user="u1", session="new")
    again = d.engine.manual_revoke("u1", None, "ann", "lost laptop", T0 + 10, T0 + 200, request_id="r1")
    assert decisions(again) == []
