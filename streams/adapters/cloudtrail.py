"""AWS CloudTrail ``ConsoleLogin`` and ``AssumeRole*`` records to canonical events.

A record may arrive alone (EventBridge, CloudWatch Logs subscriptions) or in a ``{"Records": [...]}``
log file (S3 delivery); both are accepted. Any other ``eventName`` is skipped: a trail carries every
API call, and only sign-ins and role assumptions start sessions.

Examples
--------
>>> raw = (b'{"eventName": "AssumeRole", "eventTime": "2024-05-01T09:00:00Z",'
...        b' "sourceIPAddress": "198.51.100.7", "userIdentity": {"type": "IAMUser",'
...        b' "arn": "arn:aws:iam::111122223333:user/ana"}, "requestParameters": {"roleArn":'
...        b' "arn:aws:iam::111122223333:role/Deploy", "roleSessionName": "ana"},'
...        b' "responseElements": {"credentials": {"accessKeyId": "ASIAEXAMPLE"}}}')
>>> adapt(raw)[0]["session"], adapt(raw)[0]["user"]
('ASIAEXAMPLE', 'arn:aws:iam::111122223333:user/ana')
"""

from __future__ import annotations

import hashlib
from typing import Any

from streams.adapters._common import load_object, obj, opt_obj, opt_str, put, req_str, rfc3339
from streams.adapters.errors import AdapterError, Skipped
from streams.engine.events import InvalidEvent, parse_ip

__all__ = ["adapt", "console_session_id", "ASSUME_ROLE"]

Event = dict[str, Any]

ASSUME_ROLE = frozenset({"AssumeRole", "AssumeRoleWithSAML", "AssumeRoleWithWebIdentity"})
_HIDDEN = "HIDDEN_DUE_TO_SECURITY_REASONS"


def adapt(raw: bytes) -> list[Event]:
    """Map one CloudTrail record, or every record of a ``Records`` log file.

    Parameters
    ----------
    raw : bytes
        A CloudTrail record as JSON, or a log file ``{"Records": [...]}``.

    Returns
    -------
    list of dict
        One canonical event per ``ConsoleLogin``/``AssumeRole*`` record; other records are
        dropped (a file in which nothing maps raises :class:`Skipped`).

    Raises
    ------
    AdapterError
        A sign-in or role record that cannot be mapped (``field`` is ``Records[i].<path>`` in a
        log file): the whole message is dead-lettered with its raw bytes.
    Skipped
        A record of another ``eventName`` (kind ``cloudtrail:<eventName>``).

    Examples
    --------
    >>> adapt(b'{"Records": [{"eventName": "GetObject", "eventTime": "2024-05-01T09:00:00Z"}]}')
    Traceback (most recent call last):
    ...
    streams.adapters.errors.Skipped: skipped cloudtrail:GetObject
    """
    doc = load_object(raw)
    if "Records" not in doc:
        return _record(doc, "")
    records = doc["Records"]
    if not isinstance(records, list):
        raise AdapterError("not an array", "Records")
    events: list[Event] = []
    first_skip: Skipped | None = None
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise AdapterError("not an object", f"Records[{i}]")
        try:
            events.extend(_record(rec, f"Records[{i}]."))
        except Skipped as skip:
            first_skip = first_skip or skip
    if not events:
        raise first_skip or Skipped("cloudtrail:empty")
    return events


def console_session_id(principal: str, ts: str) -> str:
    """Stable session id of a console sign-in: a hash of the principal and the sign-in time.

    Examples
    --------
    >>> console_session_id("arn:aws:iam::111122223333:user/ana", "2024-05-01T09:00:00Z")
    'aws-console-6cbeb56f3fb30a4aa3aeac42319a0eb9'
    """
    digest = hashlib.sha256(f"{principal}\n{ts}".encode()).hexdigest()
    return f"aws-console-{digest[:32]}"


def _record(rec: dict[str, Any], at: str) -> list[Event]:
    name = req_str(rec, "eventName", f"{at}eventName")
    if name == "ConsoleLogin":
        return [_console_login(rec, at)]
    if name in ASSUME_ROLE:
        return [_assume_role(rec, name, at)]
    raise Skipped(f"cloudtrail:{name[:60]}")


def _principal(rec: dict[str, Any], at: str) -> str:
    ident = obj(rec, "userIdentity", f"{at}userIdentity")
    for key in ("arn", "userName", "principalId", "invokedBy"):
        value = opt_str(ident, key, f"{at}userIdentity.{key}")
        if value is not None:
            return value
    raise AdapterError("no arn, userName, principalId or invokedBy", f"{at}userIdentity")


def _context(rec: dict[str, Any], at: str, event: Event) -> Event:
    source = opt_str(rec, "sourceIPAddress", f"{at}sourceIPAddress")
    if source is not None:
        try:
            put(event, "ip", parse_ip(source, f"{at}sourceIPAddress"))
        except InvalidEvent:
            pass  # AWS writes a service name ("sts.amazonaws.com") for calls made by services
    put(event, "device", opt_str(rec, "userAgent", f"{at}userAgent"))
    return event


def _console_login(rec: dict[str, Any], at: str) -> Event:
    ts = rfc3339(rec.get("eventTime"), f"{at}eventTime")
    user = _principal(rec, at)
    response = opt_obj(rec, "responseElements", f"{at}responseElements")
    outcome = opt_str(response, "ConsoleLogin", f"{at}responseElements.ConsoleLogin")
    if outcome is None:
        outcome = "Failure" if rec.get("errorMessage") or rec.get("errorCode") else None
    if outcome == "Success":
        event: Event = {"type": "login", "ts": ts, "user": user,
                        "session": console_session_id(user, ts), "channel": "web"}
        extra = opt_obj(rec, "additionalEventData", f"{at}additionalEventData")
        mfa = opt_str(extra, "MFAUsed", f"{at}additionalEventData.MFAUsed")
        if mfa in ("Yes", "No"):
            event["aal"] = 2 if mfa == "Yes" else 1
    elif outcome == "Failure":
        if user == _HIDDEN:
            raise Skipped("cloudtrail:ConsoleLogin:unknown-user")
        event = {"type": "login_failed", "ts": ts, "user": user, "channel": "web"}
    elif outcome is None:
        raise AdapterError("missing", f"{at}responseElements.ConsoleLogin")
    else:
        raise AdapterError(f"neither Success nor Failure: {outcome[:20]!r}",
                           f"{at}responseElements.ConsoleLogin")
    return _context(rec, at, event)


def _assume_role(rec: dict[str, Any], name: str, at: str) -> Event:
    ts = rfc3339(rec.get("eventTime"), f"{at}eventTime")
    user = _principal(rec, at)
    request = opt_obj(rec, "requestParameters", f"{at}requestParameters")
    role = opt_str(request, "roleArn", f"{at}requestParameters.roleArn")
    if rec.get("errorCode") not in (None, ""):
        event: Event = {"type": "login_failed", "ts": ts, "user": user, "channel": "api"}
        put(event, "app", role)
        return _context(rec, at, event)
    response = obj(rec, "responseElements", f"{at}responseElements")
    creds = opt_obj(response, "credentials", f"{at}responseElements.credentials")
    session = opt_str(creds, "accessKeyId", f"{at}responseElements.credentials.accessKeyId")
    if session is None:
        assumed = opt_obj(response, "assumedRoleUser", f"{at}responseElements.assumedRoleUser")
        session = opt_str(assumed, "arn", f"{at}responseElements.assumedRoleUser.arn")
    if session is None:
        raise AdapterError("missing (and so is assumedRoleUser.arn)",
                           f"{at}responseElements.credentials.accessKeyId")
    event = {"type": "login", "ts": ts, "user": user, "session": session, "channel": "api"}
    put(event, "app", role)
    return _context(rec, at, event)
