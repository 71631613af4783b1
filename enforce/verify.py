"""Verify lapse's Security Event Tokens (RFC 8417 as profiled by the Shared Signals Framework 1.0).

The verifier lives in ``enforce`` so that an enforcement point can check tokens without installing
the engine; ``streams.publish.verify`` re-exports it.

Every failure is a subclass of :class:`SetVerificationError` whose ``reason`` is a short counter
name (``forged``, ``unknown_kid``, ``malformed``, ...).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

from joserfc import jws
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import OKPKey, RSAKey

from enforce.jose import registry_for
from enforce.wire import ALGS_BY_KTY, ALLOWED_ALGS, HEARTBEAT_TYP, MIN_RSA_BITS, SET_TYP, subject_key

MAX_TOKEN_CHARS = 16 * 1024


class SetVerificationError(ValueError):
    """A token that must not be acted upon. ``reason`` names the counter it is counted under."""

    reason = "invalid"


class MalformedToken(SetVerificationError):
    """Not a compact JWS with a JSON header and a JSON-object payload."""

    reason = "malformed"


class UnknownKey(SetVerificationError):
    """The header's ``kid`` is missing or names no key of the configured JWKS."""

    reason = "unknown_kid"


class WrongAlgorithm(SetVerificationError):
    """``alg`` is not allowed, or does not belong to the key named by ``kid`` (alg confusion)."""

    reason = "bad_alg"


class ForgedSignature(SetVerificationError):
    """The signature does not verify with the key named by ``kid``."""

    reason = "forged"


class WrongType(SetVerificationError):
    """The header ``typ`` is not ``secevent+jwt`` (an ID token, access token, logout token...)."""

    reason = "wrong_typ"


class WrongIssuer(SetVerificationError):
    reason = "wrong_iss"


class WrongAudience(SetVerificationError):
    reason = "wrong_aud"


class ForbiddenClaim(SetVerificationError):
    """``sub`` or ``exp`` present: SSF 1.0 section 4.1 forbids both in a SET."""

    reason = "forbidden_claim"


class InvalidClaim(SetVerificationError):
    """A required claim (``jti``, ``iat``, ``sub_id``) is missing or has the wrong shape."""

    reason = "invalid_claim"


class BadEvents(SetVerificationError):
    """``events`` is not a non-empty object of event objects (or, with ``single_event``, holds
    more than one)."""

    reason = "bad_events"


class JwksError(ValueError):
    """The configured JWKS cannot be used (bad JSON, symmetric key, short RSA key, missing kid...)."""




def load_jwks(jwks: Mapping[str, Any] | str | os.PathLike[str]) -> dict[str, tuple[Any, frozenset[str]]]:
    """Parse a JWKS (dict, JSON text, or path to a JSON file) into ``{kid: (public key, algs)}``.

    Refuses symmetric keys, RSA keys under 2048 bits, curves other than Ed25519, keys without a
    ``kid`` and duplicate kids: an enforcement point must fail at start, not on the first token.
    """
    doc: Any = jwks
    if isinstance(jwks, os.PathLike) or (isinstance(jwks, str) and not jwks.lstrip().startswith("{")):
        path = Path(jwks)
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            raise JwksError(f"JWKS file {path} does not exist") from None
        except (OSError, ValueError) as exc:
            raise JwksError(f"JWKS file {path} is not readable JSON: {exc}") from None
    elif isinstance(jwks, str):
        try:
            doc = json.loads(jwks)
        except ValueError as exc:
            raise JwksError(f"JWKS text is not JSON: {exc}") from None
    if not isinstance(doc, Mapping) or not isinstance(doc.get("keys"), list):
        raise JwksError('JWKS must be a JSON object with a "keys" list')
    if not doc["keys"]:
        raise JwksError("JWKS has no keys")
    keys: dict[str, tuple[Any, frozenset[str]]] = {}
    for i, jwk in enumerate(doc["keys"]):
        if not isinstance(jwk, Mapping):
            raise JwksError(f"JWKS key #{i} is not an object")
        kid = jwk.get("kid")
        if not isinstance(kid, str) or not kid:
            raise JwksError(f"JWKS key #{i} has no kid")
        if kid in keys:
            raise JwksError(f"JWKS has two keys with kid {kid!r}")
        public = {k: v for k, v in jwk.items() if k not in ("d", "p", "q", "dp", "dq", "qi", "oth")}
        kty = public.get("kty")
        try:
            if kty == "OKP":
                if public.get("crv") != "Ed25519":
                    raise JwksError(f"JWKS key {kid!r}: only the Ed25519 curve is accepted, not {public.get('crv')!r}")
                key: Any = OKPKey.import_key(dict(public))
            elif kty == "RSA":
                key = RSAKey.import_key(dict(public))
                bits = key.public_key.key_size
                if bits < MIN_RSA_BITS:
                    raise JwksError(f"JWKS key {kid!r}: RSA key of {bits} bits is under {MIN_RSA_BITS}")
            else:
                raise JwksError(f"JWKS key {kid!r}: key type {kty!r} is not accepted (OKP Ed25519 or RSA only)")
        except (JoseError, ValueError, TypeError) as exc:
            if isinstance(exc, JwksError):
                raise
            raise JwksError(f"JWKS key {kid!r} cannot be imported: {exc}") from None
        algs = ALGS_BY_KTY[kty]
        pinned = public.get("alg")
        if pinned is not None:
            if pinned not in algs:
                raise JwksError(f"JWKS key {kid!r}: alg {pinned!r} does not fit key type {kty}")
            # "EdDSA" and "Ed25519" name the same thing for an Ed25519 key
            algs = algs if kty == "OKP" else frozenset({pinned})
        use = public.get("use")
        if use not in (None, "sig"):
            raise JwksError(f"JWKS key {kid!r} has use {use!r}, not 'sig'")
        keys[kid] = (key, algs)
    return keys


def _typ_ok(typ: Any, expected: str) -> bool:
    if not isinstance(typ, str):
        return False
    typ = typ.lower()
    return typ == expected or typ == "application/" + expected


class SetVerifier:
    """Check a compact SET and return its claims, or raise a :class:`SetVerificationError`.

    ``audience`` may be one string or a collection of acceptable audiences; the token's ``aud``
    (string or list) must contain at least one of them.

    ``events`` may hold several event types about the subject (RFC 8417 section 2.2, SSF 1.0
    section 4.2.1); :func:`the_events` lists them. ``single_event=True`` refuses more than one, as
    the CAEP Interoperability Profile requires of transmitters.
    """

    def __init__(
        self,
        jwks: Mapping[str, Any] | str | os.PathLike[str],
        issuer: str,
        audience: str | Collection[str],
        *,
        max_future_s: float = 300.0,
        clock: Callable[[], float] = time.time,
        single_event: bool = False,
    ) -> None:
        if not isinstance(issuer, str) or not issuer:
            raise ValueError("SetVerifier: issuer must be a non-empty string")
        if isinstance(audience, str):
            audiences = frozenset({audience})
        else:
            audiences = frozenset(audience)
        if not audiences or not all(isinstance(a, str) and a for a in audiences):
            raise ValueError("SetVerifier: audience must be a non-empty string or a list of them")
        self.issuer = issuer
        self.audiences = audiences
        self.keys = load_jwks(jwks)
        self.max_future_s = max_future_s
        self.clock = clock
        self.single_event = single_event

    # -- the steps, in the order an attacker's token meets them ---------------------------------
    def _header(self, token: str | bytes) -> tuple[dict[str, Any], bytes]:
        if isinstance(token, str):
            token = token.encode("ascii", "replace")
        if not isinstance(token, bytes):
            raise MalformedToken("token is not a string")
        if len(token) > MAX_TOKEN_CHARS:
            raise MalformedToken(f"token longer than {MAX_TOKEN_CHARS} characters")
        if token.count(b".") != 2:
            raise MalformedToken("not a compact JWS (three dot-separated parts)")
        try:
            header = jws.extract_compact(token).headers()
        except Exception as exc:  # joserfc raises DecodeError, binascii.Error, TypeError...
            raise MalformedToken(f"undecodable JWS: {exc}") from None
        if not isinstance(header, dict):
            raise MalformedToken("JOSE header is not an object")
        return header, token

    def verify(self, token: str | bytes, *, typ: str = SET_TYP) -> dict[str, Any]:
        claims = self._signed_claims(token, typ)
        self.check_claims(claims)
        return claims

    def verify_heartbeat(self, token: str | bytes) -> dict[str, Any]:
        """Check a feed heartbeat (``typ`` ``lapse-heartbeat+jwt``) and return its claims.

        Same signature checks as a SET, then: ``iss`` equal, ``aud`` contains ours, ``iat`` a
        number not more than ``max_future_s`` ahead, ``partition`` (when present) a non-negative
        integer, and no ``events`` / ``sub_id``: a heartbeat says "the feed was alive at ``iat``"
        and nothing about any session.
        """
        claims = self._signed_claims(token, HEARTBEAT_TYP)
        self._check_iss_aud(claims)
        self._check_iat(claims)
        for member in ("events", "sub_id"):
            if member in claims:
                raise InvalidClaim(f"a heartbeat must not carry {member!r}")
        part = claims.get("partition")
        if part is not None and (isinstance(part, bool) or not isinstance(part, int) or part < 0):
            raise InvalidClaim(f"heartbeat partition {part!r} is not a non-negative integer")
        return claims

    def _signed_claims(self, token: str | bytes, typ: str) -> dict[str, Any]:
        header, raw = self._header(token)
        if "crit" in header:
            raise MalformedToken(f"unsupported critical header parameters {header['crit']!r}")
        if not _typ_ok(header.get("typ"), typ):
            raise WrongType(f"typ {header.get('typ')!r} is not {typ!r}")
        alg = header.get("alg")
        if alg not in ALLOWED_ALGS:
            raise WrongAlgorithm(f"alg {alg!r} is not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or kid not in self.keys:
            raise UnknownKey(f"kid {kid!r} is not in the JWKS")
        key, algs = self.keys[kid]
        if alg not in algs:
            raise WrongAlgorithm(f"alg {alg!r} does not belong to key {kid!r}")
        try:
            payload = jws.deserialize_compact(raw, key, registry=registry_for(alg)).payload
        except BadSignatureError:
            raise ForgedSignature(f"signature does not verify with key {kid!r}") from None
        except (JoseError, ValueError, TypeError) as exc:
            raise MalformedToken(f"undecodable JWS: {exc}") from None
        try:
            claims = json.loads(payload)
        except ValueError:
            raise MalformedToken("payload is not JSON") from None
        if not isinstance(claims, dict):
            raise MalformedToken("payload is not a JSON object")
        return claims

    def _check_iss_aud(self, claims: dict[str, Any]) -> None:
        if claims.get("iss") != self.issuer:
            raise WrongIssuer(f"iss {claims.get('iss')!r} is not {self.issuer!r}")
        aud = claims.get("aud")
        auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if not any(isinstance(a, str) and a in self.audiences for a in auds):
            raise WrongAudience(f"aud {aud!r} does not name this receiver")

    def _check_iat(self, claims: dict[str, Any]) -> None:
        iat = claims.get("iat")
        if isinstance(iat, bool) or not isinstance(iat, (int, float)) or iat != iat:  # NaN
            raise InvalidClaim("iat missing or not a number")
        if iat > self.clock() + self.max_future_s:
            raise InvalidClaim(f"iat {iat} is in the future")

    def check_claims(self, claims: dict[str, Any]) -> None:
        self._check_iss_aud(claims)
        for forbidden in ("sub", "exp"):
            if forbidden in claims:
                raise ForbiddenClaim(f"a SET must not carry {forbidden!r}")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise InvalidClaim("jti missing")
        self._check_iat(claims)
        sub_id = claims.get("sub_id")
        if not isinstance(sub_id, dict) or not isinstance(sub_id.get("format"), str):
            raise InvalidClaim("sub_id missing or has no format")
        check_events(claims, single=self.single_event)


#: most event types one SET may carry (RFC 8417 allows several about one subject)
MAX_EVENTS = 16


def check_events(claims: Mapping[str, Any], *, single: bool = False) -> None:
    """``events`` must be an object of 1..MAX_EVENTS event objects keyed by URI (only one when
    ``single``). Raises :class:`BadEvents`."""
    events = claims.get("events")
    if not isinstance(events, dict) or not events:
        raise BadEvents("events must hold at least one event, not none")
    if single and len(events) != 1:
        raise BadEvents(f"events must hold exactly one event, not {len(events)}")
    if len(events) > MAX_EVENTS:
        raise BadEvents(f"events holds {len(events)} events, more than {MAX_EVENTS}")
    for uri, body in events.items():
        if not isinstance(uri, str) or not uri:
            raise BadEvents("an event type is not a non-empty string")
        if not isinstance(body, dict):
            raise BadEvents(f"the event {uri!r} is not an object")


def the_events(claims: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every (event type URI, event object) of a verified SET, in the token's order."""
    return list(claims["events"].items())


def the_event(claims: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The (event type URI, event object) of a verified SET holding one event; with several, the
    first (use :func:`the_events` to see them all)."""
    uri, body = next(iter(claims["events"].items()))
    return uri, body


def subject_member(claims: Mapping[str, Any], member: str) -> str | None:
    """The ``id`` of an opaque member (``session``, ``user``...) of a complex ``sub_id``, if any.

    A simple opaque ``sub_id`` counts as a session id only when asked for ``session``.
    """
    sub_id = claims.get("sub_id") or {}
    fmt = sub_id.get("format")
    if fmt == "complex":
        sub = sub_id.get(member)
    elif fmt == "opaque" and member == "session":
        sub = sub_id
    else:
        return None
    if not isinstance(sub, dict):
        return None
    if sub.get("format") == "opaque" and isinstance(sub.get("id"), str):
        return sub["id"]
    if sub.get("format") == "iss_sub" and isinstance(sub.get("sub"), str):
        return sub["sub"]
    if sub.get("format") == "email" and isinstance(sub.get("email"), str):
        return sub["email"]
    return None


def user_subject_key(claims: Mapping[str, Any]) -> str | None:
    r"""The :func:`enforce.wire.subject_key` of the user a SET is about when the SET names a user
    and no session: a simple ``iss_sub`` / ``email`` / ``phone_number`` / ``account`` subject, or a
    complex one with a ``user`` member and no ``session``. None for a session-level SET.

    (A simple ``opaque`` subject stays a session id, as :func:`subject_member` reads it.)

    >>> user_subject_key({"sub_id": {"format": "email", "email": "ann@example.com"}})
    'email\x1fann@example.com'
    >>> user_subject_key({"sub_id": {"format": "complex", "user": {"format": "opaque", "id": "u"},
    ...                              "session": {"format": "opaque", "id": "s"}}}) is None
    True
    """
    sub_id = claims.get("sub_id")
    if not isinstance(sub_id, dict):
        return None
    fmt = sub_id.get("format")
    if fmt == "complex":
        if "session" in sub_id:
            return None
        return subject_key(sub_id.get("user"))
    if fmt in ("iss_sub", "email", "phone_number", "account"):
        return subject_key(sub_id)
    return None
