"""Back-Channel Logout tokens (BCL 1.0 section 2.4) and the receiver's verification, JWKS cache
and mapping of CAEP / RISC events to canonical lapse events."""

from __future__ import annotations

import json
import time

import jwt as pyjwt
import pytest
from aiohttp import web
from joserfc import jws

from enforce import wire
from streams.config import ConfigError
from streams.publish.keys import generate_key
from streams.ssf.bcl import BclClient, load_clients
from streams.ssf.config import SsfSettings
from streams.ssf.receiver import JwksCache, Provider, Refused, load_providers, map_set, verify_set


def claims_for(session="s1", user="frank", jti="d1", txn="t1"):
    return {"jti": jti, "txn": txn, "sub_id": {"format": "complex", "user": {"format": "opaque", "id": user},
                                               "session": {"format": "opaque", "id": session}}}


def test_logout_items_and_tokens(tmp_path):
    key = generate_key(tmp_path / "op.pem", kty="rsa", bits=2048)
    c = BclClient("crm", "https://crm/bcl", "https://op/", key, apps=("crm",), sid="auto", sub=True)
    d = {"id": "d1", "session": "s1", "user": "frank", "sso_session": "op-sid", "app": "crm"}
    item = c.item(claims_for(), d)
    assert item["sid"] == "op-sid" and item["sub"] == "frank"
    assert c.item(claims_for(), {**d, "app": "mail"}) is None  # not this RP's session
    # an unsigned copy that does not describe the SET is not believed
    assert c.item(claims_for(), {**d, "id": "other"}) is None  # (then no app is known: not crm's)
    anyapp = BclClient("all", "https://all/bcl", "https://op/", key)
    assert anyapp.item(claims_for(), {**d, "id": "other"})["sid"] == "s1"
    # the sessions of one cause: one token per RP
    assert anyapp.item(claims_for("s2", jti="d2"), {**d, "id": "d2", "session": "s2"})["jti"] == \
        anyapp.item(claims_for("s3", jti="d3"), {**d, "id": "d3", "session": "s3"})["jti"]
    only_sso = BclClient("x", "https://x/", "https://op/", key, sid="sso_session")
    assert only_sso.item(claims_for(), {**d, "sso_session": None}) is None
    tok = c.token(item, time.time(), 120)
    assert pyjwt.get_unverified_header(tok)["typ"] == "logout+jwt"
    cl = pyjwt.decode(tok, pyjwt.PyJWK(key.public_jwk()).key, algorithms=["RS256"], audience="crm", issuer="https://op/")
    assert cl["events"] == {wire.BACKCHANNEL_LOGOUT: {}} and cl["exp"] - cl["iat"] == 120 and "nonce" not in cl


def test_logout_client_file(tmp_path):
    generate_key(tmp_path / "op.pem", kty="rsa", bits=2048)
    f = tmp_path / "bcl.toml"
    f.write_text('[[client]]\nclient_id = "a"\nbackchannel_logout_uri = "https://a/bcl"\n')
    with pytest.raises(ConfigError, match="issuer"):
        load_clients(SsfSettings.load({"LAPSE_SSF_BCL_FILE": str(f)}))
    (c,) = load_clients(SsfSettings.load({"LAPSE_SSF_BCL_FILE": str(f), "LAPSE_SSF_BCL_ISSUER": "https://op/",
                                          "LAPSE_SSF_BCL_KEY_FILE": str(tmp_path / "op.pem")}))
    assert c.issuer == "https://op/" and c.key.alg == "RS256"
    f.write_text('[[client]]\nclient_id = "a"\nbackchannel_logout_uri = "http://a/bcl"\n')
    with pytest.raises(ConfigError, match="https"):
        load_clients(SsfSettings.load({"LAPSE_SSF_BCL_FILE": str(f), "LAPSE_SSF_BCL_ISSUER": "x",
                                       "LAPSE_SSF_BCL_KEY_FILE": str(tmp_path / "op.pem")}))


def test_provider_file_never_takes_literal_secrets(tmp_path):
    f = tmp_path / "rx.toml"
    f.write_text('[[provider]]\nname = "idp"\nissuer = "https://idp/"\njwks_uri = "https://idp/jwks"\n'
                 'audience = "lapse"\npush_token = "' + "x" * 40 + '"\n')
    with pytest.raises(ConfigError, match="never literal"):
        load_providers(SsfSettings.load({"LAPSE_SSF_RECEIVER_FILE": str(f)}))


IDP = "https://idp/"
P = Provider("idp", IDP, "https://idp/jwks", ("lapse",), "sub", (IDP,))


def test_mapping_of_caep_and_risc_events():
    ann = {"format": "iss_sub", "iss": IDP, "sub": "ann"}

    def m(uri, body=None, sub=ann):
        return map_set(P, {"jti": "j", "iat": 100, "sub_id": sub, "events": {uri: body or {}}})

    (t, k, ev), = m(wire.SESSION_REVOKED, {"event_timestamp": 90},
                    {"format": "complex", "user": ann, "session": {"format": "opaque", "id": "idp-s"}})[0]
    assert (t, k) == ("identity", "ann") and ev == {"type": "logout", "ts": 90, "id": "ssf:idp:j:0", "source": "ssf:idp",
                                                    "issuer": IDP, "sso_session": "idp-s", "user": "ann"}
    assert m(wire.SESSION_REVOKED)[0][0][2]["type"] == "logout" and "sso_session" not in m(wire.SESSION_REVOKED)[0][0][2]
    assert m(wire.CREDENTIAL_CHANGE)[0][0][2]["type"] == "credential_change"
    assert m(wire.RISC_ACCOUNT_DISABLED)[0][0][2]["type"] == "user_disabled"
    assert m(wire.RISC_ACCOUNT_PURGED)[0][0][2]["type"] == "user_disabled"
    (t, _, ev), = m(wire.RISK_LEVEL_CHANGE, {"principal": "USER", "current_level": "HIGH", "risk_reason": "leak"})[0]
    assert t == "ids-alerts" and ev["severity"] == "high" and ev["type"] == "alert"
    assert m(wire.RISK_LEVEL_CHANGE, {"current_level": "LOW"}) == ([], 1)
    assert m(wire.RISC_ACCOUNT_ENABLED) == ([], 1)
    with pytest.raises(Refused, match="no user"):
        m(wire.CREDENTIAL_CHANGE, sub={"format": "email", "email": "ann@x"})
    with pytest.raises(Refused):
        m(wire.CREDENTIAL_CHANGE, sub={"format": "iss_sub", "iss": "https://other-idp/", "sub": "ann"})
    two = map_set(P, {"jti": "j", "iat": 1, "sub_id": ann, "events": {wire.CREDENTIAL_CHANGE: {},
                                                                      wire.RISC_ACCOUNT_DISABLED: {}}})[0]
    assert [e["type"] for _, _, e in two] == ["credential_change", "user_disabled"]
    by_email = Provider("idp", IDP, "https://idp/jwks", ("lapse",), "email")
    assert map_set(by_email, {"jti": "j", "iat": 1, "sub_id": {"format": "email", "email": "Ann@X.com"},
                              "events": {wire.CREDENTIAL_CHANGE: {}}})[0][0][2]["user"] == "ann@x.com"


async def test_verification_and_jwks_cache(tmp_path):
    from joserfc.jwk import RSAKey

    k1 = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    doc = {"keys": [k1.as_dict(private=False) | {"kid": "k1", "alg": "RS256"}]}
    hits = {"n": 0}

    async def jwks(request):
        hits["n"] += 1
        return web.json_response(doc)

    app = web.Application()
    app.router.add_get("/jwks", jwks)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    import aiohttp

    now = {"t": 1000.0}
    async with aiohttp.ClientSession() as http:
        cache = JwksCache(http, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/jwks",
                          min_refetch_s=30, clock=lambda: now["t"])

        def sign(claims, **hdr):
            h = {"alg": "RS256", "typ": "secevent+jwt", "kid": "k1", **hdr}
            return jws.serialize_compact(h, json.dumps(claims), k1)

        good = {"iss": IDP, "aud": "lapse", "iat": int(time.time()), "jti": "j", "events": {wire.CREDENTIAL_CHANGE: {}}}
        assert (await verify_set(sign(good), P, cache))["jti"] == "j"
        for bad, err in [({**good, "iss": "https://evil/"}, "invalid_issuer"), ({**good, "aud": "x"}, "invalid_audience"),
                         ({**good, "events": {}}, "invalid_request"), ({**good, "exp": 1}, "invalid_request"),
                         ({**good, "iat": time.time() + 3600}, "invalid_request")]:
            with pytest.raises(Refused) as e:
                await verify_set(sign(bad), P, cache)
            assert e.value.err == err
        with pytest.raises(Refused) as e:
            await verify_set(sign(good, typ="JWT"), P, cache)
        assert e.value.err == "invalid_request"
        with pytest.raises(Refused) as e:
            await verify_set(sign(good).rsplit(".", 1)[0] + ".AAAA", P, cache)
        assert e.value.err == "invalid_key"
        # unknown kids: one refetch per min_refetch_s, however many tokens name them
        assert hits["n"] == 1
        for _ in range(5):
            with pytest.raises(Refused):
                await verify_set(sign(good, kid="nope"), P, cache)
        assert hits["n"] == 1
        now["t"] += 31
        with pytest.raises(Refused):
            await verify_set(sign(good, kid="nope"), P, cache)
        assert hits["n"] == 2
        now["t"] += 3601  # the cache expires: fetched again
        await verify_set(sign(good), P, cache)
        assert hits["n"] == 3
    await runner.cleanup()
