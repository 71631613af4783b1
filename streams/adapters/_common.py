"""Helpers shared by the adapters: bounded JSON loading, typed field access, time normalisation.

Every helper raises :class:`~streams.adapters.errors.AdapterError` naming the field, never anything
else, so an adapter built from them cannot stop the stream on bad input.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from streams.adapters.errors import AdapterError
from streams.engine.events import InvalidEvent, parse_ip

__all__ = [
    "MAX_BYTES",
    "load_object",
    "obj",
    "opt_obj",
    "req_str",
    "opt_str",
    "opt_num",
    "opt_ip",
    "rfc3339",
    "epoch_ms",
    "put",
]

MAX_BYTES = 64 * 1024
"""Largest raw record accepted (the canonical event limit, docs/engine.md)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# RFC 3339 date-time already in UTC with ``Z``: passed through as written (after a validity check).
_UTC_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?Z\Z")
# Anything ISO-8601-like with an explicit offset: ``+00:00``, ``+0000`` (Suricata), ``Z``.
_WITH_OFFSET = re.compile(
    r"(\d{4}-\d\d-\d\d)[Tt ]((?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d)(\.\d{1,9})?([Zz]|[+-]\d\d:?\d\d)\Z"
)
_ZERO_OFFSETS = frozenset({"Z", "z", "+00:00", "+0000", "-00:00", "-0000"})


def load_object(raw: bytes) -> dict[str, Any]:
    """Parse one record: at most :data:`MAX_BYTES`, valid JSON, a JSON object.

    Examples
    --------
    >>> load_object(b'{"a": 1}')
    {'a': 1}
    >>> load_object(b'[1]')
    Traceback (most recent call last):
    ...
    streams.adapters.errors.AdapterError: $: not a JSON object (array)
    """
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise AdapterError(f"raw record is {type(raw).__name__}, not bytes")
    if len(raw) > MAX_BYTES:
        raise AdapterError(f"record of {len(raw)} bytes exceeds {MAX_BYTES}")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise AdapterError(f"malformed JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise AdapterError(f"not a JSON object ({_json_type(doc)})")
    return doc


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def obj(doc: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    """``doc[key]``, which must be an object; ``path`` names it in errors."""
    value = doc.get(key)
    if isinstance(value, dict):
        return value
    raise AdapterError("missing" if value is None else f"not an object ({_json_type(value)})", path)


def opt_obj(doc: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    """``doc[key]`` if it is an object, ``{}`` if absent or null; anything else is an error."""
    value = doc.get(key)
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    raise AdapterError(f"not an object ({_json_type(value)})", path)


def req_str(doc: dict[str, Any], key: str, path: str) -> str:
    """``doc[key]``, which must be a non-empty string.

    Examples
    --------
    >>> req_str({"type": "LOGIN"}, "type", "type")
    'LOGIN'
    >>> req_str({"type": 3}, "type", "type")
    Traceback (most recent call last):
    ...
    streams.adapters.errors.AdapterError: type: not a string (number)
    """
    value = doc.get(key)
    if isinstance(value, str) and value:
        return value
    if value is None or value == "":
        raise AdapterError("missing", path)
    raise AdapterError(f"not a string ({_json_type(value)})", path)


def opt_str(doc: dict[str, Any], key: str, path: str) -> str | None:
    """``doc[key]`` if a non-empty string, ``None`` if absent, null or empty; else an error."""
    value = doc.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    raise AdapterError(f"not a string ({_json_type(value)})", path)


def opt_ip(doc: dict[str, Any], key: str, path: str) -> str | None:
    """``doc[key]`` as an IP address in the canonical events' normal form (IPv4-mapped IPv6 as
    IPv4, IPv6 compressed in lower case); ``None`` if absent, null or empty; else an error.

    The same form :func:`streams.engine.events.parse_ip` gives, so an alert keyed by its
    ``src_ip`` is keyed as the engine will see it.

    Examples
    --------
    >>> opt_ip({"src_ip": "::ffff:203.0.113.9"}, "src_ip", "src_ip"), opt_ip({}, "src_ip", "src_ip")
    ('203.0.113.9', None)
    >>> opt_ip({"src_ip": "203.0.113.0/24"}, "src_ip", "src_ip")
    Traceback (most recent call last):
    ...
    streams.adapters.errors.AdapterError: src_ip: a network (203.0.113.0/24) is not an address; lapse joins alerts on single addresses
    """
    value = opt_str(doc, key, path)
    try:
        return parse_ip(value, path)
    except InvalidEvent as exc:
        raise AdapterError(exc.reason, path) from None


def opt_num(doc: dict[str, Any], key: str, path: str) -> int | float | None:
    """``doc[key]`` if a number (not a boolean), ``None`` if absent or null; else an error."""
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    raise AdapterError(f"not a number ({_json_type(value)})", path)


def rfc3339(value: object, path: str) -> str:
    """Normalise a vendor timestamp to RFC 3339 in UTC with ``Z``.

    Fractional seconds are kept as written. Accepts RFC 3339 and the ISO 8601 variants vendors write (Suricata's ``+0000`` offset, a space
    instead of ``T``); a time without an offset is an error, since its zone is unknowable.

    Examples
    --------
    >>> rfc3339("2020-02-14T22:18:51.843Z", "published")
    '2020-02-14T22:18:51.843Z'
    >>> rfc3339("2018-07-05T15:07:20.910626-0400", "timestamp")
    '2018-07-05T19:07:20.910626Z'
    >>> rfc3339("2018-07-05T15:07:20", "timestamp")
    Traceback (most recent call last):
    ...
    streams.adapters.errors.AdapterError: timestamp: not an RFC 3339 time with offset: '2018-07-05T15:07:20'
    """
    if not isinstance(value, str):
        raise AdapterError("missing" if value is None else f"not a string ({_json_type(value)})", path)
    if _UTC_Z.match(value):
        try:
            datetime.fromisoformat(value[:19])  # checks the calendar (month 13, Feb 30, ...)
        except ValueError:
            raise AdapterError(f"invalid time: {value[:40]!r}", path) from None
        return value
    m = _WITH_OFFSET.match(value)
    if m is None:
        raise AdapterError(f"not an RFC 3339 time with offset: {value[:40]!r}", path)
    date, clock, frac, offset = m.groups()
    frac = frac or ""
    try:
        if offset in _ZERO_OFFSETS:
            datetime.fromisoformat(date)  # checks the calendar; the clock is checked by the regex
            return f"{date}T{clock}{frac}Z"
        shift = _OFFSETS.get(offset)
        if shift is None:
            shift = _offset(offset)
        utc = datetime.fromisoformat(f"{date}T{clock}") - shift
    except (ValueError, OverflowError):
        raise AdapterError(f"invalid time: {value[:40]!r}", path) from None
    return f"{utc.isoformat()}{frac}Z"


_OFFSETS: dict[str, timedelta] = {}


def _offset(text: str) -> timedelta:
    """``+HH:MM`` / ``+HHMM`` as a timedelta (cached: a stream has few distinct offsets)."""
    hours, minutes = int(text[1:3]), int(text[-2:])
    if hours > 23 or minutes > 59:
        raise ValueError(text)
    shift = timedelta(hours=hours, minutes=minutes) * (-1 if text[0] == "-" else 1)
    if len(_OFFSETS) < 256:
        _OFFSETS[text] = shift
    return shift


def epoch_ms(value: object, path: str) -> str:
    """Epoch milliseconds (Keycloak's ``time``) as RFC 3339 UTC.

    Examples
    --------
    >>> epoch_ms(1700000000123, "time")
    '2023-11-14T22:13:20.123Z'
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise AdapterError("missing" if value is None else f"not a number ({_json_type(value)})", path)
    if not 0 <= value < 253402300800000:  # up to 9999-12-31
        raise AdapterError(f"epoch milliseconds out of range: {value}", path)
    dt = _EPOCH + timedelta(milliseconds=value)
    return _format_utc(dt, millis=True)


def _format_utc(dt: datetime, millis: bool = False) -> str:
    spec = "milliseconds" if millis or dt.microsecond % 1000 == 0 and dt.microsecond else "auto"
    return dt.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def put(event: dict[str, Any], key: str, value: object) -> None:
    """Set ``event[key]`` unless ``value`` is ``None`` or empty (canonical events omit unknowns)."""
    if value is not None and value != {} and value != "":
        event[key] = value
