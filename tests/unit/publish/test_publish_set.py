"""SET claims exactly as specified; verified by an independent library (PyJWT) and by ours."""

from __future__ import annotations

import base64
import json

import jwt as pyjwt
import orjson
import pytest

from enforce import wire
from streams.publish import SetSigner, SetVerifier, build_jwks, encode_message, generate_key
from streams.publish.set import InvalidDecision, REASON_ENTITY, epoch_seconds
from streams.publish.verify import (
    BadEvents, ForbiddenClaim, ForgedSignature, MalformedToken, UnknownKey, WrongAudience,
    WrongIssuer, WrongType,
)

ISS = "https://lapse.example.com/"
AUD = "https://gateway.example.com/"
NOW = 1767225700

DECISION = {
    "id": "d-8f2c", "action": "revoke", "reason": "ids_alert", "session": "s1", "user": "u1",
    "sso_session": None, "app": None, "at": "2026-01-01T00:00:00Z", "policy": ["defaults", "admins"],
    "policy_version": "v7", "score": None, "evidence": {},
}


@pytest.fixture(scope="module", params=["ed25519", "rsa"])
def key(request, tmp_path_factory):
    return generate_key(tmp_path_factory.mktemp("k") / "signing.pem", kty=request.param, bits=2048)


@pytest.fixture(scope="module")
def signer(key):
    return SetSigner(key, ISS, AUD, clock=lambda: NOW)


def _b64json(part: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def pyjwt_decode(token: str, key) -> dict:
    pub = pyjwt.PyJWK(key.public_jwk())
    return pyjwt.decode(
        token, pub.key, algorithms=[key.alg], audience=AUD, issuer=ISS,
        options={"require": ["iss", "iat", "jti", "aud"], "verify_iat": False},
    )


def test_revoke_claims_exactly(signer, key):
    token = signer.sign(DECISION)
    header = _b64json(token.split(".")[0])
    assert header == {"alg": key.alg, "typ": "secevent+jwt", "kid": key.kid}
    claims = pyjwt_decode(token, key)  # independent library: signature, iss, aud
    assert claims == {
        "iss": ISS,
        "iat": NOW,
        "jti": "d-8f2c",
        "aud": AUD,
        "txn": "d-8f2c",
        "sub_id": {
            "format": "complex",
            "user": {"format": "opaque", "id": "u1"},
            "session": {"format": "opaque", "id": "s1"},
        },
        "events": {
            "https://schemas.openid.net/secevent/caep/event-type/session-revoked": {
                "event_timestamp": 1767225600,
                "initiating_entity": "system",
                "reason_admin": {"en": claims["events"][wire.SESSION_REVOKED]["reason_admin"]["en"]},
                "reason_user": {"en": "Your session was ended for your security. Please sign in again."},
            }
        },
    }
    admin = claims["events"][wire.SESSION_REVOKED]["reason_admin"]["en"]
    assert admin.startswith("ids_alert: ") and "defaults, admins" in admin and "v7" in admin
    assert "sub" not in claims and "exp" not in claims


def test_step_up_is_risk_level_change(signer, key):
    token = signer.sign({**DECISION, "action": "step_up", "reason": "anomaly", "txn": "alert-42"})
    claims = pyjwt_decode(token, key)
    assert claims["txn"] == "alert-42"
    assert list(claims["events"]) == [wire.RISK_LEVEL_CHANGE]
    ev = claims["events"][wire.RISK_LEVEL_CHANGE]
    assert ev["principal"] == "SESSION" and ev["current_level"] == "HIGH"
    assert ev["risk_reason"] == "anomaly" and ev["initiating_entity"] == "system"
    assert ev["event_timestamp"] == 1767225600 and ev["reason_admin"]["en"]


@pytest.mark.parametrize("reason,entity", [
    ("idle_timeout", "policy"), ("absolute_timeout", "policy"), ("ids_alert", "system"),
    ("anomaly", "system"), ("manual", "admin"), ("account_event", "system"), ("sso_logout", "system"),
    ("something_new", "system"),
])
def test_initiating_entity(signer, reason, entity):
    ev = signer.claims({**DECISION, "reason": reason})["events"][wire.SESSION_REVOKED]
    assert ev["initiating_entity"] == entity
    assert ev["reason_admin"]["en"]
    assert set(REASON_ENTITY.values()) <= {"policy", "system", "admin"}


def test_user_issuer_makes_iss_sub(key):
    s = SetSigner(key, ISS, [AUD, "other"], user_issuer="https://idp.example.com/", clock=lambda: NOW)
    c = s.claims(DECISION)
    assert c["sub_id"]["user"] == {"format": "iss_sub", "iss": "https://idp.example.com/", "sub": "u1"}
    assert c["aud"] == [AUD, "other"] and "sub" not in c


@pytest.mark.parametrize("bad", [
    {"id": ""}, {"session": None}, {"action": "kill"}, {"at": "2026-01-01T00:00:00"}, {"at": "yesterday"},
    {"reason": None},
])
def test_bad_decisions_raise(signer, bad):
    with pytest.raises(InvalidDecision):
        signer.sign({**DECISION, **bad})


def test_epoch_seconds():
    assert epoch_seconds("2026-01-01T00:00:00Z") == 1767225600
    assert epoch_seconds("2026-01-01T01:00:00.900+01:00") == 1767225600


def test_encode_message_roundtrip(signer, key):
    raw = encode_message(DECISION, signer)
    doc = orjson.loads(raw)
    assert doc["decision"] == DECISION
    assert pyjwt_decode(doc["set"], key)["jti"] == DECISION["id"]


def test_our_verifier_accepts_and_names_failures(signer, key, tmp_path):
    v = SetVerifier(build_jwks(key), ISS, AUD)
    token = signer.sign(DECISION)
    assert v.verify(token)["jti"] == "d-8f2c"
    # another key, same kid: forged
    other = generate_key(tmp_path / "other.pem")
    forger = SetSigner(type(key)(other.key, key.kid, other.alg), ISS, AUD)
    with pytest.raises(ForgedSignature):
        v.verify(forger.sign(DECISION)) if key.kty == "OKP" else v.verify(_swap_sig(token, forger.sign(DECISION)))
    # unknown kid
    with pytest.raises(UnknownKey):
        v.verify(SetSigner(other, ISS, AUD).sign(DECISION))
    # tampered payload
    h, p, s = token.split(".")
    claims = _b64json(p)
    claims["sub_id"]["session"]["id"] = "s2"
    p2 = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(ForgedSignature):
        v.verify(f"{h}.{p2}.{s}")
    for junk in ["", "a.b", "a.b.c", "...", "x" * 20000, 42]:
        with pytest.raises(MalformedToken):
            v.verify(junk)
    with pytest.raises(WrongIssuer):
        SetVerifier(build_jwks(key), "https://evil/", AUD).verify(token)
    with pytest.raises(WrongAudience):
        SetVerifier(build_jwks(key), ISS, "https://someone-else/").verify(token)
    # a logout token is not a SET (typ)
    with pytest.raises(WrongType):
        v.verify(signer.logout_token(DECISION))
    with pytest.raises(ForbiddenClaim):
        v.verify(signer.sign_claims({**signer.claims(DECISION), "sub": "u1"}))
    with pytest.raises(ForbiddenClaim):
        v.verify(signer.sign_claims({**signer.claims(DECISION), "exp": NOW + 60}))
    two = signer.claims(DECISION)
    two["events"] = {wire.SESSION_REVOKED: {}, wire.RISK_LEVEL_CHANGE: {}}
    assert len(v.verify(signer.sign_claims(two))["events"]) == 2  # SSF 1.0 section 4.2.1 allows several
    with pytest.raises(BadEvents):
        SetVerifier(build_jwks(key), ISS, AUD, single_event=True, clock=lambda: NOW).verify(signer.sign_claims(two))
    with pytest.raises(BadEvents):
        v.verify(signer.sign_claims({**two, "events": {}}))


def _swap_sig(token: str, other: str) -> str:
    return ".".join(token.split(".")[:2] + other.split(".")[2:])


def test_logout_token(signer, key):
    tok = signer.logout_token({**DECISION, "sso_session": "op-sid-1"}, audience="client-1")
    assert _b64json(tok.split(".")[0])["typ"] == "logout+jwt"
    pub = pyjwt.PyJWK(key.public_jwk())
    c = pyjwt.decode(tok, pub.key, algorithms=[key.alg], audience="client-1",
                     options={"verify_exp": False, "verify_iat": False})
    assert c["events"] == {"http://schemas.openid.net/event/backchannel-logout": {}}
    assert c["sid"] == "op-sid-1" and c["exp"] == NOW + 120 and "nonce" not in c
    with pytest.raises(InvalidDecision):
        signer.logout_token({**DECISION, "action": "step_up"})


def test_a_login_that_names_the_users_email_gives_revocations_an_email_subject(signer, key):
    from streams.engine import Engine, loads_policy, parse_event

    eng = Engine(loads_policy('[defaults]\nidle = "30m"'))
    eng.handle(parse_event({"type": "login", "ts": 0, "user": "u1", "session": "s1", "email": "u1@example.com"}), 0.0)
    eng.handle(parse_event({"type": "user_disabled", "ts": 5, "user": "u1"}), 5.0)
    outs = eng.handle(parse_event({"type": "credential_change", "ts": 6, "user": "u1"}), 6.0)
    assert outs == []  # already revoked by the account event
    d = eng.store["u1"].sessions["s1"].terminal
    assert d["email"] == "u1@example.com"
    assert signer.claims(d)["sub_id"]["user"] == {"format": "email", "email": "u1@example.com"}
    issuer_signer = SetSigner(key, ISS, AUD, user_issuer="https://idp.example.com/")
    assert issuer_signer.claims(d)["sub_id"]["user"] == {"format": "iss_sub", "iss": "https://idp.example.com/", "sub": "u1"}


def test_an_ids_alert_and_the_sso_cascade_it_starts_share_one_txn(signer):
    from streams.engine import Engine, loads_policy, parse_event

    eng = Engine(loads_policy('[defaults]\nidle = "30m"\n[ids]\nrevoke = ["critical"]'))
    for sid in ("a", "b"):
        eng.handle(parse_event({"type": "login", "ts": 0, "user": "u1", "session": sid, "sso_session": "sso"}), 0.0)
    eng.handle(parse_event({"type": "login", "ts": 0, "user": "u2", "session": "c"}), 0.0)
    alert = parse_event({"type": "alert", "ts": 5, "severity": "critical", "src_ip": "192.0.2.9", "signature": "C2"})
    outs = eng.handle_alert([alert.targeted("u1", "a"), alert.targeted("u2", "c")], 5.0)
    got = {o.value["session"]: (o.value["reason"], signer.claims(o.value)["txn"]) for o in outs if o.kind == "decision"}
    assert {k: v[0] for k, v in got.items()} == {"a": "ids_alert", "c": "ids_alert", "b": "sso_logout"}
    assert len({v[1] for v in got.values()}) == 1, got
