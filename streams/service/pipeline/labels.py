"""Metric label values from fixed sets only: a label taken from input text would let anyone who
can write to a topic grow the worker's memory and its ``/metrics`` page without bound.

>>> label("login", EVENT_TYPES), label("x" * 40, EVENT_TYPES)
('login', 'other')
>>> rejected_label("ts"), rejected_label(None), rejected_label("anything-else")
('ts', 'message', 'other')
"""

from __future__ import annotations

from collections.abc import Collection

from streams.engine.events import EVENT_TYPES

__all__ = ["label", "rejected_label", "EVENT_TYPES", "FIELDS"]

#: the fields a dead letter's reason can name (an event's own, the envelopes', the join's)
FIELDS = frozenset({
    "type", "ts", "user", "session", "sso_session", "app", "channel", "ip", "device", "roles", "aal", "geo",
    "action", "resource", "bytes", "status", "privileged", "automatic", "severity", "signature", "src_ip",
    "dest_ip", "kind", "alert", "operator", "request", "note", "id", "seal", "event", "events",
})


def label(value: object, allowed: Collection[str]) -> str:
    """``value`` when it is one of ``allowed``, else ``"other"``."""
    return value if isinstance(value, str) and value in allowed else "other"


def rejected_label(field: str | None) -> str:
    """The reason class of a dead letter: the field at fault, ``message`` for the whole record."""
    if field is None:
        return "message"
    return field if field in FIELDS else "other"
