"""Per-worker operator state (:class:`Operator`): the object the service and the views share.

One concept: the operator's state on one worker — the tokens, the recent-decisions ring, the policy
in force and its follower — with the hooks the service calls (:meth:`Operator.handle` on the owning
partition, :meth:`Operator.note_published` after the broker's acknowledgement) and the reads of
this worker's state the views serve. It is kept whole: the read helpers use the same service
handle and overview cache as the hooks, and splitting the class would only spread one object over
two files.

* **State** comes from the engine's store (this worker's partitions only: a user on another
  worker's partition answers 404 with ``"owned": false``).
* **Manual revoke** (:meth:`Operator.handle`): the engine's outputs plus, in the same batch, an
  ``admin_action`` audit record naming the operator, the action and the decisions it caused.
* **Recent decisions** are an in-memory ring (``RECENT_DECISIONS``) fed after the broker
  acknowledged them; lost on restart, by design.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from streams.engine.decisions import Output, audit, rfc3339
from streams.service.web.policy_publish import PolicyFollower, initial_state

if TYPE_CHECKING:
    from streams.service.web.admin.auth import Tokens
    from streams.service.web.admin.requests import AdminRequest
    from streams.service.app import Service

RECENT_DECISIONS = 500
BANDS = ("normal", "elevated", "high")


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
                "policy_version": engine.policy.version, "partitions": self.service.partitions,
                "ready": self.service.serving, "counts": dict(engine.counts), "at": rfc3339(now)}
        self._overview = (now, body)
        return body
