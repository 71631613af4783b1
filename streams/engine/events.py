"""Canonical events: validate one JSON object (bytes, str or mapping) into an :class:`Event`.

Every event has ``type`` and ``ts``. Identity events (``login`` ... ``role_change``) need ``user``
(and ``session`` for login/refresh/reauth), activity needs ``user`` and ``session``, an IDS
``alert`` needs ``severity`` and at least one of ``src_ip``, ``dest_ip``, ``user``, ``session``.
Anything else raises :class:`InvalidEvent` naming the field, never another exception.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import orjson

__all__ = [
    "Event",
    "InvalidEvent",
    "parse_event",
    "parse_ts",
    "MAX_EVENT_BYTES",
    "IDENTITY_TYPES",
    "SESSION_TYPES",
    "EVENT_TYPES",
    "SEVERITIES",
]

MAX_EVENT_BYTES = 64 * 1024
IDENTITY_TYPES = frozenset(
    {"login", "refresh", "reauth", "logout", "login_failed", "user_disabled", "credential_change", "role_change"}
)
#: identity types that must name a session
SESSION_TYPES = frozenset({"login", "refresh", "reauth"})
EVENT_TYPES = IDENTITY_TYPES | {"activity", "alert"}
CHANNELS = frozenset({"web", "mobile", "api"})
#: each channel as one shared string (sessions then hold no per-event copy, and compare by identity)
_CHANNEL = {c: c for c in CHANNELS}
SEVERITIES = ("critical", "high", "medium", "low")
_SURICATA = {1: "critical", 2: "high", 3: "medium", 4: "low"}


class InvalidEvent(ValueError):
    """An event that cannot be processed.

    Attributes
    ----------
    reason : str
        What is wrong, in words.
    field : str or None
        The offending field (``None`` when the whole message is at fault).
    """

    def __init__(self, reason: str, field: str | None = None) -> None:
        self.reason = reason
        self.field = field
        super().__init__(f"{field}: {reason}" if field else reason)


@dataclass(slots=True)
class Event:
    """One canonical event. ``raw`` keeps the parsed JSON object for adapters and models.

    Examples
    --------
    >>> e = parse_event(b'{"type": "login", "ts": "2026-01-01T00:00:00Z", "user": "u1", "session": "s1"}')
    >>> e.type, e.ts, e.user, e.session, e.automatic
    ('login', 1767225600.0, 'u1', 's1', False)
    """

    type: str
    ts: float
    user: str | None = None
    session: str | None = None
    sso_session: str | None = None
    app: str | None = None
    channel: str | None = None
    ip: str | None = None
    device: str | None = None
    roles: tuple[str, ...] | None = None
    aal: int | None = None
    geo: dict[str, Any] | None = None
    action: str | None = None
    resource: str | None = None
    bytes: int | None = None
    status: int | str | None = None
    privileged: bool = False
    automatic: bool = False
    severity: str | None = None
    signature: str | None = None
    src_ip: str | None = None
    dest_ip: str | None = None
    raw: dict[str, Any] | None = None

    def targeted(self, user: str | None, session: str | None) -> Event:
        """Return a copy aimed at one ``(user, session)`` (used to resolve alerts)."""
        return replace(self, user=user, session=session)


_TS_CACHE: dict[str, float] = {}


def parse_ts(value: object) -> float:
    """Parse an RFC 3339 timestamp (``Z`` or an offset) or epoch seconds into epoch seconds.

    Examples
    --------
    >>> parse_ts("2026-01-01T01:00:00+01:00"), parse_ts(1767225600), parse_ts("2026-01-01T00:00:00.5Z")
    (1767225600.0, 1767225600.0, 1767225600.5)
    >>> try:
    ...     parse_ts("yesterday")
    ... except InvalidEvent as exc:
    ...     print(exc.field, "-", exc.reason)
    ts - not an RFC 3339 time: 'yesterday'
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
        out = dt.timestamp()
        if len(_TS_CACHE) >= 8192:
            _TS_CACHE.clear()
        _TS_CACHE[value] = out
        return out
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        out = float(value)
        if not math.isfinite(out):
            raise InvalidEvent("epoch seconds must be finite", "ts")
        return out
    if value is None:
        raise InvalidEvent("missing", "ts")
    raise InvalidEvent(f"expected RFC 3339 string or epoch seconds, got {type(value).__name__}", "ts")


def _opt_str(d: dict[str, Any], name: str) -> str | None:
    v = d.get(name)
    if v is None or type(v) is str:
        return v
    raise InvalidEvent(f"expected a string, got {type(v).__name__}", name)


def _severity(v: object) -> str:
    if isinstance(v, str):
        s = v.strip().lower()
        if s in SEVERITIES:
            return s
        if s.isdigit() and int(s) in _SURICATA:
            return _SURICATA[int(s)]
    elif isinstance(v, int) and not isinstance(v, bool) and v in _SURICATA:
        return _SURICATA[v]
    if v is None:
        raise InvalidEvent("missing", "severity")
    raise InvalidEvent(f"expected critical|high|medium|low or Suricata 1-4, got {v!r}", "severity")


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

    Examples
    --------
    >>> parse_event({"type": "alert", "ts": 0, "severity": 2, "src_ip": "10.0.0.1"}).severity
    'high'
    >>> for line in ['{"type": "activity", "ts": 0, "user": "u1"}', '{"type": "teleport", "ts": 0}', '[1]']:
    ...     try:
    ...         parse_event(line)
    ...     except InvalidEvent as exc:
    ...         print(exc.field, "-", exc.reason)
    session - missing (required for activity)
    type - unknown event type 'teleport'
    None - expected a JSON object, got list
    """
    if type(raw) is bytes:
        # hot path (a Kafka message value, a line of a file): the same checks as below, fewer calls
        if len(raw) > MAX_EVENT_BYTES:
            raise InvalidEvent(f"event larger than 64 KiB ({len(raw)} bytes)")
        try:
            d = _loads(raw)
        except _JSONDecodeError as exc:
            raise InvalidEvent(f"not valid JSON: {exc}") from None
        if type(d) is not dict:
            raise InvalidEvent(f"expected a JSON object, got {type(d).__name__}")
    elif isinstance(raw, (bytes, bytearray, memoryview, str)):
        n = len(raw)
        if n > MAX_EVENT_BYTES or (isinstance(raw, str) and n * 4 > MAX_EVENT_BYTES and len(raw.encode("utf-8", "replace")) > MAX_EVENT_BYTES):
            raise InvalidEvent(f"event larger than 64 KiB ({n} bytes)")
        try:
            d = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidEvent(f"not valid JSON: {exc}") from None
        if type(d) is not dict:
            raise InvalidEvent(f"expected a JSON object, got {type(d).__name__}")
    elif isinstance(raw, Mapping):
        d = raw if type(raw) is dict else dict(raw)
    else:
        raise InvalidEvent(f"expected bytes, str or a mapping, got {type(raw).__name__}")
    try:
        etype = d.get("type")
        if type(etype) is str and etype == "activity":
            return _activity(d)
        return _from_dict(d)
    except InvalidEvent:
        raise
    except Exception as exc:  # defensive: never let a surprise escape as anything else
        raise InvalidEvent(f"unexpected content: {exc!r}") from None


_loads = orjson.loads
_JSONDecodeError = orjson.JSONDecodeError


def _activity(d: dict[str, Any]) -> Event:
    """``activity`` (nine events in ten): :func:`_from_dict`'s checks, in its order, inline.

    Examples
    --------
    >>> e = _activity({"type": "activity", "ts": 5, "user": "u", "session": "s", "bytes": 10, "privileged": True})
    >>> (e.type, e.ts, e.user, e.session, e.bytes, e.privileged, e.automatic, e.device)
    ('activity', 5.0, 'u', 's', 10, True, False, None)
    """
    get = d.get
    ts = get("ts")
    t = _TS_CACHE.get(ts) if type(ts) is str else None
    if t is None:
        t = parse_ts(ts)
    user = get("user")
    if user is not None and (type(user) is not str or not user):
        raise InvalidEvent(f"expected a non-empty string, got {user!r}"[:120], "user")
    session = get("session")
    if session is not None and (type(session) is not str or not session):
        raise InvalidEvent(f"expected a non-empty string, got {session!r}"[:120], "session")
    if user is None:
        raise InvalidEvent("missing (required for activity)", "user")
    if session is None:
        raise InvalidEvent("missing (required for activity)", "session")
    ip, action, resource, b = get("ip"), get("action"), get("resource"), get("bytes")
    if (ip is not None and type(ip) is not str) or (action is not None and type(action) is not str) \
            or (resource is not None and type(resource) is not str):
        for name in ("ip", "action", "resource"):
            _opt_str(d, name)
    if b is not None and (type(b) is not int or b < 0):
        raise InvalidEvent(f"expected a non-negative integer, got {b!r}"[:120], "bytes")
    st = get("status")
    if st is not None and type(st) is not int and type(st) is not str:
        raise InvalidEvent(f"expected an integer or string, got {type(st).__name__}", "status")
    p = get("privileged")
    if p is not None and type(p) is not bool:
        raise InvalidEvent(f"expected true or false, got {p!r}"[:120], "privileged")
    a = get("automatic")
    if a is not None and type(a) is not bool:
        raise InvalidEvent(f"expected true or false, got {a!r}"[:120], "automatic")
    ch = get("channel")
    if ch is not None:
        if ch not in CHANNELS:
            raise InvalidEvent(f"expected web, mobile or api, got {ch!r}"[:120], "channel")
        ch = _CHANNEL[ch]
    geo = get("geo")
    if geo is not None and type(geo) is not dict:
        raise InvalidEvent(f"expected an object, got {type(geo).__name__}", "geo")
    dev = get("device")
    if dev is not None and type(dev) is not str:
        raise InvalidEvent(f"expected a string, got {type(dev).__name__}", "device")
    return Event("activity", t, user, session, None, None, ch, ip, dev, None, None, geo,
                 action, resource, b, st, p is True, a is True, None, None, None, None, d)


def _from_dict(d: dict[str, Any]) -> Event:
    etype = d.get("type")
    if type(etype) is not str or etype not in EVENT_TYPES:
        if etype is None:
            raise InvalidEvent("missing", "type")
        raise InvalidEvent(f"unknown event type {etype!r}" if isinstance(etype, str) else f"expected a string, got {type(etype).__name__}", "type")
    ts = parse_ts(d.get("ts"))
    user = d.get("user")
    if user is not None and (type(user) is not str or not user):
        raise InvalidEvent(f"expected a non-empty string, got {user!r}"[:120], "user")
    session = d.get("session")
    if session is not None and (type(session) is not str or not session):
        raise InvalidEvent(f"expected a non-empty string, got {session!r}"[:120], "session")
    if etype == "activity":
        return _activity(d)
    ev = Event(etype, ts, user, session, raw=d)
    if etype == "alert":
        ev.severity = _severity(d.get("severity"))
        ev.signature = _opt_str(d, "signature")
        ev.src_ip = _opt_str(d, "src_ip")
        ev.dest_ip = _opt_str(d, "dest_ip")
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
        ev.channel = _CHANNEL[ch]
    ev.ip = _opt_str(d, "ip")
    ev.device = _opt_str(d, "device")
    geo = d.get("geo")
    if geo is not None:
        if type(geo) is not dict:
            raise InvalidEvent(f"expected an object, got {type(geo).__name__}", "geo")
        ev.geo = geo
    a = d.get("automatic")
    if a is not None:
        if type(a) is not bool:
            raise InvalidEvent(f"expected true or false, got {a!r}"[:120], "automatic")
        ev.automatic = a
    if ev.type == "activity":
        return
    ev.app = _opt_str(d, "app")
