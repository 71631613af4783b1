"""Suricata EVE JSON to canonical ``alert`` events.

Only ``event_type: alert`` maps; every other EVE record (``flow``, ``dns``, ``http``, ``tls``,
``stats``, ...) is skipped and counted as ``suricata:<event_type>``, never dead-lettered.

Examples
--------
>>> raw = (b'{"timestamp": "2024-05-01T11:00:00.250000+0200", "event_type": "alert",'
...        b' "src_ip": "203.0.113.9", "dest_ip": "10.0.0.5", "alert": {"severity": 1,'
...        b' "signature": "ET EXPLOIT x", "category": "Attempted Administrator Privilege Gain"}}')
>>> adapt(raw)
[{'type': 'alert', 'ts': '2024-05-01T09:00:00.250000Z', 'severity': 1, 'signature': 'ET EXPLOIT x', 'category': 'Attempted Administrator Privilege Gain', 'src_ip': '203.0.113.9', 'dest_ip': '10.0.0.5'}]
"""

from __future__ import annotations

from typing import Any

from streams.adapters._common import load_object, obj, opt_ip, opt_str, req_str, rfc3339
from streams.adapters.errors import AdapterError, Skipped

__all__ = ["adapt"]


def adapt(raw: bytes) -> list[dict[str, Any]]:
    """Map one EVE record: an ``alert`` gives one canonical alert, anything else is skipped.

    Parameters
    ----------
    raw : bytes
        One line of ``eve.json``.

    Returns
    -------
    list of dict
        ``[alert]`` with ``severity`` kept as Suricata's 1 (highest) to 4.

    Raises
    ------
    AdapterError
        Malformed record; ``field`` names the culprit (``alert.severity``, ``timestamp``, ...).
    Skipped
        Any ``event_type`` other than ``alert`` (kind ``suricata:<event_type>``).

    Examples
    --------
    >>> adapt(b'{"timestamp": "2024-05-01T11:00:00+0000", "event_type": "flow"}')
    Traceback (most recent call last):
    ...
    streams.adapters.errors.Skipped: skipped suricata:flow
    """
    doc = load_object(raw)
    etype = req_str(doc, "event_type", "event_type")
    if etype != "alert":
        raise Skipped(f"suricata:{etype[:40]}")
    alert = obj(doc, "alert", "alert")
    severity = alert.get("severity")
    if type(severity) is not int or not 1 <= severity <= 4:
        if severity is None:
            raise AdapterError("missing", "alert.severity")
        raise AdapterError(f"not an integer 1..4: {str(severity)[:20]}", "alert.severity")
    event: dict[str, Any] = {
        "type": "alert",
        "ts": rfc3339(doc.get("timestamp"), "timestamp"),
        "severity": severity,
        "signature": req_str(alert, "signature", "alert.signature"),
    }
    category = opt_str(alert, "category", "alert.category")
    if category is not None:
        event["category"] = category
    src = opt_ip(doc, "src_ip", "src_ip")
    dest = opt_ip(doc, "dest_ip", "dest_ip")
    if src is None and dest is None:
        raise AdapterError("missing (and so is dest_ip)", "src_ip")
    if src is not None:
        event["src_ip"] = src
    if dest is not None:
        event["dest_ip"] = dest
    return [event]
