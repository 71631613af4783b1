"""Operator surface on the worker's web server: admin JSON API, dashboard, policy follower.

Routes (every ``/api/*`` route needs ``Authorization: Bearer <token>``; see :class:`Tokens`)::

    GET  /dashboard                      the dashboard page (static; it asks for the token)
    GET  /api/overview                   live sessions by policy rule and risk band, counters, policy version
    GET  /api/users/{user}               a user's state (sessions with limits and deadlines)
    GET  /api/sessions/{session}[?user=] one session's state (found by scanning this worker's users
                                         unless ``user`` is given)
    GET  /api/timeline?user=&session=    events, audit records, decisions, deadlines and scores
    GET  /api/audit?user=&session=&since=&until=&limit=
                                         audit records (read from the audit topic, see below)
    GET  /api/policy                     the policy in force: version, TOML text, source, history
    GET  /api/decisions/recent[?limit=]  the newest decisions this worker published (a cache)
    POST /api/revoke                     {"user", "session"?, "note"?, "operator"?} -> 202

Design
------
* **State** comes from the engine's store (this worker's partitions only: a user on another
  worker's partition answers 404 with ``"owned": false``).
* **Manual revoke** never touches state from the web handler: it produces an envelope
  ``{"kind": "manual_revoke", ...}`` to ``user-requests`` keyed by user, so the user agent that
  owns the user's partition handles it in order with the user's events, through the engine
  (:meth:`Engine.manual_revoke`) and the normal commit order. The same batch publishes an
  ``admin_action`` audit record naming the operator, the action and the decisions it caused.
  The envelope is sealed (streams/service/sealed.py, bound to the topic and the user): the
  operator and ``auth`` in it are the ones this API established from the bearer token, and the
  worker that handles it takes them from the opened seal only — whoever can write
  ``user-requests`` cannot name an operator or revoke anything.
* **Audit queries** read the audit topic itself (retention 400 days; keyed by user, so a user's
  records are on one partition): seek by timestamp to ``since``, read to the end offset (bounded by
  ``MAX_SCAN`` records), filter by user, session and time. No extra state on the hot path, and any
  worker can answer for any user. Without ``user`` every partition is scanned (bounded the same way).
* **Recent decisions** are an in-memory ring (``RECENT_DECISIONS``) fed after the broker
  acknowledged them; lost on restart, by design.
* **Tokens** (``LAPSE_ADMIN_TOKEN`` or ``LAPSE_ADMIN_TOKEN_FILE``): one bare token (shared; the
  operator names themself in the request) or lines ``name:token`` (the token *is* the identity).
  Constant-time comparison against every configured token. Missing or wrong token -> 401; no
  token configured -> every ``/api/*`` route answers 503 "admin API disabled".
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import uuid
from collections import deque
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from streams.config import ConfigError
from streams.engine.events import MAX_CHARS, MAX_TS, MIN_TS, InvalidEvent, parse_ts
from streams.engine.decisions import Output, audit, rfc3339
from streams.service.ingest import Rejected
from streams.service.partitioning import partition_for
from streams.service.policy_publish import PolicyFollower, initial_state
from streams.service.sealed import sealer_of, seal_request

if TYPE_CHECKING:
    from streams.service.app import Service

log = logging.getLogger("lapse.admin")

RECENT_DECISIONS = 500
MAX_SCAN = 200_000          # records read per audit/timeline query, at most
DEFAULT_LIMIT = 500
SCAN_SINCE_MARGIN_S = 300.0  # Kafka timestamps are produce time; records' "at" is event time
MIN_TOKEN_CHARS = 16
_NAME = re.compile(r"^[A-Za-z0-9._@+-]{1,64}$")
BANDS = ("normal", "elevated", "high")
AUTH_KINDS = ("named token", "shared token")


# ---------------------------------------------------------------------------------------------- tokens

class Tokens:
    """Admin bearer tokens.

    >>> t = Tokens.parse("ann:0123456789abcdef0123\\nbob:fedcba9876543210fedc")
    >>> t.check("Bearer 0123456789abcdef0123"), t.check("Bearer nope"), t.check(None)
    ((200, 'ann'), (401, None), (401, None))
    >>> Tokens.parse("0123456789abcdef0123").check("Bearer 0123456789abcdef0123")
    (200, None)
    >>> Tokens(None).check("Bearer anything")
    (503, None)
    """

    def __init__(self, entries: list[tuple[str | None, str]] | None) -> None:
        self.entries = [(name, tok.encode()) for name, tok in (entries or [])]

    @property
    def enabled(self) -> bool:
        return bool(self.entries)

    @classmethod
    def parse(cls, text: str, origin: str = "LAPSE_ADMIN_TOKEN") -> "Tokens":
        entries: list[tuple[str | None, str]] = []
        for i, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, sep, tok = line.partition(":")
            if sep and _NAME.match(name.strip()):
                entry: tuple[str | None, str] = (name.strip(), tok.strip())
            else:
                entry = (None, line)
            if len(entry[1]) < MIN_TOKEN_CHARS:
                raise ConfigError(f"{origin}: token on line {i} is shorter than {MIN_TOKEN_CHARS} characters")
            entries.append(entry)
        return cls(entries)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Tokens":
        env = dict(os.environ if env is None else env)
        if env.get("LAPSE_ADMIN_TOKEN"):
            return cls.parse(env["LAPSE_ADMIN_TOKEN"])
        path = env.get("LAPSE_ADMIN_TOKEN_FILE")
        if path:
            try:
                return cls.parse(Path(path).read_text(), "LAPSE_ADMIN_TOKEN_FILE")
            except OSError as exc:
                raise ConfigError(f"LAPSE_ADMIN_TOKEN_FILE: cannot read {path}: {exc.strerror}") from None
        return cls(None)

    def check(self, authorization: str | None) -> tuple[int, str | None]:
        """``(200, operator name or None)``, ``(401, None)`` or ``(503, None)`` (disabled).

        Compares against every token (no early exit) with ``hmac.compare_digest``.
        """
        if not self.entries:
            return 503, None
        if not authorization or not authorization.startswith("Bearer "):
            return 401, None
        given = authorization[7:].strip().encode()
        found: str | None = None
        ok = False
        for name, tok in self.entries:
            if hmac.compare_digest(given, tok):
                ok, found = True, name if found is None else found
        return (200, found) if ok else (401, None)


# ---------------------------------------------------------------------------------------------- requests

@dataclass(frozen=True, slots=True)
class AdminRequest:
    """A ``user-requests`` envelope from the admin API, handled by the user agent like an event."""

    type: str          # "manual_revoke"
    user: str
    session: str | None
    operator: str
    note: str
    ts: float
    request: str
    auth: str          # "named token" | "shared token"


def revoke_envelope(user: str, session: str | None, operator: str, note: str, ts: float, request: str,
                    auth: str) -> bytes:
    return orjson.dumps({"kind": "manual_revoke", "user": user, "session": session, "operator": operator,
                         "note": note, "ts": ts, "request": request, "auth": auth})


def parse_request(env: dict[str, Any]) -> AdminRequest | Rejected:
    """``{"kind": "manual_revoke", ...}`` -> :class:`AdminRequest` (or a dead letter's reason).

    Only ever given the payload of a ``user-requests`` record that opened
    (:func:`streams.service.sealed.open_request`): the seal is what makes ``operator`` and
    ``auth`` the admin API's word rather than the record writer's. The fields are still checked,
    as this API writes them (operator a name, auth how the token identified them).

    >>> parse_request({"kind": "manual_revoke", "user": "u", "operator": "ann", "ts": 1, "request": "r",
    ...                "auth": "named token"}).user
    'u'
    >>> parse_request({"kind": "manual_revoke", "user": 7}).field
    'user'
    >>> parse_request({"kind": "manual_revoke", "user": "u", "operator": "ann", "ts": 1, "auth": "trust me"}).field
    'auth'
    """
    user, session, operator = env.get("user"), env.get("session"), env.get("operator")
    if not isinstance(user, str) or not user:
        return Rejected("manual_revoke: user must be a non-empty string", "user")
    if session is not None and not isinstance(session, str):
        return Rejected("manual_revoke: session must be a string or null", "session")
    if not isinstance(operator, str) or not _NAME.match(operator):
        return Rejected("manual_revoke: operator must be a name (letters, digits, ._@+-)", "operator")
    if len(user) > MAX_CHARS["user"] or (session is not None and (not session or len(session) > MAX_CHARS["session"])):
        return Rejected("manual_revoke: user and session must be at most 1024 characters", "session")
    ts = env.get("ts")
    if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not MIN_TS <= ts < MAX_TS:
        return Rejected("manual_revoke: ts must be epoch seconds a date can hold", "ts")
    auth = env.get("auth")
    if auth not in AUTH_KINDS:
        return Rejected(f"manual_revoke: auth must be one of {', '.join(AUTH_KINDS)}", "auth")
    return AdminRequest("manual_revoke", user, session, operator, str(env.get("note") or "")[:500], float(ts),
                        str(env.get("request") or f"{operator}@{ts!r}"), auth)


# ---------------------------------------------------------------------------------------------- operator

class Operator:
    """Per-worker operator state: tokens, the recent-decisions ring, the policy in force."""

    def __init__(self, service: "Service", tokens: Tokens) -> None:
        self.service = service
        self.tokens = tokens
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_DECISIONS)
        self.policy = initial_state(service)
        service.metrics.set_policy_version(self.policy.version)
        self.follower = PolicyFollower(service, self.policy)  # its Sealer: sealer_of(service), at start
        self._overview: tuple[float, dict[str, Any]] | None = None

    # -- hooks called from Service ---------------------------------------------------------------
    def handle(self, req: AdminRequest, now: float) -> list[Output]:
        """Apply an admin request on the owning partition: engine outputs + the admin_action audit."""
        outs = self.service.engine.manual_revoke(req.user, req.session, req.operator, req.note, req.ts, now,
                                                 request_id=req.request)
        ids = [o.value["id"] for o in outs if o.kind == "decision"]
        outs.append(audit("admin_action", req.user, req.session, req.ts, f"admin:{req.request}", {
            "operator": req.operator, "action": "revoke", "scope": "session" if req.session else "user",
            "note": req.note, "request": req.request, "auth": req.auth, "decisions": ids,
            "result": f"revoked {len(ids)} session(s)" if ids else "no live session to revoke"}))
        return outs

    def note_published(self, outputs: list[Output], now: float) -> None:
        """After the broker acknowledged a batch: remember its decisions for the dashboard feed."""
        for o in outputs:
            if o.kind == "decision":
                self.recent.append({**o.value, "published_at": rfc3339(now)})

    # -- views helpers ---------------------------------------------------------------------------
    def session_view(self, s: Any, now: float) -> dict[str, Any]:
        engine = self.service.engine
        policy = engine.policy
        d = s.to_dict()
        out: dict[str, Any] = {"session": s.session, "user": s.user, "live": s.ended is None, "state": d,
                               "started": rfc3339(s.started), "last_active": rfc3339(s.last_active),
                               "last_seen": rfc3339(s.last_seen), "risk": s.risk,
                               "band": BANDS[policy.adaptive.band(s.risk)], "ip": s.ip, "app": s.app,
                               "channel": s.channel, "roles": list(s.roles or ()), "sso_session": s.sso}
        if s.ended is None:
            lim = s.lim if s.lim is not None else policy.limits(s, now)
            idle_at = s.last_active + lim.idle * s.shorten if lim.idle is not None else None
            abs_at = s.auth_at + lim.absolute if lim.absolute is not None else None
            due = engine.deadlines.get(s.key)
            out.update(rules=list(lim.rules), idle=lim.idle, absolute=lim.absolute, idle_by=lim.idle_by,
                       absolute_by=lim.absolute_by,
                       deadlines={"idle": rfc3339(idle_at) if idle_at else None,
                                  "absolute": rfc3339(abs_at) if abs_at else None,
                                  "next": rfc3339(due) if due is not None and due != float("inf") else None})
        else:
            out.update(ended=rfc3339(s.ended), end_reason=s.end_reason, decision=s.terminal)
        return out

    def user_state(self, user: str) -> Any:
        try:
            return self.service.store.get(user)
        except KeyError:
            return None

    def find_session(self, session: str) -> Any:
        for user in list(self.service.store):
            us = self.user_state(user)
            if us is not None and session in us.sessions:
                return us.sessions[session]
        return None

    def overview(self, now: float) -> dict[str, Any]:
        if self._overview is not None and now - self._overview[0] < 1.0:
            return self._overview[1]
        engine = self.service.engine
        by_rule: dict[str, int] = {}
        by_band = {b: 0 for b in BANDS}
        live = ended = users = 0
        for user in list(self.service.store):
            us = self.user_state(user)
            if us is None:
                continue
            users += 1
            for s in us.sessions.values():
                if s.ended is not None:
                    ended += 1
                    continue
                live += 1
                lim = s.lim if s.lim is not None else engine.policy.limits(s, now)
                for r in lim.rules:
                    by_rule[r] = by_rule.get(r, 0) + 1
                by_band[BANDS[engine.policy.adaptive.band(s.risk)]] += 1
        body = {"live_sessions": live, "ended_kept": ended, "users": users, "by_rule": by_rule, "by_band": by_band,
                "policy_version": engine.policy.version, "partitions": sorted(self.service._assigned_user_partitions),
                "ready": self.service.serving, "counts": dict(engine.counts), "at": rfc3339(now)}
        self._overview = (now, body)
        return body


# ---------------------------------------------------------------------------------------------- topic scans

def scope_of(query: Any) -> tuple[str | None, str | None, float | None, float | None]:
    """``(user, session, since, until)`` of an audit/timeline query; ValueError names a bad time."""
    return (query.get("user") or None, query.get("session") or None,
            parse_time(query.get("since")), parse_time(query.get("until")))


def parse_time(value: str | None) -> float | None:
    """Epoch seconds or RFC 3339 -> epoch seconds.

    >>> parse_time("2026-01-01T00:00:00Z"), parse_time("1767225600"), parse_time(None)
    (1767225600.0, 1767225600.0, None)
    """
    if value is None or value == "":
        return None
    try:
        return parse_ts(float(value))
    except ValueError:
        pass
    try:
        return parse_ts(value)  # the project's one RFC 3339 reader: a time without a zone is refused
    except InvalidEvent as exc:
        raise ValueError(f"expected epoch seconds or RFC 3339 with a zone, got {value[:64]!r} ({exc.reason})") from None


async def scan_topics(service: "Service", wanted: list[tuple[str, str | None]], since: float | None,
                      until: float | None, max_scan: int = MAX_SCAN) -> dict[str, list[tuple[bytes | None, Any, int]]]:
    """Read ``(topic, key)`` pairs (key ``None``: every partition) from ``since`` to the end offset.

    Returns ``{topic: [(key, value, timestamp_ms), ...]}`` in partition order; one consumer, no group.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    settings = service.settings
    consumer = AIOKafkaConsumer(group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
                                **settings.kafka_kwargs())
    await consumer.start()
    out: dict[str, list[tuple[bytes | None, Any, int]]] = {t: [] for t, _ in wanted}
    try:
        # the consumer's own metadata only covers assigned topics: ask the cluster for all of them
        from streams.service import internals

        cluster = await internals.fetch_all_metadata(consumer)
        keys: dict[TopicPartition, set[bytes] | None] = {}
        for topic, key in wanted:
            parts = cluster.partitions_for_topic(topic) or set()
            if not parts:
                continue
            if key is None:
                for p in parts:
                    keys[TopicPartition(topic, p)] = None
            else:
                tp = TopicPartition(topic, partition_for(key.encode(), len(parts)))
                if tp not in keys:
                    keys[tp] = set()
                if keys[tp] is not None:
                    keys[tp].add(key.encode())  # type: ignore[union-attr]
        if not keys:
            return out
        tps = list(keys)
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        starts: dict[TopicPartition, int] = {}
        if since is not None:
            found = await consumer.offsets_for_times({tp: int((since - SCAN_SINCE_MARGIN_S) * 1000) for tp in tps})
            for tp in tps:
                starts[tp] = found[tp].offset if found.get(tp) is not None else ends[tp]
        else:
            starts = await consumer.beginning_offsets(tps)
        todo = set()
        for tp in tps:
            if starts[tp] < ends[tp]:
                consumer.seek(tp, starts[tp])
                todo.add(tp)
        scanned = 0
        until_ms = int((until + SCAN_SINCE_MARGIN_S) * 1000) if until is not None else None
        while todo and scanned < max_scan:
            batches = await consumer.getmany(*todo, timeout_ms=500, max_records=5000)
            if not batches:
                # nothing within the timeout: re-check positions (compacted gaps, transactional markers)
                for tp in list(todo):
                    if await consumer.position(tp) >= ends[tp]:
                        todo.discard(tp)
                continue
            for tp, records in batches.items():
                want = keys[tp]
                for r in records:
                    if r.offset >= ends[tp]:
                        break
                    scanned += 1
                    if want is not None and r.key not in want:
                        continue
                    if until_ms is not None and r.timestamp > until_ms:
                        continue
                    try:
                        value = orjson.loads(r.value) if r.value is not None else None
                    except orjson.JSONDecodeError:
                        continue
                    out[tp.topic].append((r.key, value, r.timestamp))
                if records and (records[-1].offset >= ends[tp] - 1):
                    todo.discard(tp)
        return out
    finally:
        await consumer.stop()


def _at(value: dict[str, Any]) -> float | None:
    at = value.get("at")
    if isinstance(at, str):
        try:
            return parse_time(at)
        except ValueError:
            return None
    return None


def filter_audit(records: list[dict[str, Any]], user: str | None, session: str | None, since: float | None,
                 until: float | None, limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` records matching user/session/[since, until] (by their ``at``), oldest first.

    >>> recs = [{"user": "u", "session": "s", "at": "2026-01-01T00:00:0%dZ" % i, "kind": "k"} for i in range(5)]
    >>> [r["at"][-3:] for r in filter_audit(recs, "u", None, 1767225601, 1767225603, 2)]
    ['02Z', '03Z']
    """
    out = []
    for v in records:
        if not isinstance(v, dict):
            continue
        if user is not None and v.get("user") != user:
            continue
        if session is not None and v.get("session") != session:
            continue
        at = _at(v)
        if since is not None and (at is None or at < since):
            continue
        if until is not None and (at is None or at > until):
            continue
        out.append(v)
    out.sort(key=lambda v: (_at(v) or 0.0))
    return out[-limit:] if limit else out


# ---------------------------------------------------------------------------------------------- web

def _dashboard_html() -> bytes:
    return resources.files("streams.service").joinpath("static/dashboard.html").read_bytes()


def register(service: "Service") -> Operator:
    """Create the operator state, its web views and the policy follower task; returns the Operator."""
    from faust.web import View

    tokens = Tokens.from_env()
    op = Operator(service, tokens)
    app = service.app
    metrics = service.metrics
    settings = service.settings

    if not tokens.enabled:
        log.warning("lapse: admin API disabled (set LAPSE_ADMIN_TOKEN or LAPSE_ADMIN_TOKEN_FILE)")

    def guard(view: Any, request: Any, route: str) -> tuple[Any, str | None]:
        """``(error response or None, operator name from a named token)``."""
        status, name = tokens.check(request.headers.get("Authorization"))
        if status == 503:
            metrics.admin_requests.labels(route, "503").inc()
            return view.json({"error": "admin API disabled",
                              "hint": "set LAPSE_ADMIN_TOKEN or LAPSE_ADMIN_TOKEN_FILE on the worker"}, status=503), None
        if status != 200:
            metrics.admin_requests.labels(route, "401").inc()
            resp = view.json({"error": "unauthorized: a valid bearer token is required"}, status=401)
            resp.headers["WWW-Authenticate"] = 'Bearer realm="lapse-admin"'
            return resp, None
        metrics.admin_requests.labels(route, "200").inc()
        return None, name

    def bad(view: Any, msg: str, status: int = 400) -> Any:
        return view.json({"error": msg}, status=status)

    @app.page("/dashboard")
    class Dashboard(View):
        async def get(self, request: Any) -> Any:
            return self.bytes(_dashboard_html(), headers={
                "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store",
                "Content-Security-Policy": ("default-src 'self'; script-src 'unsafe-inline'; "
                                            "style-src 'unsafe-inline'; img-src 'self' data:")})

    @app.page("/api/overview")
    class OverviewView(View):
        async def get(self, request: Any) -> Any:
            err, _ = guard(self, request, "overview")
            if err is not None:
                return err
            return self.json(op.overview(service.clock()))

    @app.page("/api/users/{user}")
    class UserView(View):
        async def get(self, request: Any, user: str) -> Any:
            err, _ = guard(self, request, "users")
            if err is not None:
                return err
            now = service.clock()
            us = op.user_state(user)
            owned = service.owns_user(user)
            if us is None:
                return self.json({"error": f"no state for user {user!r} on this worker", "user": user,
                                  "owned": owned}, status=404)
            return self.json({"user": user, "owned": owned, "state": us.to_dict(),
                              "sessions": [op.session_view(s, now) for s in us.sessions.values()]})

    @app.page("/api/sessions/{session}")
    class SessionView(View):
        async def get(self, request: Any, session: str) -> Any:
            err, _ = guard(self, request, "sessions")
            if err is not None:
                return err
            user = request.query.get("user")
            if user:
                us = op.user_state(user)
                s = us.sessions.get(session) if us is not None else None
            else:
                s = op.find_session(session)
            if s is None:
                return self.json({"error": f"no session {session!r} on this worker", "session": session}, status=404)
            return self.json(op.session_view(s, service.clock()))

    @app.page("/api/policy")
    class PolicyView(View):
        async def get(self, request: Any) -> Any:
            err, _ = guard(self, request, "policy")
            if err is not None:
                return err
            body = op.policy.to_dict()
            body["engine_version"] = service.engine.policy.version
            body["normalised"] = service.engine.policy.normalised
            return self.json(body)

    @app.page("/api/decisions/recent")
    class RecentView(View):
        async def get(self, request: Any) -> Any:
            err, _ = guard(self, request, "decisions")
            if err is not None:
                return err
            try:
                limit = max(1, min(RECENT_DECISIONS, int(request.query.get("limit", 100))))
            except ValueError:
                return bad(self, "limit: expected an integer")
            items = list(op.recent)[-limit:]
            items.reverse()
            return self.json({"decisions": items, "kept": RECENT_DECISIONS})

    @app.page("/api/audit")
    class AuditView(View):
        async def get(self, request: Any) -> Any:
            err, _ = guard(self, request, "audit")
            if err is not None:
                return err
            q = request.query
            try:
                user, session, since, until = scope_of(q)
                limit = max(1, min(5000, int(q.get("limit", DEFAULT_LIMIT))))
            except ValueError as exc:
                return bad(self, str(exc))
            if user is None and session is not None:
                s = op.find_session(session)
                user = s.user if s is not None else None
            topic = settings.topic("audit")
            got = await scan_topics(service, [(topic, user)], since, until)
            records = filter_audit([v for _, v, _ in got[topic]], user, session, since, until, limit)
            return self.json({"records": records, "count": len(records), "user": user, "session": session,
                              "since": rfc3339(since) if since else None, "until": rfc3339(until) if until else None,
                              "source": topic})

    @app.page("/api/timeline")
    class TimelineView(View):
        async def get(self, request: Any) -> Any:
            err, _ = guard(self, request, "timeline")
            if err is not None:
                return err
            try:
                user, session, since, until = scope_of(request.query)
            except ValueError as exc:
                return bad(self, str(exc))
            if user is None and session is None:
                return bad(self, "give user or session")
            if user is None:
                s = op.find_session(session)  # type: ignore[arg-type]
                if s is None:
                    return self.json({"error": f"no session {session!r} on this worker; give ?user= too"},
                                     status=404)
                user = s.user
            return self.json(await timeline(service, op, user, session, since, until))

    @app.page("/api/revoke")
    class RevokeView(View):
        async def post(self, request: Any) -> Any:
            err, named = guard(self, request, "revoke")
            if err is not None:
                return err
            try:
                body = orjson.loads(await request.read() or b"{}")
            except orjson.JSONDecodeError:
                return bad(self, "body: expected a JSON object")
            if not isinstance(body, dict):
                return bad(self, "body: expected a JSON object")
            user, session = body.get("user"), body.get("session")
            note = body.get("note") or body.get("reason") or ""
            if session is not None and (not isinstance(session, str) or not session):
                return bad(self, "session: expected a non-empty string")
            if user is None and session is not None:
                s = op.find_session(session)
                if s is None:
                    return bad(self, f"session {session!r} is not on this worker: give its user", 404)
                user = s.user
            if not isinstance(user, str) or not user:
                return bad(self, "user: expected a non-empty string (or a session this worker holds)")
            if not isinstance(note, str) or len(note) > 500:
                return bad(self, "note: expected a string of at most 500 characters")
            if named is not None:
                operator, auth = named, "named token"
            else:
                operator = body.get("operator") or request.headers.get("X-Lapse-Operator")
                auth = "shared token"
                if not isinstance(operator, str) or not _NAME.match(operator):
                    return bad(self, "operator: the shared admin token needs the operator's name "
                                     "(body \"operator\" or header X-Lapse-Operator; letters, digits, ._@+-)")
            now = service.clock()
            rid = uuid.uuid4().hex[:16]
            # the operator is the one established above (named token, or named under the shared
            # token) and travels inside the sealed payload: the handling worker trusts nothing else
            await produce_request(service, user, revoke_envelope(user, session, operator, note, now, rid, auth))
            log.info("lapse: manual revoke request %s by %s (%s): user=%s session=%s", rid, operator, auth, user,
                     session)
            return self.json({"status": "accepted", "request": rid, "user": user, "session": session,
                              "operator": operator, "auth": auth}, status=202)

    app.task(op.follower.run)
    return op


async def produce_request(service: "Service", user: str, payload: bytes) -> None:
    """Seal an envelope for ``user-requests`` under key ``user``, send it, and wait for the broker's
    acknowledgement."""
    topic = service.settings.topic("user-requests")
    value = seal_request(sealer_of(service), topic, user.encode(), payload)
    send = getattr(service, "_send", None)
    if send is not None:  # the service's raw producer path (same partitioner as every user-keyed send)
        fut = await send(topic, user, value)
    else:
        fut = await service.user_requests.send(key=user, value=value)
    await fut


async def timeline(service: "Service", op: Operator, user: str, session: str | None, since: float | None,
                   until: float | None) -> dict[str, Any]:
    """Everything about a user (or one session): state, events, audit records, decisions, scores."""
    now = service.clock()
    us = op.user_state(user)
    sessions = []
    if us is not None:
        sessions = [op.session_view(s, now) for s in us.sessions.values() if session is None or s.session == session]
    if since is None:
        starts = [parse_time(s["started"]) for s in sessions]
        since = min([t for t in starts if t is not None], default=now - 86400.0) - 60.0
    t = service.settings.topic
    session_keys = [session] if session else [s["session"] for s in sessions][:20]
    wanted: list[tuple[str, str | None]] = [(t("audit"), user), (t("identity"), user), (t("activity"), user)]
    wanted += [(t("revocations"), s) for s in session_keys]
    got = await scan_topics(service, wanted, since, until, max_scan=MAX_SCAN)
    audits = filter_audit([v for _, v, _ in got[t("audit")]], user, session, since, until, 1000)
    events = []
    for topic in (t("identity"), t("activity")):
        for _, v, _ in got[topic]:
            if not isinstance(v, dict) or v.get("user") != user or (session and v.get("session") != session):
                continue
            try:  # the adapters write RFC 3339 strings, producers often epoch seconds: both count
                ts = parse_ts(v.get("ts"))
            except InvalidEvent:
                continue
            if (until is None or ts <= until) and ts >= since:
                events.append({**v, "ts_epoch": ts})
    events.sort(key=lambda v: v["ts_epoch"])
    decisions: dict[str, dict[str, Any]] = {}
    for _, v, _ in got.get(t("revocations"), []):
        d = v.get("decision") if isinstance(v, dict) else None
        if isinstance(d, dict) and d.get("user") == user and (session is None or d.get("session") == session):
            decisions[d["id"]] = d
    for d in op.recent:
        if d.get("user") == user and (session is None or d.get("session") == session):
            decisions.setdefault(d["id"], d)
    decs = sorted(decisions.values(), key=lambda d: d.get("at", ""))
    scores = [{"at": d["at"], "score": d["score"], "source": f"decision:{d['reason']}"} for d in decs
              if d.get("score") is not None]
    scores += [{"at": rfc3339(now), "score": s["risk"], "source": f"session:{s['session']}"} for s in sessions
               if s.get("risk") is not None]
    return {"user": user, "session": session, "owned": service.owns_user(user), "sessions": sessions,
            "events": events[-1000:], "audit": audits, "decisions": decs, "scores": scores,
            "since": rfc3339(since), "until": rfc3339(until) if until else None, "now": rfc3339(now),
            "policy_version": service.engine.policy.version}

