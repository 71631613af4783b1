"""Helpers of the SSF integration tests (no tests here): a real ``lapse ssf serve`` process, a
receiver test server (aiohttp on 127.0.0.1), and PyJWT checks against the published JWKS."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import httpx
import jwt as pyjwt
from aiohttp import web

from enforce import wire
from streams.publish.keys import build_jwks, generate_key, load_signing_key
from tests.support import process
from tests.support.broker import REPO, free_port

TOKEN_RX = "rx-" + "a" * 40
TOKEN_READ = "ro-" + "b" * 40
TOKEN_OTHER = "ot-" + "c" * 40
TOKEN_ADMIN = "ad-" + "d" * 40
RX_AUD = "https://rx.test/"
TOKENS = "\n".join([
    f"rx {TOKEN_RX} ssf.manage {RX_AUD}",
    f"reader {TOKEN_READ} ssf.read",
    f"other {TOKEN_OTHER} ssf.manage",
    f"ops {TOKEN_ADMIN} ssf.admin",
])
ISSUER, AUDIENCE = "https://lapse.test/", "gw.test"


def auth(token: str = TOKEN_RX) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def keys(tmp: Path) -> dict[str, Path]:
    """The worker's Ed25519 key (and its JWKS file) and the transmitter's RSA key."""
    worker, ssf = tmp / "signing.pem", tmp / "ssf.pem"
    if not worker.exists():
        generate_key(worker)
    if not ssf.exists():
        generate_key(ssf, kty="rsa", bits=2048)
    jwks = tmp / "worker-jwks.json"
    jwks.write_text(json.dumps(build_jwks(load_signing_key(worker))))
    return {"worker": worker, "ssf": ssf, "worker_jwks": jwks}


class SsfProcess:
    """One ``lapse ssf serve`` subprocess."""

    def __init__(self, bootstrap: str, prefix: str, tmp: Path, k: dict[str, Path], *, name: str = "ssf",
                 extra_env: dict[str, str] | None = None, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / f"{name}.log"
        self.env = dict(os.environ)
        self.env.update(
            LAPSE_BOOTSTRAP=bootstrap, LAPSE_TOPIC_PREFIX=prefix, LAPSE_SET_ISSUER=ISSUER, LAPSE_SET_AUDIENCE=AUDIENCE,
            LAPSE_SSF_PORT=str(self.port), LAPSE_SSF_SIGNING_KEY_FILE=str(k["ssf"]),
            LAPSE_SSF_SOURCE_JWKS=str(k["worker_jwks"]), LAPSE_SSF_TOKENS=TOKENS,
            LAPSE_SSF_STATE_DIR=str(tmp / f"{name}-state"), LAPSE_SSF_ALLOW_HTTP_PUSH="1",
            LAPSE_SSF_RETRY_BASE_S="0.05", LAPSE_SSF_RETRY_MAX_S="0.5", LAPSE_SSF_MIN_VERIFICATION_S="0",
        )
        self.env.pop("LAPSE_SIGNING_KEY_FILE", None)
        self.env.update(extra_env or {})
        self.proc: subprocess.Popen | None = None

    def start(self) -> "SsfProcess":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "ssf", "serve"], env=self.env, cwd=REPO,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    async def wait_ready(self, timeout: float = 60.0) -> None:
        end = time.monotonic() + timeout
        async with httpx.AsyncClient() as http:
            while time.monotonic() < end:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise AssertionError(f"lapse ssf exited with {self.proc.returncode}:\n{self.tail()}")
                try:
                    r = await http.get(f"{self.url}/health", timeout=2)
                    if r.status_code == 200 and r.json()["feed_ready"]:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"lapse ssf not ready within {timeout}s:\n{self.tail()}")

    def kill9(self) -> None:
        process.kill9(self.proc)

    def stop(self) -> None:
        process.stop(self.proc, 20.0)


class Receiver:
    """An RFC 8935 push endpoint on 127.0.0.1 that records what it gets.

    ``respond(request, body)`` may return an aiohttp response to override the 202."""

    def __init__(self, respond: Callable[[web.Request, bytes], Any] | None = None, path: str = "/events") -> None:
        self.respond = respond
        self.path = path
        self.got: list[dict[str, Any]] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> "Receiver":
        app = web.Application()
        app.router.add_post(self.path, self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}{self.path}"
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self.runner is not None
        await self.runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if self.respond is not None:
            out = self.respond(request, body)
            if asyncio.iscoroutine(out):
                out = await out
            if out is not None:
                return out
        self.got.append({"at": time.time(), "headers": dict(request.headers), "body": body})
        return web.Response(status=202)

    def tokens(self) -> list[str]:
        return [g["body"].decode() for g in self.got]


async def wait_for(predicate: Callable[[], bool], timeout: float, what: str = "") -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


async def wait_ssf_drained(bootstrap: str, topic: str, state_dir: Path, timeout: float = 60.0,
                           targets: str = "%") -> None:
    """Wait until the ``lapse ssf`` keeping its state in ``state_dir`` has read ``topic`` up to the
    end offsets it has now and has no SET left queued for ``targets`` (an SQL LIKE pattern on the
    queue's target, e.g. ``bcl:%``). The transmitter moves its topic position in the same
    transaction as the queue rows a record produced, and deletes a row only after the receiver
    took it, so once this returns nothing more goes out for what was on the topic before the call:
    a test can then assert that nothing extra arrived, without a fixed sleep. Reads the state
    database read-only (see ``streams/ssf/store.py`` for its tables)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await probe.start()
    try:
        parts = probe.partitions_for_topic(topic)
        if not parts:
            await probe._client.force_metadata_update()
            parts = probe.partitions_for_topic(topic) or set()
        ends = {tp.partition: off for tp, off in (await probe.end_offsets([TopicPartition(topic, p) for p in parts])).items()}
    finally:
        await probe.stop()
    path = Path(state_dir) / "ssf.sqlite3"
    end = time.monotonic() + timeout
    state: tuple[dict[int, int], int] = ({}, -1)
    while True:
        if path.exists():
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
            try:
                at = dict(db.execute("SELECT partition, next FROM offsets WHERE topic = ?", (topic,)).fetchall())
                queued = db.execute("SELECT COUNT(*) FROM queue WHERE target LIKE ?", (targets,)).fetchone()[0]
            except sqlite3.OperationalError:  # the schema not created yet
                at, queued = {}, -1
            finally:
                db.close()
            state = (at, queued)
            if queued == 0 and all(at.get(p, 0) >= off for p, off in ends.items() if off > 0):
                return
        if time.monotonic() > end:
            raise AssertionError(f"lapse ssf not drained after {timeout}s: read {state[0]} of {ends}, "
                                 f"{state[1]} SETs queued for {targets!r}")
        await asyncio.sleep(0.1)


def claims_of(token: str) -> dict[str, Any]:
    return pyjwt.decode(token, options={"verify_signature": False})


def header_of(token: str) -> dict[str, Any]:
    return pyjwt.get_unverified_header(token)


def verify_with_jwks(token: str, jwks: dict[str, Any], issuer: str, audience: str) -> dict[str, Any]:
    """Verify a SET as an independent receiver would: PyJWT, RS256 only, key by kid from the JWKS."""
    header = pyjwt.get_unverified_header(token)
    assert header["typ"] == wire.SET_TYP and header["alg"] == "RS256"
    (jwk,) = [k for k in jwks["keys"] if k["kid"] == header["kid"]]
    key = pyjwt.PyJWK(jwk).key
    assert key.key_size >= 2048
    claims = pyjwt.decode(token, key, algorithms=["RS256"], audience=audience, issuer=issuer,
                          options={"require": ["iss", "iat", "jti", "aud"]})
    assert "sub" not in claims and "exp" not in claims and len(claims["events"]) == 1
    return claims


def prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}."


def decision(i: int, *, user: str = "u", action: str = "revoke", reason: str = "manual", **extra: Any) -> dict[str, Any]:
    d = {"id": f"d-{uuid.uuid4().hex[:8]}-{i}", "action": action, "reason": reason, "session": f"s-{i}",
         "user": user, "sso_session": None, "app": None, "at": "2026-01-01T00:00:00Z", "policy": ["defaults"],
         "policy_version": "v1", "score": None, "evidence": {}}
    d.update(extra)
    return d


async def publish_decisions(bootstrap: str, pfx: str, worker_key: Path, decisions: list[dict[str, Any]]) -> None:
    """Put decisions on the revocations topic as the worker does: signed with its key, keyed by session."""
    from aiokafka import AIOKafkaProducer

    from streams.publish.set import SetSigner, encode_message

    signer = SetSigner(load_signing_key(worker_key), ISSUER, AUDIENCE)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    await producer.start()
    try:
        for d in decisions:
            await producer.send(pfx + "revocations", key=d["session"].encode(), value=encode_message(d, signer))
        await producer.flush()
    finally:
        await producer.stop()
