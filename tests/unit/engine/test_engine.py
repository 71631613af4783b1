from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.engine import Replay, SessionState, UserState, loads_policy, parse_event
from streams.engine.decisions import stable_id

from engine_harness import T0, Driver, audits, decisions

BASIC = '[defaults]\nidle = "30m"\nabsolute = "12h"\n[ids]\nrevoke = ["critical", "high"]\nstep_up = ["medium"]\nlookback = "1h"\n'


def test_login_starts_a_session_and_idle_revokes_exactly_at_the_deadline():
    d = Driver(BASIC)
    outs = d.send("login", 0, user="u1", session="s1")
    assert audits(outs) == [("session_start", "s1")] and decisions(outs) == []
    assert d.advance(1799.999) == []
    outs = d.advance(1800)
    assert decisions(outs) == [("revoke", "idle_timeout", "s1", 1800.0)]
    assert audits(outs) == [("session_end", "s1")]
    assert outs[0].value["at"] == "2026-01-01T00:30:00Z" and outs[0].key == "s1"
    assert outs[0].value["policy"] == ["defaults"] and outs[0].value["evidence"]["rule"] == "defaults"
    assert d.advance(100000) == []  # nothing extra, ever (the tombstone purge is silent)


def test_late_clock_jump_reports_the_deadline_not_the_clock():
    d = Driver(BASIC)
    d.send("login", 0, user="u1", session="s1")
    assert decisions(d.advance(9999)) == [("revoke", "idle_timeout", "s1", 1800.0)]


def test_activity_extends_idle_but_an_older_event_never_moves_it_back():
    d = Driver(BASIC)
    d.send("login", 0, user="u1", session="s1")
    assert d.send("activity", 1000, user="u1", session="s1") == []
    d.now = T0 + 1000
    assert d.engine.handle(parse_event({"type": "activity", "ts": T0 + 10, "user": "u1", "session": "s1"}), d.now) == []
    assert d.advance(2799) == []
    assert decisions(d.advance(2800)) == [("revoke", "idle_timeout", "s1", 2800.0)]


def test_absolute_deadline_counts_from_login_and_reauth_resets_it():
    d = Driver('[defaults]\nidle = "1h"\nabsolute = "2h"')
    d.send("login", 0, user="u1", session="s1")
    for t in range(1800, 7200, 1800):
        d.send("activity", t, user="u1", session="s1")
    outs = d.send("reauth", 6000, user="u1", session="s1")
    assert audits(outs) == [("session_refresh", "s1")]
    for t in range(7200, 13200, 1800):
        assert decisions(d.send("activity", t, user="u1", session="s1")) == []
    assert decisions(d.advance(13200)) == [("revoke", "absolute_timeout", "s1", 13200.0)]


def test_activity_adopts_an_unknown_session_with_absolute_from_its_first_event():
    d = Driver('[defaults]\nidle = "1h"\nabsolute = "2h"')
    outs = d.send("activity", 100, user="u1", session="sx")
    assert audits(outs) == [("session_start", "sx")] and outs[0].value["detail"]["adopted"] is True
    d.send("activity", 3000, user="u1", session="sx")
    d.send("activity", 6000, user="u1", session="sx")
    assert decisions(d.advance(7300)) == [("revoke", "absolute_timeout", "sx", 7300.0)]


def test_ids_alert_revokes_sessions_seen_on_the_ip_within_lookback_only():
    r = Replay(loads_policy(BASIC))
    feed = lambda **e: r.feed(parse_event(e))  # noqa: E731
    feed(type="login", ts=T0, user="u1", session="old", ip="10.9.9.9")
    feed(type="refresh", ts=T0 + 1000, user="u1", session="old")  # keeps it alive, without the IP
    feed(type="login", ts=T0 + 4000, user="u2", session="new", ip="10.9.9.9")
    feed(type="login", ts=T0 + 4100, user="u3", session="other", ip="10.1.1.1")
    outs = feed(type="alert", ts=T0 + 4700, severity=2, src_ip="10.9.9.9", signature="ET EXPLOIT")
    assert decisions(outs) == [("revoke", "ids_alert", "new", 4700.0)]
    assert outs[0].value["evidence"] == {"severity": "high", "signature": "ET EXPLOIT", "src_ip": "10.9.9.9", "dest_ip": None}


def test_medium_alert_steps_up_and_keeps_the_session_alive():
    d = Driver(BASIC)
    d.send("login", 0, user="u1", session="s1")
    outs = d.send("alert", 60, user="u1", session="s1", severity="medium", src_ip="1.2.3.4")
    assert decisions(outs) == [("step_up", "ids_alert", "s1", 60.0)] and audits(outs) == [("decision", "s1")]
    assert d.engine.store["u1"].sessions["s1"].ended is None
    assert decisions(d.send("alert", 61, user="u1", severity="low", src_ip="1.2.3.4")) == []


def test_alert_for_a_user_revokes_all_their_sessions():
    d = Driver(BASIC)
    d.send("login", 0, user="u1", session="a")
    d.send("login", 1, user="u1", session="b")
    outs = d.send("alert", 60, user="u1", severity="critical")
    assert decisions(outs) == [("revoke", "ids_alert", "a", 60.0), ("revoke", "ids_alert", "b", 60.0)]


def test_account_events_revoke_every_session_of_the_user():
    for kind in ("user_disabled", "credential_change"):
        d = Driver(BASIC)
        d.send("login", 0, user="u1", session="a")
        d.send("login", 1, user="u1", session="b")
        d.send("login", 1, user="u2", session="c")
        assert decisions(d.send(kind, 10, user="u1")) == [("revoke", "account_event", "a", 10.0),
                                                          ("revoke", "account_event", "b", 10.0)]


def test_sso_logout_revokes_linked_sessions_and_plain_logout_is_quiet():
    d = Driver(BASIC)
    d.send("login", 0, user="u1", session="a", sso_session="sso")
    d.send("login", 1, user="u1", session="b", sso_session="sso")
    d.send("login", 2, user="u1", session="c", sso_session="sso")
    d.send("login", 3, user="u1", session="x")
    outs = d.send("logout", 5, user="u1", session="c", sso_session="sso")
    assert decisions(outs) == [] and audits(outs) == [("session_end", "c")]
    outs = d.send("logout", 10, user="u1", sso_session="sso")
    assert decisions(outs) == [("revoke", "sso_logout", "a", 10.0), ("revoke", "sso_logout", "b", 10.0)]


def test_timeout_of_an_sso_linked_session_takes_its_siblings_with_it():
    d = Driver(BASIC)
    d.send("login", 0, user="u1", session="a", sso_session="sso")
    d.send("login", 0, user="u1", session="b", sso_session="sso")
    d.send("activity", 1000, user="u1", session="b")
    outs = d.advance(1800)
    assert decisions(outs) == [("revoke", "idle_timeout", "a", 1800.0), ("revoke", "sso_logout", "b", 1800.0)]
    assert d.advance(5000) == []


def test_activity_on_a_revoked_session_reissues_the_same_decision_with_a_gap_audit():
    d = Driver(BASIC)
    d.send("login", 0, user="u1", session="s1")
    first = [o for o in d.advance(1800) if o.kind == "decision"][0]
    outs = d.send("activity", 1900, user="u1", session="s1", ip="5.5.5.5")
    assert [o.value for o in outs if o.kind == "decision"] == [first.value]
    assert audits(outs) == [("enforcement_gap", "s1")]
    assert outs[1].value["detail"]["decision"] == first.value["id"]
    # after a quiet logout: a gap audit, but no decision to re-issue
    d.send("login", 2000, user="u1", session="s2")
    d.send("logout", 2100, user="u1", session="s2")
    outs = d.send("activity", 2200, user="u1", session="s2")
    assert decisions(outs) == [] and audits(outs) == [("enforcement_gap", "s2")]


def test_ended_sessions_are_purged_after_the_tombstone_so_memory_is_bounded():
    d = Driver(BASIC, tombstone_s=600)
    for i in range(50):
        d.send("login", i, user=f"u{i}", session=f"s{i}")
    d.advance(1900)
    assert len(d.engine.store) == 50
    # after the tombstone an ended session is only a compact record (digest, end, reason) ...
    assert d.advance(1900 + 601) == [] and len(d.engine.deadlines) == 0
    assert all(not us.sessions and len(us.ended) == 1 for us in d.engine.store.values())
    # ... and after remember_s it is gone, and so is the user
    assert d.advance(1900 + d.engine.remember_s) == [] and len(d.engine.store) == 0


def test_tighter_policy_applies_at_once_with_an_audit():
    d = Driver(BASIC)
    d.send("login", 0, user="u1", session="s1")
    d.send("login", 500, user="u2", session="s2")
    d.advance(700)
    outs = d.engine.set_policy(loads_policy('[defaults]\nidle = "10m"\nabsolute = "12h"'), d.now)
    assert decisions(outs) == [("revoke", "idle_timeout", "s1", 700.0)]  # already idle longer: ends now
    assert ("policy_tightened", "s2") in audits(outs)
    assert decisions(d.advance(1100)) == [("revoke", "idle_timeout", "s2", 1100.0)]


def test_store_round_trips_through_json_and_rebuilt_deadlines_fire_the_same():
    d = Driver(BASIC)
    d.send("login", 0, user="u1", session="s1", roles=["admin"], sso_session="x")
    d.send("activity", 600, user="u1", session="s1", ip="10.0.0.1")
    blob = orjson.dumps({u: s.to_dict() for u, s in d.engine.store.items()})
    d2 = Driver(BASIC)
    d2.engine.store.update({u: UserState.from_dict(v) for u, v in orjson.loads(blob).items()})
    d2.engine.rebuild_deadlines()
    a, b = d.advance(5000), d2.advance(5000)
    assert [o.value for o in a] == [o.value for o in b] and decisions(a) == [("revoke", "idle_timeout", "s1", 2400.0)]


@dataclass
class FakeScore:
    value: float
    evidence: dict[str, Any] = field(default_factory=dict)


class FakeScorer:
    """Scores by a field of the event; counts what it saw in the profile."""

    def process(self, event, profile, session_state):
        profile["n"] = profile.get("n", 0) + 1
        v = (event.raw or {}).get("score")
        return None if v is None else FakeScore(v, {"why": "test"})


ADAPTIVE = BASIC + '[adaptive]\nenabled = true\nstep_up_at = 0.9\nrevoke_at = 0.99\nwarmup = 2\nidle_factor = 0.5\n'


def test_scorer_step_up_shortens_idle_and_high_score_revokes_for_anomaly():
    d = Driver(ADAPTIVE, scorer=FakeScorer())
    d.send("login", 0, user="u1", session="s1")
    assert decisions(d.send("activity", 10, user="u1", session="s1", score=0.95)) == []  # warmup
    outs = d.send("activity", 20, user="u1", session="s1", score=0.95)
    assert decisions(outs) == [("step_up", "anomaly", "s1", 20.0)] and outs[0].value["score"] == 0.95
    assert decisions(d.advance(20 + 900)) == [("revoke", "idle_timeout", "s1", 920.0)]  # 30m * 0.5
    d.send("login", 1000, user="u1", session="s2")
    outs = d.send("activity", 1010, user="u1", session="s2", score=0.995)
    assert decisions(outs) == [("revoke", "anomaly", "s2", 1010.0)]
    assert d.engine.store["u1"].profile["n"] == 5


def test_adaptive_disabled_never_calls_the_scorer():
    d = Driver(BASIC, scorer=FakeScorer())
    d.send("login", 0, user="u1", session="s1")
    assert decisions(d.send("activity", 10, user="u1", session="s1", score=1.0)) == []
    assert d.engine.store["u1"].profile == {}


# -- properties ---------------------------------------------------------------------------------

ev_st = st.tuples(st.sampled_from(["activity", "activity", "refresh", "reauth", "login", "logout", "alert",
                                   "user_disabled", "role_change"]),
                  st.integers(0, 8000), st.sampled_from(["u1", "u2"]), st.sampled_from(["a", "b", "c"]),
                  st.sampled_from(["10.0.0.1", "8.8.8.8", None]), st.sampled_from([None, "sso1"]))


def _event(kind, t, user, sess, ip, sso):
    e: dict[str, Any] = {"type": kind, "ts": T0 + t, "user": user}
    if kind == "alert":
        e.update(severity="high", src_ip=ip or "9.9.9.9")
        if ip is None:
            e["session"] = sess
        del e["user"]
    elif kind in ("user_disabled",):
        pass
    elif kind == "role_change":
        e["roles"] = ["admin"]
    else:
        e.update(session=sess, sso_session=sso)
        if ip:
            e["ip"] = ip
    return parse_event(e)


POLICY_P = BASIC + '[networks]\ncorp = ["10.0.0.0/8"]\n[[rules]]\nname = "admins"\nroles = ["admin"]\nidle = "15m"\n'


def _run(events):
    r = Replay(loads_policy(POLICY_P), tombstone_s=1e6)  # within the tombstone window
    outs = []
    for e in events:
        outs.extend(r.feed(e))
    outs.extend(r.drain())
    return outs


@settings(max_examples=120, deadline=None)
@given(st.lists(ev_st, max_size=40))
def test_ids_are_stable_across_runs_and_nothing_follows_a_terminal_decision_but_reissues(raw_events):
    events = [_event(*e) for e in raw_events]
    a, b = _run(events), _run([_event(*e) for e in raw_events])
    assert [o.value for o in a] == [o.value for o in b]
    terminal: dict[str, dict] = {}
    for o in a:
        if o.kind != "decision":
            continue
        s = (o.value["user"], o.value["session"])
        if s in terminal:
            assert o.value == terminal[s], "a decision after the terminal one that is not a re-issue"
        elif o.value["action"] == "revoke":
            terminal[s] = o.value


@settings(max_examples=120, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["activity", "refresh", "reauth"]), st.integers(0, 20000)), max_size=30))
def test_deadlines_never_move_back_under_a_fixed_policy(raw_events):
    d = Driver('[defaults]\nidle = "30m"\nabsolute = "12h"', tombstone_s=1e9)
    d.engine.handle(parse_event({"type": "login", "ts": T0, "user": "u", "session": "s"}), T0)
    due = d.engine.deadlines.get(("u", "s"))
    for kind, t in raw_events:
        s = d.engine.store["u"].sessions["s"]
        if s.ended is not None:
            break
        d.engine.handle(parse_event({"type": kind, "ts": T0 + t, "user": "u", "session": "s"}), T0)
        if s.ended is None:
            new = d.engine.deadlines.get(("u", "s"))
            assert new >= due
            due = new


def test_decision_id_is_hash_of_session_reason_trigger():
    d = Driver(BASIC)
    d.send("login", 0, user="u1", session="s1")
    out = [o for o in d.advance(1800) if o.kind == "decision"][0]
    assert out.value["id"] == stable_id("s1", "idle_timeout", "idle_timeout@2026-01-01T00:30:00Z")


def test_session_state_is_small():
    import tracemalloc

    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    states = [SessionState(f"session-{i:08d}", "user", float(i)) for i in range(1000)]
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    size = sum(st.size_diff for st in after.compare_to(before, "filename"))
    assert size / len(states) < 512


def test_a_logout_of_the_sso_session_itself_ends_it_and_revokes_its_linked_sessions_once():
    d = Driver(BASIC)
    d.send("login", 0, user="u1", session="sso")
    d.send("login", 1, user="u1", session="app1", sso_session="sso")
    d.send("login", 2, user="u1", session="other", sso_session="sso2")
    outs = d.send("logout", 5, user="u1", session="sso", sso_session="sso")
    assert decisions(outs) == [("revoke", "sso_logout", "app1", 5.0)]
    assert sorted(audits(outs)) == [("session_end", "app1"), ("session_end", "sso")]
