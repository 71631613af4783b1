"""Issue 9: activity-level conditions and background traffic."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from engine_harness import Driver, audits, decisions

ACT = """
[defaults]
idle = "30m"
absolute = "12h"
[[rules]]
name = "privileged-use"
privileged = true
privileged_within = "10m"
idle = "5m"
[[rules]]
name = "bulk-download"
bytes_over = 1000000
idle = "2m"
[[rules]]
name = "chatty"
rate_over = 100
idle = "3m"
[activity]
automatic = ["poll", "*/notifications*"]
privileged = ["admin.*"]
bytes_window = "5m"
"""


def test_privileged_action_tightens_at_once():
    d = Driver(ACT)
    d.send("login", 0, user="u", session="s")
    outs = d.send("activity", 100, user="u", session="s", action="admin.users.delete")
    assert audits(outs) == [("policy_tightened", "s")]
    detail = outs[0].value["detail"]
    assert detail["idle"] == 300.0 and detail["conditions"] == [
        {"rule": "privileged-use", "condition": "privileged", "since": "2026-01-01T00:01:40Z"}]
    outs = d.advance(400)
    assert decisions(outs) == [("revoke", "idle_timeout", "s", 400.0)]
    v = outs[0].value
    assert v["policy"] == ["defaults", "privileged-use"] and v["evidence"]["rule"] == "privileged-use"
    assert v["evidence"]["conditions"] == [{"rule": "privileged-use", "condition": "privileged",
                                            "since": "2026-01-01T00:01:40Z"}]


def test_privileged_condition_relaxes_only_after_its_window():
    d = Driver(ACT)
    d.send("login", 0, user="u", session="s")
    d.send("activity", 100, user="u", session="s", privileged=True)
    for t in (300, 500, 650):  # keep active within 5m
        assert decisions(d.send("activity", t, user="u", session="s")) == []
    assert d.engine.store["u"].sessions["s"].lim.idle == 300.0  # window (10m from t=100) still open at 650
    outs = d.advance(700)  # 100 + 10m: relaxed
    assert audits(outs) == [("policy_relaxed", "s")] and decisions(outs) == []
    assert decisions(d.advance(650 + 1799)) == []
    assert decisions(d.advance(650 + 1800)) == [("revoke", "idle_timeout", "s", 2450.0)]


def test_automatic_activity_never_extends_and_is_counted_and_audited():
    """The README scenario: one user, one tab polling and idle, one tab active."""
    d = Driver(ACT)
    d.send("login", 0, user="u", session="polling-tab")
    d.send("login", 0, user="u", session="active-tab")
    seen = []
    for t in range(30, 3600, 30):
        seen += d.send("activity", t, user="u", session="polling-tab", resource="/api/notifications/unread")
        if t % 300 == 0:
            seen += d.send("activity", t, user="u", session="active-tab", action="edit")
    first, *reissued = [o.value for o in seen if o.kind == "decision"]
    assert decisions(seen)[0] == ("revoke", "idle_timeout", "polling-tab", 1800.0)
    # the tab kept polling after its revocation: every poll re-issues the same decision (a gap)
    assert all(v == first for v in reissued) and len(reissued) == audits(seen).count(("enforcement_gap", "polling-tab"))
    assert ("automatic_activity", "polling-tab") in audits(seen)
    end = [o.value for o in seen if o.kind == "audit" and o.value["kind"] == "session_end"][0]
    assert end["detail"]["automatic_events"] == 59
    assert first["evidence"]["automatic_events"] == 59
    assert d.engine.store["u"].sessions["active-tab"].ended is None


def test_automatic_flag_on_the_event_is_honoured_too():
    d = Driver(ACT)
    d.send("login", 0, user="u", session="s")
    for t in range(60, 1800, 60):
        assert decisions(d.send("refresh", t, user="u", session="s", automatic=True)) == []
    assert decisions(d.advance(1800)) == [("revoke", "idle_timeout", "s", 1800.0)]


def test_bytes_and_rate_windows_tighten_limits():
    d = Driver(ACT)
    d.send("login", 0, user="u", session="s")
    outs = d.send("activity", 10, user="u", session="s", bytes=2_000_000)
    assert audits(outs) == [("policy_tightened", "s")] and d.engine.store["u"].sessions["s"].lim.idle == 120.0
    assert decisions(d.advance(130)) == [("revoke", "idle_timeout", "s", 130.0)]
    d.send("login", 200, user="u", session="r")
    for i in range(150):
        d.send("activity", 200 + i * 0.2, user="u", session="r")
    assert d.engine.store["u"].sessions["r"].lim.idle_by == "chatty"


def test_risk_band_rule_shortens_idle_without_revoking():
    from test_engine import FakeScorer

    pol = ('[defaults]\nidle = "30m"\n[[rules]]\nname = "risky"\nrisk = "elevated"\nidle = "5m"\n'
           '[adaptive]\nenabled = true\nelevated_at = 0.5\nstep_up_at = 0.9\nrevoke_at = 0.99\nwarmup = 0\n')
    d = Driver(pol, scorer=FakeScorer())
    d.send("login", 0, user="u", session="s")
    outs = d.send("activity", 10, user="u", session="s", score=0.6)
    assert decisions(outs) == [] and audits(outs) == [("policy_tightened", "s")]
    assert decisions(d.advance(310)) == [("revoke", "idle_timeout", "s", 310.0)]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 4000), st.booleans(), st.booleans()), max_size=25))
def test_automatic_activity_never_extends_a_session(raw):
    """Whatever automatic traffic arrives, the idle deadline is last human activity + the limit."""
    d = Driver(ACT, tombstone_s=1e9)
    d.send("login", 0, user="u", session="s")
    human = 0.0
    outs = []
    for t, automatic, priv in sorted(raw):
        outs += d.send("activity", t, user="u", session="s", automatic=automatic, privileged=priv and not automatic)
        s = d.engine.store["u"].sessions["s"]
        if s.ended is None and not automatic:
            human = t
    outs += d.advance(10_000)
    revokes = sorted(set(x for x in decisions(outs) if x[0] == "revoke"))  # re-issues are identical
    assert len(revokes) == 1
    # never later than the default idle after the last human activity
    assert revokes[0][3] <= human + 1800.0
