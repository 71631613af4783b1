"""The enforcement SDK with user-level subjects (iss_sub, email) and SETs holding several event
types (SSF 1.0 section 4.2.1); tokens signed by an independent library (PyJWT)."""

from __future__ import annotations

import jwt as pyjwt
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from joserfc.jwk import OKPKey

from enforce import wire
from enforce.state import RevocationState
from enforce.verify import BadEvents, SetVerifier
from tests.support.clock import Clock

ISS, AUD, T0 = "https://lapse.example.com/", "gw", 1_800_000_000.0
KEY = ed25519.Ed25519PrivateKey.generate()
JWKS = {"keys": [{**OKPKey.import_key(KEY).as_dict(private=False), "kid": "k1", "alg": "EdDSA"}]}
ANN = {"format": "iss_sub", "iss": "https://idp/", "sub": "ann"}


def msg(jti, sub_id, events, ts=T0):
    c = {"iss": ISS, "aud": AUD, "iat": int(ts), "jti": jti, "sub_id": sub_id, "events": events}
    return orjson.dumps({"set": pyjwt.encode(c, KEY, algorithm="EdDSA", headers={"kid": "k1", "typ": "secevent+jwt"})})


@pytest.fixture
def state():
    clock = Clock(T0)
    st = RevocationState(SetVerifier(JWKS, ISS, AUD, clock=clock), ttl_s=3600, clock=clock)
    st.clock_ = clock
    return st


def test_a_user_level_revocation_reaches_every_session_bound_to_that_user(state):
    state.bind_session("ann-web", ANN, authenticated_at=T0 - 100)
    state.bind_session("ann-new", ANN, authenticated_at=T0 + 50)  # signed in after the revocation
    state.bind_session("bob-web", {"format": "email", "email": "bob@example.com"})
    assert not state.is_revoked("ann-web")
    out = state.apply(msg("j1", ANN, {wire.CREDENTIAL_CHANGE: {"event_timestamp": T0, "credential_type": "password",
                                                                "change_type": "update"}}))
    assert out == "user_revoked" and state.counters["user_revoked"] == 1
    assert state.is_revoked("ann-web") and state.revocation("ann-web").jti == "j1"
    assert not state.is_revoked("ann-new") and not state.is_revoked("bob-web")
    assert state.is_user_revoked(ANN) and state.is_user_revoked(ANN, authenticated_at=T0 - 1)
    assert not state.is_user_revoked(ANN, authenticated_at=T0 + 1)
    # email: case does not matter; a complex subject with only a user member is user-level too
    state.apply(msg("j2", {"format": "complex", "user": {"format": "email", "email": "Bob@Example.com"}},
                    {wire.RISC_ACCOUNT_DISABLED: {}}))
    assert state.is_revoked("bob-web")
    state.clock_.t += 3601
    assert not state.is_revoked("ann-web") and not state.is_user_revoked(ANN)
    state.sweep()
    assert len(state) == 0


def test_events_the_sdk_does_not_act_on_at_user_level_are_ignored(state):
    assert state.apply(msg("j3", ANN, {wire.RISK_LEVEL_CHANGE: {"principal": "USER", "current_level": "HIGH"}})) == "ignored"
    assert state.apply(msg("j4", {"format": "opaque", "id": "s1"}, {wire.RISC_ACCOUNT_ENABLED: {}})) == "ignored"


def test_several_event_types_in_one_set(state):
    sub = {"format": "complex", "user": {"format": "opaque", "id": "u"}, "session": {"format": "opaque", "id": "s1"}}
    out = state.apply(msg("j5", sub, {wire.RISK_LEVEL_CHANGE: {"principal": "SESSION", "current_level": "HIGH",
                                                                "event_timestamp": T0},
                                      wire.SESSION_REVOKED: {"event_timestamp": T0}}))
    assert out == "revoked" and state.is_revoked("s1") and state.requires_step_up("s1")
    assert state.apply(msg("j5", sub, {wire.SESSION_REVOKED: {}})) == "duplicates"
    strict = SetVerifier(JWKS, ISS, AUD, single_event=True, clock=state.clock_)
    token = orjson.loads(msg("j6", sub, {wire.SESSION_REVOKED: {}, wire.CREDENTIAL_CHANGE: {}}))["set"]
    with pytest.raises(BadEvents):
        strict.verify(token)
    assert len(state.verifier.verify(token)["events"]) == 2
    with pytest.raises(BadEvents):
        state.verifier.verify(orjson.loads(msg("j7", sub, {}))["set"])
    with pytest.raises(BadEvents):
        state.verifier.verify(orjson.loads(msg("j8", sub, {wire.SESSION_REVOKED: "yes"}))["set"])
