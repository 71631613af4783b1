"""A token refresh is background traffic: it never keeps an idle session alive, unless the policy
says so (``[activity] refresh_resets_idle = true``)."""

from __future__ import annotations

import pytest

from engine_harness import Driver, audits, decisions
from streams.engine import PolicyError, loads_policy

POLICY = '[defaults]\nidle = "30m"\nabsolute = "12h"\n'
RESETS = POLICY + "[activity]\nrefresh_resets_idle = true\n"


def test_refreshes_alone_do_not_keep_a_session_alive():
    """Keycloak refreshes the tokens of an open tab every 5 min; nobody is there."""
    d = Driver(POLICY)
    d.send("login", 0, user="u", session="s")
    seen = []
    for t in range(300, 1800, 300):
        outs = d.send("refresh", t, user="u", session="s")
        assert decisions(outs) == []
        seen += outs
    assert decisions(d.advance(1799)) == []
    outs = d.advance(1800)
    assert decisions(outs) == [("revoke", "idle_timeout", "s", 1800.0)]
    v = [o.value for o in outs if o.kind == "decision"][0]
    assert v["evidence"]["automatic_events"] == 5
    # each refresh is still audited as a refresh; the first is also noted as background traffic
    assert audits(seen) == [("automatic_activity", "s"), ("session_refresh", "s")] + [("session_refresh", "s")] * 4


def test_idle_is_measured_from_the_last_activity_a_person_caused():
    d = Driver(POLICY)
    d.send("login", 0, user="u", session="s")
    d.send("activity", 600, user="u", session="s", action="edit")
    for t in range(900, 2400, 300):
        assert decisions(d.send("refresh", t, user="u", session="s")) == []
    assert decisions(d.advance(2399)) == []
    assert decisions(d.advance(2400)) == [("revoke", "idle_timeout", "s", 2400.0)]


def test_a_refresh_still_updates_identity_attributes():
    p = POLICY + '[[rules]]\nname = "admins"\nroles = ["admin"]\nidle = "10m"\n'
    d = Driver(p)
    d.send("login", 0, user="u", session="s", roles=["staff"])
    outs = d.send("refresh", 60, user="u", session="s", roles=["admin"])
    assert ("policy_tightened", "s") in audits(outs)
    s = d.engine.store["u"].sessions["s"]
    assert s.roles == ("admin",) and s.lim.idle == 600.0 and s.last_active == d.now - 60
    assert decisions(d.advance(600)) == [("revoke", "idle_timeout", "s", 600.0)]


def test_refresh_resets_idle_when_the_policy_says_so():
    d = Driver(RESETS)
    d.send("login", 0, user="u", session="s")
    for t in range(300, 3600, 300):
        outs = d.send("refresh", t, user="u", session="s")
        assert decisions(outs) == [] and audits(outs) == [("session_refresh", "s")]
    assert decisions(d.advance(3300 + 1799)) == []
    assert decisions(d.advance(3300 + 1800)) == [("revoke", "idle_timeout", "s", 5100.0)]


def test_an_automatic_refresh_never_resets_idle_whatever_the_policy():
    d = Driver(RESETS)
    d.send("login", 0, user="u", session="s")
    for t in range(300, 1800, 300):
        assert decisions(d.send("refresh", t, user="u", session="s", automatic=True)) == []
    assert decisions(d.advance(1800)) == [("revoke", "idle_timeout", "s", 1800.0)]


@pytest.mark.parametrize("kind", ["reauth", "login"])
def test_reauth_and_a_new_login_still_reset_idle(kind):
    """The person authenticated again: that is activity (a reauth also restarts the absolute limit)."""
    d = Driver(POLICY)
    d.send("login", 0, user="u", session="s")
    d.send("refresh", 300, user="u", session="s")
    outs = d.send(kind, 1500, user="u", session="s")
    assert audits(outs) == [("session_refresh", "s")]
    d.send("refresh", 1800, user="u", session="s")
    assert decisions(d.advance(1500 + 1799)) == []
    assert decisions(d.advance(1500 + 1800)) == [("revoke", "idle_timeout", "s", 3300.0)]


def test_the_setting_is_validated_and_part_of_the_policy_version():
    with pytest.raises(PolicyError) as exc:
        loads_policy('[activity]\nrefresh_resets_idle = "yes"')
    assert exc.value.errors == ["activity.refresh_resets_idle: expected true or false, got 'yes'"]
    assert loads_policy(POLICY).activity.refresh_resets_idle is False
    assert loads_policy(RESETS).activity.refresh_resets_idle is True
    assert loads_policy(POLICY).version != loads_policy(RESETS).version
    assert loads_policy(RESETS).normalised["activity"]["refresh_resets_idle"] is True
