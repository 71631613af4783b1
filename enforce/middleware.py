"""ASGI middleware that refuses revoked sessions and challenges sessions that must step up.

Plain ASGI (no Starlette import), so it wraps Starlette, FastAPI or any ASGI app::

    app = RevocationMiddleware(app, client,
                               session_getter=session_from(cookie="sid", header="x-session-id"),
                               step_up=StepUp(acr_values="urn:example:acr:mfa", max_age=300))
    # or, in Starlette: Starlette(middleware=[Middleware(RevocationMiddleware, client=client, ...)])

Answers:

* revoked session -> ``401`` JSON ``{"error": "session_revoked", "reason": ...}`` with
  ``WWW-Authenticate: Bearer error="invalid_token", error_description="session revoked"``;
* step-up required -> ``401`` with ``WWW-Authenticate: Bearer error="insufficient_user_authentication",
  error_description=..., acr_values=...[, max_age=...]`` (RFC 9470); with ``StepUp(redirect_url=...)``
  browsers (``GET`` accepting ``text/html``) get a ``303`` to that URL instead;
* the client has not yet read the whole topic (fresh start) and ``require_caught_up`` -> ``503``
  ``revocations_not_ready`` with ``Retry-After`` (fail closed: a restarting gateway must not let
  revoked sessions through);
* the client's feed is older than its ``max_feed_age_s`` (``client.fresh`` is false) -> ``503``
  ``revocations_stale`` with ``Retry-After``;
* more session-id candidates than ``max_session_candidates`` -> ``400``
  ``too_many_session_candidates``; ``Cookie`` headers over the getter's size cap -> ``431``
  ``cookie_too_large``;
* no session on the request, or only good ones -> the wrapped app. ``step_up_satisfied(scope)``
  lets the app say the request already carries the stronger authentication (e.g. an ``acr`` claim).

The session getter returns every session id the request could be read as (``enforce.sessions``):
one revoked candidate refuses the request, one that must step up challenges it, whichever
reading the app behind uses.

Websocket connections of a revoked / step-up session are closed with code 1008 (policy violation).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Collection, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from enforce.sessions import (
    MAX_CANDIDATES,
    SessionCandidatesError,
    SessionIds,
    normalize,
    session_from,
)
from enforce.state import EnforceConfigError

__all__ = ["DEFAULT_ACR", "RevocationMiddleware", "StepUp", "session_from"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: OpenID PAPE "multi-factor" policy, the most widely understood ACR for "use MFA".
DEFAULT_ACR = "http://schemas.openid.net/pape/policies/2007/06/multi-factor"
DEFAULT_REVOKED_REASON = "Your session has ended. Please sign in again."

_QUOTABLE = re.compile(r'^[\x20-\x7e]+$')
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def _header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope.get("headers") or ():
        if k.lower() == name:
            return v.decode("latin-1")
    return None


@dataclass(frozen=True)
class StepUp:
    """How to ask for stronger authentication (RFC 9470 step-up challenge)."""

    acr_values: str = DEFAULT_ACR
    max_age: int | None = None
    error_description: str = "A stronger authentication is required"
    redirect_url: str | None = None
    status_code: int = 401

    def __post_init__(self) -> None:
        if not isinstance(self.acr_values, str) or not self.acr_values.strip():
            raise EnforceConfigError("StepUp.acr_values must be a non-empty, space-separated list of ACR values")
        for text, what in ((self.acr_values, "acr_values"), (self.error_description, "error_description")):
            if not _QUOTABLE.match(text) or '"' in text or "\\" in text:
                raise EnforceConfigError(f"StepUp.{what} must be printable ASCII without quotes or backslashes")
        if self.max_age is not None and (isinstance(self.max_age, bool) or not isinstance(self.max_age, int) or self.max_age < 0):
            raise EnforceConfigError("StepUp.max_age must be a non-negative integer (seconds) or None")
        if self.redirect_url is not None and not (
            self.redirect_url.startswith(("https://", "http://")) or self.redirect_url.startswith("/")
        ):
            raise EnforceConfigError("StepUp.redirect_url must be an absolute http(s) URL or a path")
        if self.status_code not in (401, 403):
            raise EnforceConfigError("StepUp.status_code must be 401 (RFC 9470) or 403")

    def challenge(self) -> str:
        parts = [
            'Bearer error="insufficient_user_authentication"',
            f'error_description="{self.error_description}"',
            f'acr_values="{self.acr_values}"',
        ]
        if self.max_age is not None:
            parts.append(f'max_age="{self.max_age}"')
        return ", ".join(parts)

    def redirect_location(self) -> str:
        assert self.redirect_url is not None
        q: dict[str, Any] = {"acr_values": self.acr_values}
        if self.max_age is not None:
            q["max_age"] = self.max_age
        sep = "&" if "?" in self.redirect_url else "?"
        return f"{self.redirect_url}{sep}{urlencode(q)}"


class RevocationMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        client: Any,
        session_getter: Callable[[Scope], SessionIds] | None = None,
        step_up: StepUp | None = StepUp(),
        *,
        require_caught_up: bool = True,
        exempt_paths: Collection[str] = (),
        clear_cookie: str | None = None,
        step_up_satisfied: Callable[[Scope], bool] | None = None,
        max_session_candidates: int = MAX_CANDIDATES,
    ) -> None:
        if not callable(app):
            raise EnforceConfigError("RevocationMiddleware: app must be an ASGI callable")
        for method in ("is_revoked", "requires_step_up"):
            if not callable(getattr(client, method, None)):
                raise EnforceConfigError(
                    f"RevocationMiddleware: client has no {method}(); pass an enforce.RevocationClient"
                )
        if session_getter is None:
            session_getter = session_from()
        if not callable(session_getter):
            raise EnforceConfigError(
                "RevocationMiddleware: session_getter must be callable(scope) -> str | None | iterable of str"
            )
        if (isinstance(max_session_candidates, bool) or not isinstance(max_session_candidates, int)
                or not 1 <= max_session_candidates <= 1024):
            raise EnforceConfigError(
                f"RevocationMiddleware: max_session_candidates must be an integer in 1..1024, "
                f"not {max_session_candidates!r}"
            )
        if step_up is not None and not isinstance(step_up, StepUp):
            raise EnforceConfigError("RevocationMiddleware: step_up must be an enforce.StepUp or None (no step-up)")
        if isinstance(exempt_paths, str):
            raise EnforceConfigError("RevocationMiddleware: exempt_paths must be a collection of paths, not a string")
        if clear_cookie is not None and not _TOKEN.match(clear_cookie):
            raise EnforceConfigError(f"RevocationMiddleware: invalid cookie name {clear_cookie!r}")
        self.app = app
        self.client = client
        self.session_getter = session_getter
        self.step_up = step_up
        self.require_caught_up = require_caught_up
        self.exempt_paths = frozenset(exempt_paths)
        if step_up_satisfied is not None and not callable(step_up_satisfied):
            raise EnforceConfigError("RevocationMiddleware: step_up_satisfied must be callable(scope) -> bool")
        self.clear_cookie = clear_cookie
        self.step_up_satisfied = step_up_satisfied
        self.max_session_candidates = max_session_candidates

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind not in ("http", "websocket") or scope.get("path") in self.exempt_paths:
            await self.app(scope, receive, send)
            return
        try:
            sessions = normalize(self.session_getter(scope), self.max_session_candidates)
        except SessionCandidatesError as exc:
            # some ids would go unchecked: refuse the request rather than check it in part
            if kind == "websocket":
                await send({"type": "websocket.close", "code": 1008, "reason": exc.error})
                return
            await self._json(send, exc.status, {"error": exc.error}, [])
            return
        if not sessions:
            await self.app(scope, receive, send)
            return
        if self.require_caught_up and not getattr(self.client, "caught_up", True):
            await self._retry_later(kind, send, "revocations_not_ready")
            return
        if not getattr(self.client, "fresh", True):
            await self._retry_later(kind, send, "revocations_stale")
            return
        is_revoked = self.client.is_revoked
        revoked = None
        for s in sessions:
            if is_revoked(s):
                revoked = s
                break
        if revoked is not None:
            if kind == "websocket":
                await send({"type": "websocket.close", "code": 1008, "reason": "session revoked"})
                return
            rev = getattr(self.client, "revocation", lambda s: None)(revoked)
            reason = getattr(rev, "reason_user", None) or DEFAULT_REVOKED_REASON
            headers = [(b"www-authenticate", b'Bearer error="invalid_token", error_description="session revoked"')]
            if self.clear_cookie:
                headers.append((b"set-cookie", f"{self.clear_cookie}=; Max-Age=0; Path=/; Secure; HttpOnly".encode()))
            await self._json(send, 401, {"error": "session_revoked", "reason": reason}, headers)
            return
        if (
            self.step_up is not None
            and self._any_step_up(sessions)
            and not (self.step_up_satisfied is not None and self.step_up_satisfied(scope))
        ):
            if kind == "websocket":
                await send({"type": "websocket.close", "code": 1008, "reason": "step-up required"})
                return
            su = self.step_up
            accept = _header(scope, b"accept") or ""
            if su.redirect_url and scope.get("method") == "GET" and "text/html" in accept:
                await self._json(send, 303, {"error": "insufficient_user_authentication"},
                                 [(b"location", su.redirect_location().encode("latin-1"))])
                return
            body: dict[str, Any] = {"error": "insufficient_user_authentication", "acr_values": su.acr_values}
            if su.max_age is not None:
                body["max_age"] = su.max_age
            await self._json(send, su.status_code, body, [(b"www-authenticate", su.challenge().encode("latin-1"))])
            return
        await self.app(scope, receive, send)

    def _any_step_up(self, sessions: tuple[str, ...]) -> bool:
        requires_step_up = self.client.requires_step_up
        for s in sessions:
            if requires_step_up(s):
                return True
        return False

    @classmethod
    async def _retry_later(cls, kind: str, send: Send, error: str) -> None:
        if kind == "websocket":
            await send({"type": "websocket.close", "code": 1013})  # try again later
            return
        await cls._json(send, 503, {"error": error}, [(b"retry-after", b"1")])

    @staticmethod
    async def _json(send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]]) -> None:
        data = json.dumps(body).encode()
        await send({
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                (b"cache-control", b"no-store"),
                *headers,
            ],
        })
        await send({"type": "http.response.body", "body": data})
