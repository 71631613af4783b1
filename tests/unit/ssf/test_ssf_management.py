"""Stream management over real HTTP (aiohttp on 127.0.0.1) against an in-process transmitter whose
revocations feed is off: records are handed to ``fan_out`` as the feed would, so no broker."""

from __future__ import annotations

import httpx
import jwt as pyjwt
import pytest
from aiohttp import web

from enforce import wire
from enforce.verify import SetVerifier
from streams.config import Settings
from streams.publish.keys import build_jwks, generate_key
from streams.publish.set import SetSigner, encode_message
from streams.ssf.auth import Tokens
from streams.ssf.config import SsfSettings
from streams.ssf.transmitter import Transmitter
from streams.ssf.web import build_app

ISS, AUD = "https://lapse.test/", "gw"
RX, RO, OTHER, OPS = ("a" * 40, "b" * 40, "c" * 40, "d" * 40)
TOKENS = f"rx {RX} ssf.manage https://rx/,https://rx2/\nro {RO} ssf.read\nother {OTHER} ssf.manage\nops {OPS} ssf.admin"


def h(tok=RX):
    return {"Authorization": f"Bearer {tok}"}


@pytest.fixture
async def env(tmp_path):
    worker = generate_key(tmp_path / "w.pem")
    key = generate_key(tmp_path / "ssf.pem", kty="rsa", bits=2048)
    ssf = SsfSettings.load({"LAPSE_SSF_STATE_DIR": str(tmp_path / "state"), "LAPSE_SSF_DEFAULT_SUBJECTS": "NONE",
                            "LAPSE_SSF_PUBLIC_URL": "http://127.0.0.1:1/base", "LAPSE_SSF_MIN_VERIFICATION_S": "60",
                            "LAPSE_SSF_POLL_WAIT_S": "0.2"})
    tx = Transmitter(Settings.load({}), ssf, key, SetVerifier(build_jwks(worker), ISS, AUD))
    await tx.start(feed=False)
    app = build_app(tx, Tokens.parse(TOKENS), build_jwks(key))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}/base", timeout=5) as http:
        yield tx, http, SetSigner(worker, ISS, AUD), key
    await runner.cleanup()
    await tx.stop()


async def test_create_read_update_replace_delete(env):
    tx, http, _, _ = env
    assert (await http.get("/ssf/streams")).status_code == 401
    assert (await http.get("/ssf/streams", headers=h("x" * 40))).status_code == 401
    assert (await http.post("/ssf/streams", json={}, headers=h(RO))).status_code == 403
    r = await http.post("/ssf/streams", headers=h(), json={"events_requested": [wire.SESSION_REVOKED],
                                                             "aud": "https://rx2/", "description": "d1"})
    assert r.status_code == 201
    s = r.json()
    sid = s["stream_id"]
    assert s["aud"] == "https://rx2/" and s["delivery"] == {"method": "urn:ietf:rfc:8936",
                                                            "endpoint_url": f"http://127.0.0.1:1/base/ssf/poll/{sid}"}
    assert s["min_verification_interval"] == 60 and s["events_supported"] == [wire.SESSION_REVOKED, wire.RISK_LEVEL_CHANGE]
    assert (await http.get("/ssf/streams", params={"stream_id": sid}, headers=h())).json() == s
    assert [x["stream_id"] for x in (await http.get("/ssf/streams", headers=h())).json()] == [sid]
    assert (await http.get("/ssf/streams", headers=h(OTHER))).json() == []
    assert (await http.get("/ssf/streams", params={"stream_id": sid}, headers=h(OTHER))).status_code == 404
    assert (await http.get("/ssf/streams", params={"stream_id": sid}, headers=h(OPS))).status_code == 200
    r = await http.patch("/ssf/streams", headers=h(), json={"stream_id": sid, "description": "d2"})
    assert r.json()["description"] == "d2" and r.json()["events_requested"] == [wire.SESSION_REVOKED]
    r = await http.put("/ssf/streams", headers=h(), json={"stream_id": sid, "events_requested": [wire.RISK_LEVEL_CHANGE]})
    assert r.json()["events_delivered"] == [wire.RISK_LEVEL_CHANGE] and "description" not in r.json()
    assert r.json()["aud"] == "https://rx2/"  # aud is the transmitter's: kept unless asked for
    bad = await http.post("/ssf/streams", headers=h(), json={"delivery": {"method": "urn:ietf:rfc:8935",
                                                                        "endpoint_url": "http://rx.example.com/"}})
    assert bad.status_code == 400 and "https" in bad.json()["error_description"]
    assert (await http.post("/ssf/streams", headers=h(), content=b"{", )).status_code == 400
    assert (await http.delete("/ssf/streams", params={"stream_id": sid}, headers=h(OTHER))).status_code == 404
    assert (await http.delete("/ssf/streams", params={"stream_id": sid}, headers=h())).status_code == 204
    assert (await http.get("/ssf/streams", params={"stream_id": sid}, headers=h())).status_code == 404
    d = (await http.get("/.well-known/ssf-configuration")).json()
    assert d["configuration_endpoint"] == "http://127.0.0.1:1/base/ssf/streams" and d["default_subjects"] == "NONE"


async def test_subjects_status_verification_and_poll(env):
    tx, http, worker_signer, key = env
    sid = (await http.post("/ssf/streams", headers=h(), json={"events_requested": [wire.SESSION_REVOKED]})).json()["stream_id"]
    poll = f"/ssf/poll/{sid}"

    def publish(i, user):
        d = {"id": f"d{i}", "action": "revoke", "reason": "manual", "session": f"{user}-{i}", "user": user,
             "at": "2026-01-01T00:00:00Z", "evidence": {}}
        rows = tx.fan_out(f"{user}-{i}".encode(), encode_message(d, worker_signer))
        tx.store.enqueue(rows)
        return d["id"]

    # default_subjects NONE: nothing until a subject is added
    publish(1, "ann")
    assert (await http.post(poll, headers=h(), json={"returnImmediately": True})).json()["sets"] == {}
    ann = {"format": "opaque", "id": "ann"}
    assert (await http.post("/ssf/subjects:add", headers=h(), json={"stream_id": sid, "subject": ann})).status_code == 200
    assert (await http.post("/ssf/subjects:add", headers=h(), json={"stream_id": sid, "subject": {"format": "x"}})).status_code == 400
    j2 = publish(2, "ann")
    publish(3, "bob")
    got = (await http.post(poll, headers=h(), json={"returnImmediately": True})).json()
    assert list(got["sets"]) == [j2] and got["moreAvailable"] is False
    c = pyjwt.decode(got["sets"][j2], pyjwt.PyJWK(key.public_jwk()).key, algorithms=["RS256"], audience="https://rx/",
                     issuer="http://127.0.0.1:1/base")
    assert c["jti"] == j2 and c["txn"] == j2 and c["sub_id"]["user"] == ann
    assert (await http.post("/ssf/subjects:remove", headers=h(), json={"stream_id": sid, "subject": ann})).status_code == 204
    publish(4, "ann")
    assert (await http.post(poll, headers=h(), json={"ack": [j2], "returnImmediately": True})).json()["sets"] == {}
    # a forged record on the topic is not relayed
    evil = SetSigner(generate_key_in_memory(), ISS, AUD)
    assert tx.fan_out(b"x", encode_message({"id": "f", "action": "revoke", "reason": "manual", "session": "x",
                                             "user": "ann", "at": "2026-01-01T00:00:00Z"}, evil)) == []
    assert tx.counters["source_rejected"] == 1

    # verification: a control event, whatever was requested; then 429 within the interval
    assert (await http.post("/ssf/verify", headers=h(), json={"stream_id": sid, "state": "abc"})).status_code == 204
    r = await http.post("/ssf/verify", headers=h(), json={"stream_id": sid})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    (vj, vt), = (await http.post(poll, headers=h(), json={"returnImmediately": True})).json()["sets"].items()
    assert pyjwt.decode(vt, options={"verify_signature": False})["events"] == {wire.VERIFICATION: {"state": "abc"}}

    # status: the receiver pauses (no event); an operator disables (a stream-updated event)
    assert (await http.get("/ssf/status", params={"stream_id": sid}, headers=h(RO))).status_code == 404
    r = await http.post("/ssf/status", headers=h(), json={"stream_id": sid, "status": "paused"})
    assert r.json() == {"stream_id": sid, "status": "paused"}
    assert (await http.post("/ssf/status", headers=h(), json={"stream_id": sid, "status": "off"})).status_code == 400
    r = await http.post("/ssf/status", headers=h(OPS), json={"stream_id": sid, "status": "disabled", "reason": "maintenance"})
    assert r.json() == {"stream_id": sid, "status": "disabled", "reason": "maintenance"}
    sets = (await http.post(poll, headers=h(), json={"ack": [vj], "returnImmediately": True})).json()["sets"]
    (upd,) = [pyjwt.decode(t, options={"verify_signature": False}) for t in sets.values()]
    assert upd["events"] == {wire.STREAM_UPDATED: {"status": "disabled", "reason": "maintenance"}}
    assert upd["sub_id"] == {"format": "opaque", "id": sid}
    bad = await http.post(poll, headers=h(), json={"maxEvents": -1})
    assert bad.status_code == 400


def generate_key_in_memory():
    from joserfc.jwk import OKPKey

    from streams.publish.keys import SigningKey

    k = OKPKey.generate_key("Ed25519")
    return SigningKey(k, k.thumbprint(), "EdDSA")
