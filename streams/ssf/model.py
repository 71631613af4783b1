"""SSF 1.0 streams: configuration (section 8.1.1), validation of what receivers send, subjects
(section 8.1.3) and which SETs a stream gets. Pure: no I/O.

A stream's configuration, as ``GET /ssf/streams`` returns it::

    {"stream_id": "...", "iss": <transmitter issuer>, "aud": <the stream's audience>,
     "events_supported": [...], "events_requested": [...], "events_delivered": [...],
     "delivery": {"method": "urn:ietf:rfc:8935", "endpoint_url": "https://rx.example.com/ssf"},
     "min_verification_interval": 5, "description": "..."}

``authorization_header`` (the credential lapse presents when it pushes) is accepted and stored,
never returned.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from enforce import wire
from enforce.wire import subject_key
from streams.ssf.config import is_loopback

PUSH = "urn:ietf:rfc:8935"
POLL = "urn:ietf:rfc:8936"
DELIVERY_METHODS = (PUSH, POLL)

#: what the worker publishes, so what a stream can ask for
EVENTS_SUPPORTED = (wire.SESSION_REVOKED, wire.RISK_LEVEL_CHANGE)
#: stream-control events, delivered whatever the stream requested
CONTROL_EVENTS = (wire.VERIFICATION, wire.STREAM_UPDATED)
STATUSES = ("enabled", "paused", "disabled")

MAX_URL = 2048
MAX_DESCRIPTION = 1024
MAX_HEADER = 4096
MAX_EVENTS_REQUESTED = 64
_HEADER_OK = re.compile(r"^[\x20-\x7e]+$")
RECEIVER_MEMBERS = ("events_requested", "delivery", "description", "aud")
TRANSMITTER_MEMBERS = ("stream_id", "iss", "events_supported", "events_delivered", "min_verification_interval",
                       "inactivity_timeout")


class BadRequest(ValueError):
    """A request a receiver must fix; answered 400 with this message."""


@dataclass
class Stream:
    id: str
    owner: str
    aud: str | list[str]
    events_requested: list[str]
    delivery: dict[str, Any]
    description: str | None = None
    status: str = "enabled"
    reason: str | None = None
    created: float = 0.0
    updated: float = 0.0
    verified_at: float | None = None
    #: "in:<key>" (NONE mode: delivered) / "ex:<key>" (ALL mode: not delivered) -> subject
    subjects: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def target(self) -> str:
        return "stream:" + self.id

    @property
    def method(self) -> str:
        return self.delivery["method"]

    @property
    def events_delivered(self) -> list[str]:
        return [e for e in self.events_requested if e in EVENTS_SUPPORTED]

    def view(self, issuer: str, public_url: str, min_verification_s: float) -> dict[str, Any]:
        delivery = {"method": self.method, "endpoint_url": self.endpoint_url(public_url)}
        out: dict[str, Any] = {
            "stream_id": self.id, "iss": issuer, "aud": self.aud,
            "events_supported": list(EVENTS_SUPPORTED), "events_requested": list(self.events_requested),
            "events_delivered": self.events_delivered, "delivery": delivery,
            "min_verification_interval": int(min_verification_s) if float(min_verification_s).is_integer()
            else min_verification_s,
        }
        if self.description is not None:
            out["description"] = self.description
        return out

    def endpoint_url(self, public_url: str) -> str:
        if self.method == POLL:
            return f"{public_url}/ssf/poll/{self.id}"
        return self.delivery["endpoint_url"]

    def row(self) -> dict[str, Any]:
        return {"id": self.id, "owner": self.owner, "status": self.status, "reason": self.reason,
                "created": self.created, "updated": self.updated, "verified_at": self.verified_at,
                "config": {"aud": self.aud, "events_requested": self.events_requested, "delivery": self.delivery,
                           "description": self.description}}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "Stream":
        c = row["config"]
        return cls(id=row["id"], owner=row["owner"], aud=c["aud"], events_requested=list(c["events_requested"]),
                   delivery=dict(c["delivery"]), description=c.get("description"), status=row["status"],
                   reason=row.get("reason"), created=row["created"], updated=row["updated"],
                   verified_at=row.get("verified_at"))

    # -- which SETs this stream gets ---------------------------------------------------------
    def wants(self, uri: str, event_keys: set[str], default_subjects: str) -> bool:
        if self.status == "disabled" or uri not in self.events_delivered:
            return False
        if default_subjects == "ALL":
            return not any(matches(s, event_keys) for k, s in self.subjects.items() if k.startswith("ex:"))
        return any(matches(s, event_keys) for k, s in self.subjects.items() if k.startswith("in:"))


def new_stream_id() -> str:
    return uuid.uuid4().hex


def check_url(url: Any, what: str, *, allow_http: bool) -> str:
    """An absolute https URL (http only to a loopback host when ``allow_http``), no credentials,
    no fragment. What lapse POSTs to must not be turned against the network lapse sits in."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL:
        raise BadRequest(f"{what} must be an absolute URL of at most {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        raise BadRequest(f"{what} is not a valid URL") from None
    if parts.username or parts.password:
        raise BadRequest(f"{what} must not carry credentials; use delivery.authorization_header")
    if parts.fragment or not parts.hostname:
        raise BadRequest(f"{what} must be an absolute URL without a fragment")
    if parts.scheme == "https":
        return url
    if parts.scheme == "http" and allow_http and is_loopback(parts.hostname):
        return url
    raise BadRequest(f"{what} must be an https URL" + (" (http only to a loopback address)" if allow_http else ""))


def parse_delivery(value: Any, *, allow_http: bool) -> dict[str, Any]:
    if value is None:
        return {"method": POLL}
    if not isinstance(value, dict):
        raise BadRequest("delivery must be an object")
    method = value.get("method")
    if method not in DELIVERY_METHODS:
        raise BadRequest(f"delivery.method must be one of {list(DELIVERY_METHODS)}")
    if method == POLL:
        return {"method": POLL}
    out: dict[str, Any] = {"method": PUSH, "endpoint_url": check_url(value.get("endpoint_url"), "delivery.endpoint_url",
                                                                      allow_http=allow_http)}
    auth = value.get("authorization_header")
    if auth is not None:
        if not isinstance(auth, str) or not auth or len(auth) > MAX_HEADER or not _HEADER_OK.match(auth):
            raise BadRequest("delivery.authorization_header must be printable ASCII of at most 4096 characters")
        out["authorization_header"] = auth
    return out


def parse_events(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_EVENTS_REQUESTED or not all(
            isinstance(e, str) and 0 < len(e) <= MAX_URL for e in value):
        raise BadRequest(f"events_requested must be a list of at most {MAX_EVENTS_REQUESTED} event type URIs")
    return list(dict.fromkeys(value))


def parse_description(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_DESCRIPTION:
        raise BadRequest(f"description must be a string of at most {MAX_DESCRIPTION} characters")
    return value


def parse_aud(value: Any, allowed: tuple[str, ...], default: str) -> str | list[str]:
    if value is None:
        return default
    auds = [value] if isinstance(value, str) else value
    if not isinstance(auds, list) or not auds or not all(isinstance(a, str) and a for a in auds):
        raise BadRequest("aud must be a string or a non-empty list of strings")
    permitted = set(allowed) or {default}
    bad = [a for a in auds if a not in permitted]
    if bad:
        raise BadRequest(f"aud {bad[0]!r} is not one this receiver's credential may use")
    return auds[0] if len(auds) == 1 else auds


def receiver_config(body: dict[str, Any], *, allowed_aud: tuple[str, ...], default_aud: str,
                    allow_http: bool, base: Stream | None = None, partial: bool = False) -> dict[str, Any]:
    """The receiver-supplied members of a create (``base`` None), replace or update
    (``partial``) request, validated. Transmitter-supplied members are ignored."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")

    def pick(name: str, parse, current):
        if name in body:
            return parse(body[name])
        return current if (partial and base is not None) else parse(None)

    return {
        "events_requested": pick("events_requested", parse_events, base.events_requested if base else None),
        "delivery": pick("delivery", lambda v: parse_delivery(v, allow_http=allow_http), base.delivery if base else None),
        "description": pick("description", parse_description, base.description if base else None),
        "aud": pick("aud", lambda v: parse_aud(v, allowed_aud, default_aud), base.aud if base else None),
    }


# -- subjects ----------------------------------------------------------------------------------
def subject_id(subject: Any) -> str:
    """The canonical key of a subject a receiver adds or removes (400 when it is not one).

    >>> subject_id({"format": "email", "email": "Ann@example.com"}).split("\\x1f")
    ['email', 'ann@example.com']
    >>> subject_id({"format": "complex", "user": {"format": "opaque", "id": "u"}}).split("\\x1e")
    ['user=opaque\\x1fu']
    """
    if not isinstance(subject, dict):
        raise BadRequest("subject must be a subject identifier object (RFC 9493)")
    if subject.get("format") == "complex":
        members = []
        for name, member in sorted(subject.items()):
            if name == "format":
                continue
            k = subject_key(member)
            if k is None:
                raise BadRequest(f"subject.{name} is not a supported subject identifier")
            members.append(f"{name}={k}")
        if not members:
            raise BadRequest("a complex subject needs at least one member")
        return "\x1e".join(members)
    k = subject_key(subject)
    if k is None:
        raise BadRequest("subject format must be one of email, iss_sub, opaque, phone_number, account, complex")
    return k


def event_keys(sub_id: Any) -> set[str]:
    """Every key a SET's ``sub_id`` can be matched by: each member alone, and ``member=key``."""
    keys: set[str] = set()
    if not isinstance(sub_id, dict):
        return keys
    if sub_id.get("format") == "complex":
        for name, member in sub_id.items():
            k = subject_key(member) if name != "format" else None
            if k is not None:
                keys.add(k)
                keys.add(f"{name}={k}")
    else:
        k = subject_key(sub_id)
        if k is not None:
            keys.add(k)
    return keys


def matches(subject: dict[str, Any], keys: set[str]) -> bool:
    """Whether a stream subject names the SET's subject: a simple one equals one of its members;
    a complex one has every member equal to the SET's member of that name."""
    try:
        sid = subject_id(subject)
    except BadRequest:
        return False
    if subject.get("format") == "complex":
        return all(part in keys for part in sid.split("\x1e"))
    return sid in keys


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
