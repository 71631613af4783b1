"""The ASGI middleware in front of the example Starlette app, driven through httpx.ASGITransport."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from enforce import EnforceConfigError, RevocationMiddleware, StepUp, session_from

_spec = importlib.util.spec_from_file_location(
    "gateway_app", Path(__file__).resolve().parents[3] / "examples" / "gateway_app.py")
gateway_app = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gateway_app)


class FakeClient:
    def __init__(self) -> None:
        self.revoked: dict[str, str] = {}
        self.step: set[str] = set()
        self.caught_up = True
        self.counters = {"revoked": 0}

    def is_revoked(self, s):
        return s in self.revoked

    def requires_step_up(self, s):
        return s in self.step

    def revocation(self, s):
        return SimpleNamespace(reason_user=self.revoked[s]) if s in self.revoked else None


def http(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")


async def test_revoked_step_up_pass_through():
    fc = FakeClient()
    fc.revoked["bad"] = "Your session was ended for your security."
    fc.step.add("risky")
    app = gateway_app.build_app(fc, manage_client=False,
                                step_up=StepUp(acr_values="urn:example:mfa", max_age=60))
    async with http(app) as c:
        r = await c.get("/whoami", headers={"x-session-id": "good"})
        assert r.status_code == 200 and r.json() == {"ok": True, "session": "good"}
        r = await c.get("/whoami", headers={"x-session-id": "bad"})
        assert r.status_code == 401
        assert r.json() == {"error": "session_revoked", "reason": "Your session was ended for your security."}
        assert r.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
        assert "sid=;" in r.headers["set-cookie"]
        r = await c.get("/whoami", headers={"cookie": "theme=dark; sid=bad"})
        assert r.status_code == 401
        r = await c.get("/whoami", headers={"x-session-id": "risky"})
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == (
            'Bearer error="insufficient_user_authentication", error_description="A stronger '
            'authentication is required", acr_values="urn:example:mfa", max_age="60"')
        assert r.json()["error"] == "insufficient_user_authentication"
        r = await c.get("/whoami")  # no session: the app decides
        assert r.status_code == 200
        r = await c.get("/healthz", headers={"x-session-id": "bad"})  # exempt path
        assert r.status_code == 200


async def test_not_caught_up_fails_closed_and_redirect_step_up():
    fc = FakeClient()
    fc.step.add("risky")

    async def ok(scope, receive, send):
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    mw = RevocationMiddleware(ok, fc, session_from(cookie=None, header="x-s"),
                              StepUp(redirect_url="https://idp.example.com/authorize?client_id=gw"))
    async with http(mw) as c:
        fc.caught_up = False
        r = await c.get("/", headers={"x-s": "anyone"})
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        fc.caught_up = True
        r = await c.get("/", headers={"x-s": "risky", "accept": "text/html"})
        assert r.status_code == 303
        assert r.headers["location"].startswith("https://idp.example.com/authorize?client_id=gw&acr_values=")
        r = await c.get("/", headers={"x-s": "risky", "accept": "application/json"})
        assert r.status_code == 401
        assert (await c.get("/", headers={"x-s": "fine"})).status_code == 204

    satisfied = RevocationMiddleware(ok, fc, session_from(cookie=None, header="x-s"),
                                     step_up_satisfied=lambda scope: True)
    async with http(satisfied) as c:
        assert (await c.get("/", headers={"x-s": "risky"})).status_code == 204
    no_step = RevocationMiddleware(ok, fc, session_from(cookie=None, header="x-s"), step_up=None)
    async with http(no_step) as c:
        assert (await c.get("/", headers={"x-s": "risky"})).status_code == 204


def test_bad_configuration_fails_fast():
    async def app(scope, receive, send):
        pass

    with pytest.raises(EnforceConfigError, match="is_revoked"):
        RevocationMiddleware(app, object())
    with pytest.raises(EnforceConfigError, match="session_getter"):
        RevocationMiddleware(app, FakeClient(), session_getter="sid")
    with pytest.raises(EnforceConfigError, match="step_up"):
        RevocationMiddleware(app, FakeClient(), step_up={"acr_values": "x"})
    with pytest.raises(EnforceConfigError, match="ASGI"):
        RevocationMiddleware(None, FakeClient())
    with pytest.raises(EnforceConfigError, match="acr_values"):
        StepUp(acr_values="")
    with pytest.raises(EnforceConfigError, match="quotes"):
        StepUp(acr_values='a" , evil="1')
    with pytest.raises(EnforceConfigError, match="max_age"):
        StepUp(max_age=-1)
    with pytest.raises(EnforceConfigError, match="redirect_url"):
        StepUp(redirect_url="javascript:alert(1)")
    with pytest.raises(EnforceConfigError):
        session_from(cookie=None, header=None)
    with pytest.raises(EnforceConfigError, match="exempt_paths"):
        RevocationMiddleware(app, FakeClient(), exempt_paths="/healthz")
