"""The HTTP surface of ``lapse ssf`` (aiohttp).

==========================================  =======  ====================================  ==========
path (under the public URL's path)          method   what                                  scope
==========================================  =======  ====================================  ==========
/.well-known/ssf-configuration[/<path>]     GET      transmitter metadata (SSF 1.0 s. 7)   none
/jwks.json                                  GET      the streams' public keys              none
/health                                     GET      liveness and counters                 none
/ssf/streams                                POST     create a stream                       ssf.manage
/ssf/streams[?stream_id=]                   GET      one stream, or all of the receiver's  ssf.read
/ssf/streams                                PATCH    update (members given)                ssf.manage
/ssf/streams                                PUT      replace                               ssf.manage
/ssf/streams?stream_id=                     DELETE   delete                                ssf.manage
/ssf/status?stream_id=                      GET      status                                ssf.read
/ssf/status                                 POST     change status                         ssf.manage
/ssf/subjects:add, /ssf/subjects:remove     POST     subjects                              ssf.manage
/ssf/verify                                 POST     ask for a verification event          ssf.manage
/ssf/poll/<stream_id>                       POST     RFC 8936 poll                         ssf.read
/ssf/delivery?stream_id=                    GET      lapse's delivery view (pending...)    ssf.read
/ssf/receive/<provider>                     POST     RFC 8935 push from an IdP (receiver)  provider's
==========================================  =======  ====================================  ==========

Every response is ``Cache-Control: no-store``. A missing or unknown token is 401 with
``WWW-Authenticate: Bearer``; a token without the scope 403; a stream of another receiver is 404.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from streams.ssf.auth import MANAGE, READ, Tokens
from streams.ssf.model import POLL, PUSH, BadRequest
from streams.ssf.transmitter import NotFound, TooSoon, Transmitter

log = logging.getLogger("lapse.ssf.web")

MAX_BODY = 256 * 1024


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=json.dumps(data, separators=(",", ":")).encode(),
                        content_type="application/json", headers={"Cache-Control": "no-store", **(headers or {})})


def _error(status: int, message: str, headers: dict[str, str] | None = None, code: str | None = None) -> web.Response:
    body: dict[str, Any] = {"error": code or {400: "invalid_request", 401: "invalid_token", 403: "insufficient_scope",
                                              404: "not_found", 429: "too_many_requests"}.get(status, "error"),
                            "error_description": message}
    return _json(body, status, headers)


def metadata(tx: Transmitter) -> dict[str, Any]:
    base = tx.ssf.public_url
    return {
        "spec_version": "1_0",
        "issuer": tx.ssf.issuer,
        "jwks_uri": f"{base}/jwks.json",
        "delivery_methods_supported": [PUSH, POLL],
        "configuration_endpoint": f"{base}/ssf/streams",
        "status_endpoint": f"{base}/ssf/status",
        "add_subject_endpoint": f"{base}/ssf/subjects:add",
        "remove_subject_endpoint": f"{base}/ssf/subjects:remove",
        "verification_endpoint": f"{base}/ssf/verify",
        "authorization_schemes": [{"spec_urn": "urn:ietf:rfc:6750"}],
        "default_subjects": tx.ssf.default_subjects,
    }


def build_app(tx: Transmitter, tokens: Tokens, jwks: dict[str, Any], receiver: Any = None) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY)
    prefix = tx.ssf.path_prefix()
    r = app.router

    def principal_of(request: web.Request, scope: str):
        p = tokens.check(request.headers.get("Authorization"))
        if p is None:
            raise _Refused(_error(401, "a valid bearer token is required",
                                  {"WWW-Authenticate": 'Bearer realm="lapse-ssf"'}))
        if not p.can(scope):
            raise _Refused(_error(403, f"this token lacks the {scope} scope",
                                  {"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'}))
        return p

    async def body_of(request: web.Request) -> Any:
        if not request.can_read_body:
            return None
        ctype = request.content_type
        if ctype not in ("application/json", ""):
            raise BadRequest("the request body must be application/json")
        raw = await request.read()
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise BadRequest("the request body is not JSON") from None

    def handler(scope: str | None):
        def wrap(fn):
            async def run(request: web.Request) -> web.StreamResponse:
                try:
                    p = principal_of(request, scope) if scope else None
                    return await fn(request, p)
                except _Refused as exc:
                    return exc.response
                except BadRequest as exc:
                    return _error(400, str(exc))
                except NotFound:
                    return _error(404, "no such stream")
                except TooSoon as exc:
                    return _error(429, str(exc), {"Retry-After": str(max(1, int(exc.retry_after + 0.999)))})
                except web.HTTPRequestEntityTooLarge:
                    return _error(413, "request body too large", code="invalid_request")
            return run
        return wrap

    # -- discovery ---------------------------------------------------------------------------
    async def well_known(request: web.Request) -> web.Response:
        return _json(metadata(tx))

    issuer_path = urlsplit(tx.ssf.issuer).path.rstrip("/")
    r.add_get("/.well-known/ssf-configuration", well_known)
    if issuer_path:
        r.add_get("/.well-known/ssf-configuration" + issuer_path, well_known)
    if prefix:
        r.add_get(prefix + "/.well-known/ssf-configuration", well_known)

    async def jwks_view(request: web.Request) -> web.Response:
        return _json(jwks, headers={"Cache-Control": "public, max-age=300"})

    r.add_get(prefix + "/jwks.json", jwks_view)

    async def health(request: web.Request) -> web.Response:
        ok = tx.healthy and (receiver is None or receiver.healthy)
        body: dict[str, Any] = {"status": "ok" if ok else "stalled", "streams": len(tx.streams),
                                "feed_ready": tx.feed_ready.is_set(), "counters": dict(tx.counters)}
        if receiver is not None:
            body["receiver"] = dict(receiver.counters)
        return _json(body, 200 if ok else 503)

    r.add_get(prefix + "/health", health)

    # -- streams -----------------------------------------------------------------------------
    @handler(MANAGE)
    async def create(request, p):
        return _json(await tx.create_stream(p, await body_of(request)), 201)

    @handler(READ)
    async def read(request, p):
        sid = request.query.get("stream_id")
        if sid is None:
            return _json(tx.list_streams(p))
        return _json(tx.get_stream(p, sid))

    @handler(MANAGE)
    async def update(request, p):
        return _json(await tx.change_stream(p, await body_of(request), partial=True))

    @handler(MANAGE)
    async def replace(request, p):
        return _json(await tx.change_stream(p, await body_of(request), partial=False))

    @handler(MANAGE)
    async def delete(request, p):
        await tx.delete_stream(p, request.query.get("stream_id"))
        return web.Response(status=204, headers={"Cache-Control": "no-store"})

    r.add_post(prefix + "/ssf/streams", create)
    r.add_get(prefix + "/ssf/streams", read)
    r.add_patch(prefix + "/ssf/streams", update)
    r.add_put(prefix + "/ssf/streams", replace)
    r.add_delete(prefix + "/ssf/streams", delete)

    @handler(READ)
    async def get_status(request, p):
        return _json(tx.status(p, request.query.get("stream_id")))

    @handler(MANAGE)
    async def post_status(request, p):
        return _json(await tx.set_status(p, await body_of(request)))

    r.add_get(prefix + "/ssf/status", get_status)
    r.add_post(prefix + "/ssf/status", post_status)

    @handler(MANAGE)
    async def add_subject(request, p):
        await tx.add_subject(p, await body_of(request))
        return _json({}, 200)

    @handler(MANAGE)
    async def remove_subject(request, p):
        await tx.remove_subject(p, await body_of(request))
        return web.Response(status=204, headers={"Cache-Control": "no-store"})

    r.add_post(prefix + "/ssf/subjects:add", add_subject)
    r.add_post(prefix + "/ssf/subjects:remove", remove_subject)

    @handler(MANAGE)
    async def verify(request, p):
        await tx.verify(p, await body_of(request))
        return web.Response(status=204, headers={"Cache-Control": "no-store"})

    r.add_post(prefix + "/ssf/verify", verify)

    @handler(READ)
    async def poll(request, p):
        return _json(await tx.poll(p, request.match_info["stream_id"], await body_of(request)))

    r.add_post(prefix + "/ssf/poll/{stream_id}", poll)

    @handler(READ)
    async def delivery(request, p):
        return _json(await tx.stream_health(p, request.query.get("stream_id")))

    r.add_get(prefix + "/ssf/delivery", delivery)

    if receiver is not None:
        r.add_post(prefix + "/ssf/receive/{provider}", receiver.handle_push)
    return app


class _Refused(Exception):
    def __init__(self, response: web.Response) -> None:
        self.response = response
