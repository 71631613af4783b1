"""Okta System Log (``LogEvent`` JSON, one event per record) to canonical events.

The mapping is documented field by field in ``docs/adapters.md``. In short: session events take the
user from ``actor``, account events from the first ``target`` of type ``User`` (the admin is the
actor there), the session from ``authenticationContext.externalSessionId`` and the time from
``published``.

Examples
--------
>>> raw = (b'{"eventType": "user.session.start", "published": "2024-05-01T09:00:00.000Z",'
...        b' "actor": {"id": "00u1", "alternateId": "ana@example.com", "type": "User"},'
...        b' "outcome": {"result": "SUCCESS"}, "client": {"ipAddress": "198.51.100.7"},'
...        b' "authenticationContext": {"externalSessionId": "102abc"}}')
>>> [(e["type"], e["session"], e["email"], e["ip"]) for e in adapt(raw)]
[('login', '102abc', 'ana@example.com', '198.51.100.7')]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streams.adapters._common import load_object, obj, opt_ip, opt_num, opt_obj, opt_str, put, req_str, rfc3339
from streams.adapters.errors import AdapterError, Skipped

__all__ = ["adapt", "MAPPED", "SKIPPED", "SEVERITY"]

Event = dict[str, Any]

SEVERITY: dict[str, str] = {"ERROR": "high", "WARN": "medium", "INFO": "low", "DEBUG": "low"}
"""Okta ``severity`` to canonical alert severity."""

SKIPPED: frozenset[str] = frozenset({
    # Steps inside a sign-in: they neither start nor prove use of a session (see docs/adapters.md).
    "policy.evaluate_sign_on",
    "user.authentication.verify",
    "user.authentication.auth_via_mfa",
    # Account changes that never shorten a session.
    "user.account.unlock",
    "user.lifecycle.create",
    "user.lifecycle.activate",
    "user.lifecycle.unsuspend",
})
"""Event types that are well understood and deliberately ignored (counted as skips)."""

_SUCCESS = frozenset({"SUCCESS", "ALLOW"})
_FAILURE = frozenset({"FAILURE", "DENY"})
_UNKNOWN_IDS = frozenset({"unknown", "Unknown", "UNKNOWN"})


def adapt(raw: bytes) -> list[Event]:
    """Map one Okta ``LogEvent`` to zero or more canonical events.

    Parameters
    ----------
    raw : bytes
        One System Log event as JSON (as returned by ``/api/v1/logs`` or an event hook).

    Returns
    -------
    list of dict
        Canonical events (``user.session.end`` gives one logout naming the Okta session both as its
        ``session`` and its ``sso_session``: it ends, and so does every app session linked to it).

    Raises
    ------
    AdapterError
        The record cannot be mapped; ``field`` names the culprit (``eventType`` when unknown).
    Skipped
        A deliberately ignored type (:data:`SKIPPED`) or an outcome that changes nothing.

    Examples
    --------
    >>> adapt(b'{"eventType": "policy.evaluate_sign_on", "published": "2024-05-01T09:00:00Z"}')
    Traceback (most recent call last):
    ...
    streams.adapters.errors.Skipped: skipped okta:policy.evaluate_sign_on
    """
    doc = load_object(raw)
    etype = req_str(doc, "eventType", "eventType")
    handler = _HANDLERS.get(etype)
    if handler is None and etype.startswith("user.mfa.factor."):
        handler = _credential_change
    if handler is None:
        if etype in SKIPPED:
            raise Skipped(f"okta:{etype}")
        raise AdapterError(f"unknown event type {etype[:80]!r}", "eventType")
    return handler(doc, etype, rfc3339(doc.get("published"), "published"))


# --- field extraction ------------------------------------------------------------------------


def _principal(entity: dict[str, Any], path: str) -> str:
    """``alternateId`` (the login) when known, else ``id``."""
    alt = opt_str(entity, "alternateId", f"{path}.alternateId")
    if alt is not None and alt not in _UNKNOWN_IDS:
        return alt
    ident = opt_str(entity, "id", f"{path}.id")
    if ident is not None and ident not in _UNKNOWN_IDS:
        return ident
    raise AdapterError("no alternateId or id", path)


def _actor(doc: dict[str, Any]) -> str:
    return _principal(obj(doc, "actor", "actor"), "actor")


def _subject(doc: dict[str, Any]) -> str:
    """The user an account event is about: first ``target`` of type ``User``, else the actor."""
    targets = doc.get("target")
    if targets is not None and not isinstance(targets, list):
        raise AdapterError("not an array", "target")
    for i, target in enumerate(targets or ()):
        if isinstance(target, dict) and target.get("type") == "User":
            return _principal(target, f"target[{i}]")
    return _actor(doc)


def _session(doc: dict[str, Any], required: bool) -> str | None:
    ctx = opt_obj(doc, "authenticationContext", "authenticationContext")
    sid = opt_str(ctx, "externalSessionId", "authenticationContext.externalSessionId")
    if sid is None or sid in _UNKNOWN_IDS:
        if required:
            raise AdapterError("missing", "authenticationContext.externalSessionId")
        return None
    return sid


def _result(doc: dict[str, Any]) -> str | None:
    return opt_str(opt_obj(doc, "outcome", "outcome"), "result", "outcome.result")


def _client(doc: dict[str, Any], event: Event) -> Event:
    """Add ``ip``, ``device``, ``channel`` and ``geo`` from ``client`` and ``securityContext``."""
    client = opt_obj(doc, "client", "client")
    put(event, "ip", opt_ip(client, "ipAddress", "client.ipAddress"))
    agent = opt_obj(client, "userAgent", "client.userAgent")
    put(event, "device", opt_str(agent, "rawUserAgent", "client.userAgent.rawUserAgent"))
    kind = opt_str(client, "device", "client.device")
    if kind == "Mobile":
        event["channel"] = "mobile"
    elif kind == "Computer":
        event["channel"] = "web"
    geo: dict[str, Any] = {}
    place = opt_obj(client, "geographicalContext", "client.geographicalContext")
    put(geo, "country", opt_str(place, "country", "client.geographicalContext.country"))
    point = opt_obj(place, "geolocation", "client.geographicalContext.geolocation")
    put(geo, "lat", opt_num(point, "lat", "client.geographicalContext.geolocation.lat"))
    put(geo, "lon", opt_num(point, "lon", "client.geographicalContext.geolocation.lon"))
    security = opt_obj(doc, "securityContext", "securityContext")
    asn = opt_num(security, "asNumber", "securityContext.asNumber")
    if asn is not None:
        if not isinstance(asn, int):
            raise AdapterError("not an integer", "securityContext.asNumber")
        geo["asn"] = asn
    put(event, "geo", geo)
    return event


def _app_target(doc: dict[str, Any]) -> tuple[str, str]:
    """(id, name) of the ``AppInstance`` target of an SSO event."""
    targets = doc.get("target")
    if isinstance(targets, list):
        for i, target in enumerate(targets):
            if isinstance(target, dict) and target.get("type") == "AppInstance":
                ident = req_str(target, "id", f"target[{i}].id")
                name = (opt_str(target, "displayName", f"target[{i}].displayName")
                        or opt_str(target, "alternateId", f"target[{i}].alternateId") or ident)
                return ident, name
    raise AdapterError("no target of type AppInstance", "target")


# --- handlers ----------------------------------------------------------------------------------


def _email(event: Event, user: str) -> None:
    """Okta names users by their login, an email address in most orgs: receivers of the revocation
    tokens that want an ``email`` subject get it."""
    if "@" in user and len(user) <= 320:
        event["email"] = user


def _session_start(doc: dict[str, Any], etype: str, ts: str) -> list[Event]:
    result = _result(doc)
    user = _actor(doc)
    if result in _SUCCESS:
        event = {"type": "login", "ts": ts, "user": user, "session": _session(doc, True)}
        _email(event, user)
    elif result in _FAILURE:
        event = {"type": "login_failed", "ts": ts, "user": user}
        put(event, "session", _session(doc, False))
    elif result is None:
        raise AdapterError("missing", "outcome.result")
    else:
        raise Skipped(f"okta:{etype}:{result}")
    return [_client(doc, event)]


def _sso(doc: dict[str, Any], etype: str, ts: str) -> list[Event]:
    result = _result(doc)
    user = _actor(doc)
    app_id, app = _app_target(doc)
    sso = _session(doc, result in _SUCCESS)
    if result in _SUCCESS:
        event = {"type": "login", "ts": ts, "user": user, "session": f"{sso}/{app_id}",
                 "sso_session": sso, "app": app}
        _email(event, user)
    elif result in _FAILURE:
        event = {"type": "login_failed", "ts": ts, "user": user, "app": app}
    elif result is None:
        raise AdapterError("missing", "outcome.result")
    else:
        raise Skipped(f"okta:{etype}:{result}")
    return [_client(doc, event)]


def _session_end(doc: dict[str, Any], etype: str, ts: str) -> list[Event]:
    if _result(doc) in _FAILURE:
        raise Skipped(f"okta:{etype}:FAILURE")
    user = _actor(doc)
    sid = _session(doc, True)
    # one logout: the Okta session ends, and with it every app session linked to it (sso_session)
    return [_client(doc, {"type": "logout", "ts": ts, "user": user, "session": sid, "sso_session": sid})]


def _session_clear(doc: dict[str, Any], etype: str, ts: str) -> list[Event]:
    if _result(doc) in _FAILURE:
        raise Skipped(f"okta:{etype}:FAILURE")
    return [{"type": "logout", "ts": ts, "user": _subject(doc)}]


def _account(kind: str) -> Callable[[dict[str, Any], str, str], list[Event]]:
    def handle(doc: dict[str, Any], etype: str, ts: str) -> list[Event]:
        result = _result(doc)
        if result is not None and result not in _SUCCESS:
            raise Skipped(f"okta:{etype}:{result}")
        return [{"type": kind, "ts": ts, "user": _subject(doc)}]

    return handle


_credential_change = _account("credential_change")


def _alert(doc: dict[str, Any], etype: str, ts: str) -> list[Event]:
    level = req_str(doc, "severity", "severity")
    severity = SEVERITY.get(level)
    if severity is None:
        raise AdapterError(f"unknown severity {level[:20]!r}", "severity")
    event: Event = {"type": "alert", "ts": ts, "severity": severity, "signature": f"okta {etype}"}
    if etype == "user.account.report_suspicious_activity_by_enduser":
        # The reporter's own client is not the threat; the reported activity's address is.
        debug = opt_obj(opt_obj(doc, "debugContext", "debugContext"), "debugData", "debugContext.debugData")
        put(event, "src_ip", opt_ip(debug, "suspiciousActivityEventIp",
                                     "debugContext.debugData.suspiciousActivityEventIp"))
        event["user"] = _subject(doc)
        return [event]
    put(event, "src_ip", opt_ip(opt_obj(doc, "client", "client"), "ipAddress", "client.ipAddress"))
    actor = opt_obj(doc, "actor", "actor")
    if actor.get("type") == "User":
        try:
            event["user"] = _principal(actor, "actor")
        except AdapterError:
            pass  # ThreatInsight often has no known user: the address is enough
    put(event, "session", _session(doc, False))
    if "src_ip" not in event and "user" not in event and "session" not in event:
        raise AdapterError("alert names no address, user or session", "client.ipAddress")
    return [event]


_HANDLERS: dict[str, Callable[[dict[str, Any], str, str], list[Event]]] = {
    "user.session.start": _session_start,
    "user.authentication.sso": _sso,
    "user.session.end": _session_end,
    "user.session.clear": _session_clear,
    "user.account.lock": _account("user_disabled"),
    "user.account.suspend": _account("user_disabled"),
    "user.account.deactivate": _account("user_disabled"),
    "user.lifecycle.suspend": _account("user_disabled"),
    "user.lifecycle.deactivate": _account("user_disabled"),
    "user.lifecycle.delete.initiated": _account("user_disabled"),
    "user.account.update_password": _credential_change,
    "user.account.reset_password": _credential_change,
    "security.threat.detected": _alert,
    "user.account.report_suspicious_activity_by_enduser": _alert,
}

MAPPED: frozenset[str] = frozenset(_HANDLERS) | {"user.mfa.factor.*"}
"""Event types that map to canonical events (``user.mfa.factor.*`` is a prefix)."""
