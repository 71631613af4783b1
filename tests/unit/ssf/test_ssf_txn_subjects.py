"""One ``txn`` for every SET of one cause, derived from the decisions the real engine makes; user
subjects in the formats of the CAEP Interoperability Profile (email, iss_sub)."""

from __future__ import annotations

from streams.engine import Engine, loads_policy, parse_event
from streams.publish.keys import generate_key
from streams.publish.set import SetSigner, cause_txn

POLICY = loads_policy('[defaults]\nidle = "30m"\nabsolute = "12h"\n[ids]\nrevoke = ["critical"]\nlookback = "1h"\n')
T0 = 1_767_225_600.0


def run(events):
    eng = Engine(POLICY)
    outs = []
    for e in events:
        outs += eng.handle(parse_event(e), e["ts"])
    return [o.value for o in outs if o.kind == "decision"]


def login(user, session, ts=T0, **kw):
    return {"type": "login", "ts": ts, "user": user, "session": session, **kw}


def test_one_cause_one_txn():
    ds = run([login("ann", "a1"), login("ann", "a2"), login("bob", "b1"), login("bob", "b2"),
              {"type": "alert", "ts": T0 + 5, "severity": "critical", "signature": "ET C2", "user": "ann"},
              {"type": "user_disabled", "ts": T0 + 6, "user": "bob"}])
    by = {d["session"]: d for d in ds}
    assert len({by["a1"]["id"], by["a2"]["id"]}) == 2  # one decision id per session...
    assert cause_txn(by["a1"]) == cause_txn(by["a2"])  # ...one txn per cause
    assert cause_txn(by["b1"]) == cause_txn(by["b2"]) != cause_txn(by["a1"])


def test_an_sso_cascade_shares_the_txn_of_the_session_that_started_it():
    ds = run([login("frank", "f1", sso_session="op-1"), login("frank", "f2", sso_session="op-1"),
              login("frank", "f3", sso_session="op-1"),
              {"type": "logout", "ts": T0 + 9, "user": "frank", "sso_session": "op-1"}])
    assert len(ds) == 3 and len({cause_txn(d) for d in ds}) == 1
    eng = Engine(POLICY)
    for e in (login("gus", "g1", sso_session="op-2"), login("gus", "g2", T0 + 100, sso_session="op-2")):
        eng.handle(parse_event(e), e["ts"])
    ds = [o.value for o in eng.expire(T0 + 1800) if o.kind == "decision"]  # g1 idles out, g2 follows
    assert [d["reason"] for d in ds] == ["idle_timeout", "sso_logout"]
    assert cause_txn(ds[0]) == ds[0]["id"] == cause_txn(ds[1])


def test_independent_causes_keep_their_own_txn_and_republished_ones_keep_theirs():
    d = {"id": "d1", "reason": "idle_timeout", "session": "s", "user": "u", "at": "2026-01-01T00:00:00Z", "evidence": {}}
    assert cause_txn(d) == "d1" and cause_txn({**d, "txn": "t-9"}) == "t-9"
    a = {**d, "reason": "account_event", "evidence": {"event": "user_disabled"}}
    assert cause_txn(a) == cause_txn(dict(a)) != cause_txn({**a, "user": "other"})


def test_user_subject_formats(tmp_path):
    key = generate_key(tmp_path / "k.pem", kty="rsa", bits=2048)
    s = SetSigner(key, "https://lapse/", "aud")
    base = {"id": "d", "action": "revoke", "reason": "manual", "session": "s", "user": "ann",
            "at": "2026-01-01T00:00:00Z"}
    assert s.claims({**base, "email": "ann@example.com"})["sub_id"]["user"] == {"format": "email", "email": "ann@example.com"}
    assert s.claims({**base, "email": "ann@example.com", "issuer": "https://idp/"})["sub_id"]["user"] == {
        "format": "iss_sub", "iss": "https://idp/", "sub": "ann"}
    assert s.claims(base)["sub_id"]["user"] == {"format": "opaque", "id": "ann"}
    assert s.claims({**base, "email": "not-an-address"})["sub_id"]["user"]["format"] == "opaque"
