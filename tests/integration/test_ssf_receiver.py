"""lapse as an SSF receiver: SETs an identity provider pushes (signed with a test IdP key whose
JWKS a test server publishes) end the user's sessions in a real worker; a forged SET is refused
with RFC 8935 ``invalid_key`` and dead-lettered; a rotated key is picked up by refetching the JWKS."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import orjson
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jws
from joserfc.jwk import RSAKey

from enforce import wire
from streams.config import Settings
from streams.topics import create_topics
from tests.integration.test_ssf_push import POLICY
from tests.integration.test_ssf_support import AUDIENCE, ISSUER, SsfProcess, keys, prefix, wait_for
from tests.support.worker import TopicReader, WorkerProcess, produce, write_policy

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(240)]

IDP = "https://idp.test/"
LAPSE_AUD = "https://lapse.test/ssf-receiver"
PUSH_TOKEN = "idp-push-" + "z" * 40


def rsa_jwk(kid: str) -> RSAKey:
    return RSAKey.import_key(rsa.generate_private_key(public_exponent=65537, key_size=2048), {"kid": kid})


def sign(key: RSAKey, kid: str, claims: dict) -> str:
    return jws.serialize_compact({"alg": "RS256", "typ": "secevent+jwt", "kid": kid}, json.dumps(claims), key)


def caep(uri: str, subject: dict, **body) -> dict:
    return {"iss": IDP, "aud": LAPSE_AUD, "iat": int(time.time()), "jti": uuid.uuid4().hex,
            "sub_id": subject, "events": {uri: {"event_timestamp": int(time.time()), **body}}}


async def test_idp_sets_end_sessions_and_forgeries_are_refused(kafka_bootstrap, tmp_path):
    pfx = prefix()
    await create_topics(Settings.load({"LAPSE_BOOTSTRAP": kafka_bootstrap, "LAPSE_TOPIC_PREFIX": pfx}))
    k = keys(tmp_path)
    k1, k2, evil = rsa_jwk("k1"), rsa_jwk("k2"), rsa_jwk("k1")
    published = {"keys": [k1.as_dict(private=False) | {"kid": "k1", "use": "sig", "alg": "RS256"}]}
    fetches = {"n": 0}

    async def jwks(request):
        fetches["n"] += 1
        return web.json_response(published)

    idp = web.Application()
    idp.router.add_get("/jwks", jwks)
    runner = web.AppRunner(idp, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    idp_url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    (tmp_path / "push-token").write_text(PUSH_TOKEN)
    (tmp_path / "receiver.toml").write_text(f"""
[[provider]]
name = "idp"
issuer = "{IDP}"
jwks_uri = "{idp_url}/jwks"
audience = "{LAPSE_AUD}"
user = "sub"
push_token_file = "{tmp_path / 'push-token'}"
allow_http = true
jwks_min_refetch_s = 0
""")
    worker = WorkerProcess(kafka_bootstrap, pfx, f"{pfx}app", write_policy(tmp_path / "p.toml", POLICY), k["worker"],
                           tmp_path, extra_env={"LAPSE_SET_ISSUER": ISSUER, "LAPSE_SET_AUDIENCE": AUDIENCE}).start()
    ssf = SsfProcess(kafka_bootstrap, pfx, tmp_path, k,
                     extra_env={"LAPSE_SSF_RECEIVER_FILE": str(tmp_path / "receiver.toml")}).start()
    push_url = f"{ssf.url}/ssf/receive/idp"
    hdrs = {"Content-Type": "application/secevent+jwt", "Authorization": f"Bearer {PUSH_TOKEN}"}
    try:
        await ssf.wait_ready()
        await worker.wait_ready()
        now = time.time()
        await produce(kafka_bootstrap, pfx, [
            ("identity", {"type": "login", "ts": now, "user": "ann", "session": "ann-web", "sso_session": "idp-s-7"}),
            ("identity", {"type": "login", "ts": now, "user": "ann", "session": "ann-mobile"}),
            ("identity", {"type": "login", "ts": now, "user": "bob", "session": "bob-web"}),
        ])
        async with TopicReader(kafka_bootstrap, pfx + "revocations") as revs, \
                TopicReader(kafka_bootstrap, pfx + "dead-letters") as dead, httpx.AsyncClient(timeout=10) as http:
            ann = {"format": "iss_sub", "iss": IDP, "sub": "ann"}
            # the IdP's session ends: lapse ends the sessions linked to it
            t1 = sign(k1, "k1", caep(wire.SESSION_REVOKED, {"format": "complex", "user": ann,
                                                             "session": {"format": "opaque", "id": "idp-s-7"}}))
            r = await http.post(push_url, content=t1, headers=hdrs)
            assert r.status_code == 202, r.text
            assert (await http.post(push_url, content=t1, headers=hdrs)).status_code == 202  # a retry: idempotent

            # forged (right kid, wrong key) and wrong audience: refused with the RFC 8935 error
            bob = {"format": "iss_sub", "iss": IDP, "sub": "bob"}
            forged = sign(evil, "k1", caep(wire.RISC_ACCOUNT_DISABLED, bob))
            r = await http.post(push_url, content=forged, headers=hdrs)
            assert r.status_code == 400 and r.json()["err"] == "invalid_key"
            wrong_aud = sign(k1, "k1", {**caep(wire.RISC_ACCOUNT_DISABLED, bob), "aud": "someone-else"})
            r = await http.post(push_url, content=wrong_aud, headers=hdrs)
            assert r.status_code == 400 and r.json()["err"] == "invalid_audience"
            r = await http.post(push_url, content=t1, headers={**hdrs, "Authorization": "Bearer nope"})
            assert r.status_code == 401

            # the IdP rotates to k2: an unknown kid refetches the JWKS
            published["keys"].append(k2.as_dict(private=False) | {"kid": "k2", "use": "sig", "alg": "RS256"})
            t2 = sign(k2, "k2", caep(wire.CREDENTIAL_CHANGE, ann, credential_type="password", change_type="update"))
            r = await http.post(push_url, content=t2, headers=hdrs)
            assert r.status_code == 202, r.text
            assert fetches["n"] == 2

            def revoked():
                return {v["decision"]["session"]: v["decision"]["reason"] for v in revs.values()
                        if v["decision"]["action"] == "revoke"}

            await wait_for(lambda: {"ann-web", "ann-mobile"} <= set(revoked()), 60,
                           f"ann's sessions revoked: {revoked()}\n{ssf.tail()}")
            assert revoked()["ann-web"] == "sso_logout" and revoked()["ann-mobile"] == "account_event"
            await wait_for(lambda: len(dead.values()) >= 2, 30, "dead letters of the refused SETs")
            reasons = sorted(d["reason"].split(":")[0] for d in dead.values())
            assert reasons == ["ssf invalid_audience", "ssf invalid_key"]
            assert all(d["stage"] == "ssf-receiver" and d["topic"] == "ssf:idp" for d in dead.values())
            assert "bob-web" not in revoked()
            health = (await http.get(f"{ssf.url}/health")).json()["receiver"]
            assert health["accepted"] == 2 and health["duplicates"] == 1 and health["refused"] == 2
        # the canonical events on the identity topic carry the subject's issuer
        async with TopicReader(kafka_bootstrap, pfx + "identity") as ident:
            await wait_for(lambda: sum(1 for v in ident.values() if v.get("source") == "ssf:idp") == 2, 30, "events")
            mapped = [v for v in ident.values() if v.get("source") == "ssf:idp"]
            assert [v["type"] for v in mapped] == ["logout", "credential_change"]
            assert mapped[0]["sso_session"] == "idp-s-7" and all(v["issuer"] == IDP and v["user"] == "ann" for v in mapped)
    finally:
        ssf.stop()
        worker.stop()
        await runner.cleanup()


async def test_lapse_polls_an_idp_stream_acks_what_it_published_and_reports_forgeries(kafka_bootstrap, tmp_path):
    pfx = prefix()
    await create_topics(Settings.load({"LAPSE_BOOTSTRAP": kafka_bootstrap, "LAPSE_TOPIC_PREFIX": pfx}))
    k = keys(tmp_path)
    k1, evil = rsa_jwk("k1"), rsa_jwk("k1")
    published = {"keys": [k1.as_dict(private=False) | {"kid": "k1", "use": "sig", "alg": "RS256"}]}
    ann = {"format": "email", "email": "ann@example.com"}
    good = caep(wire.RISC_ACCOUNT_DISABLED, ann)
    bad = caep(wire.RISC_ACCOUNT_DISABLED, ann)
    queue = {good["jti"]: sign(k1, "k1", good), bad["jti"]: sign(evil, "k1", bad)}
    seen = {"acks": [], "errs": {}, "auth": set()}

    async def jwks(request):
        return web.json_response(published)

    async def poll(request):
        body = await request.json()
        seen["auth"].add(request.headers.get("Authorization"))
        for j in body.get("ack", []):
            seen["acks"].append(j)
            queue.pop(j, None)
        for j, e in body.get("setErrs", {}).items():
            seen["errs"][j] = e
            queue.pop(j, None)
        assert body["returnImmediately"] is False and body["maxEvents"] == 10
        return web.json_response({"sets": dict(queue), "moreAvailable": False})

    idp = web.Application()
    idp.router.add_get("/jwks", jwks)
    idp.router.add_post("/poll", poll)
    runner = web.AppRunner(idp, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    idp_url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    (tmp_path / "poll-token").write_text("lapse-polls-" + "p" * 40)
    (tmp_path / "receiver.toml").write_text(f"""
[[provider]]
name = "idp"
issuer = "{IDP}"
jwks_uri = "{idp_url}/jwks"
audience = "{LAPSE_AUD}"
user = "email"
poll_url = "{idp_url}/poll"
poll_token_file = "{tmp_path / 'poll-token'}"
poll_max_events = 10
allow_http = true
""")
    ssf = SsfProcess(kafka_bootstrap, pfx, tmp_path, k,
                     extra_env={"LAPSE_SSF_RECEIVER_FILE": str(tmp_path / "receiver.toml")}).start()
    try:
        async with TopicReader(kafka_bootstrap, pfx + "identity") as ident, \
                TopicReader(kafka_bootstrap, pfx + "dead-letters") as dead:
            await ssf.wait_ready()
            await wait_for(lambda: good["jti"] in seen["acks"] and bad["jti"] in seen["errs"], 30,
                           f"the ack and the setErr\n{ssf.tail()}")
            assert seen["errs"][bad["jti"]]["err"] == "invalid_key"
            assert seen["auth"] == {"Bearer lapse-polls-" + "p" * 40}
            await wait_for(lambda: ident.values() and dead.values(), 30, "the event and the dead letter")
            (ev,) = ident.values()
            assert ev["type"] == "user_disabled" and ev["user"] == "ann@example.com" and ev["email"] == "ann@example.com"
            assert orjson.loads(orjson.dumps(dead.values()[0]))["reason"].startswith("ssf invalid_key")
    finally:
        ssf.stop()
        await runner.cleanup()
