"""Canonical events: validate one JSON object (bytes, str or mapping) into an :class:`Event`.

Every event has ``type`` and ``ts``. Identity events (``login`` ... ``role_change``) need ``user``
(and ``session`` for login/refresh/reauth), activity needs ``user`` and ``session``, an IDS
``alert`` needs ``severity`` and at least one of ``src_ip``, ``dest_ip``, ``user``, ``session``.
Anything else raises :class:`InvalidEvent` naming the field, never another exception.

Every value is bounded here, at parse time, so that nothing downstream meets a value it cannot
handle: ``ts`` within :data:`MIN_TS` .. :data:`MAX_TS`, JSON nested at most :data:`MAX_DEPTH`
levels, strings within :data:`MAX_CHARS`, numbers finite and in range, and IP addresses parsed and
normalised (:func:`parse_ip`).
"""

from __future__ import annotations

import ipaddress
import math
import re
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
    "parse_ip",
    "check_depth",
    "MAX_EVENT_BYTES",
    "MAX_DEPTH",
    "MAX_CHARS",
    "MAX_ROLES",
    "MAX_BYTES_VALUE",
    "MIN_TS",
    "MAX_TS",
    "IDENTITY_TYPES",
    "SESSION_TYPES",
    "EVENT_TYPES",
    "SEVERITIES",
]

MAX_EVENT_BYTES = 64 * 1024
#: the deepest JSON nesting accepted (the event object itself is level 1). Real events nest two or
#: three levels (``geo``); the bound keeps every event far below orjson's serialisation limit
#: (254 levels) even once wrapped in the service's envelopes, and any walk of ``raw`` cheap.
MAX_DEPTH = 16
#: ``ts`` bounds, epoch seconds: from 1970-01-01T00:00:00Z to 9000-01-01T00:00:00Z (exclusive).
#: A deadline is ``ts`` plus a policy duration (at most 366 days, see ``durations.MAX_DURATION_S``)
#: and must still format as RFC 3339, which stops at 9999-12-31: the thousand years left above
#: the upper bound cover any sum of policy durations. Nothing a lapse producer reports predates
#: the Unix epoch; the lower bound also keeps every time on the formatter's fast path (>= 0).
MIN_TS = 0.0
MAX_TS = 221_845_392_000.0
#: the longest string accepted per field, in characters. Identifiers allow for AWS ARNs and LDAP
#: DNs (CloudTrail users and roles), ``device`` for a raw user agent, ``resource`` for a URL path.
MAX_CHARS = {
    "user": 1024, "session": 1024, "sso_session": 1024, "app": 1024, "roles": 1024,
    "device": 1024, "action": 512, "resource": 2048, "signature": 1024, "status": 64,
    "severity": 16, "ip": 64, "src_ip": 64, "dest_ip": 64, "email": 320, "issuer": 1024,
}
#: the most roles one event may carry
MAX_ROLES = 256
#: ``bytes`` must be below this (2**53: every such integer is exact as a float, in any JSON reader)
MAX_BYTES_VALUE = 2**53
#: an integer ``status`` is a 32-bit code, signed or unsigned (HTTP, gRPC, WebSocket, NTSTATUS ...)
_STATUS_MIN, _STATUS_MAX = -(2**31), 2**32 - 1
_GEO_RANGE = (("lat", 90.0), ("lon", 180.0))
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
#: the whole second, as text, of the bounds (for messages)
_TS_RANGE_TEXT = "1970-01-01T00:00:00Z to 9000-01-01T00:00:00Z"


def parse_ts(value: object) -> float:
    """Parse an RFC 3339 timestamp (``Z`` or an offset) or epoch seconds into epoch seconds.

    The time must lie from :data:`MIN_TS` (1970) to before :data:`MAX_TS` (year 9000).

    Examples
    --------
    >>> parse_ts("2026-01-01T01:00:00+01:00"), parse_ts(1767225600), parse_ts("2026-01-01T00:00:00.5Z")
    (1767225600.0, 1767225600.0, 1767225600.5)
    >>> for bad in ("yesterday", -1e12, "0001-01-01T00:00:00+01:00"):
    ...     try:
    ...         parse_ts(bad)
    ...     except InvalidEvent as exc:
    ...         print(exc.field, "-", exc.reason)
    ts - not an RFC 3339 time: 'yesterday'
    ts - out of range: -1e+12 (epoch seconds; accepted: 1970-01-01T00:00:00Z to 9000-01-01T00:00:00Z)
    ts - out of range: '0001-01-01T00:00:00+01:00' (accepted: 1970-01-01T00:00:00Z to 9000-01-01T00:00:00Z)
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
            out = dt.timestamp()  # year 0 or 10000 once in UTC: ValueError / OverflowError
        except (ValueError, OverflowError):
            out = -1.0
        if not MIN_TS <= out < MAX_TS:
            raise InvalidEvent(f"out of range: {value[:64]!r} (accepted: {_TS_RANGE_TEXT})", "ts")
        if len(_TS_CACHE) >= 8192:
            _TS_CACHE.clear()
        _TS_CACHE[value] = out
        return out
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            out = float(value)
        except OverflowError:  # an int beyond a float (only from a mapping: JSON gives a float)
            out = math.inf
        if not math.isfinite(out):
            raise InvalidEvent("epoch seconds must be finite", "ts")
        if not MIN_TS <= out < MAX_TS:
            raise InvalidEvent(f"out of range: {out:g} (epoch seconds; accepted: {_TS_RANGE_TEXT})", "ts")
        return out
    if value is None:
        raise InvalidEvent("missing", "ts")
    raise InvalidEvent(f"expected RFC 3339 string or epoch seconds, got {type(value).__name__}", "ts")


_IP_MEMO: dict[str, str] = {}
_IP_MEMO_MAX = 65536
_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
#: a dotted quad already in normal form (what ``ipaddress`` accepts and writes back unchanged):
#: a new address's usual shape, checked without building an address object
_NORMAL_V4 = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}").fullmatch


def parse_ip(value: object, field: str = "ip") -> str | None:
    """An IP address in its normal form: IPv4-mapped IPv6 as IPv4, IPv6 compressed in lower case.

    ``None`` and ``""`` mean no address. Anything else that is not one address (a network, a
    host name, a number) raises :class:`InvalidEvent` naming ``field``. Memoised (bounded).

    Examples
    --------
    >>> parse_ip("::ffff:203.0.113.9"), parse_ip("2001:DB8:0::1"), parse_ip("10.0.0.1"), parse_ip("")
    ('203.0.113.9', '2001:db8::1', '10.0.0.1', None)
    >>> for bad in ("203.0.113.0/24", "localhost", 7):
    ...     try:
    ...         parse_ip(bad, "src_ip")
    ...     except InvalidEvent as exc:
    ...         print(exc.field, "-", exc.reason)
    src_ip - a network (203.0.113.0/24) is not an address; lapse joins alerts on single addresses
    src_ip - not an IP address: 'localhost'
    src_ip - expected a string, got int
    """
    if type(value) is str:
        got = _IP_MEMO.get(value)
        if got is not None:
            return got
        if not value:
            return None
    elif value is None:
        return None
    else:
        raise InvalidEvent(f"expected a string, got {type(value).__name__}", field)
    if len(value) > _L_IP:
        raise InvalidEvent(f"longer than {_L_IP} characters ({len(value)})", field)
    if _NORMAL_V4(value) is not None:
        if len(_IP_MEMO) >= _IP_MEMO_MAX:
            _IP_MEMO.clear()
        _IP_MEMO[value] = value
        return value
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        if "/" in value:
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError:
                pass
            else:
                raise InvalidEvent(f"a network ({value}) is not an address; lapse joins alerts on single addresses",
                                   field) from None
        raise InvalidEvent(f"not an IP address: {value[:64]!r}", field) from None
    if addr.version == 6 and addr.ipv4_mapped is not None:  # how dual-stack sockets report IPv4 peers
        addr = addr.ipv4_mapped
    out = str(addr)
    if out == value:
        out = value  # one string per address, not one per event
    if len(_IP_MEMO) >= _IP_MEMO_MAX:
        _IP_MEMO.clear()
    _IP_MEMO[value] = out
    return out


def _opt_str(d: dict[str, Any], name: str) -> str | None:
    v = d.get(name)
    if v is None:
        return v
    if type(v) is str:
        if len(v) > MAX_CHARS[name]:
            raise InvalidEvent(f"longer than {MAX_CHARS[name]} characters ({len(v)})", name)
        return v
    raise InvalidEvent(f"expected a string, got {type(v).__name__}", name)


def _bad_id(v: object, name: str) -> InvalidEvent:
    """The error for ``user`` / ``session`` when they are not a non-empty string within bounds."""
    if type(v) is str and v:
        return InvalidEvent(f"longer than {MAX_CHARS[name]} characters ({len(v)})", name)
    return InvalidEvent(f"expected a non-empty string, got {v!r}"[:120], name)


def _check_geo(geo: dict[str, Any]) -> None:
    """``geo.lat`` / ``geo.lon``, when present, are finite numbers within -90..90 / -180..180."""
    for key, limit in _GEO_RANGE:
        v = geo.get(key)
        if v is not None and (type(v) not in (int, float) or not -limit <= v <= limit):  # (nan fails too)
            raise InvalidEvent(f"expected a number from {-limit:g} to {limit:g}, got {v!r}"[:120], f"geo.{key}")


def _status(st: object) -> None:
    """``status``: an integer within 32 bits or a short string."""
    if type(st) is int:
        if not _STATUS_MIN <= st <= _STATUS_MAX:
            raise InvalidEvent(f"integer out of range: {st}"[:120], "status")
    elif type(st) is str:
        if len(st) > _L_STATUS:
            raise InvalidEvent(f"longer than {_L_STATUS} characters ({len(st)})", "status")
    else:
        raise InvalidEvent(f"expected an integer or string, got {type(st).__name__}", "status")


def _severity(v: object) -> str:
    if isinstance(v, str):
        if len(v) <= _L_SEVERITY:
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


def _brackets(text: bytes) -> int:
    """An upper bound of the nesting depth of JSON ``text``: its ``{`` and ``[`` (in strings too).

    Without a ``[``, one or two ``{`` (a flat event, or one with ``geo``) are found by memchr
    scans rather than counted byte by byte. (Int needles: ``b"[" in text`` would first try the
    needle as an int, and raise and clear a TypeError.)

    Examples
    --------
    >>> _brackets(b'{"a": 1}'), _brackets(b'{"geo": {"lat": 1}}'), _brackets(b'{"a": [{"b": "{"}]}')
    (1, 2, 4)
    """
    if 91 in text:  # "["
        return text.count(123) + text.count(91)
    last = text.rfind(123)  # "{"
    if last <= 0:
        return 1
    if text.rfind(123, 0, last) <= 0:
        return 2
    return text.count(123)


def check_depth(d: dict[str, Any]) -> None:
    """Raise :class:`InvalidEvent` when ``d`` nests deeper than :data:`MAX_DEPTH` (naming its top-level key).

    :func:`parse_event` calls it only when the text holds more brackets than :data:`MAX_DEPTH`
    (rare), so the common event costs two ``bytes.count`` calls and no walk. Iterative: no
    recursion limit to meet.

    Examples
    --------
    >>> check_depth({"geo": {"country": "DE"}})
    >>> check_depth({"x": [[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]})
    Traceback (most recent call last):
    ...
    streams.engine.events.InvalidEvent: x: nested deeper than 16 levels
    """
    for key, top in d.items():
        if type(top) is not dict and type(top) is not list:
            continue
        stack = [(top, 2)]
        while stack:
            node, depth = stack.pop()
            if depth > MAX_DEPTH:
                raise InvalidEvent(f"nested deeper than {MAX_DEPTH} levels", key)
            for v in (node.values() if type(node) is dict else node):
                if type(v) is dict or type(v) is list:
                    stack.append((v, depth + 1))


def parse_event(raw: bytes | bytearray | memoryview | str | Mapping[str, Any]) -> Event:
    """Validate one canonical event.

    Parameters
    ----------
    raw : bytes, str or Mapping
        A JSON object (at most 64 KiB when given as text) or an already-decoded mapping (which
        must be serialisable as JSON by orjson).

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
    >>> for line in ['{"type": "activity", "ts": 0, "user": "u1"}', '{"type": "teleport", "ts": 0}', '[1]',
    ...              '{"type": "alert", "ts": 0, "severity": 1, "src_ip": "203.0.113.0/24"}',
    ...              '{"type": "activity", "ts": 0, "user": "u1", "session": "s", "x": ' + '[' * 20 + ']' * 20 + '}']:
    ...     try:
    ...         parse_event(line)
    ...     except InvalidEvent as exc:
    ...         print(exc.field, "-", exc.reason)
    session - missing (required for activity)
    type - unknown event type 'teleport'
    None - expected a JSON object, got list
    src_ip - a network (203.0.113.0/24) is not an address; lapse joins alerts on single addresses
    x - nested deeper than 16 levels
    """
    if type(raw) is bytes:
        # hot path (a Kafka message value, a line of a file): the same checks as below, fewer calls
        n = len(raw)
        if n > MAX_EVENT_BYTES:
            raise InvalidEvent(f"event larger than 64 KiB ({n} bytes)")
        try:
            d = _loads(raw)
        except _JSONDecodeError as exc:
            raise InvalidEvent(f"not valid JSON: {exc}") from None
        if type(d) is not dict:
            raise InvalidEvent(f"expected a JSON object, got {type(d).__name__}")
        # no more brackets than MAX_DEPTH (in strings too): the nesting cannot exceed it (_brackets, inline)
        if 91 in raw:
            if raw.count(123) + raw.count(91) > MAX_DEPTH:
                check_depth(d)
        else:
            last = raw.rfind(123)
            if last and raw.rfind(123, 0, last) and raw.count(123) > MAX_DEPTH:
                check_depth(d)
        long = n > _SHORT
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
        text = raw.tobytes() if isinstance(raw, memoryview) else raw
        if isinstance(text, str):
            if text.count("{") + text.count("[") > MAX_DEPTH:
                check_depth(d)
        elif text.count(b"{") + text.count(b"[") > MAX_DEPTH:
            check_depth(d)
        long = True
    elif isinstance(raw, Mapping):
        return _from_mapping(raw)
    else:
        raise InvalidEvent(f"expected bytes, str or a mapping, got {type(raw).__name__}")
    try:
        etype = d.get("type")
        if type(etype) is str and etype == "activity":
            return _activity(d, long)
        return _from_dict(d)
    except InvalidEvent:
        raise
    except Exception as exc:  # defensive: never let a surprise escape as anything else
        raise InvalidEvent(f"unexpected content: {exc!r}"[:200]) from None


def _from_mapping(raw: Mapping[str, Any]) -> Event:
    """:func:`parse_event` of a mapping: the fields' checks, then the whole (which JSON text
    guarantees): what the service does with ``raw`` later (decision ids, envelopes) must work."""
    try:
        d = raw if type(raw) is dict else dict(raw)
        etype = d.get("type")
        ev = _activity(d) if type(etype) is str and etype == "activity" else _from_dict(d)
    except InvalidEvent:
        raise
    except Exception as exc:  # defensive: never let a surprise escape as anything else
        raise InvalidEvent(f"unexpected content: {exc!r}"[:200]) from None
    try:
        text = _dumps(d)
    except Exception as exc:
        if "ecursion" in str(exc):  # deeper than orjson goes (254 levels), or a cycle: name the key
            check_depth(d)
        raise InvalidEvent(f"not serialisable as JSON: {exc}"[:200]) from None
    if _brackets(text) > MAX_DEPTH:
        check_depth(orjson.loads(text))
    return ev


_loads = orjson.loads
_dumps = orjson.dumps
_JSONDecodeError = orjson.JSONDecodeError
# the bounds the hot path reads, as plain globals
_L_USER, _L_SESSION, _L_ACTION, _L_RESOURCE, _L_DEVICE, _L_IP, _L_STATUS, _L_SEVERITY = (
    MAX_CHARS["user"], MAX_CHARS["session"], MAX_CHARS["action"], MAX_CHARS["resource"], MAX_CHARS["device"],
    MAX_CHARS["ip"], MAX_CHARS["status"], MAX_CHARS["severity"])
assert MAX_CHARS["ip"] == MAX_CHARS["src_ip"] == MAX_CHARS["dest_ip"]
#: JSON text this short cannot hold a string longer than the bounds of user, session, action,
#: resource and device (a string of n characters takes at least n bytes): ``_activity`` then
#: skips those length checks
_SHORT = min(_L_USER, _L_SESSION, _L_ACTION, _L_RESOURCE, _L_DEVICE)
assert (_STATUS_MIN, _STATUS_MAX) == (-2147483648, 4294967295)  # as literals in _activity


def _activity(d: dict[str, Any], long: bool = True) -> Event:
    """``activity`` (nine events in ten): :func:`_from_dict`'s checks, in its order, inline.

    ``long=False``: ``d`` comes from JSON text of at most :data:`_SHORT` bytes (see there).

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
    if user is not None and (type(user) is not str or not user or (long and len(user) > _L_USER)):
        raise _bad_id(user, "user")
    session = get("session")
    if session is not None and (type(session) is not str or not session or (long and len(session) > _L_SESSION)):
        raise _bad_id(session, "session")
    if user is None:
        raise InvalidEvent("missing (required for activity)", "user")
    if session is None:
        raise InvalidEvent("missing (required for activity)", "session")
    ip = get("ip")
    if ip is not None:
        n = _IP_MEMO.get(ip) if type(ip) is str else None
        ip = n if n is not None else parse_ip(ip, "ip")
    action, resource, b = get("action"), get("resource"), get("bytes")
    if (action is not None and (type(action) is not str or (long and len(action) > _L_ACTION))) \
            or (resource is not None and (type(resource) is not str or (long and len(resource) > _L_RESOURCE))):
        for name in ("action", "resource"):
            _opt_str(d, name)
    if b is not None and (type(b) is not int or b < 0 or b >= MAX_BYTES_VALUE):
        raise InvalidEvent(f"expected a non-negative integer below 2**53, got {b!r}"[:120], "bytes")
    st = get("status")
    if st is not None and (type(st) is not int or not -2147483648 <= st <= 4294967295) \
            and (type(st) is not str or len(st) > _L_STATUS):
        _status(st)
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
    if geo is not None:
        if type(geo) is not dict:
            raise InvalidEvent(f"expected an object, got {type(geo).__name__}", "geo")
        if geo:  # _check_geo, inline (nan fails the comparisons)
            la, lo = geo.get("lat"), geo.get("lon")
            if (la is not None and ((type(la) is not float and type(la) is not int) or not -90.0 <= la <= 90.0)) \
                    or (lo is not None and ((type(lo) is not float and type(lo) is not int) or not -180.0 <= lo <= 180.0)):
                _check_geo(geo)
    dev = get("device")
    if dev is not None and (type(dev) is not str or (long and len(dev) > _L_DEVICE)):
        _opt_str(d, "device")
    return Event("activity", t, user, session, None, None, ch, ip, dev, None, None, geo,
                 action, resource, b, st, p is True, a is True, None, None, None, None, d)


def _from_dict(d: dict[str, Any]) -> Event:
    etype = d.get("type")
    if type(etype) is not str or etype not in EVENT_TYPES:
        if etype is None:
            raise InvalidEvent("missing", "type")
        raise InvalidEvent(f"unknown event type {etype!r}"[:120] if isinstance(etype, str) else f"expected a string, got {type(etype).__name__}", "type")
    ts = parse_ts(d.get("ts"))
    user = d.get("user")
    if user is not None and (type(user) is not str or not user or len(user) > _L_USER):
        raise _bad_id(user, "user")
    session = d.get("session")
    if session is not None and (type(session) is not str or not session or len(session) > _L_SESSION):
        raise _bad_id(session, "session")
    if etype == "activity":
        return _activity(d)
    ev = Event(etype, ts, user, session, raw=d)
    if etype == "alert":
        ev.severity = _severity(d.get("severity"))
        ev.signature = _opt_str(d, "signature")
        ev.src_ip = parse_ip(d.get("src_ip"), "src_ip")
        ev.dest_ip = parse_ip(d.get("dest_ip"), "dest_ip")
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
        for name in ("email", "issuer"):  # the user's subject, as CAEP receivers name users
            v = _opt_str(d, name)
            if v is not None and (not v or (name == "email" and "@" not in v)):
                raise InvalidEvent("expected an address with @" if name == "email" else "expected a URL", name)
        roles = d.get("roles")
        if roles is not None:
            if type(roles) is not list or not all(type(r) is str for r in roles):
                raise InvalidEvent("expected a list of strings", "roles")
            if len(roles) > MAX_ROLES:
                raise InvalidEvent(f"more than {MAX_ROLES} roles ({len(roles)})", "roles")
            limit = MAX_CHARS["roles"]
            for r in roles:
                if len(r) > limit:
                    raise InvalidEvent(f"a role longer than {limit} characters ({len(r)})", "roles")
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
    ip = d.get("ip")
    if ip is not None:
        n = _IP_MEMO.get(ip) if type(ip) is str else None
        ev.ip = n if n is not None else parse_ip(ip, "ip")
    ev.device = _opt_str(d, "device")
    geo = d.get("geo")
    if geo is not None:
        if type(geo) is not dict:
            raise InvalidEvent(f"expected an object, got {type(geo).__name__}", "geo")
        _check_geo(geo)
        ev.geo = geo
    a = d.get("automatic")
    if a is not None:
        if type(a) is not bool:
            raise InvalidEvent(f"expected true or false, got {a!r}"[:120], "automatic")
        ev.automatic = a
    if ev.type == "activity":
        return
    ev.app = _opt_str(d, "app")
