"""The edge of the service: Kafka message bytes -> an engine ``Event``, or a dead letter.

Nothing in here raises for bad input: malformed JSON, wrong types, missing fields, unknown event
types, oversized messages and clock skew all become a ``Rejected`` with a reason naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass

from streams.engine import Event, InvalidEvent, parse_event
from streams.engine.events import MAX_EVENT_BYTES

#: an event stamped further than this into the future (per the worker's clock) is refused
DEFAULT_MAX_SKEW_S = 300.0


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: str
    field: str | None


def decode(raw: bytes | None, now: float, max_skew_s: float = DEFAULT_MAX_SKEW_S) -> Event | Rejected:
    """Parse one message value.

    >>> decode(b'{"type": "login", "ts": 100, "user": "u", "session": "s"}', now=100).session
    's'
    >>> decode(b'{"type": "login"', now=0).reason.startswith("not valid JSON")
    True
    >>> decode(b'{"type": "login", "ts": 1000, "user": "u", "session": "s"}', now=0)
    Rejected(reason='clock skew: ts is 1000s ahead of the worker clock (limit 300s)', field='ts')
    """
    if raw is None:
        return Rejected("empty message (null value)", None)
    if len(raw) > MAX_EVENT_BYTES:
        return Rejected(f"oversized: {len(raw)} bytes > {MAX_EVENT_BYTES}", None)
    try:
        event = parse_event(raw)
    except InvalidEvent as exc:
        return Rejected(exc.reason, exc.field)
    except Exception as exc:  # pragma: no cover - parse_event promises InvalidEvent only
        return Rejected(f"unparseable: {type(exc).__name__}: {exc}", None)
    if event.ts > now + max_skew_s:
        return Rejected(f"clock skew: ts is {event.ts - now:.0f}s ahead of the worker clock (limit {max_skew_s:.0f}s)", "ts")
    return event
