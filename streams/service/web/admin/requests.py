"""Manual-revoke request records: the ``user-requests`` envelope the admin API writes and the user
agent reads.

One concept: the request record, both ends of it (write: :func:`revoke_envelope` and
:func:`produce_request`; read: :func:`parse_request` -> :class:`AdminRequest`), kept together so
the fields written and the fields checked cannot drift apart.

**Manual revoke** never touches state from the web handler: it produces an envelope
``{"kind": "manual_revoke", ...}`` to ``user-requests`` keyed by user, so the user agent that owns
the user's partition handles it in order with the user's events, through the engine
(:meth:`Engine.manual_revoke`) and the normal commit order (see
:meth:`streams.service.web.admin.operator.Operator.handle`). The envelope is sealed
(streams/service/pipeline/sealed.py, bound to the topic and the user): the operator and ``auth`` in it are
the ones the API established from the bearer token, and the worker that handles it takes them from
the opened seal only — whoever can write ``user-requests`` cannot name an operator or revoke
anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from streams.engine.events import MAX_CHARS, MAX_TS, MIN_TS
from streams.service.web.admin.auth import _NAME
from streams.service.pipeline.ingest import Rejected
from streams.service.pipeline.sealed import sealer_of, seal_request

if TYPE_CHECKING:
    from streams.service.app import Service

AUTH_KINDS = ("named token", "shared token")


@dataclass(frozen=True, slots=True)
class AdminRequest:
    """A ``user-requests`` envelope from the admin API, handled by the user agent like an event."""

    type: str          # "manual_revoke"
    user: str
    session: str | None
    operator: str
    note: str
    ts: float
    request: str
    auth: str          # "named token" | "shared token"


def revoke_envelope(user: str, session: str | None, operator: str, note: str, ts: float, request: str,
                    auth: str) -> bytes:
    return orjson.dumps({"kind": "manual_revoke", "user": user, "session": session, "operator": operator,
                         "note": note, "ts": ts, "request": request, "auth": auth})


def parse_request(env: dict[str, Any]) -> AdminRequest | Rejected:
    """``{"kind": "manual_revoke", ...}`` -> :class:`AdminRequest` (or a dead letter's reason).

    Only ever given the payload of a ``user-requests`` record that opened
    (:func:`streams.service.pipeline.sealed.open_request`): the seal is what makes ``operator`` and
    ``auth`` the admin API's word rather than the record writer's. The fields are still checked,
    as this API writes them (operator a name, auth how the token identified them).

    >>> parse_request({"kind": "manual_revoke", "user": "u", "operator": "ann", "ts": 1, "request": "r",
    ...                "auth": "named token"}).user
    'u'
    >>> parse_request({"kind": "manual_revoke", "user": 7}).field
    'user'
    >>> parse_request({"kind": "manual_revoke", "user": "u", "operator": "ann", "ts": 1, "auth": "trust me"}).field
    'auth'
    """
    user, session, operator = env.get("user"), env.get("session"), env.get("operator")
    if not isinstance(user, str) or not user:
        return Rejected("manual_revoke: user must be a non-empty string", "user")
    if session is not None and not isinstance(session, str):
        return Rejected("manual_revoke: session must be a string or null", "session")
    if not isinstance(operator, str) or not _NAME.match(operator):
        return Rejected("manual_revoke: operator must be a name (letters, digits, ._@+-)", "operator")
    if len(user) > MAX_CHARS["user"] or (session is not None and (not session or len(session) > MAX_CHARS["session"])):
        return Rejected("manual_revoke: user and session must be at most 1024 characters", "session")
    ts = env.get("ts")
    if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not MIN_TS <= ts < MAX_TS:
        return Rejected("manual_revoke: ts must be epoch seconds a date can hold", "ts")
    auth = env.get("auth")
    if auth not in AUTH_KINDS:
        return Rejected(f"manual_revoke: auth must be one of {', '.join(AUTH_KINDS)}", "auth")
    return AdminRequest("manual_revoke", user, session, operator, str(env.get("note") or "")[:500], float(ts),
                        str(env.get("request") or f"{operator}@{ts!r}"), auth)


async def produce_request(service: "Service", user: str, payload: bytes) -> None:
    """Seal an envelope for ``user-requests`` under key ``user``, send it, and wait for the broker's
    acknowledgement."""
    topic = service.settings.topic("user-requests")
    value = seal_request(sealer_of(service), topic, user.encode(), payload)
    send = getattr(service, "_send", None)
    if send is not None:  # the service's raw producer path (same partitioner as every user-keyed send)
        fut = await send(topic, user, value)
    else:
        fut = await service.user_requests.send(key=user, value=value)
    await fut
