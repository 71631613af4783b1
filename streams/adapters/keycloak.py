"""Keycloak user and admin events to canonical events.

Two input forms, told apart by their first byte:

* JSON, as event-listener SPIs emit it: user events (``type``, ``time`` in epoch ms, ``realmId``,
  ``clientId``, ``userId``, ``sessionId``, ``ipAddress``, ``error``, ``details``) and admin events
  (``operationType``, ``resourceType``, ``resourcePath``, ``authDetails``, ``representation``);
* the ``jboss-logging`` listener's log line, ``type=LOGIN, realmId=..., clientId=..., userId=...,
  ipAddress=..., key=value...`` (values bare, ``'single'`` or ``"double"`` quoted), optionally
  after the log prefix, whose leading timestamp gives the event time (see ``docs/adapters.md``).

Examples
--------
>>> adapt(b'{"time": 1714554000000, "type": "LOGIN", "realmId": "acme", "clientId": "portal",'
...       b' "userId": "u-1", "sessionId": "s-1", "ipAddress": "198.51.100.7"}')
[{'type': 'login', 'ts': '2024-05-01T09:00:00.000Z', 'user': 'u-1', 'session': 's-1', 'app': 'portal', 'ip': '198.51.100.7'}]
>>> adapt(b'2024-05-01T09:00:00Z INFO [org.keycloak.events] type=LOGOUT, realmId=acme,'
...       b' clientId=null, userId=u-1, sessionId=s-1, ipAddress=198.51.100.7')
[{'type': 'logout', 'ts': '2024-05-01T09:00:00Z', 'user': 'u-1', 'session': 's-1', 'ip': '198.51.100.7'}]
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from streams.adapters._common import (
    MAX_BYTES,
    epoch_ms,
    load_object,
    opt_ip,
    opt_obj,
    opt_str,
    put,
    req_str,
    rfc3339,
)
from streams.adapters.errors import AdapterError, Skipped

__all__ = ["adapt", "USER_EVENTS", "SKIPPED"]

Event = dict[str, Any]

USER_EVENTS: dict[str, str] = {
    "LOGIN": "login",
    "LOGIN_ERROR": "login_failed",
    "LOGOUT": "logout",
    "REFRESH_TOKEN": "refresh",
    "CODE_TO_TOKEN": "refresh",
    "UPDATE_PASSWORD": "credential_change",
    "RESET_PASSWORD": "credential_change",
    "UPDATE_CREDENTIAL": "credential_change",
    "REMOVE_CREDENTIAL": "credential_change",
    "UPDATE_TOTP": "credential_change",
    "REMOVE_TOTP": "credential_change",
    "DELETE_ACCOUNT": "user_disabled",
}
"""Keycloak user-event ``type`` to canonical ``type``."""

SKIPPED: frozenset[str] = frozenset({
    "REGISTER", "UPDATE_PROFILE", "UPDATE_EMAIL", "VERIFY_EMAIL", "VERIFY_PROFILE",
    "SEND_VERIFY_EMAIL", "SEND_RESET_PASSWORD", "SEND_IDENTITY_PROVIDER_LINK",
    "INTROSPECT_TOKEN", "USER_INFO_REQUEST", "CLIENT_LOGIN", "TOKEN_EXCHANGE", "PERMISSION_TOKEN",
    "IDENTITY_PROVIDER_LOGIN", "IDENTITY_PROVIDER_FIRST_LOGIN", "IDENTITY_PROVIDER_POST_LOGIN",
    "IDENTITY_PROVIDER_LINK_ACCOUNT", "IDENTITY_PROVIDER_RETRIEVE_TOKEN", "IMPERSONATE",
    "GRANT_CONSENT", "UPDATE_CONSENT", "REVOKE_GRANT", "CUSTOM_REQUIRED_ACTION", "EXECUTE_ACTIONS",
    "EXECUTE_ACTION_TOKEN", "RESTART_AUTHENTICATION", "REMOVE_FEDERATED_IDENTITY",
    "FEDERATED_IDENTITY_LINK", "CLIENT_REGISTER", "CLIENT_UPDATE", "CLIENT_DELETE", "CLIENT_INFO",
    "CLIENT_INITIATED_ACCOUNT_LINKING", "PUSHED_AUTHORIZATION_REQUEST", "AUTHREQID_TO_TOKEN",
    "OAUTH2_DEVICE_AUTH", "OAUTH2_DEVICE_CODE_TO_TOKEN", "OAUTH2_DEVICE_VERIFY_USER_CODE",
    "REGISTER_NODE", "UNREGISTER_NODE", "INVALID_SIGNATURE",
})
"""User-event types deliberately ignored; so is every ``*_ERROR`` other than ``LOGIN_ERROR``."""

# key=value pairs; a value is "double quoted" (\" escapes), 'single quoted', or bare up to ", ".
_PAIR = re.compile(r"""([A-Za-z_][\w.-]*)=("(?:[^"\\]|\\.)*"|'[^']*'|[^,]*)(?:,\s*|\s*\Z)""")
_START = re.compile(r"(?:^|[\s\]\)])((?:type|operationType)=)")
_PREFIX_TIME = re.compile(
    r"\s*(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d)(?:[.,](\d{1,9}))?(Z|[+-]\d\d:?\d\d)?(?=\s)")


def adapt(raw: bytes) -> list[Event]:
    """Map one Keycloak event (JSON object or ``jboss-logging`` line) to canonical events.

    Parameters
    ----------
    raw : bytes
        One event.

    Returns
    -------
    list of dict
        One canonical event.

    Raises
    ------
    AdapterError
        Unmappable: unknown ``type``, missing ``userId``/``sessionId``/``time``, bad JSON, ...
    Skipped
        Deliberately ignored types (:data:`SKIPPED`, ``*_ERROR``, admin operations that do not
        touch a user's sessions or credentials).

    Examples
    --------
    >>> adapt(b'{"time": 1714554000000, "type": "UPDATE_PROFILE", "userId": "u-1"}')
    Traceback (most recent call last):
    ...
    streams.adapters.errors.Skipped: skipped keycloak:UPDATE_PROFILE
    """
    if len(raw) > MAX_BYTES:
        raise AdapterError(f"record of {len(raw)} bytes exceeds {MAX_BYTES}")
    head = raw.lstrip()[:1]
    if head in (b"{", b"["):
        doc = load_object(raw)
        if "operationType" in doc:
            auth = opt_obj(doc, "authDetails", "authDetails")
            return _admin_event(doc, auth, epoch_ms(doc.get("time"), "time"))
        return _user_event(doc, epoch_ms(doc.get("time"), "time"))
    doc, ts = _parse_line(raw)
    if "operationType" in doc:
        return _admin_event(doc, doc, ts)
    return _user_event(doc, ts)


def _user_event(doc: dict[str, Any], ts: str) -> list[Event]:
    kind = req_str(doc, "type", "type")
    canonical = USER_EVENTS.get(kind)
    if canonical is None:
        if kind in SKIPPED or kind.endswith("_ERROR"):
            raise Skipped(f"keycloak:{kind}")
        raise AdapterError(f"unknown event type {kind[:80]!r}", "type")
    details = opt_obj(doc, "details", "details")
    user = opt_str(doc, "userId", "userId")
    if user is None and canonical == "login_failed":
        user = opt_str(details, "username", "details.username")  # unknown user: only the name typed
    if user is None:
        raise AdapterError("missing", "userId")
    event: Event = {"type": canonical, "ts": ts, "user": user}
    session = opt_str(doc, "sessionId", "sessionId")
    if session is None and canonical == "login":
        # Older jboss-logging lines print no sessionId; the user session takes the id of the
        # root authentication session, which LOGIN reports as details.code_id.
        session = opt_str(details, "code_id", "details.code_id")
    if canonical in ("login", "refresh"):
        if session is None:
            raise AdapterError("missing", "sessionId")
        event["session"] = session
        email = opt_str(details, "email", "details.email")
        if email is not None and "@" in email and len(email) <= 320:
            event["email"] = email
    else:
        put(event, "session", session)
    put(event, "app", opt_str(doc, "clientId", "clientId"))
    put(event, "ip", opt_ip(doc, "ipAddress", "ipAddress"))
    return [event]


def _admin_event(doc: dict[str, Any], auth: dict[str, Any], ts: str) -> list[Event]:
    """Admin events: deleting, disabling, logging out or resetting the password of a user."""
    op = req_str(doc, "operationType", "operationType")
    rtype = opt_str(doc, "resourceType", "resourceType") or "?"
    skip = Skipped(f"keycloak:admin:{op[:20]}:{rtype[:40]}")
    if doc.get("error") not in (None, "") or rtype != "USER":
        raise skip
    path = req_str(doc, "resourcePath", "resourcePath").split("/")
    if len(path) < 2 or path[0] != "users" or not path[1]:
        raise AdapterError("not users/<id>", "resourcePath")
    user = path[1]
    rest = path[2:]
    if op == "DELETE" and not rest:
        kind = "user_disabled"
    elif op == "UPDATE" and not rest:
        if not _disabled(doc):
            raise skip
        kind = "user_disabled"
    elif op == "ACTION" and rest == ["logout"]:
        kind = "logout"  # "sign out all sessions": a logout naming only the user
    elif (op == "ACTION" and rest == ["reset-password"]) or (op == "DELETE" and rest[:1] == ["credentials"]):
        kind = "credential_change"
    else:
        raise skip
    event: Event = {"type": kind, "ts": ts, "user": user}
    return [event]


def _disabled(doc: dict[str, Any]) -> bool:
    """Whether an admin UPDATE of a user set ``enabled`` to false (needs the representation)."""
    rep = doc.get("representation")
    if isinstance(rep, str):
        try:
            rep = orjson.loads(rep)
        except orjson.JSONDecodeError:
            raise AdapterError("malformed JSON", "representation") from None
    return isinstance(rep, dict) and rep.get("enabled") is False


def _parse_line(raw: bytes) -> tuple[dict[str, Any], str]:
    """Split a ``jboss-logging`` event line into a JSON-like dict and its RFC 3339 time."""
    try:
        line = bytes(raw).decode("utf-8").strip()
    except UnicodeDecodeError:
        raise AdapterError("neither JSON nor a UTF-8 key=value line") from None
    start = _START.search(line)
    if start is None:
        raise AdapterError("neither JSON nor a key=value line with type= or operationType=", "type")
    fields: dict[str, Any] = {}
    pos = start.start(1)
    while pos < len(line):
        m = _PAIR.match(line, pos)
        if m is None or m.end() == pos:
            raise AdapterError(f"unparseable key=value at column {pos + 1}", "$")
        key, value = m.group(1), m.group(2).strip()
        if len(value) > 1 and value[0] == value[-1] == '"':
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        elif len(value) > 1 and value[0] == value[-1] == "'":
            value = value[1:-1]
        fields[key] = None if value in ("null", "") else value
        pos = m.end()
    doc: dict[str, Any] = {}
    details: dict[str, Any] = {}
    for key, value in fields.items():
        if key in _TOP_LEVEL:
            doc[key] = value
        else:
            details[key] = value
    doc["details"] = details
    if "time" in fields:
        value = fields["time"]
        if value is not None and value.isdigit():
            return doc, epoch_ms(int(value), "time")
        return doc, rfc3339(value, "time")
    return doc, _line_time(line[: start.start(1)])


_TOP_LEVEL = frozenset({
    "type", "operationType", "realmId", "clientId", "userId", "sessionId", "ipAddress", "error",
    "resourceType", "resourcePath", "representation",
})


def _line_time(prefix: str) -> str:
    """The event time from the log prefix; a zoneless stamp (Quarkus default) is taken as UTC."""
    m = _PREFIX_TIME.match(prefix + " ")
    if m is None:
        raise AdapterError("no timestamp before the key=value pairs and no time=", "time")
    stamp, frac, zone = m.groups()
    text = stamp.replace(" ", "T") + (f".{frac}" if frac else "") + (zone or "Z")
    return rfc3339(text, "time")
