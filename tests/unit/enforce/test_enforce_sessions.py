"""Session-id candidates: whichever reading of the Cookie / session headers the app behind the
middleware uses, a revoked session is refused. Each attack is first shown to reach the app with
the revoked id (no middleware), then shown to be refused through the middleware."""

from __future__ import annotations

from http.cookies import SimpleCookie, _unquote
from types import SimpleNamespace

import httpx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request, cookie_parser
from starlette.responses import JSONResponse
from starlette.routing import Route

from enforce import (
    CookieHeaderTooLarge,
    EnforceConfigError,
    RevocationMiddleware,
    TooManySessionCandidates,
    session_from,
)
from enforce.sessions import MAX_CANDIDATES, MAX_COOKIE_BYTES, python_unquote
from enforce.wire import MAX_SESSION_CHARS

REVOKED = "REVOKED-s1"
REASON = "Your session was ended for your security."


class FakeClient:
    """The two lookups the middleware makes, over fixed sets (no Kafka needed here)."""

    def __init__(self, revoked=(REVOKED,), step=()) -> None:
        self.revoked, self.step = set(revoked), set(step)
        self.caught_up = True
        self.asked: list[str] = []

    def is_revoked(self, s):
        self.asked.append(s)
        return s in self.revoked

    def requires_step_up(self, s):
        return s in self.step

    def revocation(self, s):
        return SimpleNamespace(reason_user=REASON) if s in self.revoked else None


async def starlette_cookie(request: Request) -> JSONResponse:
    return JSONResponse({"session": request.cookies.get("sid")})


async def starlette_header_or_cookie(request: Request) -> JSONResponse:
    return JSONResponse({"session": request.headers.get("x-session-id") or request.cookies.get("sid")})


async def simple_cookie(request: Request) -> JSONResponse:
    jar = SimpleCookie()
    for h in request.headers.getlist("cookie"):
        jar.load(h)
    return JSONResponse({"session": jar["sid"].value if "sid" in jar else None})


def backend() -> Starlette:
    """The app behind the gateway: three ways real apps read the session."""
    return Starlette(routes=[Route("/cookie", starlette_cookie), Route("/either", starlette_header_or_cookie),
                             Route("/simplecookie", simple_cookie)])


def http(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")


def protected(client: FakeClient | None = None, **kw) -> RevocationMiddleware:
    return RevocationMiddleware(backend(), client or FakeClient(),
                                kw.pop("getter", session_from(cookie="sid", header="x-session-id")), **kw)


ATTACKS = [
    pytest.param("/cookie", [("cookie", f"sid=decoy; sid={REVOKED}")], id="decoy-first-cookie"),
    pytest.param("/cookie", [("cookie", f"sid ={REVOKED}")], id="space-before-equals"),
    pytest.param("/cookie", [("cookie", f"theme=dark;\tsid\t= {REVOKED} ")], id="tabs-around-name-and-value"),
    pytest.param("/cookie", [("cookie", "sid=decoy"), ("cookie", f"sid={REVOKED}")], id="two-cookie-headers"),
    pytest.param("/cookie", [("x-session-id", "decoy"), ("cookie", f"sid={REVOKED}")], id="decoy-header"),
    pytest.param("/cookie", [("cookie", 'sid="REVOKED\\055s1"')], id="octal-escape-in-quoted-value"),
    pytest.param("/cookie", [("cookie", f'sid="{REVOKED}"')], id="quoted-value"),
    pytest.param("/either", [("x-session-id", REVOKED), ("x-session-id", "decoy")], id="two-session-headers"),
    pytest.param("/simplecookie", [("cookie", f"theme=dark sid={REVOKED}")], id="whitespace-separated-pair"),
    pytest.param("/simplecookie", [("cookie", f"sid=decoy; sid={REVOKED}")], id="simplecookie-last-wins"),
]


@pytest.mark.parametrize("path,headers", ATTACKS)
async def test_attack_reaches_the_app_without_the_middleware(path, headers):
    async with http(backend()) as c:
        assert (await c.get(path, headers=headers)).json()["session"] == REVOKED


@pytest.mark.parametrize("path,headers", ATTACKS)
async def test_attack_is_refused_through_the_middleware(path, headers):
    async with http(protected(clear_cookie="sid")) as c:
        r = await c.get(path, headers=headers)
    assert r.status_code == 401, r.text
    assert r.json() == {"error": "session_revoked", "reason": REASON}
    assert r.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


async def test_genuine_requests_yield_one_candidate_and_pass():
    fc = FakeClient()
    async with http(protected(fc)) as c:
        r = await c.get("/cookie", headers={"cookie": "theme=dark; lang=en-GB; sid=s-9f2c1e; _ga=GA1.2.3.4"})
        assert r.status_code == 200 and r.json() == {"session": "s-9f2c1e"}
        assert fc.asked == ["s-9f2c1e"]
        fc.asked.clear()
        r = await c.get("/either", headers={"x-session-id": "s-9f2c1e", "cookie": "sid=s-9f2c1e"})
        assert r.status_code == 200 and fc.asked == ["s-9f2c1e"]
        assert (await c.get("/cookie", headers={"cookie": "theme=dark"})).status_code == 200


async def test_step_up_of_any_candidate_is_challenged():
    fc = FakeClient(revoked=(), step=("risky",))
    async with http(protected(fc)) as c:
        r = await c.get("/cookie", headers={"x-session-id": "fine", "cookie": "sid=risky"})
    assert r.status_code == 401
    assert 'error="insufficient_user_authentication"' in r.headers["www-authenticate"]


async def test_too_many_candidates_is_a_400_never_a_partial_check():
    fc = FakeClient()
    many = "; ".join(f"sid=decoy{i}" for i in range(MAX_CANDIDATES)) + f"; sid={REVOKED}"
    async with http(protected(fc)) as c:
        r = await c.get("/cookie", headers={"cookie": many})
        assert r.status_code == 400 and r.json() == {"error": "too_many_session_candidates"}
        # even when the ids past the cap are harmless: the request is refused, not checked in part
        r = await c.get("/cookie", headers={"cookie": "; ".join(f"sid=d{i}" for i in range(MAX_CANDIDATES + 1))})
        assert r.status_code == 400
        r = await c.get("/cookie", headers={"cookie": "sid=same; " * (MAX_CANDIDATES + 1)})
        assert r.status_code == 400
        exactly = "; ".join(f"sid=d{i}" for i in range(MAX_CANDIDATES))
        assert (await c.get("/cookie", headers={"cookie": exactly})).status_code == 200


async def test_oversized_cookie_headers_are_refused():
    async with http(protected()) as c:
        r = await c.get("/cookie", headers=[("cookie", "a=" + "x" * 4500), ("cookie", "b=" + "y" * 4500)])
    assert r.status_code == 431 and r.json() == {"error": "cookie_too_large"}
    with pytest.raises(CookieHeaderTooLarge):
        session_from(cookie="sid", max_cookie_bytes=1024)({"headers": [(b"cookie", b"a=" + b"x" * 1024)]})


def test_hostile_cookie_and_header_shapes():
    get = session_from(cookie="sid", header="x-session-id")
    # up to the cap, repeated pairs are one candidate; past it the request is refused, however
    # alike the pairs (a genuine browser sends a cookie name once or twice)
    assert get({"headers": [(b"cookie", b"sid=x; " * MAX_CANDIDATES)]}) == ("x",)
    for shape in (b"sid=x; " * 1100, b"sid=x " * 1300, b",sid=" * 1600, b" ".join(b"sid=a%d" % i for i in range(900))):
        with pytest.raises(TooManySessionCandidates):
            get({"headers": [(b"cookie", shape[:MAX_COOKIE_BYTES])]})
    with pytest.raises(TooManySessionCandidates):
        get({"headers": [(b"x-session-id", b"x")] * (MAX_CANDIDATES + 1)})
    with pytest.raises(TooManySessionCandidates):
        get({"headers": [(b"x-session-id", b"x," * MAX_CANDIDATES + b"x")]})
    # names that merely contain the cookie's name, and empty values, are not candidates
    assert get({"headers": [(b"cookie", b"xsid=1; sid_x=2; sid=; sid")]}) == ()
    # a value one parser reads across ';' (a quoted string) and another cuts at it
    assert set(get({"headers": [(b"cookie", b'sid="a;REVOKED"')]})) == {'"a;REVOKED"', "a;REVOKED", '"a'}
    # readings longer than any session id lapse tracks are not candidates
    assert get({"headers": [(b"cookie", b"sid=" + b"a" * (MAX_SESSION_CHARS + 1))]}) == ()
    assert get({"headers": [(b"cookie", b"sid=" + b"a" * MAX_SESSION_CHARS)]}) == ("a" * MAX_SESSION_CHARS,)
    # ... unless some decoding brings them under that length
    assert get({"headers": [(b"cookie", b"sid=" + b"%41" * MAX_SESSION_CHARS)]}) == ("A" * MAX_SESSION_CHARS,)


def test_latin1_whitespace_is_what_str_strip_strips():
    # Starlette strips names and values with str.strip(); the candidate scan uses \s: same set
    import re

    for i in range(256):
        c = chr(i)
        assert bool(re.fullmatch(r"\s", c)) == c.isspace() == (c.strip() == ""), hex(i)


async def test_custom_getters_one_string_or_several():
    fc = FakeClient()

    async with http(protected(fc, getter=lambda scope: "fine")) as c:       # a str, as before
        assert (await c.get("/cookie")).status_code == 200
    async with http(protected(fc, getter=lambda scope: None)) as c:         # no session
        assert (await c.get("/cookie")).status_code == 200
    async with http(protected(fc, getter=lambda scope: ["fine", REVOKED])) as c:  # several
        assert (await c.get("/cookie")).status_code == 401

    def endless(scope):
        i = 0
        while True:
            yield f"s{i}"
            i += 1

    async with http(protected(fc, getter=endless)) as c:
        assert (await c.get("/cookie")).status_code == 400
    mw = protected(fc, getter=lambda scope: b"bytes-are-not-an-id")
    async with http(mw) as c:
        with pytest.raises(TypeError, match="bytes"):
            await c.get("/cookie")
    with pytest.raises(EnforceConfigError, match="max_session_candidates"):
        protected(max_session_candidates=0)
    with pytest.raises(EnforceConfigError, match="max_candidates"):
        session_from(cookie="sid", max_candidates=0)


async def test_websocket_with_too_many_candidates_is_closed():
    sent = []

    async def send(msg):
        sent.append(msg)

    async def receive():
        return {"type": "websocket.connect"}

    headers = [(b"cookie", "; ".join(f"sid=d{i}" for i in range(MAX_CANDIDATES + 1)).encode())]
    await protected()({"type": "websocket", "path": "/", "headers": headers}, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": "too_many_session_candidates"}]


# -- every parser's reading is a candidate ---------------------------------------------------
_piece = st.sampled_from(["sid", "SID", "sid ", " sid", "theme", "=", ";", ",", " ", "\t", '"', "\\",
                          "\\055", "a", "b", "REVOKED", "%41", "+", "\xa0"])
cookie_text = st.lists(_piece, max_size=14).map("".join)


def readings(text: str) -> set[str]:
    """What Starlette and http.cookies would take as the sid cookie of ``text``."""
    out = set()
    v = cookie_parser(text).get("sid")
    if v:
        out.add(v)
    jar = SimpleCookie()
    try:
        jar.load(text)
    except Exception:  # http.cookies gives up on some inputs: it reads no session then
        jar = SimpleCookie()
    if "sid" in jar and jar["sid"].value:
        out.add(jar["sid"].value)
    return out


@settings(max_examples=3000, deadline=None)
@given(cookie_text)
@example('sid="a;b"')
@example('x=1 SID=2; sid="q\\"r" y')
@example('theme="x sid=y"; sid\xa0=\xa0z\xa0')
def test_starlette_and_http_cookies_readings_are_candidates(text):
    get = session_from(cookie="sid", header=None, max_candidates=1024)
    candidates = set(get({"headers": [(b"cookie", text.encode("latin-1"))]}))
    assert readings(text) <= candidates


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet='"\\0123478a\n', max_size=20))
def test_python_unquote_matches_http_cookies(value):
    assert python_unquote(value) == _unquote(value)
    assert python_unquote(f'"{value}"') == _unquote(f'"{value}"')
