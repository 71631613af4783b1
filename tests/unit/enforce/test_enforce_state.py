"""RevocationState: tokens signed by an independent library (PyJWT) verified by enforce.verify;
rejects counted; dedupe by jti; TTL; step-up set."""

from __future__ import annotations

import jwt as pyjwt
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from joserfc.jwk import OKPKey

from enforce import wire
from enforce.state import EnforceConfigError, RevocationState
from enforce.verify import SetVerifier
from tests.support.clock import Clock

ISS, AUD = "https://lapse.example.com/", "gw"
T0 = 1_800_000_000.0


def _jwk(private, kid):
    return {**OKPKey.import_key(private).as_dict(private=False), "kid": kid, "alg": "EdDSA", "use": "sig"}


@pytest.fixture(scope="module")
def keys():
    good = ed25519.Ed25519PrivateKey.generate()
    evil = ed25519.Ed25519PrivateKey.generate()
    return good, evil, {"keys": [_jwk(good, "k1")]}


def claims(jti, session, *, uri=wire.SESSION_REVOKED, ts=T0, **event):
    body = {"event_timestamp": ts, "initiating_entity": "system", "reason_admin": {"en": "x"}, **event}
    return {
        "iss": ISS, "iat": int(ts), "jti": jti, "aud": AUD, "txn": jti,
        "sub_id": {"format": "complex", "user": {"format": "opaque", "id": "u"},
                   "session": {"format": "opaque", "id": session}},
        "events": {uri: body},
    }


def msg(private, c, kid="k1", typ="secevent+jwt") -> bytes:
    token = pyjwt.encode(c, private, algorithm="EdDSA", headers={"kid": kid, "typ": typ})
    return orjson.dumps({"decision": {"id": c.get("jti")}, "set": token})


@pytest.fixture
def state(keys):
    clock = Clock(T0)
    st = RevocationState(SetVerifier(keys[2], ISS, AUD, clock=clock), ttl_s=3600, clock=clock)
    st.clock_ = clock
    return st


def test_revoke_and_dedupe(state, keys):
    good = keys[0]
    assert not state.is_revoked("s1")
    assert state.apply(msg(good, claims("j1", "s1", reason_user={"en": "bye"}))) == "revoked"
    assert state.is_revoked("s1") and not state.is_revoked("s2")
    assert state.revocation("s1").reason_user == "bye"
    assert state.apply(msg(good, claims("j1", "s1"))) == "duplicates"
    assert state.counters["revoked"] == 1 and state.counters["duplicates"] == 1


def test_rejections_are_counted_and_ignored(state, keys):
    good, evil, _ = keys
    assert state.apply(msg(evil, claims("f1", "s1"))) == "forged"            # other key, our kid
    assert state.apply(msg(evil, claims("f2", "s1"), kid="k9")) == "unknown_kid"
    assert state.apply(b"not json") == "malformed"
    assert state.apply(orjson.dumps({"set": "a.b.c"})) == "malformed"
    assert state.apply(None) == "malformed"
    token = msg(good, claims("t1", "s1"))
    doc = orjson.loads(token)
    h, p, s = doc["set"].split(".")
    tampered = pyjwt.utils.base64url_encode(orjson.dumps(claims("t1", "victim"))).decode()
    assert state.apply(orjson.dumps({"set": f"{h}.{tampered}.{s}"})) == "forged"
    assert state.apply(msg(good, {**claims("t2", "s1"), "sub": "u"})) == "invalid_claims"
    assert state.last_error.startswith("forbidden_claim")
    assert state.apply(msg(good, claims("t3", "s1"), typ="JWT")) == "invalid_claims"
    assert state.last_error.startswith("wrong_typ")
    assert state.apply(msg(good, {**claims("t4", "s1"), "aud": "other"})) == "invalid_claims"
    assert state.last_error.startswith("wrong_aud")
    assert not state.is_revoked("s1") and not state.is_revoked("victim")
    c = state.counters
    assert c["forged"] == 2 and c["unknown_kid"] == 1 and c["malformed"] == 3 and c["revoked"] == 0
    assert c["invalid_claims"] == 3


def test_ttl_and_stale(state, keys):
    good = keys[0]
    assert state.apply(msg(good, claims("old", "s0", ts=T0 - 7200))) == "stale"
    assert state.apply(msg(good, claims("j", "s1"))) == "revoked"
    state.clock_.t = T0 + 3599
    assert state.is_revoked("s1")
    state.clock_.t = T0 + 3601
    assert not state.is_revoked("s1")
    assert state.sweep() >= 1 and len(state) == 0


def test_step_up_and_clear(state, keys):
    good = keys[0]
    rl = dict(uri=wire.RISK_LEVEL_CHANGE, principal="SESSION", risk_reason="anomaly")
    assert state.apply(msg(good, claims("r1", "s1", current_level="HIGH", **rl))) == "step_up"
    assert state.requires_step_up("s1") and not state.is_revoked("s1")
    # an older risk event arriving late does not undo a newer one
    assert state.apply(msg(good, claims("r0", "s1", ts=T0 - 10, current_level="LOW", **rl))) == "stale"
    assert state.requires_step_up("s1")
    assert state.apply(msg(good, claims("r2", "s1", ts=T0 + 1, current_level="LOW", **rl))) == "step_up"
    assert not state.requires_step_up("s1")
    assert state.apply(msg(good, claims("x", "s1", uri=wire.ASSURANCE_LEVEL_CHANGE))) == "ignored"


def test_config_errors(keys):
    v = SetVerifier(keys[2], ISS, AUD)
    with pytest.raises(EnforceConfigError, match="positive"):
        RevocationState(v, ttl_s=0)
    with pytest.raises(EnforceConfigError, match="absolute timeout"):
        RevocationState(v, ttl_s=3600, absolute_timeout_s=8 * 3600)


def test_session_ids_longer_than_the_contract_are_ignored(state, keys):
    from streams.engine.events import MAX_CHARS

    assert wire.MAX_SESSION_CHARS == MAX_CHARS["session"]  # the engine never tracks longer ids
    good = keys[0]
    assert state.apply(msg(good, claims("long", "s" * (wire.MAX_SESSION_CHARS + 1)))) == "ignored"
    assert state.apply(msg(good, claims("max", "s" * wire.MAX_SESSION_CHARS))) == "revoked"
    assert len(state) == 1
