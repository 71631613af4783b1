"""SSF receiver: CAEP and RISC SETs from identity providers become canonical lapse events.

Providers are declared in the TOML file named by ``LAPSE_SSF_RECEIVER_FILE``::

    [[provider]]
    name = "idp"                                   # the push endpoint is /ssf/receive/idp
    issuer = "https://idp.example.com/"            # the SETs' iss
    jwks_uri = "https://idp.example.com/jwks"      # the provider's keys (fetched, cached, rotated)
    audience = "https://lapse.example.com/"        # what the SETs' aud must name
    user = "sub"                                   # sub (iss_sub) | email | opaque: lapse's user id
    subject_issuers = ["https://idp.example.com/"] # iss of iss_sub subjects accepted (default: issuer)
    push_token_file = "/run/secrets/idp-push"      # the bearer token the provider pushes with
    poll_url = "https://idp.example.com/ssf/poll/123"   # optional: poll this stream too
    poll_token_file = "/run/secrets/idp-poll"      # our bearer token for polling
    poll_max_events = 100
    allow_http = false                             # jwks_uri / poll_url over http (loopback only)
    jwks_min_refetch_s = 30                        # an unknown kid refetches the JWKS at most this often

Secrets are ``*_file`` or ``*_env``, never literal. Push (RFC 8935): ``POST`` with
``Content-Type: application/secevent+jwt`` and ``Authorization: Bearer <push token>``; 202 once
the events are on the broker, 400 with ``{"err", "description"}`` (``invalid_request``,
``invalid_key``, ``invalid_issuer``, ``invalid_audience``) for a token lapse refuses, 401 for a
wrong token. Poll (RFC 8936): lapse polls ``poll_url`` with ``returnImmediately: false``,
acknowledges what it put on the broker and reports refused tokens in ``setErrs``.

Verification: compact JWS; ``typ`` ``secevent+jwt``; ``alg`` RS256, PS256, ES256 or EdDSA and
fitting the key; ``kid`` from the provider's JWKS (cached an hour; an unknown ``kid`` refetches
it, at most once every 30 s); ``iss``; ``aud``; ``iat`` not in the future; no ``exp`` in the
past; ``jti``; ``events`` a non-empty object (several event types are each mapped). A ``jti``
seen before is accepted again and not re-published.

Mapping (the subject is ``sub_id``, or the event's ``subject`` member in older drafts):

=====================================================  =============================================
event                                                  canonical event (identity topic, keyed by user)
=====================================================  =============================================
CAEP session-revoked, subject with a ``session``       ``logout`` with ``sso_session`` = that session
CAEP session-revoked, user only; RISC sessions-revoked ``logout`` (every session of the user)
CAEP credential-change; RISC account-credential-       ``credential_change``
change-required, credential-compromise
RISC account-disabled, account-purged                  ``user_disabled``
CAEP risk-level-change HIGH / MEDIUM (principal USER)  ``alert`` severity high / medium (ids-alerts)
anything else (LOW risk, account-enabled...)           counted as ignored
=====================================================  =============================================

Each event carries ``id`` = ``ssf:<provider>:<jti>:<n>`` (so a re-delivered SET is decided with
the same decision ids), ``source`` and, when the subject has them, ``email`` and ``issuer``.
Refused tokens go to the ``dead-letters`` topic with the reason (stage ``ssf-receiver``).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from joserfc import jws
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import ECKey, OKPKey, RSAKey

from enforce import wire
from enforce.jose import registry_for
from streams.config import ConfigError, Settings
from streams.ssf.config import SsfSettings, load_toml, secret_from
from streams.ssf.model import BadRequest, check_url

log = logging.getLogger("lapse.ssf.receiver")

ALGS = {"RS256": "RSA", "PS256": "RSA", "ES256": "EC", "EdDSA": "OKP"}
MAX_TOKEN = 64 * 1024
JWKS_TTL_S = 3600.0
JWKS_MIN_REFETCH_S = 30.0
SEEN_JTIS = 100_000
MAX_FUTURE_S = 300.0
USER_MODES = ("sub", "email", "opaque")


class Refused(ValueError):
    """A SET lapse does not act on; ``err`` is its RFC 8935 section 2.4 error code."""

    def __init__(self, err: str, description: str) -> None:
        super().__init__(description)
        self.err = err
        self.description = description


@dataclass
class Provider:
    name: str
    issuer: str
    jwks_uri: str
    audience: tuple[str, ...]
    user: str = "sub"
    subject_issuers: tuple[str, ...] = ()
    push_token: str | None = field(default=None, repr=False)
    poll_url: str | None = None
    poll_token: str | None = field(default=None, repr=False)
    poll_max_events: int = 100
    jwks_min_refetch_s: float = JWKS_MIN_REFETCH_S


def load_providers(ssf: SsfSettings) -> list[Provider]:
    if not ssf.receiver_file:
        return []
    doc = load_toml(ssf.receiver_file, "LAPSE_SSF_RECEIVER_FILE")
    entries = doc.get("provider", [])
    if not isinstance(entries, list):
        raise ConfigError("LAPSE_SSF_RECEIVER_FILE: expected [[provider]] tables")
    out: list[Provider] = []
    for i, e in enumerate(entries):
        where = f"LAPSE_SSF_RECEIVER_FILE provider[{i}]"
        if not isinstance(e, dict):
            raise ConfigError(f"{where}: expected a table")
        name = e.get("name")
        if not isinstance(name, str) or not name.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(f"{where}.name: required, letters, digits, - and _")
        if any(p.name == name for p in out):
            raise ConfigError(f"{where}.name: {name!r} appears twice")
        allow_http = bool(e.get("allow_http", False))
        try:
            jwks_uri = check_url(e.get("jwks_uri"), "jwks_uri", allow_http=allow_http)
            poll_url = check_url(e["poll_url"], "poll_url", allow_http=allow_http) if e.get("poll_url") else None
        except BadRequest as exc:
            raise ConfigError(f"{where}: {exc}") from None
        issuer = e.get("issuer")
        if not isinstance(issuer, str) or not issuer:
            raise ConfigError(f"{where}.issuer: required")
        aud = e.get("audience")
        auds = (aud,) if isinstance(aud, str) else tuple(aud) if isinstance(aud, list) else ()
        if not auds or not all(isinstance(a, str) and a for a in auds):
            raise ConfigError(f"{where}.audience: required (the aud the provider's SETs name lapse by)")
        user = e.get("user", "sub")
        if user not in USER_MODES:
            raise ConfigError(f"{where}.user: expected one of {USER_MODES}")
        push_token = secret_from(e, "push_token", where)
        poll_token = secret_from(e, "poll_token", where)
        if push_token is None and poll_url is None:
            raise ConfigError(f"{where}: set push_token_file (push) and/or poll_url (poll)")
        if push_token is not None and len(push_token) < 32:
            raise ConfigError(f"{where}.push_token: at least 32 characters")
        sub_iss = e.get("subject_issuers", [issuer])
        mx = e.get("poll_max_events", 100)
        if not isinstance(mx, int) or not 1 <= mx <= 1000:
            raise ConfigError(f"{where}.poll_max_events: 1..1000")
        refetch = e.get("jwks_min_refetch_s", JWKS_MIN_REFETCH_S)
        if not isinstance(refetch, (int, float)) or not 0 <= refetch <= 86400:
            raise ConfigError(f"{where}.jwks_min_refetch_s: 0..86400 seconds")
        out.append(Provider(name, issuer, jwks_uri, auds, user, tuple(sub_iss), push_token, poll_url, poll_token, mx,
                            float(refetch)))
    return out


class JwksCache:
    """A provider's signing keys, by kid: fetched on first use, refetched after ``ttl_s`` and when
    a token names an unknown kid (at most once every ``min_refetch_s``, so forged kids cannot make
    lapse hammer the provider)."""

    def __init__(self, http: Any, uri: str, *, ttl_s: float = JWKS_TTL_S, min_refetch_s: float = JWKS_MIN_REFETCH_S,
                 clock=time.monotonic) -> None:
        self.http = http
        self.uri = uri
        self.ttl_s = ttl_s
        self.min_refetch_s = min_refetch_s
        self.clock = clock
        self.keys: dict[str, Any] = {}
        self.fetched_at: float | None = None
        self.fetches = 0
        self._lock = asyncio.Lock()

    async def get(self, kid: str) -> Any | None:
        now = self.clock()
        stale = self.fetched_at is None or now - self.fetched_at > self.ttl_s
        if stale or (kid not in self.keys and now - self.fetched_at >= self.min_refetch_s):  # type: ignore[operator]
            async with self._lock:
                now = self.clock()
                if (self.fetched_at is None or now - self.fetched_at > self.ttl_s
                        or (kid not in self.keys and now - self.fetched_at >= self.min_refetch_s)):
                    await self._fetch()
        return self.keys.get(kid)

    async def _fetch(self) -> None:
        import aiohttp

        self.fetches += 1
        self.fetched_at = self.clock()  # also on failure: the rate limit holds
        try:
            async with self.http.get(self.uri, timeout=aiohttp.ClientTimeout(total=10), allow_redirects=False) as resp:
                if resp.status != 200:
                    raise ValueError(f"HTTP {resp.status}")
                body = await resp.content.read(1024 * 1024 + 1)
                if len(body) > 1024 * 1024:
                    raise ValueError("JWKS larger than 1 MiB")
                doc = json.loads(body)
        except Exception as exc:
            log.warning("fetching JWKS %s failed (%s); keeping %d cached keys", self.uri, exc, len(self.keys))
            return
        self.keys = parse_jwks(doc)


def parse_jwks(doc: Any) -> dict[str, Any]:
    """``{kid: (key, kty)}`` of the usable signing keys of a JWKS (others skipped)."""
    out: dict[str, Any] = {}
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        return out
    for jwk in doc["keys"]:
        if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str) or jwk.get("use", "sig") != "sig":
            continue
        pub = {k: v for k, v in jwk.items() if k not in ("d", "p", "q", "dp", "dq", "qi", "oth")}
        try:
            kty = pub.get("kty")
            if kty == "RSA":
                key: Any = RSAKey.import_key(pub)
                if key.public_key.key_size < wire.MIN_RSA_BITS:
                    continue
            elif kty == "EC" and pub.get("crv") == "P-256":
                key = ECKey.import_key(pub)
            elif kty == "OKP" and pub.get("crv") == "Ed25519":
                key = OKPKey.import_key(pub)
            else:
                continue
        except (JoseError, ValueError, TypeError):
            continue
        out[jwk["kid"]] = (key, kty, pub.get("alg"))
    return out


async def verify_set(token: str, provider: Provider, jwks: JwksCache, now: float | None = None) -> dict[str, Any]:
    """The claims of a provider's SET, or :class:`Refused`."""
    now = time.time() if now is None else now
    if len(token) > MAX_TOKEN or token.count(".") != 2:
        raise Refused("invalid_request", "not a compact JWS")
    try:
        header = jws.extract_compact(token.encode("ascii")).headers()
    except Exception:
        raise Refused("invalid_request", "undecodable JWS") from None
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in (wire.SET_TYP, "application/" + wire.SET_TYP):
        raise Refused("invalid_request", f"typ {typ!r} is not secevent+jwt")
    if "crit" in header:
        raise Refused("invalid_request", "critical header parameters are not supported")
    alg = header.get("alg")
    if alg not in ALGS:
        raise Refused("invalid_key", f"alg {alg!r} is not accepted")
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise Refused("invalid_key", "no kid")
    found = await jwks.get(kid)
    if found is None:
        raise Refused("invalid_key", f"kid {kid!r} is not in the provider's JWKS")
    key, kty, pinned = found
    if ALGS[alg] != kty or (pinned is not None and pinned != alg):
        raise Refused("invalid_key", f"alg {alg!r} does not fit key {kid!r}")
    try:
        payload = jws.deserialize_compact(token.encode("ascii"), key, registry=registry_for(alg)).payload
        claims = json.loads(payload)
    except BadSignatureError:
        raise Refused("invalid_key", "the signature does not verify") from None
    except (JoseError, ValueError, TypeError):
        raise Refused("invalid_request", "undecodable payload") from None
    if not isinstance(claims, dict):
        raise Refused("invalid_request", "payload is not a JSON object")
    if claims.get("iss") != provider.issuer:
        raise Refused("invalid_issuer", f"iss {claims.get('iss')!r} is not {provider.issuer!r}")
    aud = claims.get("aud")
    auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if not any(a in provider.audience for a in auds if isinstance(a, str)):
        raise Refused("invalid_audience", f"aud {aud!r} does not name lapse")
    iat = claims.get("iat")
    if isinstance(iat, bool) or not isinstance(iat, (int, float)) or iat > now + MAX_FUTURE_S:
        raise Refused("invalid_request", "iat missing or in the future")
    exp = claims.get("exp")
    if exp is not None and (not isinstance(exp, (int, float)) or exp < now):
        raise Refused("invalid_request", "expired")
    if not isinstance(claims.get("jti"), str) or not claims["jti"]:
        raise Refused("invalid_request", "jti missing")
    events = claims.get("events")
    if not isinstance(events, dict) or not events or not all(isinstance(b, dict) for b in events.values()):
        raise Refused("invalid_request", "events must be a non-empty object of event objects")
    return claims


def _resolve(provider: Provider, subject: Any) -> dict[str, Any]:
    """``{"user", "email", "issuer", "sso_session"}`` from a subject identifier."""
    out: dict[str, Any] = {}
    if not isinstance(subject, dict):
        return out
    fmt = subject.get("format")
    if fmt == "complex":
        out.update(_resolve(provider, subject.get("user")))
        session = subject.get("session")
        if isinstance(session, dict):
            sid = session.get("id") if session.get("format") == "opaque" else None
            if isinstance(sid, str) and 0 < len(sid) <= 1024:
                out["sso_session"] = sid
        return out
    if fmt == "iss_sub":
        iss, sub = subject.get("iss"), subject.get("sub")
        if isinstance(iss, str) and isinstance(sub, str) and sub and iss in (provider.subject_issuers or (provider.issuer,)):
            out["issuer"] = iss
            if provider.user == "sub":
                out["user"] = sub
    elif fmt == "email":
        email = subject.get("email")
        if isinstance(email, str) and "@" in email and len(email) <= 320:
            out["email"] = email
            if provider.user == "email":
                out["user"] = email.lower()
    elif fmt == "opaque" and provider.user == "opaque":
        oid = subject.get("id")
        if isinstance(oid, str) and oid:
            out["user"] = oid
    return out


_TO_TYPE = {
    wire.CREDENTIAL_CHANGE: "credential_change",
    wire.RISC_CREDENTIAL_CHANGE_REQUIRED: "credential_change",
    wire.RISC_CREDENTIAL_COMPROMISE: "credential_change",
    wire.RISC_ACCOUNT_DISABLED: "user_disabled",
    wire.RISC_ACCOUNT_PURGED: "user_disabled",
    wire.RISC_SESSIONS_REVOKED: "logout",
}


def map_set(provider: Provider, claims: dict[str, Any]) -> tuple[list[tuple[str, str, dict[str, Any]]], int]:
    """``([(topic name, key, canonical event)], ignored count)`` for a verified SET; raises
    :class:`Refused` when it concerns a subject lapse cannot name."""
    out: list[tuple[str, str, dict[str, Any]]] = []
    ignored = 0
    for n, (uri, body) in enumerate(claims["events"].items()):
        subject = claims.get("sub_id", body.get("subject"))
        who = _resolve(provider, subject)
        ts = body.get("event_timestamp")
        if isinstance(ts, bool) or not isinstance(ts, (int, float)):
            ts = claims["iat"]
        base: dict[str, Any] = {"ts": ts, "id": f"ssf:{provider.name}:{claims['jti']}:{n}",
                                "source": f"ssf:{provider.name}"}
        for k in ("email", "issuer"):
            if k in who:
                base[k] = who[k]
        if uri == wire.SESSION_REVOKED:
            ev = {"type": "logout", **base}
            if "sso_session" in who:
                ev["sso_session"] = who["sso_session"]
            topic = "identity"
        elif uri in _TO_TYPE:
            ev = {"type": _TO_TYPE[uri], **base}
            topic = "identity"
        elif uri == wire.RISK_LEVEL_CHANGE:
            level = body.get("current_level")
            if body.get("principal", "USER") != "USER" or level not in ("HIGH", "MEDIUM"):
                ignored += 1
                continue
            reason = body.get("risk_reason") if isinstance(body.get("risk_reason"), str) else ""
            ev = {"type": "alert", **base, "severity": level.lower(),
                  "signature": f"ssf {provider.name} risk-level-change {reason}".strip()[:1024]}
            topic = "ids-alerts"
        else:
            ignored += 1
            continue
        if "user" not in who:
            raise Refused("invalid_request", f"the subject names no user lapse can map (users are by {provider.user})")
        ev["user"] = who["user"]
        out.append((topic, who["user"], ev))
    return out, ignored


class Receiver:
    def __init__(self, settings: Settings, providers: list[Provider], *, http: Any) -> None:
        self.settings = settings
        self.providers = {p.name: p for p in providers}
        self.http = http
        self.jwks = {p.name: JwksCache(http, p.jwks_uri, min_refetch_s=p.jwks_min_refetch_s) for p in providers}
        self.counters: dict[str, int] = {"received": 0, "accepted": 0, "events": 0, "ignored": 0,
                                         "duplicates": 0, "refused": 0, "poll_errors": 0}
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._producer: Any = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def healthy(self) -> bool:
        return all(not t.done() for t in self._tasks)

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer

        self._producer = AIOKafkaProducer(acks="all", linger_ms=1, client_id="lapse-ssf-receiver",
                                          **self.settings.kafka_kwargs())
        await self._producer.start()
        for p in self.providers.values():
            if p.poll_url:
                self._tasks.append(asyncio.create_task(self._poll_loop(p), name=f"lapse-ssf-poll:{p.name}"))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks.clear()
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    # -- one SET ------------------------------------------------------------------------------
    async def process(self, provider: Provider, token: str) -> None:
        """Verify, map and publish one SET (returns once the broker has the events), or raise
        :class:`Refused` after dead-lettering it."""
        self.counters["received"] += 1
        try:
            claims = await verify_set(token, provider, self.jwks[provider.name])
            seen_key = f"{provider.name}\x1f{claims['jti']}"
            if seen_key in self._seen:
                self.counters["duplicates"] += 1
                return
            events, ignored = map_set(provider, claims)
        except Refused as exc:
            self.counters["refused"] += 1
            await self._dead_letter(provider, token, exc)
            raise
        self.counters["ignored"] += ignored
        futs = [await self._producer.send(self.settings.topic(topic), key=key.encode(),
                                          value=json.dumps(ev, separators=(",", ":")).encode())
                for topic, key, ev in events]
        for f in futs:
            await f
        self.counters["events"] += len(events)
        self.counters["accepted"] += 1
        self._seen[seen_key] = None
        while len(self._seen) > SEEN_JTIS:
            self._seen.popitem(last=False)

    async def _dead_letter(self, provider: Provider, token: str, exc: Refused) -> None:
        from streams.service.pipeline.deadletter import dead_letter

        rec = dead_letter(token.encode("utf-8", "replace"), reason=f"ssf {exc.err}: {exc.description}", field=None,
                          topic=f"ssf:{provider.name}", partition=-1, offset=-1, now=time.time(),
                          stage="ssf-receiver", error=exc.err)
        try:
            await (await self._producer.send(self.settings.topic("dead-letters"), key=provider.name.encode(),
                                             value=json.dumps(rec).encode()))
        except Exception:
            log.exception("could not dead-letter a refused SET from %s", provider.name)
        log.warning("refused a SET from %s: %s %s", provider.name, exc.err, exc.description)

    # -- push (RFC 8935) -------------------------------------------------------------------------
    async def handle_push(self, request: Any) -> Any:
        from aiohttp import web

        def err(status: int, code: str, description: str, headers: dict[str, str] | None = None):
            return web.json_response({"err": code, "description": description}, status=status, headers=headers)

        provider = self.providers.get(request.match_info["provider"])
        if provider is None or provider.push_token is None:
            return err(404, "invalid_request", "no such provider")
        auth = request.headers.get("Authorization", "")
        expected = f"Bearer {provider.push_token}"
        if not hmac.compare_digest(auth.encode(), expected.encode()):
            return err(401, "authentication_failed", "a valid bearer token is required",
                       {"WWW-Authenticate": 'Bearer realm="lapse-ssf-receiver"'})
        if request.content_type != "application/secevent+jwt":
            return err(400, "invalid_request", "Content-Type must be application/secevent+jwt")
        if (request.content_length or 0) > MAX_TOKEN:
            return err(400, "invalid_request", "SET too large")
        raw = await request.content.read(MAX_TOKEN + 1)
        if len(raw) > MAX_TOKEN:
            return err(400, "invalid_request", "SET too large")
        try:
            token = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            return err(400, "invalid_request", "not a compact JWS")
        try:
            await self.process(provider, token)
        except Refused as exc:
            return err(400, exc.err, exc.description)
        except Exception as exc:  # the broker did not take the events: the provider must retry
            log.warning("SET from %s not published: %r", provider.name, exc)
            return web.json_response({"err": "temporarily_unavailable", "description": "try again"}, status=503,
                                     headers={"Retry-After": "5"})
        return web.Response(status=202)

    # -- poll (RFC 8936) -------------------------------------------------------------------------
    async def _poll_loop(self, provider: Provider) -> None:
        import aiohttp

        from streams.ssf.delivery import backoff

        acks: list[str] = []
        errs: dict[str, dict[str, str]] = {}
        failures = 0
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if provider.poll_token:
            headers["Authorization"] = f"Bearer {provider.poll_token}"
        while True:
            body: dict[str, Any] = {"maxEvents": provider.poll_max_events, "returnImmediately": False}
            if acks:
                body["ack"] = acks
            if errs:
                body["setErrs"] = errs
            try:
                async with self.http.post(provider.poll_url, data=json.dumps(body), headers=headers,
                                          timeout=aiohttp.ClientTimeout(total=60), allow_redirects=False) as resp:
                    if resp.status != 200:
                        raise ValueError(f"HTTP {resp.status}")
                    doc = await resp.json(content_type=None)
                sets = doc.get("sets", {}) if isinstance(doc, dict) else {}
                if not isinstance(sets, dict):
                    raise ValueError("sets is not an object")
                acks, errs = [], {}
                failures = 0
                for jti, token in sets.items():
                    if not isinstance(token, str):
                        errs[jti] = {"err": "invalid_request", "description": "not a string"}
                        continue
                    try:
                        await self.process(provider, token)
                        acks.append(jti)
                    except Refused as exc:
                        errs[jti] = {"err": exc.err, "description": exc.description[:200]}
                if not sets and doc.get("moreAvailable") is not True:
                    await asyncio.sleep(0.2)  # the transmitter answered at once: do not spin
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                self.counters["poll_errors"] += 1
                delay = backoff(failures, 0.5, 30.0)
                log.warning("polling %s failed (%s); again in %.1fs", provider.name, exc, delay)
                await asyncio.sleep(delay)
