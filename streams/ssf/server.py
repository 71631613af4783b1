"""Assemble and run ``lapse ssf``: settings -> keys, tokens, transmitter, receiver, HTTP server."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from enforce.verify import JwksError, SetVerifier
from streams.config import ConfigError, Settings
from streams.publish.keys import KeyConfigError, SigningKey, build_jwks, load_signing_key, previous_public_keys
from streams.ssf.auth import Tokens
from streams.ssf.config import SsfSettings

log = logging.getLogger("lapse.ssf")


def load_stream_key(ssf: SsfSettings) -> SigningKey:
    """The RS256 key the streams are signed with (CAEP Interoperability Profile: RSA >= 2048)."""
    if not ssf.signing_key_file and not ssf.signing_key_pem:
        raise ConfigError("no SSF signing key: set LAPSE_SSF_SIGNING_KEY_FILE to an RSA private key "
                          "(`lapse keys generate --type rsa --out secrets/ssf.pem`)")
    env = {"LAPSE_SIGNING_KEY_PASSWORD": ssf.signing_key_password} if ssf.signing_key_password else {}
    try:
        key = load_signing_key(path=Path(ssf.signing_key_file) if ssf.signing_key_file else None,
                               pem=ssf.signing_key_pem if not ssf.signing_key_file else None, env=env)
    except KeyConfigError as exc:
        raise ConfigError(f"LAPSE_SSF_SIGNING_KEY: {exc}") from None
    if key.alg != "RS256":
        raise ConfigError("LAPSE_SSF_SIGNING_KEY: SSF streams are signed with RS256 (CAEP Interoperability Profile); "
                          "use an RSA key of at least 2048 bits, not Ed25519")
    return key


def stream_jwks(ssf: SsfSettings, key: SigningKey) -> dict[str, Any]:
    env = {"LAPSE_VERIFY_KEYS_DIR": ssf.verify_keys_dir} if ssf.verify_keys_dir else {}
    try:
        return build_jwks(key, previous_public_keys(env=env))
    except KeyConfigError as exc:
        raise ConfigError(f"LAPSE_SSF_VERIFY_KEYS_DIR: {exc}") from None


def source_verifier(settings: Settings, ssf: SsfSettings) -> SetVerifier:
    """Verifies the worker's SETs: ``LAPSE_SSF_SOURCE_JWKS``, else the public part of the worker's
    key (``LAPSE_SIGNING_KEY[_FILE]``) for a single-host setup."""
    try:
        if ssf.source_jwks:
            return SetVerifier(ssf.source_jwks, settings.set_issuer, settings.set_audience)
        if os.environ.get("LAPSE_SIGNING_KEY_FILE") or os.environ.get("LAPSE_SIGNING_KEY"):
            return SetVerifier(build_jwks(load_signing_key(), previous_public_keys()), settings.set_issuer,
                               settings.set_audience)
    except (JwksError, KeyConfigError) as exc:
        raise ConfigError(f"LAPSE_SSF_SOURCE_JWKS: {exc}") from None
    raise ConfigError("LAPSE_SSF_SOURCE_JWKS: set it to the worker's JWKS (`lapse keys jwks > worker-jwks.json`) "
                      "so the transmitter relays only SETs the worker signed")


@dataclass
class Running:
    transmitter: Any
    receiver: Any
    runner: Any
    port: int

    async def stop(self) -> None:
        await self.runner.cleanup()
        if self.receiver is not None:
            await self.receiver.stop()
        await self.transmitter.stop()


async def start(settings: Settings | None = None, ssf: SsfSettings | None = None) -> Running:
    """Start everything; returns once the HTTP server listens."""
    from aiohttp import web

    from streams.ssf.bcl import load_clients
    from streams.ssf.receiver import Receiver, load_providers
    from streams.ssf.transmitter import Transmitter
    from streams.ssf.web import build_app

    settings = settings or Settings.load()
    ssf = ssf or SsfSettings.load()
    key = load_stream_key(ssf)
    tokens = Tokens.parse(ssf.tokens_text)
    if not len(tokens):
        raise ConfigError("LAPSE_SSF_TOKENS(_FILE): no receiver tokens; every stream endpoint needs one "
                          "(`lapse ssf token` prints a line to start from)")
    providers = load_providers(ssf)
    ssl_ctx = ssf.ssl_context()
    tx = Transmitter(settings, ssf, key, source_verifier(settings, ssf), bcl_clients=load_clients(ssf))
    await tx.start()
    receiver = None
    try:
        if providers:
            receiver = Receiver(settings, providers, http=tx.http)
            await receiver.start()
        app = build_app(tx, tokens, stream_jwks(ssf, key), receiver)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, ssf.host, ssf.port, ssl_context=ssl_ctx, reuse_address=True)
        await site.start()
    except BaseException:
        if receiver is not None:
            await receiver.stop()
        await tx.stop()
        raise
    port = ssf.port
    server = getattr(site, "_server", None)
    if server is not None and server.sockets:
        port = server.sockets[0].getsockname()[1]
    log.info("lapse ssf: listening on %s://%s:%d (issuer %s, %d streams, %d logout clients, %d providers)",
             "https" if ssl_ctx else "http", ssf.host, port, ssf.issuer, len(tx.streams), len(tx.bcl_clients),
             len(providers))
    return Running(tx, receiver, runner, port)


async def serve() -> None:
    running = await start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            except asyncio.TimeoutError:
                pass
            if not running.transmitter.healthy:
                task = running.transmitter._feed_task
                exc = task.exception() if task is not None and task.done() and not task.cancelled() else None
                raise RuntimeError(f"the revocations feed stopped: {exc!r}")
    finally:
        await running.stop()
