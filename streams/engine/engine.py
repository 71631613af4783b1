"""The session engine: events in, decisions and audit records out. Pure and deterministic.

No Kafka, no asyncio, no wall clock: every call is given ``now``. :class:`Replay` runs the engine
on event time with the IDS join (:mod:`streams.engine.join`) to resolve IDS alerts.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import MutableMapping
from typing import Any

import orjson

from .deadlines import DeadlineIndex
from .decisions import Output, _output, audit, cause_txn, decision, rfc3339, stable_id, timeout_evidence
from .events import Event
from .policy import RATE_WINDOW_S, Limits, Policy
from .scoring import Scorer
from .join import IdsJoin, JoinView, SightingGate, Target, resolve_targets
from .state import SessionState, UserState, session_digest
from .windows import window_estimate, window_push

__all__ = ["Engine", "Replay"]

INF = math.inf
_IDENTITY_SESSION = frozenset({"login", "refresh", "reauth"})


def _take_newest_attrs(s: SessionState, ev: Event, ts: float) -> bool:
    """``ev`` is the session's newest event: take its time, IP, channel and device; return whether
    an attribute policy rules match on (IP, channel) changed."""
    s.last_seen = ts
    moved = False
    ip = ev.ip
    if ip is not None and ip != s.ip:
        s.ip = ip
        moved = True
    ch = ev.channel
    if ch is not None and ch != s.channel:
        s.channel = ch
        moved = True
    if ev.device is not None:
        s.device = ev.device
    return moved


def _holds(lim: Limits, condition: str) -> bool:
    """Whether an activity condition of this kind currently binds the session."""
    if lim.conditions:
        for _, c in lim.conditions:
            if c == condition:
                return True
    return False


def _trigger_of(ev: Event) -> str:
    """A stable identity for the event that caused something (its ``id`` if it has one)."""
    raw = ev.raw or {}
    eid = raw.get("id")
    if isinstance(eid, (str, int)) and not isinstance(eid, bool):
        return f"{ev.type}:{eid}"
    return f"{ev.type}:" + stable_id(orjson.dumps(raw, option=orjson.OPT_SORT_KEYS).decode("utf-8", "replace"))


class Engine:
    """Session lifecycle and decisions.

    Parameters
    ----------
    policy : Policy
    store : MutableMapping[str, UserState], optional
        Keyed by user; the engine assigns ``store[user] = state`` after each change so a
        changelog-backed table sees it. Defaults to a dict.
    scorer : Scorer, optional
        Used only when ``policy.adaptive.enabled``.
    tombstone_s : float
        How long an ended session is kept whole (to re-issue its revocation on enforcement gaps).
    max_sessions : int
        Live sessions one user may hold. A session that would exceed it is revoked as it starts
        (reason ``session_limit``): the user's existing sessions are never evicted for it, so
        traffic invented under someone's name cannot sign them out, and the state of one user
        stays bounded.
    max_ended : int
        Ended sessions one user keeps whole (for their tombstone time); older ones are kept in
        compact form at once.
    remember_s : float, optional
        How long an ended session is remembered in compact form (its id's digest, end time and
        reason): traffic on it in that time is an enforcement gap, never a new session. At least
        the policy's longest absolute limit (and a day), so no enforcement point can still hold
        a session lapse has forgotten.
    max_remembered : int
        Compact records one user keeps; past it the oldest are forgotten (counted, audited).

    Examples
    --------
    >>> from streams.engine import loads_policy, parse_event
    >>> eng = Engine(loads_policy('[defaults]\\nidle = "30m"\\nabsolute = "12h"'))
    >>> outs = eng.handle(parse_event({"type": "login", "ts": 0, "user": "u1", "session": "s1"}), 0.0)
    >>> [(o.kind, o.value["kind"]) for o in outs]
    [('audit', 'session_start')]
    >>> eng.expire(1799.0)
    []
    >>> [(o.value["action"], o.value["reason"], o.value["at"]) for o in eng.expire(1800.0) if o.kind == "decision"]
    [('revoke', 'idle_timeout', '1970-01-01T00:30:00Z')]
    """

    def __init__(self, policy: Policy, store: MutableMapping[str, UserState] | None = None,
                 scorer: Scorer | None = None, *, tombstone_s: float = 3600.0, max_sessions: int = 100,
                 max_ended: int = 100, remember_s: float | None = None, max_remembered: int = 4096) -> None:
        for name, value in (("max_sessions", max_sessions), ("max_ended", max_ended),
                            ("max_remembered", max_remembered)):
            if type(value) is not int or value < 1:
                raise ValueError(f"Engine: {name} must be a positive integer, got {value!r}")
        self.policy = policy
        self.store: MutableMapping[str, UserState] = store if store is not None else {}
        self.scorer = scorer
        self.tombstone_s = tombstone_s
        self.max_sessions = max_sessions
        self.max_ended = max_ended
        self.max_remembered = max_remembered
        self._remember_s = remember_s
        self.remember_s = self._remember_for(policy)
        #: what :meth:`expire` could not decide: ``(key, exception)``, taken by the caller
        self.faults: list[tuple[tuple[str, str], BaseException]] = []
        self.deadlines = DeadlineIndex()
        # purge times of ended sessions, in order (see _keep_tombstone)
        self._purge_at: deque[float] = deque()
        self._purge_key: deque[tuple[str, str]] = deque()
        self.counts: dict[str, int] = {"events": 0, "decisions": 0, "audits": 0, "automatic": 0,
                                       "enforcement_gaps": 0, "ignored": 0, "session_limit": 0, "forgotten": 0,
                                       "faults": 0}
        self._auto = bool(policy.activity.automatic)
        self._dyn_every = policy.dynamic_every_event
        self._values: dict[Any, Any] = {}  # see _shared
        #: live sessions in the store, kept as they start and end (``live_sessions()`` counts them)
        self.live = 0

    # -- public API -----------------------------------------------------------------------------
    def handle(self, ev: Event, now: float) -> list[Output]:
        """Apply one event (its ``user`` known) at clock ``now``; return what to publish."""
        outs: list[Output] = []
        self._handle(ev, now, outs)
        return outs

    def _handle(self, ev: Event, now: float, outs: list[Output]) -> None:
        """:meth:`handle`, appending to ``outs`` (what :meth:`Replay.feed` already holds)."""
        counts = self.counts
        counts["events"] += 1
        user = ev.user
        if user is None:
            counts["ignored"] += 1
            return
        n0 = len(outs)
        t = ev.type
        if t == "activity" or t in _IDENTITY_SESSION:
            us = self.store.get(user)
            if us is None or t != "activity" or not self._activity(ev, now, outs, us):
                self._session_event(ev, now, outs, us)
        elif t == "alert":
            self._alert(ev, now, outs)
        elif t == "logout":
            self._logout(ev, now, outs)
        elif t == "user_disabled" or t == "credential_change":
            self._account(ev, now, outs)
        elif t == "role_change":
            self._role_change(ev, now, outs)
        else:  # login_failed: only the scorer learns from it
            us = self.store.get(user)
            if us is None:
                us = UserState()
            self._score(ev, us, None, now, outs)
            self.store[user] = us
        if len(outs) > n0:
            self._count(outs, n0)

    def handle_alert(self, targets: list[Event], now: float) -> list[Output]:
        """Apply the resolved copies of one alert together: every implicated session is revoked
        for ``ids_alert`` before SSO siblings are taken down for ``sso_logout``."""
        outs: list[Output] = []
        defer: list[tuple[SessionState, UserState]] = []
        for ev in targets:
            self.counts["events"] += 1
            if ev.user is not None:
                self._alert(ev, now, outs, defer)
        for s, us in defer:
            self._cascade(s, us, s.terminal, s.ended, now, outs)  # type: ignore[arg-type]
            if s.user in self.store or us.sessions:
                self.store[s.user] = us
        self._count(outs)
        return outs

    def expire(self, now: float) -> list[Output]:
        """Act on every deadline at or before ``now`` (O(expired * log n))."""
        outs: list[Output] = []
        store = self.store
        for key, at in self.deadlines.pop_due(now):
            n0 = len(outs)
            try:
                us = store.get(key[0])
                if us is None:
                    continue
                if key[1] == "":  # a user's compact memory, purged out of order
                    self._forget(key[0], us, now)
                    continue
                s = us.sessions.get(key[1])
                if s is None:
                    continue
                self._due(s, us, at, max(at, now) if now != INF else at, outs)
                if key[0] in store:
                    store[key[0]] = us
            except Exception as exc:  # one session's fault never holds back the others' deadlines
                del outs[n0:]
                self._fault(key, exc, at if now == INF else max(at, now), outs)
        if self._purge_at and self._purge_at[0] <= now:
            self._purge(now)
        self._count(outs)
        return outs

    def _fault(self, key: tuple[str, str], exc: BaseException, now: float, outs: list[Output]) -> None:
        """A session whose deadline could not be decided: recorded for the caller (dead letters),
        and revoked (fail closed) if that still works; else left without a deadline."""
        self.faults.append((key, exc))
        self.counts["faults"] += 1
        n0 = len(outs)
        try:
            us = self.store.get(key[0])
            s = us.sessions.get(key[1]) if us is not None and key[1] else None
            if s is not None and s.ended is None:
                self._end(s, us, "revoke", "engine_fault", now, f"engine_fault@{now!r}", now, outs,
                          evidence={"error": type(exc).__name__}, cascade=False)
                self.store[key[0]] = us
        except Exception:
            del outs[n0:]

    def repair(self, user: str, now: float) -> list[Output]:
        """Make ``user``'s state safe again after a fault part-way through one of their events.

        Every session must still serialise and hold a deadline that can be formatted; one that
        does not is revoked (reason ``engine_fault``: enforcement fails closed) and remembered in
        compact form, so later traffic on it is an enforcement gap. A profile that no longer
        serialises is dropped (the scorer learns the user again).

        >>> from streams.engine import loads_policy, parse_event
        >>> eng = Engine(loads_policy('[defaults]\\nidle = "30m"'))
        >>> _ = eng.handle(parse_event({"type": "login", "ts": 0, "user": "u1", "session": "s1"}), 0.0)
        >>> eng.store["u1"].sessions["s1"].last_active = float("nan")   # what a bug could leave
        >>> [(o.value["reason"], o.value["session"]) for o in eng.repair("u1", 5.0) if o.kind == "decision"]
        [('engine_fault', 's1')]
        >>> eng.store["u1"].remembered("s1")[1], eng.live
        ('engine_fault', 0)
        """
        outs: list[Output] = []
        us = self.store.get(user)
        if us is None:
            return outs
        for sid, s in list(us.sessions.items()):
            try:
                orjson.dumps(s.to_row())
                if s.ended is None:
                    for t in (s.started, s.auth_at, s.last_seen, s.last_active, s.lim_since):
                        if not math.isfinite(t):
                            raise ValueError("a session time is not finite")
                        rfc3339(t)
                    s.lim = self.policy.limits(s, max(s.last_seen, now))
                    self._schedule(s)
                    due = self.deadlines.get(s.key)
                    if due is not None:
                        rfc3339(due)
            except Exception:
                del us.sessions[sid]
                self.deadlines.discard((user, sid))
                if s.ended is None:
                    self.live -= 1
                self.counts["faults"] += 1
                outs.append(decision("revoke", "engine_fault", sid, user, now, f"engine_fault@{now!r}",
                                     policy_version=self.policy.version, evidence={"repaired": True}))
                s.ended, s.end_reason = now, "engine_fault"
                self._remember(s, us, outs)
        try:
            orjson.dumps(us._profile)
        except Exception:
            us._profile = None
        if us.is_empty():
            self.store.pop(user, None)
        else:
            self.store[user] = us
        self._count(outs)
        return outs

    def shrink(self, user: str, us: UserState, limit: int) -> bytes:
        """``us`` serialised in at most ``limit`` bytes: a last guard so that no user's changelog
        record is ever larger than the broker accepts. Ended sessions go compact first, then the
        scorer's profile, then the oldest compact records (counted in ``counts["forgotten"]``).
        Live sessions are never dropped: ``max_sessions`` and the field bounds keep them small."""
        value = us.to_json()
        if len(value) <= limit:
            return value
        self._bound_ended(us, [], keep=0)
        value = us.to_json()
        if len(value) > limit and us._profile:
            us._profile = None
            value = us.to_json()
        while len(value) > limit and us.ended:
            n = max(1, len(us.ended) // 4)
            for digest in list(us.ended)[:n]:
                del us.ended[digest]
            self.counts["forgotten"] += n
            value = us.to_json()
        return value

    def _remember_for(self, policy: Policy) -> float:
        """How long ended sessions are remembered under ``policy`` (see ``remember_s``)."""
        longest = max((r.absolute for r in (policy.defaults, *policy.rules) if r.absolute is not None), default=0.0)
        return max(self._remember_s or 0.0, longest, 86400.0, self.tombstone_s)

    def _keep_tombstone(self, s: SessionState, until: float) -> None:
        """Keep ended ``s`` until ``until`` (to re-issue its revocation), then purge it.

        Sessions end in time order, so their purge times almost always arrive in order: they queue
        in a FIFO (two deque slots each) rather than in the deadline index (a dict entry and a heap
        entry each); one that arrives out of order goes to the deadline index, which purges the same.
        Purging produces no output, so purges may run after the deadlines of the same
        :meth:`expire` call.
        """
        self.deadlines.discard(s.key)
        self._queue_purge(s.key, until)

    def _purge(self, now: float) -> None:
        """Drop the ended sessions whose tombstone time is at or before ``now``."""
        q, keys, store = self._purge_at, self._purge_key, self.store
        while q and q[0] <= now:
            q.popleft()
            user, session = keys.popleft()
            try:
                us = store.get(user)
                if us is None:
                    continue
                if session == "":  # a user's compact memory (session ids are never empty)
                    self._forget(user, us, now)
                    continue
                s = us.sessions.get(session)
                if s is None or s.ended is None:
                    continue
                del us.sessions[session]
                self._remember(s, us, [])
                if user in store:
                    store[user] = us
            except Exception as exc:  # one user's fault never stops the purge of the others
                self.faults.append(((user, session), exc))
                self.counts["faults"] += 1

    def _remember(self, s: SessionState, us: UserState, outs: list[Output]) -> None:
        """Keep ended ``s`` (already out of ``us.sessions``) in compact form for ``remember_s``."""
        ended = us.ended
        if ended is None:
            ended = us.ended = {}
        forget_at = s.ended + self.remember_s  # type: ignore[operator]
        ended[session_digest(s.session)] = [s.ended, s.end_reason, forget_at]
        if len(ended) > self.max_remembered:
            n = len(ended) - self.max_remembered
            for digest in list(ended)[:n]:  # oldest first: insertion follows the end times
                del ended[digest]
            self.counts["forgotten"] += n
            outs.append(audit("ended_sessions_forgotten", s.user, None, s.ended, f"forgotten@{s.ended!r}",  # type: ignore[arg-type]
                              {"forgotten": n, "max_remembered": self.max_remembered}))
        self._queue_purge((s.user, ""), forget_at)

    def _forget(self, user: str, us: UserState, now: float) -> None:
        """Drop the compact records of ``user`` whose time is up (and the user, if nothing is left)."""
        ended = us.ended
        if ended:
            for digest in [d for d, rec in ended.items() if rec[2] <= now]:
                del ended[digest]
            if not ended:
                us.ended = None
            else:
                self._queue_purge((user, ""), min(rec[2] for rec in ended.values()))
        if us.is_empty():
            if user in self.store:
                del self.store[user]
        else:
            self.store[user] = us

    def _queue_purge(self, key: tuple[str, str], until: float) -> None:
        q = self._purge_at
        if not q or until >= q[-1]:
            q.append(until)
            self._purge_key.append(key)  # type: ignore[arg-type]
        else:
            self.deadlines.set(key, until)  # type: ignore[arg-type]

    def _bound_ended(self, us: UserState, outs: list[Output], keep: int | None = None) -> None:
        """At most ``keep`` (default ``max_ended``) ended sessions kept whole per user: the oldest
        go compact now."""
        keep = self.max_ended if keep is None else keep
        ended = [x for x in us.sessions.values() if x.ended is not None]
        if len(ended) <= keep:
            return
        ended.sort(key=lambda x: x.ended)  # type: ignore[arg-type, return-value]
        for x in ended[:len(ended) - keep]:
            del us.sessions[x.session]
            self.deadlines.discard(x.key)  # its tombstone purge, if queued there, finds nothing
            self._remember(x, us, outs)

    def rebuild_deadlines(self) -> None:
        """Recompute every deadline from the store (after changelog recovery)."""
        self.deadlines.clear()
        self._purge_at.clear()
        self._purge_key.clear()
        ended = []
        live = 0
        forgets: list[tuple[float, str]] = []
        for user in list(self.store):
            us = self.store[user]
            if us.ended:
                forgets.append((min(rec[2] for rec in us.ended.values()), user))
            for s in us.sessions.values():
                if s.ended is not None:
                    ended.append((s.ended + self.tombstone_s, s))
                else:
                    live += 1
                    s.lim = self.policy.limits(s, s.last_seen)
                    self._schedule(s)
        self.live = live
        ended.sort(key=lambda e: e[0])
        for until, s in ended:
            self._keep_tombstone(s, until)
        forgets.sort()
        for until, user in forgets:  # the earliest of a user's records; each purge re-queues the rest
            self._queue_purge((user, ""), until)

    def set_policy(self, policy: Policy, now: float) -> list[Output]:
        """Switch policy atomically; live sessions are re-evaluated (a tighter limit applies at once)."""
        self.policy = policy
        self._auto = bool(policy.activity.automatic)
        self._dyn_every = policy.dynamic_every_event
        self.remember_s = self._remember_for(policy)
        outs: list[Output] = []
        for user in list(self.store):
            us = self.store[user]
            for s in us.sessions.values():
                if s.ended is None:
                    self._apply_limits(s, now, outs, f"policy:{policy.version}")
                    self._schedule(s)
            self.store[user] = us
        self._count(outs)
        outs.extend(self.expire(now))
        return outs

    def live_sessions(self) -> int:
        return sum(1 for us in self.store.values() for s in us.sessions.values() if s.ended is None)

    def manual_revoke(self, user: str, session: str | None, operator: str, reason_text: str, ts: float,
                      now: float, *, request_id: str | None = None) -> list[Output]:
        """An operator ends ``session`` (or, with ``None``, every live session of ``user``).

        Reason ``manual``; the evidence names the initiating entity (``admin``), the operator and
        their note. A single session cascades through its SSO session like any revocation. The
        decision id is stable per request (``request_id``, else operator and ``ts``), so a
        re-processed request re-issues the same id. Sessions already ended or unknown: no output.

        >>> from streams.engine import loads_policy, parse_event
        >>> eng = Engine(loads_policy('[defaults]\\nidle = "30m"'))
        >>> _ = eng.handle(parse_event({"type": "login", "ts": 0, "user": "u1", "session": "s1"}), 0.0)
        >>> [(o.value["reason"], o.value["evidence"]["operator"]) for o in
        ...  eng.manual_revoke("u1", "s1", "ann", "stolen laptop", 5.0, 5.0) if o.kind == "decision"]
        [('manual', 'ann')]
        """
        us = self.store.get(user)
        if us is None:
            return []
        if session is not None:
            s = us.sessions.get(session)
            targets = [s] if s is not None and s.ended is None else []
        else:  # sessions the operator could see: a request read again later never ends newer ones
            targets = [s for s in us.sessions.values() if s.ended is None and s.started <= ts]
        if not targets:
            return []
        outs: list[Output] = []
        trig = f"manual:{request_id or f'{operator}@{ts!r}'}"
        evidence = {"initiating_entity": "admin", "operator": operator, "note": reason_text,
                    "scope": "session" if session is not None else "user"}
        if request_id:
            evidence["request"] = request_id
        for s in targets:
            if s.ended is None:  # an earlier target's SSO cascade may have ended it already
                self._end(s, us, "revoke", "manual", max(ts, s.started), trig, now, outs, evidence=dict(evidence),
                          cascade=session is not None)
        self.store[user] = us
        self._count(outs)
        return outs

    # -- internals ------------------------------------------------------------------------------
    def _count(self, outs: list[Output], start: int = 0) -> None:
        """Count the decisions and audit records in ``outs[start:]``."""
        if len(outs) > start:
            n = 0
            for i in range(start, len(outs)):
                if outs[i].kind == "decision":
                    n += 1
            self.counts["decisions"] += n
            self.counts["audits"] += len(outs) - start - n

    def _schedule(self, s: SessionState) -> None:
        lim: Limits = s.lim
        idle = lim.idle
        due = s.last_active + idle * s.shorten if idle is not None else INF
        if lim.absolute is not None:
            a = s.auth_at + lim.absolute
            if a < due:
                due = a
        if due < s.lim_since:
            due = s.lim_since
        if lim.until < due:
            due = lim.until
        if due == INF:
            self.deadlines.discard(s.key)
        else:
            self.deadlines.set(s.key, due)

    def _apply_limits(self, s: SessionState, t: float, outs: list[Output], trigger: str,
                      trigger_ts: float | None = None) -> None:
        """Recompute limits at ``t``; audit when they tighten or relax.

        The audit's trigger is ``trigger`` (``"trigger:<trigger_ts>"`` when ``trigger_ts`` is given:
        formatted only if an audit is written, most re-evaluations write none).
        """
        lim = self.policy.limits(s, t)
        old = s.lim
        if lim is old:
            return
        s.lim = lim
        if old is not None and lim.conditions and lim.conditions == old.conditions and lim.idle == old.idle \
                and lim.absolute == old.absolute and lim.rules == old.rules:
            return  # the same conditions hold (only when one next stops may have moved): nothing to record
        if lim.conditions or s.cond_since:
            cs = s.cond_since or {}
            now_rules = dict.fromkeys(r for r, _ in lim.conditions)  # ordered: the changelog is the same in every run
            for r in now_rules:
                cs.setdefault(r, t)
            for r in [r for r in cs if r not in now_rules]:
                del cs[r]
            s.cond_since = cs or None
        if old is None:
            return
        oi = INF if old.idle is None else old.idle
        ni = INF if lim.idle is None else lim.idle
        oa = INF if old.absolute is None else old.absolute
        na = INF if lim.absolute is None else lim.absolute
        if trigger_ts is not None and (ni != oi or na != oa):
            trigger = f"{trigger}:{trigger_ts!r}"
        if ni < oi or na < oa:
            s.lim_since = t
            outs.append(audit("policy_tightened", s.user, s.session, t, f"{trigger}@{t!r}", self._limits_detail(s, lim)))
        elif ni > oi or na > oa:
            outs.append(audit("policy_relaxed", s.user, s.session, t, f"{trigger}@{t!r}", self._limits_detail(s, lim)))

    def _limits_detail(self, s: SessionState, lim: Limits) -> dict[str, Any]:
        d: dict[str, Any] = {"idle": lim.idle, "absolute": lim.absolute, "rules": list(lim.rules),
                             "idle_by": lim.idle_by, "absolute_by": lim.absolute_by,
                             "policy_version": self.policy.version}
        if lim.conditions:
            cs = s.cond_since or {}
            d["conditions"] = [{"rule": r, "condition": c, "since": rfc3339(cs[r]) if r in cs else None}
                               for r, c in lim.conditions]
        return d

    def _shared(self, value: Any) -> Any:
        """One object for equal small values held by many sessions (role lists), not one per event."""
        got = self._values.get(value)
        if got is None:
            if len(self._values) >= 4096:
                self._values.clear()
            got = self._values[value] = value
        return got

    def _new_session(self, ev: Event, us: UserState, outs: list[Output], adopted: bool) -> SessionState:
        user = ev.user
        for other in us.sessions.values():  # the user's other sessions already hold the user's name
            if other.user == user:
                user = other.user
            break
        s = SessionState(ev.session, user, ev.ts)  # type: ignore[arg-type]
        us.sessions[ev.session] = s  # type: ignore[index]
        self.live += 1
        s.sso = ev.sso_session
        s.app = ev.app
        s.roles = self._shared(ev.roles) if ev.roles is not None else None
        s.aal = ev.aal
        if not adopted:
            s.id_ts = ev.ts
        detail: dict[str, Any] = {"type": ev.type}
        if adopted:
            detail["adopted"] = True
        outs.append(audit("session_start", s.user, s.session, ev.ts, f"start@{ev.ts!r}", detail))
        return s

    def _count_automatic(self, s: SessionState, ev: Event, ts: float, outs: list[Output]) -> None:
        """Background traffic on ``s``: counted, never resets idle; the first one is audited."""
        s.auto_n += 1
        self.counts["automatic"] += 1
        if s.auto_n == 1:
            outs.append(audit("automatic_activity", s.user, s.session, ts, f"auto@{ts!r}",
                              {"action": ev.action, "resource": ev.resource,
                               "note": "background traffic: counted, never resets idle"}))

    def _activity(self, ev: Event, now: float, outs: list[Output], us: UserState) -> bool:
        """Activity on a live session whose limits are known: most events.

        The same steps as :meth:`_session_event` for this case, inline (a method call costs as
        much as several of them), and the deadline is set only when its inputs moved. Returns
        False, having changed nothing, when the general path must run instead.
        """
        s = us.sessions.get(ev.session)  # type: ignore[arg-type]
        if s is None or s.ended is not None:
            return False
        lim = s.lim
        if lim is None:
            return False
        policy = self.policy
        ts = ev.ts
        s.events_n += 1
        changed = self._dyn_every
        if ev.automatic:
            automatic = True
        elif self._auto:
            # the pattern memo read inline (what is_automatic does once both values are memoised)
            memo = policy._auto_memo
            automatic = memo.get(ev.action)
            if not automatic:
                r = memo.get(ev.resource)
                automatic = r if r is not None and automatic is not None else policy.is_automatic(ev.action, ev.resource)
        else:
            automatic = False
        if ts >= s.last_seen and _take_newest_attrs(s, ev, ts):
            changed = True
        moved = False
        if automatic:
            self._count_automatic(s, ev, ts, outs)
        elif ts > s.last_active:
            s.last_active = ts
            moved = True
        t_eval = ts if ts > now else now
        if policy.has_dynamic:
            # Only a rule that does not hold yet can change the limits before lim.until (see
            # Limits.priv_open): the counters are always kept, the limits re-evaluated only when
            # one such rule could start to hold; at lim.until the deadline index wakes the session.
            if policy.tracks_privileged:
                priv = ev.privileged
                if not priv:  # as for automatic above
                    memo = policy._priv_memo
                    priv = memo.get(ev.action)
                    if not priv:
                        r = memo.get(ev.resource)
                        priv = r if r is not None and priv is not None else policy.is_privileged(ev.action, ev.resource)
                if priv and (s.priv_last is None or ts > s.priv_last):
                    if s.priv_last is None or ts >= s.priv_last + 86400:
                        s.priv_since = ts
                    s.priv_last = ts
                    if lim.priv_open:
                        changed = True
            # The counters: windows.window_push done in place on the session's window list (no call,
            # no new tuple: this runs on every event). prev + current bounds a window's estimate
            # from above, so most events skip the estimate.
            if policy.tracks_rate:
                w = s.win
                if w is None:
                    w = s.win = [None, 0, 0, None, 0, 0]
                start = w[0]
                if start is None:
                    w[0], w[1], w[2] = ts - ts % RATE_WINDOW_S, 0, 1
                elif ts >= start + RATE_WINDOW_S:
                    steps = (ts - start) // RATE_WINDOW_S
                    w[0], w[1], w[2] = start + steps * RATE_WINDOW_S, w[2] if steps == 1 else 0, 1
                else:
                    w[2] += 1
                x = lim.rate_next
                if not changed and w[1] + w[2] > x and window_estimate((w[0], w[1], w[2]), t_eval, RATE_WINDOW_S) > x:
                    changed = True
            b = ev.bytes
            if policy.tracks_bytes and b:
                bw = policy.activity.bytes_window
                w = s.win
                if w is None:
                    w = s.win = [None, 0, 0, None, 0, 0]
                start = w[3]
                if start is None:
                    w[3], w[4], w[5] = ts - ts % bw, 0, b
                elif ts >= start + bw:
                    steps = (ts - start) // bw
                    w[3], w[4], w[5] = start + steps * bw, w[5] if steps == 1 else 0, b
                else:
                    w[5] += b
                x = lim.bytes_next
                if not changed and w[4] + w[5] > x and window_estimate((w[3], w[4], w[5]), t_eval, bw) > x:
                    changed = True
            if not changed and lim.until <= t_eval:
                changed = True
        if self.scorer is not None and policy.adaptive.enabled:
            risk, shorten = s.risk, s.shorten
            self._score(ev, us, s, now, outs)
            if s.ended is not None:  # revoked
                self.store[ev.user] = us  # type: ignore[index]
                return True
            if policy.uses_risk and self._band_moved(risk, s.risk):
                changed = True
            if s.shorten != shorten:  # stepped up: the idle deadline moved
                moved = True
        if changed:
            self._apply_limits(s, t_eval, outs, "event", ts)
            self._schedule(s)
        elif moved:  # only last_active moved
            self._schedule(s)
        # else: nothing _schedule reads has moved, so the deadline set last time still holds
        self.store[ev.user] = us  # type: ignore[index]
        return True

    def _session_event(self, ev: Event, now: float, outs: list[Output], us: UserState | None) -> None:
        """login / refresh / reauth / activity for one session (``us``: the user's state, if any)."""
        user = ev.user
        store = self.store
        if us is None:
            us = UserState()
        s = us.sessions.get(ev.session)  # type: ignore[arg-type]
        ts = ev.ts
        etype = ev.type
        if s is None:
            if us.ended is not None and self._remembered_gap(ev, us, outs):
                store[user] = us  # type: ignore[index]
                return
            s = self._new_session(ev, us, outs, etype != "login")
            if len(us.sessions) > self.max_sessions and self._over_limit(s, us, now, outs):
                store[user] = us  # type: ignore[index]
                return
        elif s.ended is not None:
            self._after_end(s, ev, outs)
            store[user] = us  # type: ignore[index]
            return
        s.events_n += 1
        policy = self.policy
        risk = s.risk  # the limits were last evaluated with its band
        activity = etype == "activity"
        # a token refresh is a client renewing its tokens, not a person: background traffic unless
        # the policy says otherwise ([activity] refresh_resets_idle)
        automatic = ev.automatic or (self._auto and activity and policy.is_automatic(ev.action, ev.resource)) \
            or (etype == "refresh" and not policy.activity.refresh_resets_idle)
        lim = s.lim
        changed = lim is None or self._dyn_every
        if ts >= s.last_seen and _take_newest_attrs(s, ev, ts):
            changed = True
        # Identity attributes come from the newest identity event, whatever activity arrived in
        # between: identity and activity travel on different topics, so a session's login can
        # arrive after its first requests (the session was adopted; the login completes it).
        first_login = etype == "login" and s.id_ts is None
        if not activity and (s.id_ts is None or ts >= s.id_ts):
            s.id_ts = ts
            changed = True
            if ev.roles is not None:
                s.roles = self._shared(ev.roles)
            if ev.aal is not None:
                s.aal = ev.aal
            if ev.app is not None:
                s.app = ev.app
            if ev.sso_session is not None:
                s.sso = ev.sso_session
            raw = ev.raw
            if raw is not None and ("email" in raw or "issuer" in raw):
                s.email = raw.get("email") or s.email
                s.issuer = raw.get("issuer") or s.issuer
        if automatic:
            self._count_automatic(s, ev, ts, outs)
        elif ts > s.last_active:
            s.last_active = ts
        t_eval = ts if ts > now else now
        if activity:
            if policy.has_dynamic:
                # Activity conditions are re-evaluated only when their outcome (or the time one of
                # them stops holding) can have changed: a privileged action, a counter above the
                # lowest threshold of its kind or feeding a condition that holds, a window passing.
                if policy.tracks_privileged and (ev.privileged or policy.is_privileged(ev.action, ev.resource)):
                    if s.priv_last is None or ts > s.priv_last:
                        if s.priv_last is None or ts >= s.priv_last + 86400:
                            s.priv_since = ts
                        s.priv_last = ts
                        changed = True
                if policy.tracks_rate:
                    w = s.rate_w = window_push(s.rate_w, ts, 1, RATE_WINDOW_S)
                    if not changed and (window_estimate(w, t_eval, RATE_WINDOW_S) > policy.rate_min
                                        or _holds(lim, "rate_over")):
                        changed = True
                if policy.tracks_bytes and ev.bytes:
                    bw = policy.activity.bytes_window
                    w = s.bytes_w = window_push(s.bytes_w, ts, ev.bytes, bw)
                    if not changed and (window_estimate(w, t_eval, bw) > policy.bytes_min or _holds(lim, "bytes_over")):
                        changed = True
                if not changed and lim.until <= t_eval:
                    changed = True
        elif first_login:  # the login of an adopted session: the session began then
            if ts < s.auth_at:
                s.auth_at = ts
            if ts < s.started:
                s.started = ts
        elif etype == "reauth" or (etype == "login" and s.events_n > 1):
            if ts > s.auth_at:
                s.auth_at = ts
            s.shorten = 1.0
            s.risk = None
            outs.append(audit("session_refresh", s.user, s.session, ts, f"{etype}@{ts!r}", {"type": etype}))
        elif etype == "refresh":
            outs.append(audit("session_refresh", s.user, s.session, ts, f"{etype}@{ts!r}", {"type": etype}))
        if self.scorer is not None and policy.adaptive.enabled:
            self._score(ev, us, s, now, outs)
        if s.ended is None:
            if changed or (policy.uses_risk and self._band_moved(risk, s.risk)):
                self._apply_limits(s, t_eval, outs, "event", ts)
            self._schedule(s)
        store[user] = us  # type: ignore[index]

    def _remembered_gap(self, ev: Event, us: UserState, outs: list[Output]) -> bool:
        """Traffic on a session that ended long ago (remembered in compact form): an enforcement
        gap, never a new session. Its revocation is issued again (the same id on every repeat)."""
        rec = us.remembered(ev.session)  # type: ignore[arg-type]
        if rec is None:
            return False
        ended, reason = rec[0], rec[1]
        if ev.ts < ended:
            return True  # a late event from before the end: nothing was let through
        self.counts["enforcement_gaps"] += 1
        detail: dict[str, Any] = {"event": ev.type, "event_at": rfc3339(ev.ts), "ended_by": reason,
                                  "ended_at": rfc3339(ended), "ip": ev.ip, "action": ev.action,
                                  "resource": ev.resource, "remembered": True}
        if reason != "logout":
            d = decision("revoke", reason, ev.session, ev.user, ended, f"remembered:{reason}@{ended!r}",  # type: ignore[arg-type]
                         policy_version=self.policy.version, evidence={"remembered": True, "ended_at": rfc3339(ended)})
            detail["decision"] = d.value["id"]
            outs.append(d)
        outs.append(audit("enforcement_gap", ev.user, ev.session, ev.ts, f"gap@{ev.ts!r}", detail))  # type: ignore[arg-type]
        return True

    def _over_limit(self, s: SessionState, us: UserState, now: float, outs: list[Output]) -> bool:
        """A new session beyond ``max_sessions`` live ones: revoked as it starts (the user's other
        sessions stay). Returns whether ``s`` was ended."""
        live = sum(1 for x in us.sessions.values() if x.ended is None)
        if live <= self.max_sessions:
            return False
        self.counts["session_limit"] += 1
        s.lim = self.policy.limits(s, s.started)
        self._end(s, us, "revoke", "session_limit", s.started, f"session_limit@{s.started!r}", now, outs,
                  evidence={"max_sessions": self.max_sessions, "live_sessions": live - 1}, cascade=False)
        return True

    def _after_end(self, s: SessionState, ev: Event, outs: list[Output]) -> None:
        """Traffic on an ended session: an enforcement point let it through."""
        if ev.ts < s.ended:  # type: ignore[operator]
            return  # a late event from before the end: nothing was let through
        self.counts["enforcement_gaps"] += 1
        detail: dict[str, Any] = {"event": ev.type, "event_at": rfc3339(ev.ts), "ended_by": s.end_reason,
                                  "ip": ev.ip, "action": ev.action, "resource": ev.resource}
        terminal = s.terminal
        if terminal is not None:
            detail["decision"] = terminal["id"]
            outs.append(_output("decision", s.session, terminal))
        outs.append(audit("enforcement_gap", s.user, s.session, ev.ts, f"gap@{ev.ts!r}", detail))

    def _due(self, s: SessionState, us: UserState, at: float, now: float, outs: list[Output]) -> None:
        """A deadline of ``s`` came due at ``at``."""
        if s.ended is not None:
            del us.sessions[s.session]
            if us.is_empty():
                del self.store[s.user]
            return
        lim: Limits = s.lim
        if lim.until <= at:
            self._apply_limits(s, at, outs, "window")
            lim = s.lim
        idle_dl = s.last_active + lim.idle * s.shorten if lim.idle is not None else INF
        abs_dl = s.auth_at + lim.absolute if lim.absolute is not None else INF
        dl = min(idle_dl, abs_dl)
        if max(dl, s.lim_since) <= at:
            when = max(dl, s.lim_since)
            kind, reason = ("absolute", "absolute_timeout") if abs_dl <= idle_dl else ("idle", "idle_timeout")
            ev = timeout_evidence(s, lim, kind, when)
            self._end(s, us, "revoke", reason, when, f"{reason}@{rfc3339(when)}", now, outs, evidence=ev,
                      timeout=True)
        else:
            self._schedule(s)

    def _end(self, s: SessionState, us: UserState, action: str, reason: str, at: float, trigger: str,
             now: float, outs: list[Output], *, score: float | None = None,
             evidence: dict[str, Any] | None = None, cascade: bool = True, timeout: bool = False) -> None:
        """Revoke ``s`` (or step it up), then cascade through its SSO session.

        ``timeout``: the evidence is :func:`timeout_evidence` of ``s`` at ``at`` and ``trigger`` is
        ``reason@rfc3339(at)``, so the ended session need not keep them (see ``SessionState.terminal``).
        """
        lim: Limits | None = s.lim
        if lim is None:
            lim = s.lim = self.policy.limits(s, at)
        out = decision(action, reason, s.session, s.user, at, trigger, sso_session=s.sso, app=s.app,
                       email=s.email, issuer=s.issuer,
                       policy=lim.rules, policy_version=self.policy.version, score=score, evidence=evidence)
        outs.append(out)
        if action != "revoke":
            outs.append(audit("decision", s.user, s.session, at, trigger,
                              {"action": action, "reason": reason, "decision": out.value["id"]}))
            return
        if s.ended is None:
            self.live -= 1
        s.ended = at
        s.end_reason = reason
        s.keep_terminal(self.policy.version, None if timeout else (trigger, score, evidence))
        s.rate_w = s.bytes_w = None
        self._keep_tombstone(s, max(at, now) + self.tombstone_s)
        outs.append(audit("session_end", s.user, s.session, at, trigger,
                          {"reason": reason, "decision": out.value["id"], "events": s.events_n,
                           "automatic_events": s.auto_n}))
        if len(us.sessions) > self.max_ended:
            self._bound_ended(us, outs)
        if cascade:
            self._cascade(s, us, out.value, at, now, outs)

    def _cascade(self, s: SessionState, us: UserState, root: dict[str, Any], at: float, now: float,
                 outs: list[Output]) -> None:
        """A revoked session that carries an SSO session takes its linked sessions with it; their
        revocations share the ``txn`` of ``root``, the decision that started it."""
        if s.sso is None:
            return
        cause, txn = root["id"], None
        for other in list(us.sessions.values()):
            if other is not s and other.ended is None and other.sso == s.sso:
                if txn is None:
                    txn = cause_txn(root)
                self._end(other, us, "revoke", "sso_logout", at, f"sso:{s.sso}:{cause}", now, outs,
                          evidence={"sso_session": s.sso, "cause": cause, "cause_session": s.session,
                                    "cause_txn": txn}, cascade=False)

    def _quiet_end(self, s: SessionState, at: float, now: float, outs: list[Output], reason: str) -> None:
        if s.ended is None:
            self.live -= 1
        s.ended = at
        s.end_reason = reason
        s.rate_w = s.bytes_w = None
        self._keep_tombstone(s, max(at, now) + self.tombstone_s)
        outs.append(audit("session_end", s.user, s.session, at, f"{reason}@{at!r}",
                          {"reason": reason, "events": s.events_n, "automatic_events": s.auto_n}))
        us = self.store.get(s.user)
        if us is not None and len(us.sessions) > self.max_ended:
            self._bound_ended(us, outs)

    def _logout(self, ev: Event, now: float, outs: list[Output]) -> None:
        us = self.store.get(ev.user)  # type: ignore[arg-type]
        if us is None:
            return
        if ev.session is not None:
            s = us.sessions.get(ev.session)
            if s is not None and s.ended is None:
                self._quiet_end(s, max(ev.ts, s.last_seen), now, outs, "logout")
            if ev.sso_session is not None and ev.sso_session == ev.session:
                # the SSO session itself ended (Okta's user.session.end): its linked sessions go too;
                # an app session's own logout (its sso_session another id) ends only that session
                trig = f"logout:{ev.sso_session}@{ev.ts!r}"
                for o in list(us.sessions.values()):
                    if o.ended is None and o.sso == ev.sso_session:
                        self._end(o, us, "revoke", "sso_logout", ev.ts, trig, now, outs,
                                  evidence={"sso_session": ev.sso_session, "cause": "logout"}, cascade=False)
        elif ev.sso_session is not None:
            trig = f"logout:{ev.sso_session}@{ev.ts!r}"
            for s in list(us.sessions.values()):
                if s.ended is None and s.sso == ev.sso_session:
                    self._end(s, us, "revoke", "sso_logout", ev.ts, trig, now, outs,
                              evidence={"sso_session": ev.sso_session, "cause": "logout"}, cascade=False)
        else:
            # a logout naming only the user (Okta user.session.clear, Keycloak "logout all
            # sessions"): every live session of the user ends, revoked so enforcement points drop it
            trig = f"logout@{ev.ts!r}"
            for s in list(us.sessions.values()):
                if s.ended is None:
                    self._end(s, us, "revoke", "account_event", ev.ts, trig, now, outs,
                              evidence={"event": "logout", "scope": "all_sessions"}, cascade=False)
        self.store[ev.user] = us  # type: ignore[index]

    def _account(self, ev: Event, now: float, outs: list[Output]) -> None:
        us = self.store.get(ev.user)  # type: ignore[arg-type]
        if us is None:
            return
        trig = f"{ev.type}@{ev.ts!r}"
        for s in list(us.sessions.values()):
            if s.ended is None:
                self._end(s, us, "revoke", "account_event", ev.ts, trig, now, outs,
                          evidence={"event": ev.type}, cascade=False)
        self.store[ev.user] = us  # type: ignore[index]

    def _role_change(self, ev: Event, now: float, outs: list[Output]) -> None:
        us = self.store.get(ev.user)  # type: ignore[arg-type]
        if us is None or ev.roles is None:
            return
        for s in us.sessions.values():
            if s.ended is None and (ev.session is None or s.session == ev.session):
                s.roles = self._shared(ev.roles)
                self._apply_limits(s, max(ev.ts, now), outs, "role_change", ev.ts)
                self._schedule(s)
        self.store[ev.user] = us  # type: ignore[index]

    def _alert(self, ev: Event, now: float, outs: list[Output],
               defer: list[tuple[SessionState, UserState]] | None = None) -> None:
        ids = self.policy.ids
        sev = ev.severity
        if sev in ids.revoke:
            action = "revoke"
        elif sev in ids.step_up:
            action = "step_up"
        else:
            return
        user = ev.user
        us = self.store.get(user)  # type: ignore[arg-type]
        if us is None:
            if ev.session is None or action != "revoke":
                return
            us = UserState()
        trig = _trigger_of(ev)
        evidence = {"severity": sev, "signature": ev.signature, "src_ip": ev.src_ip, "dest_ip": ev.dest_ip}
        if action == "step_up":
            trig = "step_up:" + trig
        if ev.session is not None:
            s = us.sessions.get(ev.session)
            if s is None:
                if action != "revoke" or us.remembered(ev.session) is not None:
                    return
                # never seen: keep a revoked tombstone so later traffic is caught as a gap
                s = SessionState(ev.session, user, ev.ts)  # type: ignore[arg-type]
                us.sessions[ev.session] = s
                self.live += 1  # (ended just below)
                s.lim = self.policy.limits(s, ev.ts)
            targets = [s] if s.ended is None else []
        else:
            targets = [s for s in us.sessions.values() if s.ended is None]
        for s in targets:  # every implicated session first, then their SSO siblings
            self._end(s, us, action, "ids_alert", ev.ts, trig, now, outs, evidence=dict(evidence), cascade=False)
        if action == "revoke":
            pending = [(s, us) for s in targets]
            if defer is not None:
                defer.extend(pending)
            else:
                for s, u in pending:
                    self._cascade(s, u, s.terminal, ev.ts, now, outs)  # type: ignore[arg-type]
        if not us.is_empty():
            self.store[user] = us  # type: ignore[index]

    def _band_moved(self, before: float | None, after: float | None) -> bool:
        """Whether a session's risk moved to another band: the limits read the risk only through
        its band (``risk = "elevated" | "high"`` rules), so a score within its band, or a
        re-authentication clearing a risk that was in the normal band, changes no limit."""
        band = self.policy.adaptive.band
        return band(before) != band(after)

    def _score(self, ev: Event, us: UserState, s: SessionState | None, now: float, outs: list[Output]) -> None:
        if self.scorer is None or not self.policy.adaptive.enabled:
            return
        us.events += 1
        sc = self.scorer.process(ev, us.profile, s)
        ad = self.policy.adaptive
        if sc is None or s is None or us.events <= ad.warmup:
            return
        value = float(sc.value)
        s.risk = value
        # graded: weak evidence (a score that says ``revocable = False``) steps up, never revokes
        if value >= ad.revoke_at and getattr(sc, "revocable", True):
            self._end(s, us, "revoke", "anomaly", ev.ts, f"anomaly:{_trigger_of(ev)}", now, outs, score=value,
                      evidence=dict(sc.evidence))
        elif value >= ad.step_up_at and s.shorten == 1.0:
            s.shorten = ad.idle_factor
            ev_d = dict(sc.evidence)
            ev_d["idle_factor"] = ad.idle_factor
            self._end(s, us, "step_up", "anomaly", ev.ts, f"anomaly:{_trigger_of(ev)}", now, outs, score=value,
                      evidence=ev_d)
            told = getattr(self.scorer, "stepped_up", None)
            if told is not None:  # a re-authentication inside this session now confirms its context
                told(ev, us.profile, s)


class Replay:
    """Engine + the IDS join (:mod:`streams.engine.join`) on event time: the clock is the newest
    event time seen. The worker runs the same join, with the same rules, on its own clock.

    Examples
    --------
    >>> from streams.engine import loads_policy, parse_event
    >>> r = Replay(loads_policy('[defaults]\\nidle = "10m"'))
    >>> _ = r.feed(parse_event({"type": "login", "ts": 0, "user": "u1", "session": "s1", "ip": "10.0.0.7"}))
    >>> outs = r.feed(parse_event({"type": "alert", "ts": 60, "severity": 1, "src_ip": "10.0.0.7"}))
    >>> [(o.value["reason"], o.value["session"]) for o in outs if o.kind == "decision"]
    [('ids_alert', 's1')]
    """

    #: how often (event time) keys nothing can meet any more leave the join
    JOIN_EXPIRY_S = 60.0

    def __init__(self, policy: Policy, scorer: Scorer | None = None, *, tombstone_s: float = 3600.0) -> None:
        self.engine = Engine(policy, scorer=scorer, tombstone_s=tombstone_s)
        self.join = IdsJoin(lambda: self.engine.policy.ids)
        self.join_state: dict[str, dict] = {}
        self._view = JoinView(self.join_state, in_place=True)
        self.gate = SightingGate(lambda: self.engine.policy.ids.lookback)
        self.clock = -INF
        self._join_expiry = -INF

    def feed(self, ev: Event) -> list[Output]:
        """Advance the clock to ``ev.ts`` if newer (expiring deadlines), then apply ``ev``."""
        eng = self.engine
        if ev.ts > self.clock:
            self.clock = ev.ts
            heap, purge = eng.deadlines._heap, eng._purge_at
            outs = eng.expire(ev.ts) if (heap and heap[0][0] <= ev.ts) or (purge and purge[0] <= ev.ts) else []
        else:
            outs = []
        join, view = self.join, self._view
        if ev.type == "alert":
            targets = join.direct(ev)
            for key in join.keys_of(ev):
                targets.extend(join.alert(view, key, ev, ev.raw, self.clock))  # type: ignore[arg-type]
            self._decide(targets, outs)
        else:
            eng._handle(ev, self.clock, outs)
            if ev.session is not None and ev.user is not None:
                for key in self.gate.due(ev):
                    met = join.sighting(view, key, ev.user, ev.session, ev.ts, self.clock)
                    if met:
                        self._decide(met, outs)
        if self.clock >= self._join_expiry:
            self._join_expiry = self.clock + self.JOIN_EXPIRY_S
            join.expire(view, self.clock)
        return outs

    def _decide(self, targets: list[Target], outs: list[Output]) -> None:
        """Each alert's resolved targets, decided together (as the worker does)."""
        by_alert: dict[int, list[Event]] = {}
        for t in resolve_targets(targets):
            by_alert.setdefault(id(t.alert), []).append(t.alert.targeted(t.user, t.session))
        for resolved in by_alert.values():
            outs.extend(self.engine.handle_alert(resolved, self.clock))

    def drain(self) -> list[Output]:
        """Advance past every pending deadline (decisions keep their own deadline times)."""
        outs = self.engine.expire(INF)
        return outs
