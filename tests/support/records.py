"""Records the tests share: vendor records (an Okta sign-in, Suricata EVE alert and DNS records)
and the operator tests' policy, so the in-process and real-broker tests feed the same input."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

#: the operator tests' policy (``.format(idle=...)``): admins and everyone else on one idle limit
OPERATOR_POLICY = """
[defaults]
idle = "{idle}"
absolute = "12h"

[[rules]]
name = "admins"
roles = ["admin"]
idle = "{idle}"

[ids]
revoke = ["critical", "high"]
step_up = ["medium"]
lookback = "10m"
"""


def iso(t: float) -> str:
    """RFC 3339 with milliseconds and ``Z``, as Okta writes ``published``."""
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def okta_session_start(t: float, ip: str = "192.0.2.77") -> dict[str, Any]:
    """An Okta System Log ``user.session.start`` for ann@example.com (session ``102ann-session``)."""
    return {
        "uuid": "a1b2c3", "published": iso(t), "eventType": "user.session.start",
        "actor": {"id": "00u1", "type": "User", "alternateId": "ann@example.com", "displayName": "Ann"},
        "client": {"ipAddress": ip, "userAgent": {"rawUserAgent": "Mozilla/5.0", "os": "Mac OS X", "browser": "CHROME"},
                   "geographicalContext": {"country": "Germany", "geolocation": {"lat": 52.5, "lon": 13.4}}},
        "authenticationContext": {"externalSessionId": "102ann-session"},
        "outcome": {"result": "SUCCESS"}, "severity": "INFO",
    }


def eve_alert(t: float, src_ip: str = "192.0.2.77") -> dict[str, Any]:
    """A Suricata EVE alert of severity 1 (critical) from ``src_ip``."""
    return {"timestamp": iso(t).replace("Z", "+0000"), "event_type": "alert", "src_ip": src_ip,
            "src_port": 51515, "dest_ip": "198.51.100.9", "dest_port": 443, "proto": "TCP",
            "alert": {"action": "allowed", "gid": 1, "signature_id": 2024217, "rev": 3,
                      "signature": "ET MALWARE Possible C2 beacon", "category": "A Network Trojan was detected",
                      "severity": 1}}


def eve_dns(t: float, src_ip: str = "192.0.2.77") -> dict[str, Any]:
    """A Suricata EVE DNS record (not an alert: the adapter skips it)."""
    return {"timestamp": iso(t).replace("Z", "+0000"), "event_type": "dns", "src_ip": src_ip,
            "dest_ip": "192.0.2.53", "dns": {"type": "query", "rrname": "example.com"}}
