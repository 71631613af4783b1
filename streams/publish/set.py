"""Turn a lapse decision into a signed Security Event Token (RFC 8417, SSF 1.0, CAEP 1.0).

Claims of every SET::

    header  {"alg": "EdDSA"|"RS256", "typ": "secevent+jwt", "kid": ...}
    iss     the configured issuer          aud    the configured audience(s)
    iat     signing time (epoch seconds)   jti    the decision id (stable, so re-publishing dedupes)
    txn     one value shared by every SET of one cause (see :func:`cause_txn`)
    sub_id  {"format": "complex",
             "user":    <user subject, see below>,
             "session": {"format": "opaque", "id": <session>}}

The user subject is ``iss_sub`` (``{"iss": decision["issuer"], "sub": <user>}``) when the decision
carries the identity provider's ``issuer``, else ``iss_sub`` with the signer's ``user_issuer``, else
``email`` when the decision carries ``email``, else ``opaque``. The CAEP Interoperability Profile
asks for ``email`` or ``iss_sub``: adapters that know them should put them on the identity events.
    events  exactly one event, see below.           No "sub", no "exp" (SSF 1.0 section 4.1).

``action: revoke`` -> ``.../caep/event-type/session-revoked`` with ``event_timestamp`` (decision
``at``), ``initiating_entity`` (see REASON_ENTITY), ``reason_admin`` and ``reason_user``.

``action: step_up`` -> ``.../caep/event-type/risk-level-change`` with ``principal: SESSION``,
``current_level`` (HIGH by default), ``risk_reason`` (the decision reason), ``event_timestamp``,
``initiating_entity``, ``reason_admin``. Why not assurance-level-change: that event reports that the
subject's *authentication* changed (namespace + current_level are required); lapse observed a risk,
not a new authentication, and inventing assurance levels would mislead receivers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

from joserfc import jws

from enforce import wire
from enforce.jose import registry_for
from streams.engine.decisions import cause_txn
from streams.engine.events import InvalidEvent, parse_ts
from streams.publish.keys import SigningKey

#: Who initiated the end of the session, per decision reason (CAEP ``initiating_entity``).
#: Timeouts are policy evaluations; detections and upstream identity signals are system
#: assertions; an operator's manual revocation is an admin action. Unknown reasons -> "system".
REASON_ENTITY: dict[str, str] = {
    "idle_timeout": "policy",
    "absolute_timeout": "policy",
    "ids_alert": "system",
    "anomaly": "system",
    "account_event": "system",
    "sso_logout": "system",  # lapse relays the IdP's logout; CAEP "user" is outside the contract
    "manual": "admin",
    "session_limit": "policy",
    "engine_fault": "system",
}

REASON_ADMIN: dict[str, str] = {
    "idle_timeout": "idle timeout: no activity for longer than the policy allows",
    "absolute_timeout": "absolute timeout: session older than the policy allows",
    "ids_alert": "intrusion detection alert attributed to this session",
    "account_event": "account event (disabled, deleted, credentials changed)",
    "sso_logout": "single sign-on session ended at the identity provider",
    "anomaly": "anomalous session behaviour scored above the policy threshold",
    "manual": "revoked by an administrator",
    "session_limit": "the user already holds as many live sessions as the policy allows",
    "engine_fault": "lapse could not evaluate this session's state and ended it (fail closed)",
}

REASON_USER: dict[str, str] = {
    "idle_timeout": "Your session expired after a period of inactivity. Please sign in again.",
    "absolute_timeout": "Your session has expired. Please sign in again.",
    "sso_logout": "You have been signed out. Please sign in again.",
    "manual": "Your session was ended by an administrator. Please sign in again.",
}
DEFAULT_REASON_USER = "Your session was ended for your security. Please sign in again."

ACTIONS = ("revoke", "step_up")


class InvalidDecision(ValueError):
    """A decision that cannot become a SET (missing id/session/at, unknown action...)."""


def epoch_seconds(at: Any) -> int:
    """``2026-01-01T00:00:00Z`` (RFC 3339 with an offset) -> 1767225600. Naive times are refused."""
    if isinstance(at, (int, float)) and not isinstance(at, bool):
        return int(at)
    if not isinstance(at, str) or not at:
        raise InvalidDecision(f"decision 'at' must be an RFC 3339 timestamp, not {at!r}")
    try:
        return int(parse_ts(at))  # the project's one RFC 3339 reader (a zone is required)
    except InvalidEvent as exc:
        raise InvalidDecision(f"decision 'at' {at[:64]!r} is not an RFC 3339 timestamp with an offset "
                              f"({exc.reason})") from None


def _need_str(decision: Mapping[str, Any], field: str) -> str:
    v = decision.get(field)
    if not isinstance(v, str) or not v:
        raise InvalidDecision(f"decision {field!r} must be a non-empty string, not {v!r}")
    return v


def reason_admin_text(decision: Mapping[str, Any]) -> str:
    reason = decision.get("reason") or "unspecified"
    text = f"{reason}: {REASON_ADMIN.get(reason, 'decision by lapse')}"
    policy = decision.get("policy")
    if policy:
        text += f" (policy {', '.join(map(str, policy)) if isinstance(policy, list) else policy}"
        if decision.get("policy_version"):
            text += f" @ {decision['policy_version']}"
        text += ")"
    return text


def user_subject(user: str, decision: Mapping[str, Any], user_issuer: str | None = None) -> dict[str, str]:
    """The subject identifier of ``user`` (SSF 1.0 / RFC 9493 formats), best first.

    >>> user_subject("u1", {"issuer": "https://idp.example.com/", "email": "u1@example.com"})
    {'format': 'iss_sub', 'iss': 'https://idp.example.com/', 'sub': 'u1'}
    >>> user_subject("u1", {"email": "U1@Example.com"})
    {'format': 'email', 'email': 'U1@Example.com'}
    >>> user_subject("u1", {}, "https://idp.example.com/")["format"], user_subject("u1", {})
    ('iss_sub', {'format': 'opaque', 'id': 'u1'})
    """
    issuer = decision.get("issuer")
    if isinstance(issuer, str) and issuer:
        return {"format": "iss_sub", "iss": issuer, "sub": user}
    if user_issuer:
        return {"format": "iss_sub", "iss": user_issuer, "sub": user}
    email = decision.get("email")
    if isinstance(email, str) and "@" in email and len(email) <= 320:
        return {"format": "email", "email": email}
    return {"format": "opaque", "id": user}


#: evidence members that identify an IDS alert (the same alert revokes sessions of many users)
class SetSigner:
    """Sign decisions as SETs with one key for one (issuer, audience)."""

    def __init__(
        self,
        key: SigningKey,
        issuer: str,
        audience: str | Collection[str],
        *,
        user_issuer: str | None = None,
        step_up_risk_level: str = "HIGH",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(key, SigningKey):
            raise TypeError("SetSigner: key must be a streams.publish.keys.SigningKey (see load_signing_key)")
        if not isinstance(issuer, str) or not issuer:
            raise ValueError("SetSigner: issuer must be a non-empty string (e.g. https://lapse.example.com/)")
        if isinstance(audience, str):
            aud: str | list[str] = audience
            ok = bool(audience)
        else:
            aud = list(audience)
            ok = bool(aud) and all(isinstance(a, str) and a for a in aud)
            if len(aud) == 1:
                aud = aud[0]
        if not ok:
            raise ValueError("SetSigner: audience must be a non-empty string or list of strings")
        if step_up_risk_level not in wire.RISK_LEVELS:
            raise ValueError(f"SetSigner: step_up_risk_level must be one of {wire.RISK_LEVELS}")
        self.key = key
        self.issuer = issuer
        self.audience = aud
        self.user_issuer = user_issuer
        self.step_up_risk_level = step_up_risk_level
        self.clock = clock
        self._header = {"alg": key.alg, "typ": wire.SET_TYP, "kid": key.kid}

    def _user_subject(self, user: str, decision: Mapping[str, Any] | None = None) -> dict[str, str]:
        return user_subject(user, decision or {}, self.user_issuer)

    def claims(self, decision: Mapping[str, Any]) -> dict[str, Any]:
        """The SET claims for ``decision`` (pure apart from ``iat``)."""
        if not isinstance(decision, Mapping):
            raise InvalidDecision("decision must be a JSON object")
        jti = _need_str(decision, "id")
        session = _need_str(decision, "session")
        action = decision.get("action")
        if action not in ACTIONS:
            raise InvalidDecision(f"decision action {action!r} is not one of {ACTIONS}")
        reason = decision.get("reason")
        if not isinstance(reason, str) or not reason:
            raise InvalidDecision(f"decision reason must be a non-empty string, not {reason!r}")
        ts = epoch_seconds(decision.get("at"))
        sub_id: dict[str, Any] = {"format": "complex"}
        user = decision.get("user")
        if isinstance(user, str) and user:
            sub_id["user"] = self._user_subject(user, decision)
        sub_id["session"] = {"format": "opaque", "id": session}
        entity = REASON_ENTITY.get(reason, "system")
        admin = {"en": reason_admin_text(decision)}
        if action == "revoke":
            event_uri = wire.SESSION_REVOKED
            event: dict[str, Any] = {
                "event_timestamp": ts,
                "initiating_entity": entity,
                "reason_admin": admin,
                "reason_user": {"en": REASON_USER.get(reason, DEFAULT_REASON_USER)},
            }
        else:
            event_uri = wire.RISK_LEVEL_CHANGE
            event = {
                "principal": "SESSION",
                "current_level": self.step_up_risk_level,
                "risk_reason": reason,
                "event_timestamp": ts,
                "initiating_entity": entity,
                "reason_admin": admin,
            }
        return {
            "iss": self.issuer,
            "iat": int(self.clock()),
            "jti": jti,
            "aud": self.audience,
            "txn": cause_txn(decision),
            "sub_id": sub_id,
            "events": {event_uri: event},
        }

    def sign_claims(self, claims: Mapping[str, Any], header: Mapping[str, Any] | None = None) -> str:
        hdr = {**self._header, **(header or {})}
        payload = json.dumps(claims, separators=(",", ":"), ensure_ascii=False)
        return jws.serialize_compact(hdr, payload, self.key.key, registry=registry_for(hdr["alg"]))

    def sign(self, decision: Mapping[str, Any]) -> str:
        """The compact JWS of the SET for ``decision``. Raises InvalidDecision."""
        return self.sign_claims(self.claims(decision))

    def logout_token(
        self,
        decision: Mapping[str, Any],
        *,
        audience: str | Collection[str] | None = None,
        lifetime_s: int = 120,
    ) -> str:
        """An OpenID Connect Back-Channel Logout 1.0 token for a ``revoke`` decision, for apps that
        already speak it: header ``typ: logout+jwt``; claims ``iss``, ``aud`` (the RP's client id),
        ``iat``, ``exp`` (short, required by the spec), ``jti``, ``events`` with the back-channel
        logout member, ``sid`` (the decision's ``sso_session`` if known, else ``session``) and ``sub``
        (the user) when ``user_issuer`` says the user id is the OP's ``sub``. Never ``nonce``."""
        if decision.get("action") != "revoke":
            raise InvalidDecision("only revoke decisions become logout tokens")
        jti = _need_str(decision, "id")
        session = _need_str(decision, "session")
        now = int(self.clock())
        aud = self.audience if audience is None else (audience if isinstance(audience, str) else list(audience))
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": aud,
            "iat": now,
            "exp": now + lifetime_s,
            "jti": jti,
            "events": {wire.BACKCHANNEL_LOGOUT: {}},
            "sid": decision.get("sso_session") or session,
        }
        if self.user_issuer and isinstance(decision.get("user"), str):
            claims["sub"] = decision["user"]
        return self.sign_claims(claims, {"typ": wire.LOGOUT_TYP})


def encode_message(decision: Mapping[str, Any], signer: SetSigner) -> bytes:
    """The revocations-topic message value: ``{"decision": {...}, "set": "<compact JWS>"}``."""
    return wire.encode(dict(decision), signer.sign(decision))
