"""The IDS join (streams/engine/join.py), the one the worker and Replay both run: its rules.

A sighting and an alert meet whichever arrives first, each session once; the lookback window and
the grace are the same for both orders; no sighting is evicted to make room; keys nothing can
meet any more leave; the gate notes a new IP at once and repeats at most once per refresh.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.engine import IdsJoin, JoinView, Replay, SightingGate, loads_policy, parse_event
from streams.engine.join import ALERT_GRACE_S, MAX_SIGHTINGS_PER_KEY, refresh_s, spill_key

T0 = 1_767_225_600.0
IP = "198.51.100.7"
POLICY = loads_policy('[defaults]\nidle = "1d"\nabsolute = "30d"\n[ids]\nlookback = "1h"\n')
WINDOW = 3600 + refresh_s(3600)


def alert(ts: float = T0, **kw: object):
    return parse_event({"type": "alert", "ts": ts, "severity": "high", "src_ip": IP, **kw})


def fresh() -> tuple[IdsJoin, dict, JoinView]:
    state: dict = {}
    return IdsJoin(POLICY.ids), state, JoinView(state, in_place=True)


def pairs(targets) -> list[tuple[str, str | None]]:
    return sorted((t.user, t.session) for t in targets)


_sightings = st.lists(st.tuples(st.sampled_from(["u1", "u2", "u3"]), st.sampled_from(["s1", "s2"]),
                                st.floats(-2 * WINDOW, 100, allow_nan=False)), max_size=25)


@settings(max_examples=300, deadline=None)
@given(_sightings, st.randoms(use_true_random=False))
def test_a_sighting_and_an_alert_meet_the_same_sessions_whichever_arrives_first(sightings, rnd):
    a = alert()
    want = sorted({(u, s) for u, s, dt in sightings if T0 + dt >= T0 - WINDOW})
    now = T0 + 10  # everything arrives while the alert still waits
    outcomes = []
    for at in (0, len(sightings), rnd.randint(0, len(sightings))):  # alert first, last, in between
        join, _, view = fresh()
        met = []
        for i, (u, s, dt) in enumerate(sightings):
            if i == at:
                met += join.alert(view, IP, a, a.raw, now)
            met += join.sighting(view, IP, u, s, T0 + dt, now)
        if at == len(sightings):
            met += join.alert(view, IP, a, a.raw, now)
        assert len(met) == len(set(pairs(met))), "a session met the same alert twice"
        outcomes.append(pairs(met))
    assert outcomes == [want, want, want]


def test_a_session_seen_just_inside_the_window_is_met_and_one_just_outside_is_not():
    join, _, view = fresh()
    join.sighting(view, IP, "u", "in", T0 - WINDOW, T0)
    join.sighting(view, IP, "u", "out", T0 - WINDOW - 0.001, T0)
    assert pairs(join.alert(view, IP, alert(), alert().raw, T0)) == [("u", "in")]


def test_a_late_sighting_meets_a_waiting_alert_only_within_the_grace():
    join, _, view = fresh()
    a = alert()
    assert join.alert(view, IP, a, a.raw, T0) == []
    assert pairs(join.sighting(view, IP, "u", "s1", T0 - 5, T0 + ALERT_GRACE_S)) == [("u", "s1")]
    assert join.sighting(view, IP, "u", "s2", T0 - 5, T0 + ALERT_GRACE_S + 0.001) == []


def test_no_session_is_evicted_when_more_use_an_ip_than_a_record_holds():
    join, state, view = fresh()
    n = MAX_SIGHTINGS_PER_KEY + 300
    for i in range(n):
        join.sighting(view, IP, f"u{i}", "s", T0 - 60 + i * 0.01, T0)
    assert state[IP]["n"] == 1 and len(state[spill_key(IP, 1)]["s"]) == 300
    assert len(join.alert(view, IP, alert(), alert().raw, T0)) == n


def test_a_key_leaves_with_its_spills_once_nothing_can_meet_it_and_not_while_an_alert_waits():
    join, state, view = fresh()
    for i in range(MAX_SIGHTINGS_PER_KEY + 1):
        join.sighting(view, IP, f"u{i}", "s", T0, T0)
    gone = T0 + WINDOW + ALERT_GRACE_S  # when the sightings can meet no alert any more
    assert join.expire(view, gone - 1) == 0 and IP in state
    sweep = join.sweep_s()  # a sweep over the keys starts once per sweep interval
    t = gone - 1 + sweep
    late = alert(ts=t)
    join.alert(view, IP, late, late.raw, t)  # waits until t + grace
    assert join.expire(view, t) == 0 and IP in state
    assert join.expire(view, t + sweep) == 1
    assert state == {}


def test_expiry_leaves_the_keys_another_worker_holds_now_untouched():
    join, state, view = fresh()
    join.sighting(view, IP, "u", "s", T0, T0)
    assert join.expire(view, T0 + 10 * WINDOW, owns=lambda key: False) == 0
    assert IP in state


def test_recovered_keys_are_swept_too_and_a_spill_leaves_with_its_key():
    state = {IP: {"s": [["u", "s", T0]], "a": [], "n": 1}, "#1#" + IP: {"s": [["v", "s", T0]]},
             "session:s": {"s": [["u", "s", T0 + 4000]]}}
    join, view = IdsJoin(POLICY.ids), JoinView(state, in_place=True)
    assert join.expire(view, T0 + WINDOW + ALERT_GRACE_S + 1) == 1
    assert state == {"session:s": {"s": [["u", "s", T0 + 4000]]}}


def test_the_gate_remembers_a_few_ips_per_session_and_its_size_is_bounded():
    gate = SightingGate(lambda: 3600.0, max_entries=64)
    ev = lambda t, ip, s="s": parse_event({"type": "activity", "ts": t, "user": "u", "session": s, "ip": ip})  # noqa: E731
    ips = [f"10.0.0.{i}" for i in range(SightingGate.MAX_IPS)]
    assert [gate.due(ev(T0 + i, ip)) for i, ip in enumerate(ips)][1:] == [[ip] for ip in ips[1:]]
    assert [gate.due(ev(T0 + 10 + i, ip)) for i, ip in enumerate(ips)] == [[]] * len(ips)  # alternating: quiet
    for i in range(1000):
        gate.due(ev(T0, "10.1.0.1", s=f"x{i}"))
    assert len(gate) <= 64


def test_the_gate_notes_a_new_ip_at_once_and_a_repeat_at_most_once_per_refresh_interval():
    gate = SightingGate(lambda: 3600.0)
    ev = lambda t, ip=IP: parse_event({"type": "activity", "ts": t, "user": "u", "session": "s", "ip": ip})  # noqa: E731
    assert gate.due(ev(T0)) == ["session:s", IP]
    assert gate.due(ev(T0 + 1, "203.0.113.1")) == ["203.0.113.1"]
    noted = [(t, gate.due(ev(T0 + t))) for t in range(0, 1800, 5)]
    noted = [(t, keys) for t, keys in noted if keys]
    assert all(keys == ["session:s", IP] for _, keys in noted)  # both keys of a session refresh together
    assert 1800 / refresh_s(3600) - 1 <= len(noted) <= 1800 / (0.75 * refresh_s(3600)) + 1


def test_the_gate_notes_nothing_for_an_event_older_than_its_keys_last_sightings_and_the_join_agrees():
    gate = SightingGate(lambda: 3600.0)
    ev = lambda t, ip=IP: parse_event({"type": "activity", "ts": t, "user": "u", "session": "s", "ip": ip})  # noqa: E731
    assert gate.due(ev(T0 + 100)) == ["session:s", IP]
    # delivered late from another gateway: older than both sightings, even far older
    assert [gate.due(ev(T0 + t)) for t in (99, 50, 0, -3600)] == [[]] * 4
    assert gate.due(ev(T0 + 90, "203.0.113.1")) == ["203.0.113.1"]  # a new address is noted, old or not
    assert gate.due(ev(T0 + 95, IP)) == []  # back on the first address, older than its sighting
    # the refresh still runs from the newest sighting, not from a late event
    assert gate.due(ev(T0 + 100 + refresh_s(3600))) == ["session:s", IP]
    # a later sighting meets every alert the earlier ones would: the join keeps the newest
    join, state, view = fresh()
    for t in (100, 50, 0):
        join.sighting(view, IP, "u", "s", T0 + t, T0 + 100)
    assert state[IP]["s"] == [["u", "s", T0 + 100]]
    early = parse_event({"type": "alert", "ts": T0 + 1, "severity": "high", "src_ip": IP})
    assert pairs(join.alert(view, IP, early, early.raw, T0 + 101)) == [("u", "s")]


def test_an_alert_naming_only_a_session_reaches_its_user():
    join, _, view = fresh()
    join.sighting(view, "session:s9", "ann", "s9", T0 - 30, T0)
    a = parse_event({"type": "alert", "ts": T0, "severity": "high", "session": "s9"})
    assert join.keys_of(a) == ["session:s9"]
    assert pairs(join.alert(view, "session:s9", a, a.raw, T0)) == [("ann", "s9")]


def test_replay_revokes_a_session_whose_sighting_comes_after_the_alert():
    r = Replay(POLICY)
    r.feed(parse_event({"type": "login", "ts": T0 - 100, "user": "u", "session": "other", "ip": "203.0.113.1"}))
    assert r.feed(alert()) == []
    outs = r.feed(parse_event({"type": "login", "ts": T0 - 30, "user": "u", "session": "s", "ip": IP}))
    assert [(o.value["reason"], o.value["session"]) for o in outs if o.kind == "decision"] == [("ids_alert", "s")]


def test_a_low_severity_alert_joins_no_key():
    join = IdsJoin(loads_policy('[ids]\nrevoke = ["critical"]\nstep_up = []\n').ids)
    assert join.keys_of(alert()) == []
    assert join.keys_of(alert(severity="critical")) == [IP]


def test_random_streams_never_grow_the_join_past_what_the_lookback_holds():
    rnd = random.Random(7)
    r = Replay(POLICY)
    for i in range(20_000):
        t = T0 + i * 2.0
        r.feed(parse_event({"type": "activity", "ts": t, "user": f"u{rnd.randrange(50)}", "session": f"s{i // 40}",
                            "ip": f"10.0.{rnd.randrange(4)}.{rnd.randrange(256)}"}))
    # 40 000 s of traffic, sessions of 80 s: only those of the last window, grace and sweep are held
    held = WINDOW + ALERT_GRACE_S + r.join.sweep_s() + r.JOIN_EXPIRY_S + 80
    recent = {f"s{j}" for j in range(int(20_000 * 2 - held) // 80, 500)}
    sessions = {k[8:] for k in r.join_state if k.startswith("session:")}
    assert sessions <= recent and len(sessions) > 0


def test_an_alert_older_than_the_newest_sighting_still_meets_a_sighting_at_the_edge_of_its_lookback():
    """A sighting is kept while an alert up to the grace older than its key's newest sighting may
    still arrive and look back over it."""
    a = alert(T0)
    join, _, view = fresh()
    now = T0 + 10
    for user, session, dt in (("u1", "s1", 40.0), ("u1", "s2", 20 - WINDOW), ("u1", "s1", 0.0)):
        assert join.sighting(view, IP, user, session, T0 + dt, now) == []
    assert pairs(join.alert(view, IP, a, a.raw, now)) == [("u1", "s1"), ("u1", "s2")]
