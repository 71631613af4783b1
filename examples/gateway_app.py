"""A small Starlette app behind lapse's revocation middleware.

Run it (needs a broker, the JWKS exported by `lapse keys jwks`, and an ASGI server)::

    LAPSE_BOOTSTRAP=127.0.0.1:9092 LAPSE_REVOCATIONS_TOPIC=lapse.revocations \\
    LAPSE_JWKS=secrets/jwks.json LAPSE_ISSUER=https://lapse.example.com/ \\
    LAPSE_AUDIENCE=https://gateway.example.com/ LAPSE_ENFORCE_TTL_S=43200 \\
    python examples/gateway_app.py            # uses uvicorn if it is installed

Or mount it in-process (tests do this, with httpx.ASGITransport)::

    client = RevocationClient(...)
    app = build_app(client)          # starts/stops the client in the app's lifespan

The session id comes from the ``x-session-id`` header or the ``sid`` cookie.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from enforce import RevocationClient, RevocationMiddleware, StepUp, session_from


async def whoami(request: Request) -> JSONResponse:
    session = request.headers.get("x-session-id") or request.cookies.get("sid")
    return JSONResponse({"ok": True, "session": session})


async def healthz(request: Request) -> JSONResponse:
    client = request.app.state.revocations
    return JSONResponse({"caught_up": client.caught_up, "counters": client.counters},
                        status_code=200 if client.caught_up else 503)


def build_app(client: Any, *, manage_client: bool = True, step_up: StepUp | None = None) -> Starlette:
    """The protected app. With ``manage_client`` the app's lifespan starts the client and waits
    until it has read the whole revocations topic before serving."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if manage_client:
            await client.start()
            await client.wait_until_caught_up()
        try:
            yield
        finally:
            if manage_client:
                await client.stop()

    app = Starlette(
        routes=[Route("/whoami", whoami), Route("/healthz", healthz)],
        middleware=[
            Middleware(
                RevocationMiddleware,
                client=client,
                session_getter=session_from(cookie="sid", header="x-session-id"),
                step_up=step_up or StepUp(max_age=300),
                exempt_paths={"/healthz"},
                clear_cookie="sid",
            )
        ],
        lifespan=lifespan,
    )
    app.state.revocations = client
    return app


def client_from_env() -> RevocationClient:
    def need(name: str) -> str:
        value = os.environ.get(name)
        if not value:
            raise SystemExit(f"set {name}")
        return value

    return RevocationClient(
        bootstrap=os.environ.get("LAPSE_BOOTSTRAP", "127.0.0.1:9092"),
        topic=os.environ.get("LAPSE_REVOCATIONS_TOPIC", "lapse.revocations"),
        jwks=need("LAPSE_JWKS"),
        issuer=need("LAPSE_ISSUER"),
        audience=need("LAPSE_AUDIENCE"),
        ttl_s=float(os.environ.get("LAPSE_ENFORCE_TTL_S", "43200")),
    )


def main() -> None:
    app = build_app(client_from_env())
    try:
        import uvicorn  # type: ignore[import-not-found]
    except ImportError:
        sys.exit("uvicorn is not installed: `pip install uvicorn`, or mount build_app(client) in your ASGI server")
    uvicorn.run(app, host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "8000")))


if __name__ == "__main__":
    main()
