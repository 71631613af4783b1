"""OIDC Back-Channel Logout: an SSO logout a real worker decides becomes logout tokens POSTed to
the registered relying parties; each RP test app validates its token by BCL 1.0 section 2.6."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs

import jwt as pyjwt
import pytest
from aiohttp import web

from streams.config import Settings
from streams.publish.keys import build_jwks, generate_key
from streams.topics import create_topics
from tests.integration.test_ssf_push import POLICY
from tests.integration.test_ssf_support import AUDIENCE, ISSUER, SsfProcess, keys, prefix, wait_for, wait_ssf_drained
from tests.support.worker import WorkerProcess, produce, wait_settled, write_policy

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(240)]

OP = "https://op.test/"
BCL_EVENT = "http://schemas.openid.net/event/backchannel-logout"


class RelyingParty:
    """An RP's back-channel logout endpoint that checks a logout token as BCL 1.0 section 2.6 says."""

    def __init__(self, client_id: str, op_jwks: dict, *, fail_first: int = 0) -> None:
        self.client_id = client_id
        self.keys = {k["kid"]: pyjwt.PyJWK(k) for k in op_jwks["keys"]}
        self.fail_first = fail_first
        self.accepted: list[dict] = []
        self.refused: list[str] = []
        self.seen_jti: set[str] = set()
        self.posts = 0

    def validate(self, token: str) -> dict:
        header = pyjwt.get_unverified_header(token)
        assert header.get("typ") == "logout+jwt", "2.4: explicit typing"
        assert header["alg"] != "none"
        jwk = self.keys[header["kid"]]                      # 2.6 (2): a key of the OP
        claims = pyjwt.decode(token, jwk.key, algorithms=[header["alg"]], audience=self.client_id, issuer=OP,
                              options={"require": ["iss", "aud", "iat", "exp", "jti"]})  # 2.6 (2)(3)
        assert "sub" in claims or "sid" in claims           # 2.6 (4)
        assert isinstance(claims["events"].get(BCL_EVENT), dict)  # 2.6 (5)
        assert "nonce" not in claims                        # 2.6 (6)
        assert claims["exp"] - claims["iat"] <= 300         # short-lived (2.4)
        assert claims["iat"] <= time.time() + 5
        return claims

    async def handle(self, request: web.Request) -> web.Response:
        self.posts += 1
        assert request.content_type == "application/x-www-form-urlencoded"
        form = parse_qs((await request.read()).decode())
        if self.posts <= self.fail_first:
            return web.Response(status=503)
        token = form["logout_token"][0]
        try:
            claims = self.validate(token)
        except Exception as exc:  # the spec: 400 for an invalid logout token
            self.refused.append(repr(exc))
            return web.json_response({"error": "invalid_request", "error_description": str(exc)}, status=400)
        if claims["jti"] not in self.seen_jti:  # 2.6 (7): replay
            self.seen_jti.add(claims["jti"])
            self.accepted.append(claims)
        return web.Response(status=200, headers={"Cache-Control": "no-store"})


async def test_sso_logout_reaches_relying_parties_as_valid_logout_tokens(kafka_bootstrap, tmp_path):
    pfx = prefix()
    await create_topics(Settings.load({"LAPSE_BOOTSTRAP": kafka_bootstrap, "LAPSE_TOPIC_PREFIX": pfx}))
    k = keys(tmp_path)
    op_key = generate_key(tmp_path / "op.pem", kty="rsa", bits=2048)
    op_jwks = build_jwks(op_key)
    mail, crm, portal = (RelyingParty("mail-app", op_jwks), RelyingParty("crm-app", op_jwks, fail_first=2),
                         RelyingParty("portal", op_jwks))
    app = web.Application()
    for rp in (mail, crm, portal):
        app.router.add_post(f"/{rp.client_id}/bcl", rp.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    (tmp_path / "bcl.toml").write_text(f"""
[[client]]
client_id = "mail-app"
backchannel_logout_uri = "{base}/mail-app/bcl"
apps = ["mail"]
[[client]]
client_id = "crm-app"
backchannel_logout_uri = "{base}/crm-app/bcl"
apps = ["crm"]
sid = "sso_session"
[[client]]
client_id = "portal"
backchannel_logout_uri = "{base}/portal/bcl"
sub = true
""")
    worker = WorkerProcess(kafka_bootstrap, pfx, f"{pfx}app", write_policy(tmp_path / "p.toml", POLICY), k["worker"],
                           tmp_path, extra_env={"LAPSE_SET_ISSUER": ISSUER, "LAPSE_SET_AUDIENCE": AUDIENCE}).start()
    ssf = SsfProcess(kafka_bootstrap, pfx, tmp_path, k, extra_env={
        "LAPSE_SSF_BCL_FILE": str(tmp_path / "bcl.toml"), "LAPSE_SSF_BCL_ISSUER": OP,
        "LAPSE_SSF_BCL_KEY_FILE": str(tmp_path / "op.pem")}).start()
    try:
        await ssf.wait_ready()
        await worker.wait_ready()
        now = time.time()
        await produce(kafka_bootstrap, pfx, [
            ("identity", {"type": "login", "ts": now, "user": "frank", "session": "frank-mail",
                          "sso_session": "op-sid-42", "app": "mail"}),
            ("identity", {"type": "login", "ts": now, "user": "frank", "session": "frank-crm",
                          "sso_session": "op-sid-42", "app": "crm"}),
        ])
        # the worker has decided both logins (committed them, so their session_start is on the
        # broker) before the logout comes
        await wait_settled(kafka_bootstrap, f"{pfx}app", [pfx + "identity"])
        await produce(kafka_bootstrap, pfx, [
            ("identity", {"type": "logout", "ts": time.time(), "user": "frank", "sso_session": "op-sid-42"}),
        ])
        await wait_for(lambda: mail.accepted and crm.accepted and portal.accepted, 90,
                       f"logout tokens at every RP\n{ssf.tail()}")
        # nothing more should come: the worker has decided the logout (every decision of it is on
        # the revocations topic), then lapse ssf has read that topic past them and has no logout
        # token left queued for any RP, so whatever these inputs cause has been POSTed by now
        await wait_settled(kafka_bootstrap, f"{pfx}app", [pfx + "identity"])
        await wait_ssf_drained(kafka_bootstrap, pfx + "revocations", tmp_path / "ssf-state", targets="bcl:%")
        for rp in (mail, crm, portal):
            assert rp.refused == [], rp.refused
            (c,) = rp.accepted  # one SSO logout, one token per RP (both sessions share the cause)
            assert c["iss"] == OP and c["aud"] == rp.client_id and c["sid"] == "op-sid-42"
        assert "sub" not in mail.accepted[0] and portal.accepted[0]["sub"] == "frank"
        assert crm.posts >= 3  # two 503s, then delivered
        assert json.loads(json.dumps(mail.accepted[0]["events"])) == {BCL_EVENT: {}}
    finally:
        ssf.stop()
        worker.stop()
        await runner.cleanup()
