"""Engine.manual_revoke: an operator ends a session (or all of a user's sessions) by hand."""

from __future__ import annotations

from engine_harness import T0, Driver, audits, decisions

POLICY = '[defaults]\nidle = "30m"\nabsolute = "12h"\n'


def test_manual_revoke_of_one_session_ends_it_with_reason_manual_and_operator_evidence():
    d = Driver(POLICY)
    d.send("login", 0, user="u1", session="s1")
    d.send("login", 1, user="u1", session="s2")
    d.advance(60)
    outs = d.engine.manual_revoke("u1", "s1", "ann@sec", "stolen laptop", T0 + 60, d.now, request_id="r1")
    assert decisions(outs) == [("revoke", "manual", "s1", 60.0)]
    assert audits(outs) == [("session_end", "s1")]
    ev = outs[0].value["evidence"]
    assert ev == {"initiating_entity": "admin", "operator": "ann@sec", "note": "stolen laptop", "scope": "session",
                  "request": "r1"}
    assert outs[0].value["policy_version"] == d.engine.policy.version
    # s2 still live; s1's idle deadline no longer fires
    assert decisions(d.advance(1801)) == [("revoke", "idle_timeout", "s2", 1801.0)]


def test_manual_revoke_is_idempotent_and_ids_are_stable_per_request():
    d1, d2 = Driver(POLICY), Driver(POLICY)
    ids = []
    for d in (d1, d2):
        d.send("login", 0, user="u1", session="s1")
        outs = d.engine.manual_revoke("u1", "s1", "ann", "", T0 + 5, T0 + 5, request_id="req-7")
        ids.append(outs[0].value["id"])
        assert d.engine.manual_revoke("u1", "s1", "ann", "", T0 + 6, T0 + 6, request_id="req-7") == []
    assert ids[0] == ids[1]


def test_manual_revoke_of_a_user_ends_every_live_session_and_unknowns_are_no_ops():
    d = Driver(POLICY)
    d.send("login", 0, user="u1", session="s1", sso_session="sso")
    d.send("login", 0, user="u1", session="s2", sso_session="sso")
    d.send("login", 0, user="u1", session="s3")
    d.send("logout", 10, user="u1", session="s3")
    outs = d.engine.manual_revoke("u1", None, "bob", "offboarding", T0 + 20, T0 + 20)
    assert sorted(decisions(outs)) == [("revoke", "manual", "s1", 20.0), ("revoke", "manual", "s2", 20.0)]
    assert {o.value["evidence"]["scope"] for o in outs if o.kind == "decision"} == {"user"}
    assert d.engine.manual_revoke("nobody", None, "bob", "", T0 + 20, T0 + 20) == []
    assert d.engine.manual_revoke("u1", "missing", "bob", "", T0 + 20, T0 + 20) == []


def test_manual_revoke_of_one_session_cascades_through_its_sso_session():
    d = Driver(POLICY)
    d.send("login", 0, user="u1", session="s1", sso_session="sso")
    d.send("login", 0, user="u1", session="s2", sso_session="sso")
    outs = d.engine.manual_revoke("u1", "s1", "ann", "", T0 + 30, T0 + 30)
    assert decisions(outs) == [("revoke", "manual", "s1", 30.0), ("revoke", "sso_logout", "s2", 30.0)]
