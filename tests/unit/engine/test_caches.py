"""Caches that could go stale: user-wide logout, policy re-evaluation, sighting refresh, rfc3339."""

from __future__ import annotations

import copy

from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.engine import JoinView, Engine, Replay, loads_policy, parse_event
from streams.engine.decisions import _format, rfc3339

from engine_harness import T0, Driver, audits, decisions
from test_activity import ACT

BASIC = '[defaults]\nidle = "30m"\nabsolute = "12h"\n'


def test_logout_naming_only_the_user_revokes_all_of_their_live_sessions():
    d = Driver(BASIC)
    d.send("login", 0, user="u1", session="a", sso_session="sso")
    d.send("login", 1, user="u1", session="b")
    d.send("login", 2, user="u1", session="c")
    d.send("login", 2, user="u2", session="other")
    d.send("logout", 5, user="u1", session="c")  # quiet end: not revoked again below
    outs = d.send("logout", 10, user="u1")
    assert decisions(outs) == [("revoke", "account_event", "a", 10.0), ("revoke", "account_event", "b", 10.0)]
    assert all(o.value["evidence"] == {"event": "logout", "scope": "all_sessions"} for o in outs if o.kind == "decision")
    assert audits(outs) == [("session_end", "a"), ("session_end", "b")]
    # enforcement points must drop them: later traffic re-issues the same revocation
    first = next(o.value for o in outs if o.kind == "decision")
    gap = d.send("activity", 20, user="u1", session="a")
    assert [o.value for o in gap if o.kind == "decision"] == [first]
    assert d.engine.store["u2"].sessions["other"].ended is None
    # the same logout again (a re-delivery): nothing left to end
    assert decisions(d.send("logout", 10, user="u1")) == []


def test_user_wide_logout_ids_are_stable_across_runs():
    def run():
        d = Driver(BASIC)
        d.send("login", 0, user="u1", session="a")
        return [o.value["id"] for o in d.send("logout", 10, user="u1") if o.kind == "decision"]
    assert run() == run() and len(run()) == 1


def test_static_limits_follow_an_ip_change_within_and_off_the_network():
    p = '[defaults]\nidle = "30m"\n[networks]\ncorp = ["10.0.0.0/8"]\n[[rules]]\nname = "off"\nnetwork = "!corp"\nidle = "10m"\n'
    d = Driver(p)
    d.send("login", 0, user="u", session="s", ip="10.0.0.1")
    assert d.engine.store["u"].sessions["s"].lim.idle == 1800.0
    d.send("activity", 60, user="u", session="s", ip="10.9.9.9")  # another corporate IP: same limits
    assert d.engine.store["u"].sessions["s"].lim.idle == 1800.0
    outs = d.send("activity", 120, user="u", session="s", ip="8.8.8.8")
    assert audits(outs) == [("policy_tightened", "s")]
    assert decisions(d.advance(120 + 600)) == [("revoke", "idle_timeout", "s", 720.0)]


def test_an_adopted_session_gets_role_limits_when_its_login_arrives():
    p = '[defaults]\nidle = "30m"\n[[rules]]\nname = "admins"\nroles = ["admin"]\nidle = "5m"\n'
    d = Driver(p)
    d.send("activity", 0, user="u", session="s")
    outs = d.send("login", 10, user="u", session="s", roles=["admin"])
    assert ("policy_tightened", "s") in audits(outs)
    assert d.engine.store["u"].sessions["s"].lim.idle == 300.0


acts = st.lists(st.tuples(
    st.integers(0, 40),                                   # seconds since the previous event
    st.sampled_from(["view", "admin.x", "poll", "edit"]),
    st.sampled_from([0, 100, 400_000, 900_000]),          # bytes
    st.booleans(),                                        # privileged flag
    st.sampled_from(["activity"] * 8 + ["refresh", "reauth"]),
), min_size=1, max_size=80)


@settings(max_examples=60, deadline=None)
@given(acts)
def test_activity_conditions_evaluated_lazily_decide_exactly_as_on_every_event(seq):
    """The engine re-evaluates activity conditions only when one can change; forcing a
    re-evaluation on every event (the reference) must give exactly the same outputs."""
    policy = loads_policy(ACT)
    lazy, eager = Engine(policy), Engine(policy)
    eager._dyn_every = True
    t = T0
    out_l, out_e = [], []
    for dt, action, b, priv, etype in [(0, "view", 0, False, "login")] + seq:
        t += dt
        raw = {"type": etype, "ts": t, "user": "u", "session": "s"}
        if etype == "activity":
            raw.update(action=action, bytes=b, privileged=priv)
        ev = parse_event(raw)
        for eng, out in ((lazy, out_l), (eager, out_e)):
            out.extend(o.value for o in eng.expire(t))
            out.extend(o.value for o in eng.handle(ev, t))
    out_l.extend(o.value for o in lazy.expire(float("inf")))
    out_e.extend(o.value for o in eager.expire(float("inf")))
    assert out_l == out_e


def _met(r: Replay, alert: dict) -> list[tuple[str, str | None]]:
    """Whom ``alert`` would reach in ``r``'s IDS join, without changing it."""
    ev = parse_event(alert)
    view = JoinView(copy.deepcopy(r.join_state), in_place=True)
    return sorted((t.user, t.session) for key in r.join.keys_of(ev) for t in r.join.alert(view, key, ev, ev.raw, r.clock))


def test_sighting_refresh_follows_an_ip_change_and_resolution_stays_within_lookback():
    r = Replay(loads_policy('[defaults]\nidle = "1d"\nabsolute = "30d"\n[ids]\nlookback = "1h"\n'))
    feed = lambda **e: r.feed(parse_event(e))  # noqa: E731
    feed(type="login", ts=T0, user="u", session="s", ip="10.0.0.1")
    feed(type="activity", ts=T0 + 1, user="u", session="s", ip="10.0.0.2")  # an IP change: noted at once
    feed(type="activity", ts=T0 + 2, user="u", session="s", ip="10.0.0.1")
    assert _met(r, {"type": "alert", "ts": T0 + 10, "severity": "high", "src_ip": "10.0.0.2"}) == [("u", "s")]
    for i in range(1, 200):  # keep the session busy on 10.0.0.1 only; 10.0.0.2 ages out
        feed(type="activity", ts=T0 + 30 * i, user="u", session="s", ip="10.0.0.1")
    late = T0 + 30 * 199
    assert _met(r, {"type": "alert", "ts": late, "severity": "high", "src_ip": "10.0.0.2"}) == []
    assert _met(r, {"type": "alert", "ts": late, "severity": "high", "src_ip": "10.0.0.1"}) == [("u", "s")]
    assert "10.0.0.2" not in r.join_state  # and the key nothing can meet any more is gone


@given(st.one_of(st.integers(0, 253402300799), st.floats(0, 4e9, allow_nan=False)))
def test_cached_rfc3339_matches_datetime(ts):
    dt = datetime.fromtimestamp(ts, timezone.utc)
    want = (dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z") if dt.microsecond \
        else dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert rfc3339(ts) == want and rfc3339(ts) == want


def _datetime_rfc3339(ts: float) -> str:
    dt = datetime.fromtimestamp(ts, timezone.utc)
    return (dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z") if dt.microsecond \
        else dt.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("ts", [
    1767225600.0, 1767225600.25, 1767225600.0004,     # whole second, milliseconds, microseconds under 1 ms
    1767225599.9999996,                               # rounds up into the next second (and the next day)
    1767225600.0000005, 1767225600.0000015,           # half a microsecond: rounded half to even, as datetime does
    0.0, 0.5e-6, 86399.9995, 253402300798.5,          # the epoch, its first half microsecond, a day's last ms, year 9999
    -1.5,                                             # before the epoch: datetime's own path
])
def test_rfc3339_formats_like_datetime_at_rounding_edges(ts):
    assert _format(ts) == _datetime_rfc3339(ts)
    assert rfc3339(ts) == _datetime_rfc3339(ts)
