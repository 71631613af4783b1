"""The revocations-topic wire format, shared by the publisher (``streams.publish``) and enforcement points.

One Kafka message per decision; key = session id (UTF-8), value = UTF-8 JSON::

    {"decision": {...decision JSON, see docs/contracts.md...}, "set": "<compact JWS>"}

Only the signed ``set`` is authoritative. The ``decision`` copy is unsigned convenience data for
logs and dashboards; an enforcement point must never act on it.

Heartbeats share the topic: key = :data:`HEARTBEAT_KEY`, value = ``{"heartbeat": "<compact JWS>"}``
whose JOSE ``typ`` is :data:`HEARTBEAT_TYP`. The key starts with the byte ``0xff``, which never
occurs in UTF-8, so it can equal no session key: log compaction (the topic is ``compact,delete``)
can therefore never drop a revocation in favour of a heartbeat, and a client tells the two apart
before parsing anything.

>>> decode_heartbeat(encode_heartbeat("a.b.c"))
'a.b.c'
>>> HEARTBEAT_KEY.decode("utf-8")
Traceback (most recent call last):
...
UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff in position 0: invalid start byte
"""

from __future__ import annotations

from typing import Any

import orjson

#: JOSE ``typ`` of a Security Event Token (RFC 8417 section 2.3).
SET_TYP = "secevent+jwt"
#: JOSE ``typ`` of an OIDC Back-Channel Logout token.
LOGOUT_TYP = "logout+jwt"
#: JOSE ``typ`` of a feed heartbeat (not a SET: a SET verifier refuses it on ``typ`` alone).
HEARTBEAT_TYP = "lapse-heartbeat+jwt"
#: Kafka record key of every heartbeat. Not valid UTF-8, so no session id encodes to it.
HEARTBEAT_KEY = b"\xfflapse-heartbeat"

CAEP = "https://schemas.openid.net/secevent/caep/event-type/"
SESSION_REVOKED = CAEP + "session-revoked"
RISK_LEVEL_CHANGE = CAEP + "risk-level-change"
ASSURANCE_LEVEL_CHANGE = CAEP + "assurance-level-change"
CREDENTIAL_CHANGE = CAEP + "credential-change"
BACKCHANNEL_LOGOUT = "http://schemas.openid.net/event/backchannel-logout"

#: SSF 1.0 stream-control events (sent by a transmitter about the stream itself)
SSF_EVENT = "https://schemas.openid.net/secevent/ssf/event-type/"
VERIFICATION = SSF_EVENT + "verification"
STREAM_UPDATED = SSF_EVENT + "stream-updated"

#: RISC 1.0 account events
RISC = "https://schemas.openid.net/secevent/risc/event-type/"
RISC_ACCOUNT_DISABLED = RISC + "account-disabled"
RISC_ACCOUNT_PURGED = RISC + "account-purged"
RISC_ACCOUNT_ENABLED = RISC + "account-enabled"
RISC_CREDENTIAL_CHANGE_REQUIRED = RISC + "account-credential-change-required"
RISC_CREDENTIAL_COMPROMISE = RISC + "credential-compromise"
RISC_SESSIONS_REVOKED = RISC + "sessions-revoked"

#: Events that end every session of the user a user-level subject names (SDK: user-level entry).
USER_REVOKING_EVENTS = frozenset({
    SESSION_REVOKED, CREDENTIAL_CHANGE, RISC_ACCOUNT_DISABLED, RISC_ACCOUNT_PURGED,
    RISC_CREDENTIAL_CHANGE_REQUIRED, RISC_CREDENTIAL_COMPROMISE, RISC_SESSIONS_REVOKED,
})

#: Subject identifier formats (RFC 9493) that name a user rather than a session.
USER_FORMATS = ("iss_sub", "email", "opaque", "phone_number", "account")
#: Longest subject value considered (an RFC 5321 address is at most 320 characters).
MAX_SUBJECT_CHARS = 2048

#: Signature algorithms lapse signs with / enforcement points accept, by JWK key type.
#: "EdDSA" (RFC 8037) is what today's JOSE libraries verify; "Ed25519" is its fully-specified
#: RFC 9864 name. Both are bound to an Ed25519 OKP key, never anything else.
ALGS_BY_KTY: dict[str, frozenset[str]] = {
    "OKP": frozenset({"EdDSA", "Ed25519"}),
    "RSA": frozenset({"RS256"}),
}
ALLOWED_ALGS = frozenset().union(*ALGS_BY_KTY.values())
MIN_RSA_BITS = 2048

#: Longest session id lapse tracks (the engine refuses events with a longer one), so the longest
#: a revocation can name: enforcement points need not consider longer strings.
MAX_SESSION_CHARS = 1024

#: Largest message value an enforcement point will parse (a SET is well under 2 KiB).
MAX_MESSAGE_BYTES = 64 * 1024

RISK_LEVELS = ("LOW", "MEDIUM", "HIGH")


def subject_key(subject: Any) -> str | None:
    r"""A canonical string for a user-level subject identifier, or None when it is not one.

    ``iss_sub`` -> ``iss_sub\x1f<iss>\x1f<sub>``; ``email`` (lower-cased: providers differ in case)
    -> ``email\x1f<address>``; ``opaque`` -> ``opaque\x1f<id>``; ``phone_number`` and ``account``
    likewise. Unknown formats, missing or over-long members -> None.

    >>> subject_key({"format": "email", "email": "Ann@Example.COM"})
    'email\x1fann@example.com'
    >>> subject_key({"format": "iss_sub", "iss": "https://idp/", "sub": "42"}).split("\x1f")
    ['iss_sub', 'https://idp/', '42']
    >>> subject_key({"format": "complex"}) is None
    True
    """
    if not isinstance(subject, dict):
        return None
    fmt = subject.get("format")
    if fmt == "iss_sub":
        parts = [subject.get("iss"), subject.get("sub")]
    elif fmt == "email":
        e = subject.get("email")
        parts = [e.strip().lower() if isinstance(e, str) else None]
    elif fmt == "opaque":
        parts = [subject.get("id")]
    elif fmt == "phone_number":
        parts = [subject.get("phone_number")]
    elif fmt == "account":
        parts = [subject.get("uri")]
    else:
        return None
    if not all(isinstance(p, str) and p and len(p) <= MAX_SUBJECT_CHARS and "\x1f" not in p for p in parts):
        return None
    return "\x1f".join([fmt, *parts])


class MalformedMessage(ValueError):
    """A revocations-topic message that is not ``{"decision": {...}, "set": "<JWS>"}``."""


def encode(decision: dict[str, Any], token: str) -> bytes:
    """The wire bytes of one revocation message."""
    return orjson.dumps({"decision": decision, "set": token})


def decode(value: bytes | None) -> tuple[dict[str, Any] | None, str]:
    """Split a message value into (unsigned decision copy, compact JWS). Raises MalformedMessage."""
    if value is None:
        raise MalformedMessage("empty message (tombstone)")
    if len(value) > MAX_MESSAGE_BYTES:
        raise MalformedMessage(f"message of {len(value)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise MalformedMessage(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise MalformedMessage("message is not a JSON object")
    token = doc.get("set")
    if not isinstance(token, str) or not token:
        raise MalformedMessage("message has no 'set' string")
    decision = doc.get("decision")
    return (decision if isinstance(decision, dict) else None), token


def encode_heartbeat(token: str) -> bytes:
    """The wire bytes of one heartbeat (its record key is :data:`HEARTBEAT_KEY`)."""
    return orjson.dumps({"heartbeat": token})


def decode_heartbeat(value: bytes | None) -> str:
    """The compact JWS of a heartbeat record value. Raises MalformedMessage."""
    if value is None:
        raise MalformedMessage("empty heartbeat (tombstone)")
    if len(value) > MAX_MESSAGE_BYTES:
        raise MalformedMessage(f"heartbeat of {len(value)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise MalformedMessage(f"not JSON: {exc}") from None
    token = doc.get("heartbeat") if isinstance(doc, dict) else None
    if not isinstance(token, str) or not token:
        raise MalformedMessage("heartbeat has no 'heartbeat' string")
    return token
