"""The SSF transmitter: the revocations topic in, one ordered, durable queue per stream out.

Fan-out (:meth:`Transmitter._feed`): a consumer without a group reads every partition of the
revocations topic from the position kept in the state database. Each record's SET is verified
with the worker's JWKS (the unsigned decision copy is never trusted alone); for every stream that
asks for the event type and whose subjects match, the SET is **re-signed** for that stream with
the transmitter's RS256 key (``iss`` = the transmitter, ``aud`` = the stream's ``aud``, same
``jti``, ``txn``, ``sub_id`` and event, exactly one event per SET: the CAEP Interoperability
Profile), and queued. The queue rows and the new topic position are committed in one
transaction, so a crash neither loses nor re-queues anything.

Push streams have a :class:`~streams.ssf.delivery.Deliverer` each; poll streams are served by
:meth:`Transmitter.poll` (RFC 8936). Back-Channel Logout clients are targets like streams
(``bcl:<client_id>``), fed by the same records.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from enforce import wire
from enforce.verify import SetVerificationError, SetVerifier, the_events
from streams.config import Settings
from streams.publish.keys import SigningKey
from streams.publish.set import SetSigner
from streams.ssf import bcl as bcl_mod
from streams.ssf.auth import Principal
from streams.ssf.config import SsfSettings
from streams.ssf.delivery import Deliverer, Outcome, push_outcome, read_error
from streams.ssf.model import (
    POLL,
    PUSH,
    BadRequest,
    Stream,
    dumps,
    event_keys,
    new_stream_id,
    receiver_config,
    subject_id,
)
from streams.ssf.store import Store

log = logging.getLogger("lapse.ssf")

MAX_POLL_EVENTS = 1000
DEFAULT_POLL_EVENTS = 100
MAX_ACKS = 10_000
#: how often the feed looks for partitions added to the revocations topic
PARTITION_CHECK_S = 30.0


class NotFound(LookupError):
    """No such stream for this receiver (the same answer whether it exists for another one)."""


class TooSoon(RuntimeError):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"verification requested again within min_verification_interval; retry in {retry_after:.0f}s")
        self.retry_after = retry_after


class Transmitter:
    def __init__(self, settings: Settings, ssf: SsfSettings, key: SigningKey, source: SetVerifier | None,
                 *, bcl_clients: list[bcl_mod.BclClient] | None = None) -> None:
        if key.alg != "RS256":
            raise ValueError("SSF streams are signed with RS256 (CAEP Interoperability Profile): "
                             "LAPSE_SSF_SIGNING_KEY_FILE must be an RSA key of at least 2048 bits")
        self.settings = settings
        self.ssf = ssf
        self.key = key
        self.signer = SetSigner(key, ssf.issuer, "unused")
        self.source = source
        self.bcl_clients = {c.target: c for c in (bcl_clients or [])}
        self.topic = settings.topic("revocations")
        self.store: Store | None = None
        self._exec = ThreadPoolExecutor(1, thread_name_prefix="lapse-ssf-db")
        self.streams: dict[str, Stream] = {}
        self.deliverers: dict[str, Deliverer] = {}
        self.poll_wake: dict[str, asyncio.Event] = {}
        self.poll_locks: dict[str, asyncio.Lock] = {}
        self.counters: dict[str, int] = {
            "records": 0, "heartbeats": 0, "source_rejected": 0, "queued": 0, "delivered": 0, "retries": 0,
            "rejected": 0, "polled": 0, "acked": 0, "set_errs": 0, "delivery_errors": 0,
        }
        self.http: Any = None
        self._feed_task: asyncio.Task[None] | None = None
        self.feed_ready = asyncio.Event()
        self.on_delivered = None  # optional hook (target, jti) for metrics / tests

    # -- lifecycle ----------------------------------------------------------------------------
    async def db(self, fn, *args, **kwargs):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._exec, lambda: fn(*args, **kwargs))

    async def start(self, *, feed: bool = True) -> None:
        import aiohttp

        self.store = await self.db(Store, self.ssf.state_dir)
        rows = await self.db(self.store.load_streams)
        for row in rows:
            s = Stream.from_row(row)
            for key, subject in await self.db(self.store.subjects, s.id):
                s.subjects[key] = subject
            self.streams[s.id] = s
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=256, limit_per_host=16, ttl_dns_cache=60),
            headers={"User-Agent": "lapse-ssf"}, auto_decompress=False)
        purged = await self.db(self.store.purge_streams, set(self.streams))
        if purged:
            log.info("dropped %d queued SETs of deleted streams", purged)
        for s in self.streams.values():
            self._sync_delivery(s)
        for target in self.bcl_clients:
            self._start_deliverer(target)
        if feed:
            self._feed_task = asyncio.create_task(self._feed(), name="lapse-ssf-feed")

    async def stop(self) -> None:
        if self._feed_task is not None:
            self._feed_task.cancel()
            try:
                await self._feed_task
            except (asyncio.CancelledError, Exception):
                pass
            self._feed_task = None
        for d in list(self.deliverers.values()):
            await d.stop()
        self.deliverers.clear()
        if self.http is not None:
            await self.http.close()
            self.http = None
        if self.store is not None:
            await self.db(self.store.close)
            self.store = None
        self._exec.shutdown(wait=True)

    @property
    def healthy(self) -> bool:
        t = self._feed_task
        return t is None or not t.done()

    # -- delivery tasks -----------------------------------------------------------------------
    def _sync_delivery(self, s: Stream) -> None:
        """A push stream has a deliverer; a poll stream has none."""
        if s.method == PUSH:
            if s.target not in self.deliverers:
                self._start_deliverer(s.target)
            else:
                self.deliverers[s.target].poke()
        else:
            d = self.deliverers.pop(s.target, None)
            if d is not None:
                asyncio.ensure_future(d.stop())
            self.poll_wake.setdefault(s.id, asyncio.Event()).set()

    def _start_deliverer(self, target: str) -> None:
        assert self.store is not None
        if target.startswith("bcl:"):
            client = self.bcl_clients[target]

            async def send(payload: str, client=client) -> Outcome:
                return await bcl_mod.send_logout(self.http, client, payload, self.ssf.bcl_lifetime_s,
                                                 self.ssf.push_timeout_s)

            def active() -> bool:
                return True
        else:
            sid = target.removeprefix("stream:")

            async def send(payload: str, sid=sid) -> Outcome:
                return await self._push(sid, payload)

            def active(sid=sid) -> bool:
                s = self.streams.get(sid)
                return s is not None and s.status == "enabled"
        d = Deliverer(target, db=self.db, store=self.store, send=send, active=active, base_s=self.ssf.retry_base_s,
                      cap_s=self.ssf.retry_max_s, counters=self.counters, on_delivered=self._delivered)
        self.deliverers[target] = d
        d.start()

    def _delivered(self, target: str, jti: str) -> None:
        if self.on_delivered is not None:
            self.on_delivered(target, jti)

    async def _push(self, stream_id: str, token: str) -> Outcome:
        """One RFC 8935 POST of ``token`` to the stream's endpoint."""
        import aiohttp

        s = self.streams.get(stream_id)
        if s is None or s.method != PUSH:
            return Outcome("retry", None, None, "stream gone or no longer push")
        headers = {"Content-Type": "application/secevent+jwt", "Accept": "application/json"}
        auth = s.delivery.get("authorization_header")
        if auth:
            headers["Authorization"] = auth
        async with self.http.post(s.delivery["endpoint_url"], data=token.encode("ascii"), headers=headers,
                                  timeout=aiohttp.ClientTimeout(total=self.ssf.push_timeout_s),
                                  allow_redirects=False) as resp:
            if resp.status == 202:
                await resp.release()
                return Outcome("ok", 202)
            err, desc = (None, None) if 200 <= resp.status < 300 else await read_error(resp)
            return push_outcome(resp.status, err, desc, resp.headers.get("Retry-After"))

    def _poke(self, targets: set[str]) -> None:
        for t in targets:
            d = self.deliverers.get(t)
            if d is not None:
                d.poke()
            elif t.startswith("stream:"):
                ev = self.poll_wake.get(t.removeprefix("stream:"))
                if ev is not None:
                    ev.set()

    # -- fan-out from the revocations topic ----------------------------------------------------
    async def _feed(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition
        from aiokafka.errors import KafkaError

        assert self.store is not None
        consumer = AIOKafkaConsumer(group_id=None, enable_auto_commit=False, client_id="lapse-ssf",
                                    metadata_max_age_ms=30_000, **self.settings.kafka_kwargs())
        await consumer.start()
        try:
            parts = await self._partitions()
            tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
            consumer.assign(tps)
            stored = await self.db(self.store.offsets, self.topic)
            missing = [tp for tp in tps if tp.partition not in stored]
            if missing:
                ends = await (consumer.end_offsets(missing) if self.ssf.start == "latest"
                              else consumer.beginning_offsets(missing))
                first = {(self.topic, tp.partition): off for tp, off in ends.items()}
                await self.db(self.store.enqueue, [], first)
                stored.update({p: off for (_, p), off in first.items()})
            nxt = {tp.partition: stored[tp.partition] for tp in tps}
            for tp in tps:
                consumer.seek(tp, nxt[tp.partition])
            self.feed_ready.set()
            log.info("lapse ssf: reading %s from %s", self.topic, dict(sorted(nxt.items())))
            loop = asyncio.get_running_loop()
            checked = loop.time()
            while True:
                if loop.time() - checked > PARTITION_CHECK_S:
                    checked = loop.time()
                    await self._follow_new_partitions(consumer, nxt)
                try:
                    batches = await consumer.getmany(timeout_ms=200, max_records=500)
                except KafkaError as exc:
                    log.warning("revocations consumer error (retrying): %r", exc)
                    await asyncio.sleep(0.5)
                    continue
                if not batches:
                    continue
                rows: list[tuple[str, str, str, int]] = []
                offsets: dict[tuple[str, int], int] = {}
                for tp, msgs in batches.items():
                    for m in msgs:
                        rows.extend(self.fan_out(m.key, m.value))
                        offsets[(tp.topic, tp.partition)] = m.offset + 1
                n = await self.db(self.store.enqueue, rows, offsets)
                for (_, p), off in offsets.items():
                    nxt[p] = off
                self.counters["queued"] += n
                if rows:
                    self._poke({r[0] for r in rows})
        finally:
            await consumer.stop()

    async def _follow_new_partitions(self, consumer: Any, nxt: dict[int, int]) -> None:
        """Partitions added to the topic since the start are read from their beginning."""
        from aiokafka import TopicPartition

        try:
            parts = await asyncio.wait_for(self._partitions(), timeout=10)
        except (asyncio.TimeoutError, Exception) as exc:
            log.debug("partition check failed: %r", exc)
            return
        new = sorted(parts - set(nxt))
        if not new:
            return
        await self.db(self.store.enqueue, [], {(self.topic, p): 0 for p in new})
        for p in new:
            nxt[p] = 0
        consumer.assign([TopicPartition(self.topic, p) for p in sorted(nxt)])
        for p, off in nxt.items():  # a new assignment forgets positions: put every one back
            consumer.seek(TopicPartition(self.topic, p), off)
        log.info("revocations topic grew: now reading partitions %s", sorted(nxt))

    async def _partitions(self) -> set[int]:
        """The partitions of the revocations topic, waiting for the topic to exist."""
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(**self.settings.kafka_kwargs())
        await admin.start()
        try:
            while True:
                try:
                    (desc,) = await admin.describe_topics([self.topic])
                    parts = {p["partition"] for p in desc.get("partitions") or []}
                    if parts and not desc.get("error_code"):
                        return parts
                except Exception as exc:  # the broker not reachable yet, say
                    log.debug("describing %s: %r", self.topic, exc)
                log.info("waiting for topic %s", self.topic)
                await asyncio.sleep(1.0)
        finally:
            await admin.close()

    def fan_out(self, key: bytes | None, value: bytes | None, now: float | None = None) -> list[tuple[str, str, str, int]]:
        """The queue rows ``(target, jti, payload, control)`` for one revocations-topic record."""
        if key == wire.HEARTBEAT_KEY:
            self.counters["heartbeats"] += 1
            return []
        self.counters["records"] += 1
        try:
            decision, token = wire.decode(value)
            if self.source is None:
                raise SetVerificationError("no source JWKS configured")
            claims = self.source.verify(token)
        except (wire.MalformedMessage, SetVerificationError) as exc:
            self.counters["source_rejected"] += 1
            log.warning("revocations record not relayed (%s): %s", getattr(exc, "reason", "malformed"), exc)
            return []
        now = time.time() if now is None else now
        keys = event_keys(claims.get("sub_id"))
        events = the_events(claims)
        rows: list[tuple[str, str, str, int]] = []
        jti = claims["jti"]
        for i, (uri, body) in enumerate(events):
            one_jti = jti if len(events) == 1 else f"{jti}.{i}"
            for s in self.streams.values():
                if not s.wants(uri, keys, self.ssf.default_subjects):
                    continue
                c = {"iss": self.ssf.issuer, "iat": int(now), "jti": one_jti, "aud": s.aud,
                     "txn": claims.get("txn") or jti, "sub_id": claims["sub_id"], "events": {uri: body}}
                rows.append((s.target, one_jti, self.signer.sign_claims(c), 0))
            if uri == wire.SESSION_REVOKED:
                for c in self.bcl_clients.values():
                    item = c.item(claims, decision)
                    if item is not None:
                        rows.append((c.target, item["jti"], dumps(item), 0))
        return rows

    # -- stream management (SSF 1.0 section 8.1.1) -------------------------------------------
    def _owned(self, principal: Principal, stream_id: Any) -> Stream:
        if not isinstance(stream_id, str) or not stream_id:
            raise BadRequest("stream_id is required")
        s = self.streams.get(stream_id)
        if s is None or (s.owner != principal.name and not principal.admin):
            raise NotFound(stream_id)
        return s

    def view(self, s: Stream) -> dict[str, Any]:
        return s.view(self.ssf.issuer, self.ssf.public_url, self.ssf.min_verification_s)

    def list_streams(self, principal: Principal) -> list[dict[str, Any]]:
        return [self.view(s) for s in self.streams.values() if s.owner == principal.name or principal.admin]

    def get_stream(self, principal: Principal, stream_id: Any) -> dict[str, Any]:
        return self.view(self._owned(principal, stream_id))

    async def create_stream(self, principal: Principal, body: Any) -> dict[str, Any]:
        assert self.store is not None
        cfg = receiver_config(body, allowed_aud=principal.audiences, default_aud=principal.default_aud,
                              allow_http=self.ssf.allow_http_push)
        now = time.time()
        s = Stream(id=new_stream_id(), owner=principal.name, created=now, updated=now, **cfg)
        await self.db(self.store.put_stream, s.row())
        self.streams[s.id] = s
        self._sync_delivery(s)
        log.info("stream %s created by %s (%s)", s.id, principal.name, s.method)
        return self.view(s)

    async def change_stream(self, principal: Principal, body: Any, *, partial: bool) -> dict[str, Any]:
        assert self.store is not None
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object")
        s = self._owned(principal, body.get("stream_id"))
        cfg = receiver_config(body, allowed_aud=principal.audiences or ((s.aud,) if isinstance(s.aud, str) else tuple(s.aud)),
                              default_aud=s.aud if isinstance(s.aud, str) else s.aud[0],
                              allow_http=self.ssf.allow_http_push, base=s, partial=partial)
        for k, v in cfg.items():
            setattr(s, k, v)
        s.updated = time.time()
        await self.db(self.store.put_stream, s.row())
        self._sync_delivery(s)
        return self.view(s)

    async def delete_stream(self, principal: Principal, stream_id: Any) -> None:
        assert self.store is not None
        s = self._owned(principal, stream_id)
        del self.streams[s.id]
        d = self.deliverers.pop(s.target, None)
        if d is not None:
            await d.stop()
        await self.db(self.store.delete_stream, s.id, s.target)
        ev = self.poll_wake.pop(s.id, None)
        if ev is not None:
            ev.set()
        log.info("stream %s deleted by %s", s.id, principal.name)

    # -- status (8.1.2) -------------------------------------------------------------------------
    def status(self, principal: Principal, stream_id: Any) -> dict[str, Any]:
        s = self._owned(principal, stream_id)
        out: dict[str, Any] = {"stream_id": s.id, "status": s.status}
        if s.reason:
            out["reason"] = s.reason
        return out

    async def set_status(self, principal: Principal, body: Any) -> dict[str, Any]:
        assert self.store is not None
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object")
        s = self._owned(principal, body.get("stream_id"))
        status = body.get("status")
        if status not in ("enabled", "paused", "disabled"):
            raise BadRequest("status must be enabled, paused or disabled")
        reason = body.get("reason")
        if reason is not None and (not isinstance(reason, str) or len(reason) > 1024):
            raise BadRequest("reason must be a string of at most 1024 characters")
        changed = s.status != status
        s.status, s.reason, s.updated = status, reason, time.time()
        await self.db(self.store.put_stream, s.row())
        if status == "disabled":
            await self.db(self.store.drop_target, s.target, keep_control=True)
        if changed and s.owner != principal.name:
            # a change the receiver did not ask for (an operator's): tell it (SSF 1.0 section 8.1.5)
            body_ev: dict[str, Any] = {"status": status}
            if reason:
                body_ev["reason"] = reason
            await self._control(s, wire.STREAM_UPDATED, body_ev)
        self._sync_delivery(s)
        return self.status(principal, s.id)

    # -- subjects (8.1.3) -----------------------------------------------------------------------
    async def add_subject(self, principal: Principal, body: Any) -> None:
        await self._subject(principal, body, add=True)

    async def remove_subject(self, principal: Principal, body: Any) -> None:
        await self._subject(principal, body, add=False)

    async def _subject(self, principal: Principal, body: Any, *, add: bool) -> None:
        assert self.store is not None
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object")
        s = self._owned(principal, body.get("stream_id"))
        subject = body.get("subject")
        key = subject_id(subject)
        include = self.ssf.default_subjects == "NONE"
        # NONE: the stream's subjects are those added; ALL: every one but those removed
        if add == include:
            k = ("in:" if include else "ex:") + key
            s.subjects[k] = subject
            await self.db(self.store.add_subject, s.id, k, subject)
        else:
            k = ("in:" if include else "ex:") + key
            s.subjects.pop(k, None)
            await self.db(self.store.remove_subject, s.id, k)

    # -- verification (8.1.4) --------------------------------------------------------------------
    async def verify(self, principal: Principal, body: Any) -> None:
        assert self.store is not None
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object")
        s = self._owned(principal, body.get("stream_id"))
        state = body.get("state")
        if state is not None and (not isinstance(state, str) or len(state) > 1024):
            raise BadRequest("state must be a string of at most 1024 characters")
        now = time.time()
        if s.verified_at is not None and now - s.verified_at < self.ssf.min_verification_s:
            raise TooSoon(self.ssf.min_verification_s - (now - s.verified_at))
        s.verified_at = now
        await self.db(self.store.put_stream, s.row())
        await self._control(s, wire.VERIFICATION, {} if state is None else {"state": state})

    async def _control(self, s: Stream, uri: str, body: dict[str, Any]) -> None:
        assert self.store is not None
        jti = uuid.uuid4().hex
        claims = {"iss": self.ssf.issuer, "iat": int(time.time()), "jti": jti, "aud": s.aud,
                  "sub_id": {"format": "opaque", "id": s.id}, "events": {uri: body}}
        await self.db(self.store.enqueue, [(s.target, jti, self.signer.sign_claims(claims), 1)])
        self._poke({s.target})

    # -- poll delivery (RFC 8936) -----------------------------------------------------------------
    async def poll(self, principal: Principal, stream_id: str, body: Any) -> dict[str, Any]:
        assert self.store is not None
        s = self._owned(principal, stream_id)
        if s.method != POLL:
            raise BadRequest("this stream is not a poll stream")
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object")
        acks = body.get("ack", [])
        if not isinstance(acks, list) or len(acks) > MAX_ACKS or not all(isinstance(a, str) for a in acks):
            raise BadRequest(f"ack must be a list of at most {MAX_ACKS} jti strings")
        errs = body.get("setErrs", {})
        if not isinstance(errs, dict) or len(errs) > MAX_ACKS:
            raise BadRequest("setErrs must be an object of jti -> {err, description}")
        failures: dict[str, tuple[str | None, str | None]] = {}
        for jti, e in errs.items():
            if not isinstance(e, dict):
                raise BadRequest("every setErrs member must be an object with err and description")
            err, desc = e.get("err"), e.get("description")
            failures[jti] = (err if isinstance(err, str) else None, desc if isinstance(desc, str) else None)
        max_events = body.get("maxEvents", DEFAULT_POLL_EVENTS)
        if isinstance(max_events, bool) or not isinstance(max_events, int) or max_events < 0:
            raise BadRequest("maxEvents must be a non-negative integer")
        max_events = min(max_events, MAX_POLL_EVENTS)
        immediately = body.get("returnImmediately", False)
        if not isinstance(immediately, bool):
            raise BadRequest("returnImmediately must be a boolean")
        if acks:
            self.counters["acked"] += await self.db(self.store.ack, s.target, acks)
        if failures:
            n = await self.db(self.store.fail, s.target, failures)
            self.counters["set_errs"] += n
            if n:
                log.warning("stream %s: receiver refused %d SETs: %s", s.id, n, dict(list(failures.items())[:3]))
        target = s.target
        wake = self.poll_wake.setdefault(s.id, asyncio.Event())
        lock = self.poll_locks.setdefault(s.id, asyncio.Lock())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ssf.poll_wait_s
        rows: list[tuple[int, str, str, int]] = []
        while max_events > 0:
            wake.clear()
            active = s.status == "enabled"
            async with lock:
                now = time.time()
                rows = await self.db(self.store.head, target, max_events, control_only=not active,
                                     offered_before=now - self.ssf.redeliver_s)
                if rows:
                    await self.db(self.store.mark_offered, [r[0] for r in rows], now)
            remaining = deadline - loop.time()
            if rows or immediately or remaining <= 0 or s.id not in self.streams:
                break
            try:
                await asyncio.wait_for(wake.wait(), timeout=remaining)
            except asyncio.TimeoutError:
                pass
        self.counters["polled"] += len(rows)
        more = await self.db(self.store.available, target, time.time() - self.ssf.redeliver_s) > 0 \
            if s.status == "enabled" else False
        return {"sets": {jti: payload for _, jti, payload, _ in rows}, "moreAvailable": bool(more)}

    async def stream_health(self, principal: Principal, stream_id: Any) -> dict[str, Any]:
        """lapse's own view of a stream's delivery (not part of SSF): pending, failed, errors."""
        assert self.store is not None
        s = self._owned(principal, stream_id)
        d = self.deliverers.get(s.target)
        return {"stream_id": s.id, "pending": await self.db(self.store.pending, s.target),
                "failed": await self.db(self.store.failed, s.target),
                "attempts": d.attempts if d else 0, "last_error": d.last_error if d else None}
