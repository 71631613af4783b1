"""Frozen copies of the engine's original event parser and sighting index (before the fast paths).

Only for tests: ``test_reference_equivalence.py`` checks that the optimised code gives exactly
what these simple versions give, on generated input. Do not optimise this file.

The parser includes the parse-time bounds (``ts`` range, nesting depth, string lengths,
number ranges, IP addresses parsed and normalised), written here the simple way: no memo, no
inlining, one check after another in the order the contract states.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

from streams.engine.events import (CHANNELS, EVENT_TYPES, MAX_BYTES_VALUE, MAX_CHARS, MAX_DEPTH, MAX_EVENT_BYTES,
                                   MAX_ROLES, MAX_TS, MIN_TS, SESSION_TYPES, SEVERITIES, Event, InvalidEvent)

_SURICATA = {1: "critical", 2: "high", 3: "medium", 4: "low"}
INF = float("inf")

_TS_CACHE: dict[str, float] = {}
_RANGE = "1970-01-01T00:00:00Z to 9000-01-01T00:00:00Z"


def parse_ts(value: object) -> float:
    """Parse an RFC 3339 timestamp (``Z`` or an offset) or epoch seconds into epoch seconds.
    """
    if isinstance(value, str):
        cached = _TS_CACHE.get(value)
        if cached is not None:
            return cached
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidEvent(f"not an RFC 3339 time: {value[:64]!r}", "ts") from None
        if dt.tzinfo is None or "T" not in value.upper():
            raise InvalidEvent(f"RFC 3339 time needs a 'T' and a zone ('Z' or an offset): {value[:64]!r}", "ts")
        try:
            out = dt.timestamp()
        except (ValueError, OverflowError):
            raise InvalidEvent(f"out of range: {value[:64]!r} (accepted: {_RANGE})", "ts") from None
        if out < MIN_TS or out >= MAX_TS:
            raise InvalidEvent(f"out of range: {value[:64]!r} (accepted: {_RANGE})", "ts")
        if len(_TS_CACHE) >= 8192:
            _TS_CACHE.clear()
        _TS_CACHE[value] = out
        return out
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            out = float(value)
        except OverflowError:
            raise InvalidEvent("epoch seconds must be finite", "ts") from None
        if not math.isfinite(out):
            raise InvalidEvent("epoch seconds must be finite", "ts")
        if out < MIN_TS or out >= MAX_TS:
            raise InvalidEvent(f"out of range: {out:g} (epoch seconds; accepted: {_RANGE})", "ts")
        return out
    if value is None:
        raise InvalidEvent("missing", "ts")
    raise InvalidEvent(f"expected RFC 3339 string or epoch seconds, got {type(value).__name__}", "ts")


def _opt_str(d: dict[str, Any], name: str) -> str | None:
    v = d.get(name)
    if v is None:
        return v
    if type(v) is not str:
        raise InvalidEvent(f"expected a string, got {type(v).__name__}", name)
    if len(v) > MAX_CHARS[name]:
        raise InvalidEvent(f"longer than {MAX_CHARS[name]} characters ({len(v)})", name)
    return v


def _id(v: object, name: str) -> None:
    """``user`` / ``session``: absent, or a non-empty string within bounds."""
    if v is None:
        return
    if type(v) is not str or not v:
        raise InvalidEvent(f"expected a non-empty string, got {v!r}"[:120], name)
    if len(v) > MAX_CHARS[name]:
        raise InvalidEvent(f"longer than {MAX_CHARS[name]} characters ({len(v)})", name)


def _ip(d: dict[str, Any], name: str) -> str | None:
    v = d.get(name)
    if v is None:
        return None
    if type(v) is not str:
        raise InvalidEvent(f"expected a string, got {type(v).__name__}", name)
    if v == "":
        return None
    if len(v) > MAX_CHARS[name]:
        raise InvalidEvent(f"longer than {MAX_CHARS[name]} characters ({len(v)})", name)
    try:
        a = ipaddress.ip_address(v)
    except ValueError:
        try:
            ipaddress.ip_network(v, strict=False)
            is_net = "/" in v
        except ValueError:
            is_net = False
        if is_net:
            raise InvalidEvent(f"a network ({v}) is not an address; lapse joins alerts on single addresses", name) from None
        raise InvalidEvent(f"not an IP address: {v[:64]!r}", name) from None
    if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped is not None:
        return str(a.ipv4_mapped)
    return str(a)


def _geo(geo: dict[str, Any]) -> None:
    for key, limit in (("lat", 90.0), ("lon", 180.0)):
        v = geo.get(key)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v) or v < -limit or v > limit:
            raise InvalidEvent(f"expected a number from {-limit:g} to {limit:g}, got {v!r}"[:120], f"geo.{key}")


def _status(st: object) -> None:
    if st is None:
        return
    if type(st) is int:
        if st < -(2**31) or st > 2**32 - 1:
            raise InvalidEvent(f"integer out of range: {st}"[:120], "status")
    elif type(st) is str:
        if len(st) > MAX_CHARS["status"]:
            raise InvalidEvent(f"longer than {MAX_CHARS['status']} characters ({len(st)})", "status")
    else:
        raise InvalidEvent(f"expected an integer or string, got {type(st).__name__}", "status")


def _too_deep(v: object, depth: int) -> bool:
    """Whether ``v``, at nesting level ``depth``, reaches below ``MAX_DEPTH`` (recursion capped by it)."""
    if type(v) is dict:
        children = list(v.values())
    elif type(v) is list:
        children = v
    else:
        return False
    if depth > MAX_DEPTH:
        return True
    return any(_too_deep(c, depth + 1) for c in children)


def _check_depth(d: dict[str, Any]) -> None:
    for key, v in d.items():
        if _too_deep(v, 2):
            raise InvalidEvent(f"nested deeper than {MAX_DEPTH} levels", key)


def _severity(v: object) -> str:
    if isinstance(v, str) and len(v) <= MAX_CHARS["severity"]:
        s = v.strip().lower()
        if s in SEVERITIES:
            return s
        if s.isascii() and s.isdigit() and int(s) in _SURICATA:
            return _SURICATA[int(s)]
    elif isinstance(v, int) and not isinstance(v, bool) and v in _SURICATA:
        return _SURICATA[v]
    if v is None:
        raise InvalidEvent("missing", "severity")
    raise InvalidEvent(f"expected critical|high|medium|low or Suricata 1-4, got {v!r}"[:120], "severity")


def parse_event(raw: bytes | bytearray | memoryview | str | Mapping[str, Any]) -> Event:
    """Validate one canonical event.

    Parameters
    ----------
    raw : bytes, str or Mapping
        A JSON object (at most 64 KiB when given as text) or an already-decoded mapping.

    Returns
    -------
    Event

    Raises
    ------
    InvalidEvent
        With ``.reason`` and ``.field`` for anything wrong; no other exception escapes.
    """
    if isinstance(raw, (bytes, bytearray, memoryview, str)):
        n = len(raw)
        if n > MAX_EVENT_BYTES or (isinstance(raw, str) and n * 4 > MAX_EVENT_BYTES and len(raw.encode("utf-8", "replace")) > MAX_EVENT_BYTES):
            raise InvalidEvent(f"event larger than 64 KiB ({n} bytes)")
        try:
            d = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidEvent(f"not valid JSON: {exc}") from None
        if type(d) is not dict:
            raise InvalidEvent(f"expected a JSON object, got {type(d).__name__}")
        _check_depth(d)
    elif isinstance(raw, Mapping):
        d = raw if type(raw) is dict else dict(raw)
    else:
        raise InvalidEvent(f"expected bytes, str or a mapping, got {type(raw).__name__}")
    try:
        ev = _from_dict(d)
    except InvalidEvent:
        raise
    except Exception as exc:  # defensive: never let a surprise escape as anything else
        raise InvalidEvent(f"unexpected content: {exc!r}"[:200]) from None
    if isinstance(raw, Mapping):  # a mapping, once its fields pass: the whole must be JSON
        try:
            orjson.dumps(d)
        except Exception as exc:
            if "ecursion" in str(exc):
                _check_depth(d)
            raise InvalidEvent(f"not serialisable as JSON: {exc}"[:200]) from None
        _check_depth(orjson.loads(orjson.dumps(d)))
    return ev


def _from_dict(d: dict[str, Any]) -> Event:
    etype = d.get("type")
    if type(etype) is not str or etype not in EVENT_TYPES:
        if etype is None:
            raise InvalidEvent("missing", "type")
        raise InvalidEvent(f"unknown event type {etype!r}"[:120] if isinstance(etype, str) else f"expected a string, got {type(etype).__name__}", "type")
    ts = parse_ts(d.get("ts"))
    user = d.get("user")
    _id(user, "user")
    session = d.get("session")
    _id(session, "session")
    if etype == "activity":
        if user is None:
            raise InvalidEvent("missing (required for activity)", "user")
        if session is None:
            raise InvalidEvent("missing (required for activity)", "session")
        get = d.get
        ip = _ip(d, "ip")
        action = _opt_str(d, "action")
        resource = _opt_str(d, "resource")
        b = get("bytes")
        if b is not None and (type(b) is not int or b < 0 or b >= MAX_BYTES_VALUE):
            raise InvalidEvent(f"expected a non-negative integer below 2**53, got {b!r}"[:120], "bytes")
        st = get("status")
        _status(st)
        p = get("privileged")
        if p is not None and type(p) is not bool:
            raise InvalidEvent(f"expected true or false, got {p!r}"[:120], "privileged")
        a = get("automatic")
        if a is not None and type(a) is not bool:
            raise InvalidEvent(f"expected true or false, got {a!r}"[:120], "automatic")
        ch = get("channel")
        if ch is not None and ch not in CHANNELS:
            raise InvalidEvent(f"expected web, mobile or api, got {ch!r}"[:120], "channel")
        geo = get("geo")
        if geo is not None and type(geo) is not dict:
            raise InvalidEvent(f"expected an object, got {type(geo).__name__}", "geo")
        if geo is not None:
            _geo(geo)
        return Event(etype, ts, user, session, None, None, ch, ip, _opt_str(d, "device"), None, None, geo,
                     action, resource, b, st, p is True, a is True, None, None, None, None, d)
    ev = Event(etype, ts, user, session, raw=d)
    if etype == "alert":
        ev.severity = _severity(d.get("severity"))
        ev.signature = _opt_str(d, "signature")
        ev.src_ip = _ip(d, "src_ip")
        ev.dest_ip = _ip(d, "dest_ip")
        if not (ev.src_ip or ev.dest_ip or user or session):
            raise InvalidEvent("an alert needs at least one of src_ip, dest_ip, user, session", "src_ip")
        ev.sso_session = _opt_str(d, "sso_session")
    else:
        if user is None:
            raise InvalidEvent(f"missing (required for {etype})", "user")
        if session is None and etype in SESSION_TYPES:
            raise InvalidEvent(f"missing (required for {etype})", "session")
        _common(d, ev)
        ev.sso_session = _opt_str(d, "sso_session")
        ev.app = _opt_str(d, "app")
        roles = d.get("roles")
        if roles is not None:
            if type(roles) is not list or not all(type(r) is str for r in roles):
                raise InvalidEvent("expected a list of strings", "roles")
            if len(roles) > MAX_ROLES:
                raise InvalidEvent(f"more than {MAX_ROLES} roles ({len(roles)})", "roles")
            for r in roles:
                if len(r) > MAX_CHARS["roles"]:
                    raise InvalidEvent(f"a role longer than {MAX_CHARS['roles']} characters ({len(r)})", "roles")
            ev.roles = tuple(roles)
        aal = d.get("aal")
        if aal is not None:
            if type(aal) is not int or not 1 <= aal <= 3:
                raise InvalidEvent(f"expected 1, 2 or 3, got {aal!r}"[:120], "aal")
            ev.aal = aal
        # a logout naming only the user ends all of the user's sessions (see Engine._logout)
    return ev


def _common(d: dict[str, Any], ev: Event) -> None:
    ch = d.get("channel")
    if ch is not None:
        if ch not in CHANNELS:
            raise InvalidEvent(f"expected web, mobile or api, got {ch!r}"[:120], "channel")
        ev.channel = ch
    ev.ip = _ip(d, "ip")
    ev.device = _opt_str(d, "device")
    geo = d.get("geo")
    if geo is not None:
        if type(geo) is not dict:
            raise InvalidEvent(f"expected an object, got {type(geo).__name__}", "geo")
        _geo(geo)
        ev.geo = geo
    a = d.get("automatic")
    if a is not None:
        if type(a) is not bool:
            raise InvalidEvent(f"expected true or false, got {a!r}"[:120], "automatic")
        ev.automatic = a
    if ev.type == "activity":
        return
    ev.app = _opt_str(d, "app")


import heapq  # noqa: E402  (the original deadline index, below)
from collections.abc import Hashable, Iterator  # noqa: E402


class DeadlineIndex:
    """Keys with due times; pop those due by ``now`` in time order (ties by key).

    """

    __slots__ = ("_heap", "_due", "_mark")

    def __init__(self) -> None:
        self._heap: list[tuple[float, Any]] = []
        self._due: dict[Hashable, float] = {}
        self._mark: dict[Hashable, float] = {}

    def __len__(self) -> int:
        return len(self._due)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._due

    def get(self, key: Hashable) -> float | None:
        """The key's due time, or ``None``."""
        return self._due.get(key)

    def set(self, key: Hashable, at: float) -> None:
        """Set (or move) the key's due time."""
        self._due[key] = at
        mark = self._mark.get(key)
        if mark is None or at < mark:
            self._mark[key] = at
            heapq.heappush(self._heap, (at, key))

    def discard(self, key: Hashable) -> None:
        """Forget the key (its heap entries die lazily)."""
        self._due.pop(key, None)

    def clear(self) -> None:
        self._heap.clear()
        self._due.clear()
        self._mark.clear()

    def next_due(self) -> float | None:
        """A lower bound of the earliest due time (dead entries on top are dropped first)."""
        heap = self._heap
        while heap:
            at, key = heap[0]
            if self._mark.get(key) == at and key in self._due:
                return at
            heapq.heappop(heap)
            if self._mark.get(key) == at:
                del self._mark[key]
        return None

    def pop_due(self, now: float) -> Iterator[tuple[Any, float]]:
        """Yield ``(key, due)`` for every key due at or before ``now``, earliest first.

        A key is removed before it is yielded; the caller may ``set`` it again (even to a time
        at or before ``now``, which is then yielded in this same pass).
        """
        heap, due, mark = self._heap, self._due, self._mark
        pop, push = heapq.heappop, heapq.heappush
        while heap and heap[0][0] <= now:
            at, key = pop(heap)
            if mark.get(key) != at:
                continue  # dead entry
            del mark[key]
            d = due.get(key)
            if d is None:
                continue
            if d <= now:
                if d > at:
                    # moved later but still due: keep time order by re-queueing at its true time
                    mark[key] = d
                    push(heap, (d, key))
                    continue
                del due[key]
                yield key, d
            else:
                mark[key] = d
                push(heap, (d, key))


def policy_limits(policy: Any, s: Any, t: float) -> Any:
    """The original ``Policy.limits``: each dynamic rule through ``Policy.condition_holds``."""
    from streams.engine.policy import Limits

    st = policy._static(s.roles, s.ip, s.channel, s.app, s.aal)
    if not st.dynamic:
        return st.limits
    base = st.limits
    idle, absolute, idle_by, abs_by = base.idle, base.absolute, base.idle_by, base.absolute_by
    extra: list[Any] = []
    conds: list[tuple[str, str]] = []
    until = INF
    for r in st.dynamic:
        ok, r_until, names = policy.condition_holds(r, s, t)
        if not ok:
            continue
        extra.append(r)
        conds.extend((r.name, c) for c in names)
        until = min(until, r_until)
        if r.idle is not None and (idle is None or r.idle < idle):
            idle, idle_by = r.idle, r.name
        if r.absolute is not None and (absolute is None or r.absolute < absolute):
            absolute, abs_by = r.absolute, r.name
    if not extra:
        return base
    order = policy._order
    names_all = tuple(sorted(base.rules + tuple(r.name for r in extra), key=lambda n: order.get(n, -1)))
    return Limits(idle, absolute, names_all, idle_by, abs_by, tuple(conds), until)
