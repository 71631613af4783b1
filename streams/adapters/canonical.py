"""Canonical JSON (lapse's own event format) passes through unchanged, after a light check.

Full validation is :func:`streams.engine.events.parse_event`'s job, downstream; here a record only
has to be a JSON object of at most 64 KiB with a string ``type`` and a ``ts``, so that obviously
foreign input is dead-lettered at the edge with the other formats' rejects.

Examples
--------
>>> adapt(b'{"type": "logout", "ts": 1714554000, "user": "ana", "session": "s1"}')
[{'type': 'logout', 'ts': 1714554000, 'user': 'ana', 'session': 's1'}]
"""

from __future__ import annotations

from typing import Any

from streams.adapters._common import load_object, req_str
from streams.adapters.errors import AdapterError
from streams.engine.events import MAX_DEPTH, InvalidEvent, check_depth

__all__ = ["adapt"]


def adapt(raw: bytes) -> list[dict[str, Any]]:
    """Return ``[event]`` for a canonical event, unchanged.

    Parameters
    ----------
    raw : bytes
        One canonical event as JSON.

    Returns
    -------
    list of dict
        The parsed object, as is.

    Raises
    ------
    AdapterError
        Not a JSON object, no string ``type``, no ``ts`` (string or number), or nested deeper
        than the canonical events allow (the record is written back out as JSON).

    Examples
    --------
    >>> adapt(b'{"type": "login"}')
    Traceback (most recent call last):
    ...
    streams.adapters.errors.AdapterError: ts: missing
    """
    doc = load_object(raw)
    text = raw if type(raw) is bytes else bytes(raw)
    if text.count(b"{") + text.count(b"[") > MAX_DEPTH:
        try:
            check_depth(doc)
        except InvalidEvent as exc:
            raise AdapterError(exc.reason, exc.field) from None
    req_str(doc, "type", "type")
    ts = doc.get("ts")
    if ts is None:
        raise AdapterError("missing", "ts")
    if isinstance(ts, bool) or not isinstance(ts, (str, int, float)):
        raise AdapterError("not a string or number", "ts")
    return [doc]
