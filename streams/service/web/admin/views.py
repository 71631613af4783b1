"""The operator surface on the worker's web server: the admin JSON API's views and the dashboard.

One concept: HTTP. :func:`register` creates the :class:`~.operator.Operator`, mounts the views
below on the Faust web app and starts the policy follower task; each view checks the bearer token
(``guard``, see :mod:`.auth`), parses its query or body, and hands the work to the operator
(:mod:`.operator`), the topic queries (:mod:`.queries`) or the request records (:mod:`.requests`).

Routes (every ``/api/*`` route needs ``Authorization: Bearer <token>``; see :class:`~.auth.Tokens`)::

    GET  /dashboard                      the dashboard page (static; it asks for the token)
    GET  /api/overview                   live sessions by policy rule and risk band, counters, policy version
    GET  /api/users/{user}               a user's state (sessions with limits and deadlines)
    GET  /api/sessions/{session}[?user=] one session's state (found by scanning this worker's users
                                         unless ``user`` is given)
    GET  /api/timeline?user=&session=    events, audit records, decisions, deadlines and scores
    GET  /api/audit?user=&session=&since=&until=&limit=
                                         audit records (read from the audit topic, see :mod:`.queries`)
    GET  /api/policy                     the policy in force: version, TOML text, source, history
    GET  /api/decisions/recent[?limit=]  the newest decisions this worker published (a cache)
    POST /api/revoke                     {"user", "session"?, "note"?, "operator"?} -> 202

The dashboard page is package data of ``streams.service`` (``streams/service/static/``), found
through :mod:`importlib.resources` by package name, not by this file's path.
"""

from __future__ import annotations

import logging
import uuid
from importlib import resources
from typing import TYPE_CHECKING, Any

import orjson

from streams.engine.decisions import rfc3339
from streams.service.web.admin.auth import _NAME, Tokens
from streams.service.web.admin.operator import RECENT_DECISIONS, Operator
from streams.service.web.admin.queries import DEFAULT_LIMIT, filter_audit, scan_topics, scope_of, timeline
from streams.service.web.admin.requests import produce_request, revoke_envelope

if TYPE_CHECKING:
    from streams.service.app import Service

log = logging.getLogger("lapse.admin")


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
