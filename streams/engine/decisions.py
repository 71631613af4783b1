"""Outputs of the engine: decisions (revocations topic) and audit records, with stable ids."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

__all__ = ["Output", "stable_id", "rfc3339", "decision", "audit", "timeout_evidence"]


@dataclass(frozen=True, slots=True)
class Output:
    """One message to publish: ``kind`` is ``"decision"`` or ``"audit"``; ``key`` the Kafka key."""

    kind: str
    key: str
    value: dict[str, Any]


_new = object.__new__
_set_kind, _set_key, _set_value = (getattr(Output, f).__set__ for f in Output.__slots__)


def _output(kind: str, key: str, value: dict[str, Any]) -> Output:
    """``Output(kind, key, value)`` without the frozen dataclass's by-name ``object.__setattr__``
    per field (about a third of the cost; an output is built for every record published).

    >>> _output("audit", "u1", {}) == Output("audit", "u1", {})
    True
    """
    o = _new(Output)
    _set_kind(o, kind)
    _set_key(o, key)
    _set_value(o, value)
    return o


_blake2b = hashlib.blake2b


def stable_id(*parts: object) -> str:
    """32 hex digits of blake2b over the parts: same inputs, same id, in every run.

    Examples
    --------
    >>> stable_id("s1", "idle_timeout", "1970-01-01T00:30:00Z")
    '536b149c7e61be533908cf65c640de93'
    """
    return _blake2b("\x1f".join(map(str, parts)).encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


#: an empty 16-byte blake2b, only ever copied (never updated): copying it is cheaper than building one
_B2_16 = hashlib.blake2b(digest_size=16)


def _id3(a: str, b: str, c: str) -> str:
    """:func:`stable_id` of three strings (what every decision and audit id is), with less work.

    >>> _id3("s1", "idle_timeout", "1970-01-01T00:30:00Z") == stable_id("s1", "idle_timeout", "1970-01-01T00:30:00Z")
    True
    """
    h = _B2_16.copy()
    h.update(f"{a}\x1f{b}\x1f{c}".encode("utf-8", "surrogatepass"))
    return h.hexdigest()


_RFC_CACHE: dict[float, str] = {}
_DAY_CACHE: dict[int, str] = {}
_MAX_TS = 253402300800  # 10000-01-01: beyond it, datetime raises as before
_HHMM = [f"{h:02d}:{m:02d}" for h in range(24) for m in range(60)]
_SS = [f":{x:02d}" for x in range(60)]


def _second(sec: int) -> str:
    """``"YYYY-MM-DDTHH:MM:SS"`` of whole second ``sec`` (>= 0), from a per-day prefix."""
    day, rem = divmod(sec, 86400)
    prefix = _DAY_CACHE.get(day)
    if prefix is None:
        if len(_DAY_CACHE) >= 4096:
            _DAY_CACHE.clear()
        prefix = _DAY_CACHE[day] = datetime.fromtimestamp(day * 86400, timezone.utc).strftime("%Y-%m-%dT")
    return prefix + _HHMM[rem // 60] + _SS[rem % 60]


def rfc3339(ts: float) -> str:
    """Epoch seconds to RFC 3339 UTC with ``Z`` (milliseconds only when needed).

    The same string as ``datetime.fromtimestamp(ts, timezone.utc)`` formatted (microseconds rounded
    half to even, then truncated to milliseconds), without building a datetime: the whole second
    comes from a per-day prefix and two small tables. Pure, so cached by value (bounded): a
    session's times recur in its records.

    Examples
    --------
    >>> rfc3339(1767225600.0), rfc3339(1767225600.25), rfc3339(1767225600.0004)
    ('2026-01-01T00:00:00Z', '2026-01-01T00:00:00.250Z', '2026-01-01T00:00:00.000Z')
    """
    got = _RFC_CACHE.get(ts)
    if got is not None:
        return got
    if len(_RFC_CACHE) >= 8192:
        _RFC_CACHE.clear()
    out = _RFC_CACHE[ts] = _format(ts)
    return out


def _format(ts: float) -> str:
    """:func:`rfc3339` uncached."""
    if 0 <= ts < _MAX_TS - 1:  # (a carry into the next second must stay below the limit)
        sec = int(ts)
        us = 0
        if ts != sec:
            # what datetime does: the fraction (exact: ts - floor(ts)) in microseconds, rounded half to even
            us = round((ts - sec) * 1e6)
            if us >= 1_000_000:
                sec += 1
                us -= 1_000_000
        base = _second(sec)
        if us:
            return f"{base}.{us // 1000:03d}Z"
        return base + "Z"
    dt = datetime.fromtimestamp(ts, timezone.utc)
    if dt.microsecond:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def decision(action: str, reason: str, session: str, user: str, at: float, trigger: str, *,
             sso_session: str | None = None, app: str | None = None, policy: tuple[str, ...] | list[str] = (),
             policy_version: str = "", score: float | None = None,
             evidence: dict[str, Any] | None = None, email: str | None = None,
             issuer: str | None = None) -> Output:
    """A decision keyed by session; ``id`` = hash(session, reason, trigger).

    Examples
    --------
    >>> out = decision("revoke", "idle_timeout", "s1", "u1", 1800.0, "idle@1800", policy=["defaults"])
    >>> out.kind, out.key, out.value["at"], out.value["id"] == stable_id("s1", "idle_timeout", "idle@1800")
    ('decision', 's1', '1970-01-01T00:30:00Z', True)
    """
    value = {
        "id": _id3(session, reason, trigger),
        "action": action,
        "reason": reason,
        "session": session,
        "user": user,
        "sso_session": sso_session,
        "app": app,
        "at": rfc3339(at),
        "policy": list(policy),
        "policy_version": policy_version,
        "score": score,
        "evidence": evidence or {},
    }
    if email is not None:  # the user's subject for receivers that want email or iss_sub
        value["email"] = email
    if issuer is not None:
        value["issuer"] = issuer
    return _output("decision", session, value)


def audit(kind: str, user: str, session: str | None, at: float, trigger: str,
          detail: dict[str, Any] | None = None) -> Output:
    """An audit record keyed by user; ``id`` = hash(session or user, kind, trigger).

    Examples
    --------
    >>> a = audit("session_start", "u1", "s1", 0.0, "login@0")
    >>> a.kind, a.key, a.value["kind"], a.value["at"]
    ('audit', 'u1', 'session_start', '1970-01-01T00:00:00Z')
    """
    return _output("audit", user, {
        "id": _id3(session or user, kind, trigger),
        "kind": kind,
        "user": user,
        "session": session,
        "at": rfc3339(at),
        "detail": detail or {},
    })


def timeout_evidence(s: Any, lim: Any, kind: str, when: float) -> dict[str, Any]:
    """Evidence of an ``idle``/``absolute`` timeout of session ``s`` (a ``SessionState``) at ``when``.

    Built only from what the session holds when it ends, and nothing of that changes afterwards, so an
    ended session keeps no copy: its revocation is rebuilt from it when re-issued (``SessionState.terminal``).

    Examples
    --------
    >>> from streams.engine.policy import Limits
    >>> from streams.engine.state import SessionState
    >>> s = SessionState("s1", "u1", 0.0)
    >>> timeout_evidence(s, Limits(1800.0, None, ("defaults",), "defaults", "defaults"), "idle", 1800.0)
    {'limit': 'idle', 'seconds': 1800.0, 'rule': 'defaults', 'since': '1970-01-01T00:00:00Z'}
    """
    idle = kind == "idle"
    ev: dict[str, Any] = {"limit": kind, "seconds": (lim.idle * s.shorten) if idle else lim.absolute,
                          "rule": lim.idle_by if idle else lim.absolute_by,
                          "since": rfc3339(s.last_active if idle else s.auth_at)}
    if idle and s.shorten != 1.0:
        ev["idle_factor"] = s.shorten
    if s.auto_n:
        ev["automatic_events"] = s.auto_n
    if lim.conditions:
        cs = s.cond_since or {}
        ev["conditions"] = [{"rule": r, "condition": c, "since": rfc3339(cs[r]) if r in cs else None}
                            for r, c in lim.conditions]
    if s.lim_since > s.started and when == s.lim_since:
        ev["tightened_at"] = rfc3339(s.lim_since)
    return ev


_ALERT_MEMBERS = ("severity", "signature", "src_ip", "dest_ip")


def _digest(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def cause_txn(decision: Mapping[str, Any]) -> str:
    """The SET ``txn``: one value for every SET of one cause, derived from the decision alone.

    The decision id is hash(session, reason, trigger), one per session; ``txn`` must instead be
    shared by every session the same cause ended (one IDS alert, one account event, one SSO
    logout). From what a decision carries:

    * ``txn`` set by the engine: taken as it is;
    * ``sso_logout`` cascaded from another decision: the cause's ``txn`` (``evidence.cause_txn``,
      set by the engine), else the cause's id (``evidence.cause``);
    * ``ids_alert``: a hash of the alert (time, severity, signature, addresses), whichever users
      it reached;
    * ``account_event``, ``sso_logout`` from an IdP logout, ``manual`` for every session of a
      user: a hash of (reason, user, time, evidence);
    * anything else (one session, one cause): the decision id.

    Pure and deterministic, so a re-published decision gets the same ``txn``.

    >>> a = {"id": "d1", "reason": "ids_alert", "user": "ann", "at": "2026-01-01T00:00:00Z",
    ...      "evidence": {"severity": "critical", "signature": "ET C2", "src_ip": "192.0.2.1", "dest_ip": None}}
    >>> cause_txn(a) == cause_txn({**a, "id": "d2", "user": "bob"}) != "d1"
    True
    >>> cause_txn({"id": "d3", "reason": "idle_timeout", "at": "2026-01-01T00:00:00Z", "evidence": {}})
    'd3'
    >>> cause_txn({"id": "d4", "reason": "sso_logout", "evidence": {"sso_session": "x", "cause": "d3"}})
    'd3'
    """
    jti = decision.get("id")
    txn = decision.get("txn")
    if isinstance(txn, str) and txn:
        return txn
    reason = decision.get("reason")
    evidence = decision.get("evidence")
    ev = evidence if isinstance(evidence, Mapping) else {}
    at = decision.get("at")
    if reason == "sso_logout":
        root = ev.get("cause_txn")
        if isinstance(root, str) and root:
            return root
        cause = ev.get("cause")
        if isinstance(cause, str) and cause and cause != "logout":
            return cause
        if ev.get("sso_session"):
            return _digest("sso_logout", decision.get("user"), at, dict(ev))
    elif reason == "ids_alert":
        if any(ev.get(m) for m in ("signature", "src_ip", "dest_ip")):
            return _digest("ids_alert", at, {m: ev.get(m) for m in _ALERT_MEMBERS})
    elif reason == "account_event" and ev:
        return _digest("account_event", decision.get("user"), at, dict(ev))
    elif reason == "manual" and ev.get("scope") == "user":
        return _digest("manual", decision.get("user"), at, dict(ev))
    return jti if isinstance(jti, str) else str(jti)
